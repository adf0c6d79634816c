//! Full and incremental send by birth-txg traversal. OpenZFS: module/zfs/dmu_send.c.
//! Called by `Spa::send` (zsim gen, golden, oracle round trips); calls dmu::traverse and
//! stream::record; never writes the pool. Spec: zfs-send-stream.md §3 (order and content),
//! §3.4 (FREE/FREEOBJECTS aggregation), §3.6 (WRITE variants), §2 (checksums, in the writer).
//! Invariants: an incremental from @a emits no block born at or before @a's txg (only
//! never-written holes, birth 0, are always sent); FREEOBJECTS never reach past
//! 32 * (meta-dnode maxblkid + 1); records come in (object, offset) order.

use std::io::Write;

use crate::dmu::traverse::{traverse_objset, Visit, OBJSET_BLOCK_OBJECT};
use crate::dnode::DnodePhys;
use crate::error::ZioError;
use crate::limits::{DNODES_PER_BLOCK, DNODE_SIZE, SPA_MINBLOCKSIZE};
use crate::spa::Spa;
use crate::stream::ot::{byteswap_in_place, ot_byteswap_kind, ot_is_metadata};
use crate::stream::record::{
    dmu_versioninfo, ByteOrder, DdtKey, DrrBegin, DrrEnd, DrrFree, DrrFreeObjects, DrrObject,
    DrrWrite, DrrWriteEmbedded, Record, StreamWriter, DMU_BACKUP_FEATURE_COMPRESSED,
    DMU_BACKUP_FEATURE_EMBED_DATA, DMU_BACKUP_FEATURE_LZ4, DMU_BACKUP_FEATURE_SA_SPILL,
    DMU_OBJECT_END, DMU_SUBSTREAM, DRR_CHECKSUM_DEDUP, DRR_FLAG_FREERECORDS, DRR_FLAG_SPILL_BLOCK,
    DRR_TONAME_MAX_LEN,
};
use crate::zio::blkptr::BlkPtr;
use crate::zio::checksum::ChecksumType;
use crate::zio::compress::Compress;

/// Options as `zfs send` has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendOptions {
    /// `-e`: send embedded blocks as WRITE_EMBEDDED.
    pub embed: bool,
    /// `-c`: send compressed blocks as stored.
    pub compressed: bool,
    /// Byte order of the stream (little endian unless testing receive).
    pub byte_order: ByteOrder,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self { embed: false, compressed: false, byte_order: ByteOrder::Little }
    }
}

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The snapshot does not exist or the pair is not usable (ENOENT / EXDEV / EINVAL).
    #[error("cannot send: {0}")]
    BadSnapshot(String),
    /// A block could not be read.
    #[error(transparent)]
    Zio(#[from] ZioError),
    /// Writing the stream failed.
    #[error("stream write failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Counters of one send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Records written.
    pub records: u64,
    /// Stream bytes.
    pub bytes: u64,
    /// Block pointers visited by the traversal.
    pub blocks_visited: u64,
}

enum Pending {
    None,
    Free(DrrFree),
    FreeObjects(DrrFreeObjects),
}

/// The record generator of one send (dmu_send's dump_* functions).
struct Sender<'w> {
    out: StreamWriter<&'w mut dyn Write>,
    toguid: u64,
    opts: SendOptions,
    pending: Pending,
    meta_maxobj: u64,
    dnode: Option<(u64, DnodePhys)>,
    error: Option<SendError>,
    visited: u64,
}

impl Sender<'_> {
    fn emit(&mut self, rec: &Record) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_record(rec) {
                self.error = Some(e.into());
            }
        }
    }

    /// Payloads of typed objects travel in the sender's byte order (§3.9): a stream of the
    /// other order carries them swapped, exactly as a host of that order would have sent
    /// them. Data is stored little endian here.
    fn to_stream_order(&self, ot: u32, buf: &mut [u8]) {
        if self.opts.byte_order != ByteOrder::Little {
            if let Some(kind) = ot_byteswap_kind(ot) {
                byteswap_in_place(kind, buf);
            }
        }
    }

    fn flush_pending(&mut self) {
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::None => {}
            Pending::Free(f) => self.emit(&Record::Free(f)),
            Pending::FreeObjects(f) => self.emit(&Record::FreeObjects(f)),
        }
    }

    /// dump_free: merge adjacent frees of one object; a to-the-end free goes out at once.
    fn free(&mut self, object: u64, offset: u64, length: u64) {
        if let Pending::Free(p) = &mut self.pending {
            if p.object == object
                && p.length != DMU_OBJECT_END
                && p.offset.checked_add(p.length) == Some(offset)
            {
                p.length = if length == DMU_OBJECT_END {
                    DMU_OBJECT_END
                } else {
                    p.length.checked_add(length).unwrap_or(DMU_OBJECT_END)
                };
                return;
            }
        }
        self.flush_pending();
        let f = DrrFree { object, offset, length, toguid: self.toguid };
        if length == DMU_OBJECT_END {
            self.emit(&Record::Free(f));
        } else {
            self.pending = Pending::Free(f);
        }
    }

    /// dump_freeobjects: merge adjacent ranges.
    fn freeobjects(&mut self, firstobj: u64, numobjs: u64) {
        if let Pending::FreeObjects(p) = &mut self.pending {
            if p.firstobj + p.numobjs == firstobj {
                p.numobjs += numobjs;
                return;
            }
        }
        self.flush_pending();
        self.pending =
            Pending::FreeObjects(DrrFreeObjects { firstobj, numobjs, toguid: self.toguid });
    }

    fn dnode(&mut self, object: u64, phys: &DnodePhys) {
        if phys.is_free() {
            self.freeobjects(object, 1);
            self.dnode = None;
            return;
        }
        self.flush_pending();
        let a = &phys.attrs;
        let bonuslen = a.bonus.len();
        let mut bonus = a.bonus.clone();
        self.to_stream_order(u32::from(a.bonustype), &mut bonus);
        bonus.resize(bonuslen.next_multiple_of(8), 0);
        let drr = DrrObject {
            object,
            object_type: u32::from(a.ot),
            bonustype: u32::from(a.bonustype),
            blksz: a.blksz,
            bonuslen: u32::try_from(bonuslen).expect("invariant: <= 320"),
            checksumtype: a.checksum,
            compress: a.compress,
            dn_slots: 1,
            toguid: self.toguid,
            ..DrrObject::default()
        };
        self.emit(&Record::Object { drr, bonus });
        let end = (a.maxblkid + 1).saturating_mul(u64::from(a.blksz));
        self.free(object, end, DMU_OBJECT_END);
        self.dnode = Some((object, phys.clone()));
    }

    fn hole(&mut self, object: u64, level: u8, blkid: u64, blksz: u32, indblkshift: u8) {
        let epbs = u32::from(indblkshift) - 7;
        let span_shift = epbs * u32::from(level);
        if object == 0 {
            let first = u128::from(blkid) << span_shift.min(100);
            let firstobj = first * u128::from(DNODES_PER_BLOCK);
            let num = (1u128 << span_shift.min(100)) * u128::from(DNODES_PER_BLOCK);
            let maxobj = u128::from(self.meta_maxobj);
            if firstobj < maxobj {
                let num = num.min(maxobj - firstobj);
                self.freeobjects(
                    u64::try_from(firstobj).expect("< maxobj"),
                    u64::try_from(num).expect("< maxobj"),
                );
            }
            return;
        }
        let Some((_, dn)) = &self.dnode else { return };
        let first_blk = u128::from(blkid) << span_shift.min(100);
        if !ot_is_metadata(u32::from(dn.attrs.ot)) && first_blk > u128::from(dn.attrs.maxblkid) {
            return;
        }
        let offset = first_blk * u128::from(blksz);
        let len = (1u128 << span_shift.min(100)) * u128::from(blksz);
        let Ok(offset) = u64::try_from(offset) else { return };
        let len = u64::try_from(len)
            .ok()
            .filter(|l| offset.checked_add(*l).is_some())
            .unwrap_or(DMU_OBJECT_END);
        self.free(object, offset, len);
    }

    fn data(
        &mut self,
        spa: &mut crate::zio::Zio,
        object: u64,
        blkid: u64,
        bp: &BlkPtr,
    ) -> Result<(), ZioError> {
        self.flush_pending();
        let (ot, blksz) = match &self.dnode {
            Some((o, dn)) if *o == object => (dn.attrs.ot, dn.attrs.blksz),
            _ => return Ok(()),
        };
        let offset = blkid * u64::from(blksz);
        if bp.embedded && self.opts.embed {
            let mut data = bp.payload[..bp.psize as usize].to_vec();
            data.resize(data.len().next_multiple_of(8), 0);
            let drr = DrrWriteEmbedded {
                object,
                offset,
                length: u64::from(blksz),
                toguid: self.toguid,
                compression: bp.compress,
                etype: bp.etype,
                lsize: bp.lsize,
                psize: bp.psize,
            };
            self.emit(&Record::WriteEmbedded { drr, data });
            return Ok(());
        }
        let mut drr = DrrWrite {
            object,
            object_type: u32::from(ot),
            offset,
            logical_size: u64::from(bp.lsize),
            toguid: self.toguid,
            ..DrrWrite::default()
        };
        let data = if bp.embedded {
            drr.checksumtype = ChecksumType::Off as u8;
            let mut d = spa.read(bp)?.to_vec();
            self.to_stream_order(u32::from(ot), &mut d);
            d
        } else {
            drr.checksumtype = bp.checksum;
            if ChecksumType::from_u8(bp.checksum).is_some_and(ChecksumType::is_dedup_capable) {
                drr.flags |= DRR_CHECKSUM_DEDUP;
            }
            drr.key = DdtKey { cksum: bp.cksum, prop: ddk_prop(bp) };
            if self.opts.compressed
                && bp.compress == Compress::Lz4 as u8
                && !ot_is_metadata(u32::from(ot))
            {
                drr.compressiontype = bp.compress;
                drr.compressed_size = u64::from(bp.psize);
                spa.read_raw(bp)?
            } else {
                let mut d = spa.read(bp)?.to_vec();
                self.to_stream_order(u32::from(ot), &mut d);
                d
            }
        };
        self.emit(&Record::Write { drr, data });
        Ok(())
    }
}

/// The DDT key's property word: lsize, psize (in sectors, minus one) and compression.
fn ddk_prop(bp: &BlkPtr) -> u64 {
    let lsize = u64::from(bp.lsize) / SPA_MINBLOCKSIZE - 1;
    let psize = u64::from(bp.psize) / SPA_MINBLOCKSIZE - 1;
    lsize | psize << 16 | u64::from(bp.compress & 0x7f) << 32
}

impl Spa {
    /// Send snapshot `tosnap` (`pool/fs@snap`), fully or incrementally from `fromsnap`
    /// (`pool/fs@a` or `@a`, an earlier snapshot of the same dataset), to `out`.
    ///
    /// # Errors
    /// `BadSnapshot` for unknown or misordered snapshots; `Zio` when a block cannot be read
    /// (the stream is then incomplete: no END record is written); `Io`.
    pub fn send(
        &mut self,
        tosnap: &str,
        fromsnap: Option<&str>,
        opts: &SendOptions,
        out: &mut dyn Write,
    ) -> Result<SendStats, SendError> {
        let bad = |m: String| SendError::BadSnapshot(m);
        let (fs, snap) =
            tosnap.split_once('@').ok_or_else(|| bad(format!("{tosnap} is not a snapshot")))?;
        let id = self.dsl.id_of(fs).ok_or_else(|| bad(format!("no dataset {fs}")))?;
        let ds = &self.dsl.datasets[&id];
        let to = ds.snapshot(snap).ok_or_else(|| bad(format!("no snapshot {tosnap}")))?.clone();
        let (from_txg, fromguid) = match fromsnap {
            None => (0, 0),
            Some(f) => {
                let short = f.rsplit_once('@').map_or(f, |(_, s)| s);
                if f.contains('@')
                    && !f.starts_with('@')
                    && f.split_once('@').map(|(a, _)| a) != Some(fs)
                {
                    return Err(bad(format!("{f} is not a snapshot of {fs}")));
                }
                let from = ds.snapshot(short).ok_or_else(|| bad(format!("no snapshot {f}")))?;
                if from.creation_txg >= to.creation_txg {
                    return Err(bad(format!("{f} is not earlier than {tosnap}")));
                }
                (from.creation_txg, from.guid)
            }
        };
        if tosnap.len() > DRR_TONAME_MAX_LEN {
            return Err(bad(format!("name {tosnap} too long for a stream")));
        }
        self.send_objset(tosnap, &to.root, to.guid, to.creation_time, from_txg, fromguid, opts, out)
    }

    #[allow(clippy::too_many_arguments)]
    fn send_objset(
        &mut self,
        toname: &str,
        root: &BlkPtr,
        toguid: u64,
        time: u64,
        from_txg: u64,
        fromguid: u64,
        opts: &SendOptions,
        out: &mut dyn Write,
    ) -> Result<SendStats, SendError> {
        let mut features = DMU_BACKUP_FEATURE_SA_SPILL;
        if opts.embed {
            features |= DMU_BACKUP_FEATURE_EMBED_DATA | DMU_BACKUP_FEATURE_LZ4;
        }
        if opts.compressed {
            features |= DMU_BACKUP_FEATURE_COMPRESSED | DMU_BACKUP_FEATURE_LZ4;
        }
        let mut begin = DrrBegin {
            versioninfo: dmu_versioninfo(DMU_SUBSTREAM, features),
            creation_time: time,
            objset_type: 2,
            flags: DRR_FLAG_FREERECORDS | DRR_FLAG_SPILL_BLOCK,
            toguid,
            fromguid,
            ..DrrBegin::default()
        };
        begin.set_toname(toname);
        let meta = crate::dmu::Objset::open(&mut self.zio, root, true)?.meta;
        let mut s = Sender {
            out: StreamWriter::new(out, opts.byte_order),
            toguid,
            opts: *opts,
            pending: Pending::None,
            meta_maxobj: DNODES_PER_BLOCK * (meta.attrs.maxblkid + 1),
            dnode: None,
            error: None,
            visited: 0,
        };
        s.emit(&Record::Begin { drr: begin, payload: Vec::new() });
        let mut read_err = None;
        traverse_objset(&mut self.zio, root, from_txg, &mut |zio, v| {
            s.visited += 1;
            match v {
                Visit::Dnode { object, phys } => s.dnode(*object, phys),
                Visit::Block { object, .. } if *object == OBJSET_BLOCK_OBJECT => {}
                Visit::Block { object, level, blkid, bp, datablksz, indblkshift } => {
                    if bp.is_hole() {
                        s.hole(*object, *level, *blkid, *datablksz, *indblkshift);
                    } else if *level == 0 && *object != 0 {
                        if let Err(e) = s.data(zio, *object, *blkid, bp) {
                            read_err.get_or_insert(e);
                        }
                    }
                }
            }
        })?;
        if let Some(e) = read_err {
            return Err(e.into());
        }
        s.flush_pending();
        s.emit(&Record::End(DrrEnd { checksum: [0; 4], toguid }));
        if let Some(e) = s.error {
            return Err(e);
        }
        let _ = DNODE_SIZE;
        Ok(SendStats {
            records: s.out.records_written(),
            bytes: s.out.bytes_written(),
            blocks_visited: s.visited,
        })
    }
}
