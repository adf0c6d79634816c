//! The intent-log chains of the heads, walked as import walks them (engine zil.rs `load`):
//! from the header in the head's objset block, block by block while each one's sealed
//! header, magic, chain guid, sequence, nonce and record-area digest match; every block
//! visited (the first bad one too: it is the preallocated next block) and every block
//! written in place (WR_INDIRECT records of txgs after the uberblock's) are allocated space.
//! An in-place block that does not read back ends the chain, as it ends replay. OpenZFS:
//! zil.c (zil_parse, zil_claim). Part of `zdb`; decodes the chain itself.

use engine::zio::blkptr::Dva;

use super::phys::{self, le64, BP_BYTES, SEALED_BYTES};
use super::{cksum, Walker};
use crate::integrity::Problem;

/// Bytes of one log block (zil.rs ZIL_BLOCK_SIZE).
const ZIL_BLOCK_BYTES: u64 = 16 * 1024;
/// Log block magic "ZSIMZIL1".
const ZIL_MAGIC: u64 = u64::from_le_bytes(*b"ZSIMZIL1");
/// Bytes of a log record header.
const REC_HEADER_BYTES: usize = 40;
/// Record type of a block written in place and logged by pointer (WR_INDIRECT).
const REC_WRITE_INDIRECT: u16 = 2;
/// Longest chain walked (zil.rs ZIL_CHAIN_MAX).
const ZIL_CHAIN_BLOCKS_MAX: u64 = 1 << 20;

const _: () = assert!(SEALED_BYTES as u64 + REC_HEADER_BYTES as u64 <= ZIL_BLOCK_BYTES);

impl Walker<'_> {
    /// Walk the chain a head's header names.
    pub(super) fn walk_zil(&mut self, h: &phys::ZilHeaderPhys) {
        if h.guid == 0 || h.first.asize != ZIL_BLOCK_BYTES {
            return;
        }
        let (mut at, mut seq, mut nonce) = (h.first, h.seq, h.nonce);
        for _ in 0..ZIL_CHAIN_BLOCKS_MAX {
            self.zil_extent(at);
            // Where the chain ends on a damaged block, what came after it is unknown.
            let cut = |f: &mut super::Findings| {
                f.zil_cut_by_damage |=
                    f.damage.as_ref().is_some_and(|d| d.hits(at.offset, at.asize));
            };
            let Some(buf) = self.read(at.offset, ZIL_BLOCK_BYTES) else {
                cut(&mut self.f);
                return;
            };
            if !block_ok(&buf, at.offset, h.guid, seq, nonce) {
                cut(&mut self.f);
                return;
            }
            self.f.report.zil_blocks += 1;
            let used = usize::try_from(le64(&buf, 40)).unwrap_or(usize::MAX);
            let area = &buf[SEALED_BYTES..SEALED_BYTES + used];
            if !self.zil_records(area) {
                cut(&mut self.f);
                return;
            }
            let next = Dva { offset: le64(&buf, 24), asize: le64(&buf, 32) };
            nonce = le64(&buf, 64);
            seq += 1;
            if next.asize != ZIL_BLOCK_BYTES || !next.offset.is_multiple_of(512) {
                return;
            }
            at = next;
        }
        self.f.problem(Problem::Limit { what: "intent-log blocks in one chain" });
    }

    fn zil_extent(&mut self, d: Dva) {
        assert!(d.asize > 0, "intent-log extents have a size");
        self.f.report.zil_bytes += d.asize;
        self.space.zil.push(d);
    }

    /// The records of one log block: in-place blocks of txgs after the uberblock's are
    /// allocated and must read back. False ends the chain.
    fn zil_records(&mut self, mut area: &[u8]) -> bool {
        while area.len() >= REC_HEADER_BYTES {
            let ty = u16::from_le_bytes([area[0], area[1]]);
            let len = u32::from_le_bytes([area[4], area[5], area[6], area[7]]) as usize;
            if len < REC_HEADER_BYTES || len > area.len() {
                break;
            }
            let (txg, body) = (le64(area, 8), &area[REC_HEADER_BYTES..len]);
            if txg > self.ub_txg && ty == REC_WRITE_INDIRECT && body.len() >= 8 + BP_BYTES {
                let Ok(bp) = phys::decode_bp(&body[8..8 + BP_BYTES]) else { return false };
                for d in bp.copies() {
                    self.zil_extent(d);
                }
                if !self.zil_block_reads(&bp) {
                    return false;
                }
            }
            area = &area[len..];
        }
        true
    }

    /// True if some copy of an in-place block verifies and decompresses (zio read).
    fn zil_block_reads(&mut self, bp: &phys::Bp) -> bool {
        if bp.is_hole() {
            return true;
        }
        if bp.embedded {
            return cksum::decompress(bp, &bp.payload[..bp.psize as usize]).is_ok();
        }
        let psize = bp.psize as usize;
        for d in bp.copies() {
            if let Some(buf) = self.read(d.offset, d.asize) {
                if cksum::verifies(bp, &buf[..psize]) {
                    return cksum::decompress(bp, &buf[..psize]).is_ok();
                }
            }
        }
        false
    }
}

/// The checks import makes before it trusts a log block.
fn block_ok(b: &[u8], offset: u64, guid: u64, seq: u64, nonce: u64) -> bool {
    if !cksum::seal_ok(&b[..SEALED_BYTES], offset)
        || le64(b, 0) != ZIL_MAGIC
        || le64(b, 8) != guid
        || le64(b, 16) != seq
        || le64(b, 56) != nonce
    {
        return false;
    }
    le64(b, 40) <= ZIL_BLOCK_BYTES - SEALED_BYTES as u64
        && le64(b, 48) == cksum::zil_area_digest(&b[SEALED_BYTES..])
}
