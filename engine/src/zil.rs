//! The ZFS intent log: per-dataset log of changes, made durable by `fsync` without waiting for
//! a txg sync, and replayed at import. OpenZFS: zil.c, zil_impl.h, dmu.c (dmu_sync).
//! Every change to a head is kept as an in-memory itx with its txg. `commit` writes all pending
//! itxs, in order, into a chain of 16 KiB log blocks, each naming the preallocated location of
//! the next (the objset header names the first), and flushes; whole large blocks are written in
//! place first (dmu_sync) and logged by block pointer. A txg sync drops itxs and frees log
//! blocks it covers. Import walks the chain from the header, stops at the first block whose
//! guid, sequence or checksum is wrong (torn or never written), and replays the complete
//! operations of txgs after the imported one, in the same txg that starts a fresh chain, so a
//! crash during replay replays again from the same state (idempotent).
//! Crash argument: a commit returns only after its flush, so an fsynced op survives; a torn
//! commit leaves a prefix of whole operations, because an op's records carry its sequence
//! number and only ops whose last record is present are replayed.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::error::ZioError;
use crate::vdev::label::{seal, verify};
use crate::zio::blkptr::{get64, BlkPtr, Dva, BP_BYTES};
use crate::zio::checksum::ChecksumType;
use crate::zio::compress::Compress;
use crate::zio::{WriteProps, Zio, ZioWriteError};

/// Bytes of one log block.
pub const ZIL_BLOCK_SIZE: u64 = 16 * 1024;
/// Log block magic ("ZSIMZIL1").
pub const ZIL_MAGIC: u64 = u64::from_le_bytes(*b"ZSIMZIL1");
/// Bytes of the log block header; the checksum lives in its last 32 bytes.
pub const ZIL_HEADER_BYTES: usize = 1024;
/// Largest piece of copied write data in one record (WR_COPIED).
pub const ZIL_COPIED_MAX: usize = 8 * 1024;
/// Whole-block writes at least this large are written in place (dmu_sync, WR_INDIRECT).
pub const ZIL_INDIRECT_MIN: usize = 32 * 1024;
/// Longest chain walked at import.
pub const ZIL_CHAIN_MAX: u64 = 1 << 20;
/// Bytes of the ZIL header inside the objset block, at `ZIL_HEADER_OFFSET`.
pub const ZIL_HEADER_OFFSET: usize = 520;

const REC_HEADER: usize = 40;
const FLAG_LAST: u16 = 1;
const _: () =
    assert!(ZIL_HEADER_BYTES + REC_HEADER + 16 + ZIL_COPIED_MAX <= ZIL_BLOCK_SIZE as usize);

/// The persistent header: where the chain starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZilHeader {
    /// Chain guid: blocks of other chains never verify.
    pub guid: u64,
    /// Sequence number of the first block.
    pub seq: u64,
    /// Location of the first block (written or preallocated).
    pub first: Dva,
    /// Nonce the first block must carry (chosen when its location was preallocated).
    pub nonce: u64,
}

/// Bytes of an encoded `ZilHeader`.
pub const ZIL_HEADER_PHYS_BYTES: usize = 40;

impl ZilHeader {
    /// Encode into the 32 bytes at `out`.
    pub fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.guid.to_le_bytes());
        out[8..16].copy_from_slice(&self.seq.to_le_bytes());
        out[16..24].copy_from_slice(&self.first.offset.to_le_bytes());
        out[24..32].copy_from_slice(&self.first.asize.to_le_bytes());
        out[32..40].copy_from_slice(&self.nonce.to_le_bytes());
    }

    /// Decode from 32 bytes.
    #[must_use]
    pub fn decode(raw: &[u8]) -> Self {
        Self {
            guid: get64(raw, 0),
            seq: get64(raw, 8),
            first: Dva { offset: get64(raw, 16), asize: get64(raw, 24) },
            nonce: get64(raw, 32),
        }
    }
}

/// What an itx records (lr_*_t).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItxKind {
    /// Bytes written at an offset (data captured when the write happened).
    Write {
        /// Object.
        object: u64,
        /// Byte offset.
        offset: u64,
        /// The data.
        data: Arc<Vec<u8>>,
        /// Object block size at the time (to find whole blocks).
        blksz: u32,
    },
    /// Whole aligned blocks written, sharing the dirty buffers (no copy).
    WriteBlocks {
        /// Object.
        object: u64,
        /// First block id.
        first_blkid: u64,
        /// The blocks, each `blksz` long.
        blocks: Vec<crate::dbuf::BlockBuf>,
    },
    /// free_range (len u64::MAX = truncate).
    FreeRange {
        /// Object.
        object: u64,
        /// Offset.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// Object allocated (claim semantics at replay).
    Create {
        /// Object.
        object: u64,
        /// Its spec: ot, blksz, indblkshift, bonustype, bonuslen.
        spec: (u8, u32, u8, u8, u16),
    },
    /// Object re-created.
    Reclaim {
        /// Object.
        object: u64,
        /// Its new spec.
        spec: (u8, u32, u8, u8, u16),
    },
    /// Object freed.
    Remove {
        /// Object.
        object: u64,
    },
    /// Bonus replaced.
    SetBonus {
        /// Object.
        object: u64,
        /// Bonus type.
        bonustype: u8,
        /// Bonus bytes.
        data: Vec<u8>,
    },
}

/// A pending log record.
#[derive(Clone, Debug)]
pub struct Itx {
    /// Txg the change belongs to.
    pub txg: u64,
    /// What changed.
    pub kind: ItxKind,
}

/// A replayable operation decoded from the log (WRITE_BLOCK already read back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedOp {
    /// Txg of the change.
    pub txg: u64,
    /// The change; writes carry their data.
    pub kind: ItxKind,
}

#[derive(Clone, Copy, Debug)]
struct LogBlock {
    dva: Dva,
    max_txg: u64,
    nonce: u64,
}

/// Counters of one commit, in disk commands (the fsync latency the benchmark reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Log blocks written.
    pub log_blocks: u64,
    /// Blocks written in place (dmu_sync).
    pub indirect_blocks: u64,
    /// Flushes issued.
    pub flushes: u64,
}

/// Why a commit failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitError {
    /// No space for log blocks.
    NoSpace,
    /// A device write or flush failed.
    Io(crate::vdev::VdevError),
}

/// The in-memory log of one head.
#[derive(Debug, Clone)]
pub struct Zilog {
    guid: u64,
    blocks: VecDeque<LogBlock>,
    first_seq: u64,
    next: Dva,
    next_seq: u64,
    /// Nonce the block at `next` must carry: a stale block left there by an earlier life of
    /// this chain (same guid, same sequence) never matches, so a walk cannot wander into it.
    next_nonce: u64,
    /// Nonces drawn so far (with the guid and the incarnation, the nonce generator's input).
    nonces: u64,
    /// Differs for every life of the chain (the txg loaded when it was resumed).
    incarnation: u64,
    /// Log blocks were written but their flush failed: the next commit must flush.
    unflushed: bool,
    itxs: Vec<Itx>,
    indirect: Vec<(u64, BlkPtr)>,
    op_seq: u64,
    /// See `last_logged_txg`.
    last_logged_txg: u64,
    /// Header changed since the objset was last written.
    pub dirty: bool,
    /// Txg whose objset block carries this chain's current header (None: not written yet).
    /// A commit is only acknowledged once that txg has committed (OpenZFS zil_create waits
    /// for a txg the same way): otherwise a crash would leave a header naming another chain.
    pub header_txg: Option<u64>,
}

impl Zilog {
    /// A fresh, empty chain whose first block will go to `first` (preallocated).
    #[must_use]
    pub fn new(guid: u64, first: Dva) -> Self {
        assert_eq!(first.asize, ZIL_BLOCK_SIZE, "log block preallocation");
        let mut z = Self {
            guid,
            blocks: VecDeque::new(),
            first_seq: 0,
            next: first,
            next_seq: 0,
            next_nonce: 0,
            nonces: 0,
            incarnation: 0,
            unflushed: false,
            itxs: Vec::new(),
            indirect: Vec::new(),
            op_seq: 0,
            last_logged_txg: 0,
            dirty: true,
            header_txg: None,
        };
        z.next_nonce = z.fresh_nonce();
        z
    }

    fn fresh_nonce(&mut self) -> u64 {
        self.nonces += 1;
        let mut x = self.guid ^ self.incarnation.rotate_left(21) ^ self.nonces.rotate_left(42);
        crate::spa::splitmix64(&mut x)
    }

    /// The header to persist with the objset.
    #[must_use]
    pub fn header(&self) -> ZilHeader {
        match self.blocks.front() {
            Some(b) => {
                ZilHeader { guid: self.guid, seq: self.first_seq, first: b.dva, nonce: b.nonce }
            }
            None => ZilHeader {
                guid: self.guid,
                seq: self.next_seq,
                first: self.next,
                nonce: self.next_nonce,
            },
        }
    }

    /// Queue a change made in `txg`.
    pub fn log(&mut self, txg: u64, kind: ItxKind) {
        assert!(self.itxs.last().is_none_or(|i| i.txg <= txg), "itx txgs go backwards");
        self.last_logged_txg = self.last_logged_txg.max(txg);
        self.itxs.push(Itx { txg, kind });
    }

    /// Bytes the log holds on disk (log blocks and blocks written in place).
    #[must_use]
    pub fn log_bytes(&self) -> u64 {
        self.blocks.len() as u64 * ZIL_BLOCK_SIZE
            + self.indirect.iter().map(|(_, bp)| bp.asize_total()).sum::<u64>()
    }

    /// The newest txg a change was logged in, committed to log blocks or not. That txg must
    /// sync even if the change dirtied nothing (a zero-length free), or a later import would
    /// replay the change over a state that already holds it, or after an export.
    #[must_use]
    pub fn last_logged_txg(&self) -> u64 {
        self.last_logged_txg
    }

    /// Every extent this log holds allocated (log blocks, the preallocated next block,
    /// blocks written in place), for space accounting.
    #[must_use]
    pub fn extents(&self) -> Vec<Dva> {
        let mut v: Vec<Dva> = self.blocks.iter().map(|b| b.dva).collect();
        v.push(self.next);
        v.extend(self.indirect.iter().flat_map(|(_, bp)| bp.dvas().copied().collect::<Vec<_>>()));
        v
    }

    /// Syncing context of txg `txg`: free (deferred to txg `txg`, so they stay intact until
    /// it commits) the log blocks and in-place blocks that only cover txgs up to it. The
    /// pending itxs of `txg` stay until it commits (`clean`): an fsync while it syncs must
    /// still log them, or a crash before the commit would lose them.
    pub fn sync(&mut self, zio: &mut Zio, txg: u64) {
        while self.blocks.front().is_some_and(|b| b.max_txg <= txg) {
            let b = self.blocks.pop_front().expect("invariant: checked");
            zio.ms.free_deferred(txg, b.dva);
            self.first_seq += 1;
            self.dirty = true;
        }
        let (old, keep): (Vec<_>, Vec<_>) = self.indirect.drain(..).partition(|(t, _)| *t <= txg);
        self.indirect = keep;
        for (_, bp) in old {
            zio.free(&bp, txg);
        }
    }

    /// Txg `txg` committed (OpenZFS zil_clean): its pending itxs are in the pool now.
    pub fn clean(&mut self, txg: u64) {
        self.itxs.retain(|i| i.txg > txg);
    }

    /// Free everything this log holds (rollback, receive, destroy, after replay).
    pub fn discard(self, zio: &mut Zio, txg: u64) {
        for d in self.extents() {
            zio.ms.free_deferred(txg, d);
        }
    }

    /// Write every pending itx to the log and flush. `checksum` is the dataset's, for
    /// blocks written in place.
    ///
    /// # Errors
    /// `NoSpace` or `Io`; the itxs stay pending (a later commit may retry).
    pub fn commit(
        &mut self,
        zio: &mut Zio,
        checksum: ChecksumType,
    ) -> Result<CommitStats, CommitError> {
        let mut stats = CommitStats::default();
        if self.itxs.is_empty() && !self.unflushed {
            return Ok(stats);
        }
        let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
        let itxs = std::mem::take(&mut self.itxs);
        for itx in &itxs {
            self.op_seq += 1;
            match self.encode_itx(zio, itx, checksum, &mut stats) {
                Ok(mut recs) => {
                    mark_last(recs.last_mut().expect("an itx has records"));
                    records.extend(recs.into_iter().map(|r| (itx.txg, r)));
                }
                Err(e) => {
                    self.itxs = itxs;
                    return Err(e);
                }
            }
        }
        if let Err(e) = self.write_blocks(zio, &records, &mut stats) {
            self.itxs = itxs;
            return Err(e);
        }
        // The records are in written blocks now: if the flush fails they must not be logged
        // again (a replay would apply them twice); the next commit retries the flush.
        self.unflushed = true;
        zio.dev.flush().map_err(CommitError::Io)?;
        self.unflushed = false;
        stats.flushes += 1;
        Ok(stats)
    }

    fn encode_itx(
        &mut self,
        zio: &mut Zio,
        itx: &Itx,
        checksum: ChecksumType,
        stats: &mut CommitStats,
    ) -> Result<Vec<Vec<u8>>, CommitError> {
        let seq = self.op_seq;
        let rec = |ty: u16, object: u64, body: &[u8]| record(ty, itx.txg, seq, object, body);
        Ok(match &itx.kind {
            ItxKind::Write { object, offset, data, blksz } => self
                .encode_write(zio, itx.txg, seq, *object, *offset, data, *blksz, checksum, stats)?,
            ItxKind::WriteBlocks { object, first_blkid, blocks } => {
                let mut out = Vec::new();
                for (i, b) in blocks.iter().enumerate() {
                    let bs = u32::try_from(b.len()).expect("block <= 128 KiB");
                    let offset = (first_blkid + i as u64) * u64::from(bs);
                    out.extend(self.encode_write(
                        zio, itx.txg, seq, *object, offset, b, bs, checksum, stats,
                    )?);
                }
                out
            }
            ItxKind::FreeRange { object, offset, len } => {
                vec![rec(3, *object, &[offset.to_le_bytes(), len.to_le_bytes()].concat())]
            }
            ItxKind::Create { object, spec } => vec![rec(4, *object, &spec_bytes(*spec))],
            ItxKind::Reclaim { object, spec } => vec![rec(5, *object, &spec_bytes(*spec))],
            ItxKind::Remove { object } => vec![rec(6, *object, &[])],
            ItxKind::SetBonus { object, bonustype, data } => {
                let mut body = vec![*bonustype, 0, 0, 0, 0, 0, 0, 0];
                body.extend_from_slice(&(data.len() as u64).to_le_bytes());
                body.extend_from_slice(data);
                vec![rec(7, *object, &body)]
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn encode_write(
        &mut self,
        zio: &mut Zio,
        txg: u64,
        seq: u64,
        object: u64,
        offset: u64,
        data: &[u8],
        blksz: u32,
        checksum: ChecksumType,
        stats: &mut CommitStats,
    ) -> Result<Vec<Vec<u8>>, CommitError> {
        let bs = u64::from(blksz.max(1));
        let mut out = Vec::new();
        let mut at = 0usize;
        while at < data.len() {
            let pos = offset + at as u64;
            let whole = pos.is_multiple_of(bs)
                && data.len() - at >= bs as usize
                && bs as usize >= ZIL_INDIRECT_MIN;
            if whole {
                let piece = &data[at..at + bs as usize];
                let props = WriteProps {
                    ot: 19,
                    level: 0,
                    checksum,
                    compress: Compress::Off,
                    copies: 1,
                    embed: false,
                };
                let bp = zio.write(piece, &props, txg).map_err(|e| match e {
                    ZioWriteError::NoSpace => CommitError::NoSpace,
                    ZioWriteError::Io(v) => CommitError::Io(v),
                })?;
                stats.indirect_blocks += 1;
                self.indirect.push((txg, bp));
                let mut body = (pos / bs).to_le_bytes().to_vec();
                let mut raw = [0u8; BP_BYTES];
                bp.encode(&mut raw);
                body.extend_from_slice(&raw);
                out.push(record(2, txg, seq, object, &body));
                at += bs as usize;
            } else {
                let n = (data.len() - at).min(ZIL_COPIED_MAX);
                let mut body = pos.to_le_bytes().to_vec();
                body.extend_from_slice(&(n as u64).to_le_bytes());
                body.extend_from_slice(&data[at..at + n]);
                out.push(record(1, txg, seq, object, &body));
                at += n;
            }
        }
        if out.is_empty() {
            out.push(record(
                1,
                txg,
                seq,
                object,
                &[offset.to_le_bytes(), 0u64.to_le_bytes()].concat(),
            ));
        }
        Ok(out)
    }

    /// Write `records` into new log blocks. On a write failure the chain is rolled back to
    /// where it was (blocks already written stay on disk: a replay may find them, which only
    /// applies a prefix of operations nobody was told were durable; the next commit
    /// overwrites the first of them, and its successor's nonce differs).
    fn write_blocks(
        &mut self,
        zio: &mut Zio,
        records: &[(u64, Vec<u8>)],
        stats: &mut CommitStats,
    ) -> Result<(), CommitError> {
        let saved = (self.next, self.next_seq, self.next_nonce, self.blocks.len());
        let mut fresh: Vec<Dva> = Vec::new();
        let r = self.write_blocks_inner(zio, records, stats, &mut fresh);
        if r.is_err() {
            (self.next, self.next_seq, self.next_nonce) = (saved.0, saved.1, saved.2);
            self.blocks.truncate(saved.3);
            for d in fresh {
                zio.ms.free_now(d);
            }
        }
        r
    }

    fn write_blocks_inner(
        &mut self,
        zio: &mut Zio,
        records: &[(u64, Vec<u8>)],
        stats: &mut CommitStats,
        fresh: &mut Vec<Dva>,
    ) -> Result<(), CommitError> {
        let cap = ZIL_BLOCK_SIZE as usize - ZIL_HEADER_BYTES;
        let mut i = 0;
        while i < records.len() {
            let mut used = 0;
            let mut j = i;
            while j < records.len() && used + records[j].1.len() <= cap {
                used += records[j].1.len();
                j += 1;
            }
            assert!(j > i, "record larger than a log block");
            let next = zio.ms.alloc(ZIL_BLOCK_SIZE).ok_or(CommitError::NoSpace)?;
            fresh.push(next);
            let next_nonce = self.fresh_nonce();
            let block = self.build_block(next, next_nonce, &records[i..j]);
            zio.dev.write(self.next.offset, &block).map_err(CommitError::Io)?;
            let max_txg = records[i..j].iter().map(|(t, _)| *t).max().expect("non-empty");
            self.blocks.push_back(LogBlock { dva: self.next, max_txg, nonce: self.next_nonce });
            self.next = next;
            self.next_nonce = next_nonce;
            self.next_seq += 1;
            stats.log_blocks += 1;
            i = j;
        }
        Ok(())
    }

    fn build_block(&self, next: Dva, next_nonce: u64, records: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut b = vec![0u8; ZIL_BLOCK_SIZE as usize];
        let mut at = ZIL_HEADER_BYTES;
        for (_, r) in records {
            b[at..at + r.len()].copy_from_slice(r);
            at += r.len();
        }
        b[0..8].copy_from_slice(&ZIL_MAGIC.to_le_bytes());
        b[8..16].copy_from_slice(&self.guid.to_le_bytes());
        b[16..24].copy_from_slice(&self.next_seq.to_le_bytes());
        b[24..32].copy_from_slice(&next.offset.to_le_bytes());
        b[32..40].copy_from_slice(&next.asize.to_le_bytes());
        b[40..48].copy_from_slice(&((at - ZIL_HEADER_BYTES) as u64).to_le_bytes());
        b[56..64].copy_from_slice(&self.next_nonce.to_le_bytes());
        b[64..72].copy_from_slice(&next_nonce.to_le_bytes());
        let area_cksum = block_cksum(&b[ZIL_HEADER_BYTES..]);
        b[48..56].copy_from_slice(&area_cksum.to_le_bytes());
        seal(&mut b[..ZIL_HEADER_BYTES], self.next.offset);
        b
    }
}

/// A cheap checksum of a block's record area, kept in the (sealed) header.
fn block_cksum(area: &[u8]) -> u64 {
    let c = crate::zio::checksum::fletcher4(area);
    c[0] ^ c[1].rotate_left(17) ^ c[2].rotate_left(31) ^ c[3].rotate_left(47)
}

fn spec_bytes(spec: (u8, u32, u8, u8, u16)) -> Vec<u8> {
    let mut b = vec![spec.0, spec.2, spec.3, 0];
    b.extend_from_slice(&spec.1.to_le_bytes());
    b.extend_from_slice(&u64::from(spec.4).to_le_bytes());
    b
}

fn record(ty: u16, txg: u64, seq: u64, object: u64, body: &[u8]) -> Vec<u8> {
    let len = (REC_HEADER + body.len()).next_multiple_of(8);
    let mut r = vec![0u8; len];
    r[0..2].copy_from_slice(&ty.to_le_bytes());
    r[4..8].copy_from_slice(&u32::try_from(len).expect("record < 16 KiB").to_le_bytes());
    r[8..16].copy_from_slice(&txg.to_le_bytes());
    r[16..24].copy_from_slice(&seq.to_le_bytes());
    r[24..32].copy_from_slice(&object.to_le_bytes());
    r[REC_HEADER..REC_HEADER + body.len()].copy_from_slice(body);
    r
}

fn mark_last(r: &mut [u8]) {
    r[2..4].copy_from_slice(&FLAG_LAST.to_le_bytes());
}

/// What import finds in a log.
#[derive(Debug, Default)]
pub struct LoadedLog {
    /// Complete operations with txg > the imported txg, in order.
    pub ops: Vec<LoggedOp>,
    /// Extents the log holds (valid blocks, the next preallocated block, live in-place
    /// blocks): claimed as allocated at import.
    pub extents: Vec<Dva>,
    /// Valid blocks walked.
    pub blocks: u64,
    valid: Vec<LogBlock>,
    next: Dva,
    next_seq: u64,
    next_nonce: u64,
    indirect: Vec<(u64, BlkPtr)>,
}

impl Zilog {
    /// Continue the chain import found: new commits append after its last valid block, so
    /// the header on disk keeps naming every block (no txg sync is needed before the
    /// next commit is acknowledged).
    #[must_use]
    pub fn resume(h: &ZilHeader, loaded: &LoadedLog, incarnation: u64) -> Self {
        Self {
            guid: h.guid,
            blocks: loaded.valid.iter().copied().collect(),
            first_seq: h.seq,
            next: loaded.next,
            next_seq: loaded.next_seq,
            next_nonce: loaded.next_nonce,
            nonces: 0,
            incarnation,
            unflushed: false,
            itxs: Vec::new(),
            indirect: loaded.indirect.clone(),
            op_seq: 0,
            last_logged_txg: 0,
            dirty: false,
            header_txg: Some(0),
        }
    }
}

/// Walk the chain named by `h`, keeping complete ops of txgs after `synced_txg`. Never
/// fails: a block that does not verify ends the chain.
///
/// A block written in place that cannot be read back also ends the chain.
#[must_use]
pub fn load(zio: &mut Zio, h: &ZilHeader, synced_txg: u64) -> LoadedLog {
    let mut out = LoadedLog::default();
    if h.guid == 0 || h.first.asize != ZIL_BLOCK_SIZE {
        return out;
    }
    let (mut at, mut seq, mut nonce) = (h.first, h.seq, h.nonce);
    let mut pending: Vec<LoggedOp> = Vec::new();
    let mut buf = vec![0u8; ZIL_BLOCK_SIZE as usize];
    while out.blocks < ZIL_CHAIN_MAX {
        out.extents.push(at);
        out.next = at;
        out.next_seq = seq;
        out.next_nonce = nonce;
        let ok = zio.dev.read(at.offset, &mut buf).is_ok()
            && block_ok(&buf, at.offset, h.guid, seq, nonce);
        if !ok {
            break;
        }
        out.blocks += 1;
        let used = usize::try_from(get64(&buf, 40)).unwrap_or(usize::MAX);
        let area = &buf[ZIL_HEADER_BYTES..ZIL_HEADER_BYTES + used];
        // A block written in place that cannot be read ends the usable log here (only
        // whole operations before it are replayed).
        let Ok(max_txg) = parse_records(zio, area, synced_txg, &mut pending, &mut out) else {
            break;
        };
        out.valid.push(LogBlock { dva: at, max_txg, nonce });
        let next = Dva { offset: get64(&buf, 24), asize: get64(&buf, 32) };
        nonce = get64(&buf, 64);
        seq += 1;
        if next.asize != ZIL_BLOCK_SIZE
            || !next.offset.is_multiple_of(crate::limits::SPA_MINBLOCKSIZE)
        {
            break;
        }
        at = next;
    }
    out
}

fn block_ok(b: &[u8], offset: u64, guid: u64, seq: u64, nonce: u64) -> bool {
    if !verify(&b[..ZIL_HEADER_BYTES], offset)
        || get64(b, 0) != ZIL_MAGIC
        || get64(b, 8) != guid
        || get64(b, 16) != seq
        || get64(b, 56) != nonce
    {
        return false;
    }
    let used = get64(b, 40);
    used <= ZIL_BLOCK_SIZE - ZIL_HEADER_BYTES as u64
        && get64(b, 48) == block_cksum(&b[ZIL_HEADER_BYTES..])
}

fn parse_records(
    zio: &mut Zio,
    mut area: &[u8],
    synced: u64,
    pending: &mut Vec<LoggedOp>,
    out: &mut LoadedLog,
) -> Result<u64, ZioError> {
    let mut max_txg = 0;
    while area.len() >= REC_HEADER {
        let ty = u16::from_le_bytes([area[0], area[1]]);
        let flags = u16::from_le_bytes([area[2], area[3]]);
        let len = u32::from_le_bytes(area[4..8].try_into().expect("4")) as usize;
        if len < REC_HEADER || len > area.len() {
            break;
        }
        let (txg, object, body) = (get64(area, 8), get64(area, 24), &area[REC_HEADER..len]);
        max_txg = max_txg.max(txg);
        if txg > synced {
            if let Some(kind) = decode_record(zio, ty, object, body, out)? {
                merge_pending(pending, LoggedOp { txg, kind });
            }
            if flags & FLAG_LAST != 0 {
                out.ops.append(pending);
            }
        }
        area = &area[len..];
    }
    Ok(max_txg)
}

/// Consecutive write pieces of one op become one write when contiguous.
fn merge_pending(pending: &mut Vec<LoggedOp>, op: LoggedOp) {
    if let (
        Some(LoggedOp { kind: ItxKind::Write { object: o1, offset: off1, data: d1, .. }, .. }),
        ItxKind::Write { object: o2, offset: off2, data: d2, .. },
    ) = (pending.last_mut(), &op.kind)
    {
        if o1 == o2 && *off1 + d1.len() as u64 == *off2 {
            Arc::make_mut(d1).extend_from_slice(d2);
            return;
        }
    }
    pending.push(op);
}

fn decode_record(
    zio: &mut Zio,
    ty: u16,
    object: u64,
    body: &[u8],
    out: &mut LoadedLog,
) -> Result<Option<ItxKind>, ZioError> {
    let spec = |b: &[u8]| -> Option<(u8, u32, u8, u8, u16)> {
        (b.len() >= 16).then(|| {
            (
                b[0],
                u32::from_le_bytes(b[4..8].try_into().expect("4")),
                b[1],
                b[2],
                u16::try_from(get64(b, 8)).unwrap_or(u16::MAX),
            )
        })
    };
    Ok(match ty {
        1 if body.len() >= 16 => {
            let n = usize::try_from(get64(body, 8)).unwrap_or(usize::MAX).min(body.len() - 16);
            Some(ItxKind::Write {
                object,
                offset: get64(body, 0),
                data: Arc::new(body[16..16 + n].to_vec()),
                blksz: 0,
            })
        }
        2 if body.len() >= 8 + BP_BYTES => {
            let bp = BlkPtr::decode(&body[8..8 + BP_BYTES])?;
            out.extents.extend(bp.dvas().copied());
            out.indirect.push((bp.birth_txg, bp));
            let data = zio.read(&bp)?;
            let offset = get64(body, 0).saturating_mul(u64::from(bp.lsize));
            Some(ItxKind::Write { object, offset, data: Arc::new(data.to_vec()), blksz: bp.lsize })
        }
        3 if body.len() >= 16 => {
            Some(ItxKind::FreeRange { object, offset: get64(body, 0), len: get64(body, 8) })
        }
        4 => spec(body).map(|spec| ItxKind::Create { object, spec }),
        5 => spec(body).map(|spec| ItxKind::Reclaim { object, spec }),
        6 => Some(ItxKind::Remove { object }),
        7 if body.len() >= 16 => {
            let n = usize::try_from(get64(body, 8)).unwrap_or(usize::MAX).min(body.len() - 16);
            Some(ItxKind::SetBonus { object, bonustype: body[0], data: body[16..16 + n].to_vec() })
        }
        _ => None,
    })
}
