//! Block pointers (blkptr_t) and DVAs: location, sizes, birth txg, type, level, fill and
//! checksum of a block, or a hole, or data embedded in the pointer itself. OpenZFS:
//! include/sys/spa.h (blkptr_t), blkptr.c (embedded). Used by zio, dnode::sync, traverse,
//! send. On-disk layout (128 bytes, little endian), ours, not ZFS's:
//!   0 dva[0] {offset u64, asize u64}  16 dva[1] (ditto copy)  32 lsize u32  36 psize u32
//!   40 type 41 level 42 checksum 43 compress 44 flags 45 etype 46..48 pad  48 birth u64
//!   56 fill u64  64..96 zero  96 checksum [u64; 4]
//! Embedded (flags & EMBEDDED): payload in [0,40) ++ [56,128) (112 bytes), psize at 46,
//! lsize/512-1 at 47. A hole has no DVA: only its birth txg, type, level and lsize.

use crate::error::ZioError;
use crate::limits::SPA_MINBLOCKSIZE;
use crate::limits::{BLKPTR_SIZE, BPE_PAYLOAD_SIZE, DN_MAX_LEVELS, SPA_MAXBLOCKSIZE};
use crate::zio::checksum::ZioCksum;

/// Flag: the block's data is embedded in the pointer.
pub const BP_FLAG_EMBEDDED: u8 = 1;
/// Bytes of an encoded block pointer.
pub const BP_BYTES: usize = BLKPTR_SIZE as usize;
const _: () = assert!(BP_BYTES == 128);
const _: () = assert!(40 + (128 - 56) == BPE_PAYLOAD_SIZE);

/// A data virtual address: where one copy of a block lives. `asize == 0` means no copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dva {
    /// Byte offset on the device (sector aligned).
    pub offset: u64,
    /// Allocated bytes (psize rounded up to sectors).
    pub asize: u64,
}

impl Dva {
    /// True if this DVA names a copy.
    #[must_use]
    pub const fn is_valid(&self) -> bool {
        self.asize != 0
    }
}

/// A decoded block pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkPtr {
    /// Copies: dva[0] always for a real block; dva[1] for ditto (metadata) blocks.
    pub dva: [Dva; 2],
    /// Logical (uncompressed) size in bytes.
    pub lsize: u32,
    /// Physical (stored) size in bytes; for embedded pointers the payload length.
    pub psize: u32,
    /// DMU object type of the block's contents.
    pub ot: u8,
    /// Level in the block tree (0 = data).
    pub level: u8,
    /// Checksum algorithm (ChecksumType value).
    pub checksum: u8,
    /// Compression algorithm (Compress value).
    pub compress: u8,
    /// True if the data lives in `payload`.
    pub embedded: bool,
    /// Embedded data type (0 = data).
    pub etype: u8,
    /// Txg in which this block (or hole) was born (logical birth).
    pub birth_txg: u64,
    /// Number of non-hole level-0 blocks (or allocated dnodes) below this pointer.
    pub fill: u64,
    /// Checksum of the stored bytes.
    pub cksum: ZioCksum,
    /// Embedded payload (first `psize` bytes meaningful).
    pub payload: [u8; BPE_PAYLOAD_SIZE],
}

impl Default for BlkPtr {
    fn default() -> Self {
        Self::HOLE
    }
}

impl BlkPtr {
    /// A hole that was never written (birth 0).
    pub const HOLE: Self = Self {
        dva: [Dva { offset: 0, asize: 0 }; 2],
        lsize: 0,
        psize: 0,
        ot: 0,
        level: 0,
        checksum: 0,
        compress: 0,
        embedded: false,
        etype: 0,
        birth_txg: 0,
        fill: 0,
        cksum: [0; 4],
        payload: [0; BPE_PAYLOAD_SIZE],
    };

    /// A hole born in `txg` covering a block of `lsize` bytes at `level`.
    #[must_use]
    pub fn hole(txg: u64, ot: u8, level: u8, lsize: u32) -> Self {
        Self { birth_txg: txg, ot, level, lsize, ..Self::HOLE }
    }

    /// True if the pointer holds no data (BP_IS_HOLE).
    #[must_use]
    pub const fn is_hole(&self) -> bool {
        !self.embedded && !self.dva[0].is_valid()
    }

    /// The copies this pointer names.
    pub fn dvas(&self) -> impl Iterator<Item = &Dva> {
        self.dva.iter().filter(|d| d.is_valid())
    }

    /// Allocated bytes over all copies.
    #[must_use]
    pub fn asize_total(&self) -> u64 {
        self.dvas().map(|d| d.asize).sum()
    }

    /// Encode into 128 bytes.
    pub fn encode(&self, out: &mut [u8]) {
        assert_eq!(out.len(), BP_BYTES);
        out.fill(0);
        if self.embedded {
            self.encode_embedded(out);
            return;
        }
        assert!(
            self.psize <= self.lsize || self.is_hole(),
            "psize {} > lsize {}",
            self.psize,
            self.lsize
        );
        for (i, d) in self.dva.iter().enumerate() {
            put64(out, i * 16, d.offset);
            put64(out, i * 16 + 8, d.asize);
        }
        out[32..36].copy_from_slice(&self.lsize.to_le_bytes());
        out[36..40].copy_from_slice(&self.psize.to_le_bytes());
        self.encode_props(out);
        put64(out, 56, self.fill);
        for (i, w) in self.cksum.iter().enumerate() {
            put64(out, 96 + 8 * i, *w);
        }
    }

    fn encode_props(&self, out: &mut [u8]) {
        out[40] = self.ot;
        out[41] = self.level;
        out[42] = self.checksum;
        out[43] = self.compress;
        out[44] = if self.embedded { BP_FLAG_EMBEDDED } else { 0 };
        out[45] = self.etype;
        put64(out, 48, self.birth_txg);
    }

    fn encode_embedded(&self, out: &mut [u8]) {
        let psize = self.psize as usize;
        assert!(psize <= BPE_PAYLOAD_SIZE, "embedded psize {psize}");
        assert_eq!(u64::from(self.lsize) % SPA_MINBLOCKSIZE, 0, "{self:?}");
        assert!(u64::from(self.lsize) <= SPA_MAXBLOCKSIZE && self.lsize > 0);
        assert_eq!(self.level, 0);
        self.encode_props(out);
        out[46] = u8::try_from(psize).expect("invariant: psize <= 112");
        out[47] = u8::try_from(u64::from(self.lsize) / SPA_MINBLOCKSIZE - 1)
            .expect("invariant: lsize <= 128 KiB");
        out[..40].copy_from_slice(&self.payload[..40]);
        out[56..].copy_from_slice(&self.payload[40..]);
    }

    /// Decode 128 bytes read from disk. Never panics; rejects malformed pointers.
    ///
    /// # Errors
    /// `ZioError::BadBlkPtr` when a field is out of range.
    pub fn decode(raw: &[u8]) -> Result<Self, ZioError> {
        if raw.len() != BP_BYTES {
            return Err(ZioError::BadBlkPtr { reason: "short block pointer" });
        }
        let mut bp = Self::HOLE;
        bp.ot = raw[40];
        bp.level = raw[41];
        bp.checksum = raw[42];
        bp.compress = raw[43];
        bp.embedded = raw[44] & BP_FLAG_EMBEDDED != 0;
        bp.etype = raw[45];
        bp.birth_txg = get64(raw, 48);
        if raw[44] & !BP_FLAG_EMBEDDED != 0 {
            return Err(ZioError::BadBlkPtr { reason: "unknown flags" });
        }
        if bp.level > DN_MAX_LEVELS {
            return Err(ZioError::BadBlkPtr { reason: "level too deep" });
        }
        if bp.embedded {
            return Self::decode_embedded(raw, bp);
        }
        for i in 0..2 {
            bp.dva[i] = Dva { offset: get64(raw, i * 16), asize: get64(raw, i * 16 + 8) };
        }
        bp.lsize = get32(raw, 32);
        bp.psize = get32(raw, 36);
        bp.fill = get64(raw, 56);
        for i in 0..4 {
            bp.cksum[i] = get64(raw, 96 + 8 * i);
        }
        bp.validate()?;
        Ok(bp)
    }

    fn decode_embedded(raw: &[u8], mut bp: Self) -> Result<Self, ZioError> {
        let psize = usize::from(raw[46]);
        if psize > BPE_PAYLOAD_SIZE || bp.level != 0 {
            return Err(ZioError::BadBlkPtr { reason: "bad embedded pointer" });
        }
        bp.psize = u32::from(raw[46]);
        bp.lsize = (u32::from(raw[47]) + 1) * 512;
        bp.payload[..40].copy_from_slice(&raw[..40]);
        bp.payload[40..].copy_from_slice(&raw[56..]);
        bp.fill = 1;
        Ok(bp)
    }

    fn validate(&self) -> Result<(), ZioError> {
        let bad = |reason| Err(ZioError::BadBlkPtr { reason });
        if self.is_hole() {
            return if self.dva[1].is_valid() { bad("hole with a ditto copy") } else { Ok(()) };
        }
        if u64::from(self.lsize) > SPA_MAXBLOCKSIZE || self.lsize == 0 {
            return bad("lsize out of range");
        }
        if self.psize == 0
            || self.psize > self.lsize
            || u64::from(self.psize) % SPA_MINBLOCKSIZE != 0
        {
            return bad("psize out of range");
        }
        for d in self.dvas() {
            if d.offset % SPA_MINBLOCKSIZE != 0 || d.asize < u64::from(self.psize) {
                return bad("dva misaligned or too small");
            }
            if d.asize % SPA_MINBLOCKSIZE != 0 || d.asize > SPA_MAXBLOCKSIZE {
                return bad("dva size out of range");
            }
        }
        Ok(())
    }
}

fn put64(out: &mut [u8], at: usize, v: u64) {
    out[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Read a little-endian u64 at `at` (caller guarantees the range).
#[must_use]
pub fn get64(raw: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(raw[at..at + 8].try_into().expect("invariant: 8-byte slice"))
}

/// Read a little-endian u32 at `at` (caller guarantees the range).
#[must_use]
pub fn get32(raw: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(raw[at..at + 4].try_into().expect("invariant: 4-byte slice"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BlkPtr {
        BlkPtr {
            dva: [Dva { offset: 4096, asize: 1024 }, Dva { offset: 65536, asize: 1024 }],
            lsize: 16384,
            psize: 1024,
            ot: 10,
            level: 1,
            checksum: 7,
            compress: 15,
            birth_txg: 42,
            fill: 17,
            cksum: [1, 2, 3, 4],
            ..BlkPtr::HOLE
        }
    }

    #[test]
    fn blkptr_round_trips() {
        let bp = sample();
        let mut raw = [0u8; BP_BYTES];
        bp.encode(&mut raw);
        assert_eq!(BlkPtr::decode(&raw).expect("decode"), bp);
    }

    #[test]
    fn embedded_round_trips() {
        let mut bp = BlkPtr {
            embedded: true,
            lsize: 512,
            psize: 112,
            ot: 19,
            compress: 15,
            birth_txg: 9,
            fill: 1,
            ..BlkPtr::HOLE
        };
        for (i, b) in bp.payload.iter_mut().enumerate() {
            *b = u8::try_from(i).expect("small");
        }
        let mut raw = [0u8; BP_BYTES];
        bp.encode(&mut raw);
        let back = BlkPtr::decode(&raw).expect("decode");
        assert_eq!(back, bp);
        assert!(!back.is_hole());
    }

    #[test]
    fn hole_keeps_birth() {
        let bp = BlkPtr::hole(77, 19, 0, 4096);
        let mut raw = [0u8; BP_BYTES];
        bp.encode(&mut raw);
        let back = BlkPtr::decode(&raw).expect("decode");
        assert!(back.is_hole());
        assert_eq!(back.birth_txg, 77);
    }

    #[test]
    fn garbage_pointers_are_rejected_not_panicking() {
        let mut raw = [0u8; BP_BYTES];
        sample().encode(&mut raw);
        raw[36] = 0xff; // psize huge
        assert!(BlkPtr::decode(&raw).is_err());
        let mut raw2 = [0xffu8; BP_BYTES];
        raw2[44] = 0;
        assert!(BlkPtr::decode(&raw2).is_err());
        assert!(BlkPtr::decode(&raw2[..10]).is_err());
    }
}
