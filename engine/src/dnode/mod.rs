//! Dnodes: the on-disk description of an object (dnode_phys_t) and its logical attributes.
//! OpenZFS: include/sys/dnode.h, dnode.c. Used by dmu::objset (load/store in dnode blocks of
//! the meta-dnode), dnode::sync (block tree updates) and send. A free slot is all zeros.
//! Layout (512 bytes, little endian): 0 type 1 indblkshift 2 nlevels 3 nblkptr 4 bonustype
//! 5 checksum 6 compress 7 flags 8 datablkszsec u16 10 bonuslen u16 16 maxblkid u64
//! 24 used u64 64 blkptr[nblkptr] then the bonus buffer (448 - 128 * nblkptr bytes).

pub mod sync;

use crate::error::ZioError;
use crate::limits::{
    BLKPTR_SIZE, DNODE_CORE_SIZE, DNODE_SIZE, DN_MAX_BONUSLEN, DN_MAX_INDBLKSHIFT, DN_MAX_LEVELS,
    DN_MAX_NBLKPTR, DN_MIN_INDBLKSHIFT, SPA_MAXBLOCKSIZE, SPA_MINBLOCKSHIFT, SPA_MINBLOCKSIZE,
};
use crate::zio::blkptr::{get64, BlkPtr, BP_BYTES};

/// Bytes available for block pointers and bonus after the dnode core.
pub const DN_SLOT_TAIL: usize = DNODE_SIZE as usize - DNODE_CORE_SIZE;

/// Logical attributes of an allocated object: what the DMU API sets and reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnodeAttrs {
    /// DMU object type (0 = free slot).
    pub ot: u8,
    /// Data block size in bytes (multiple of 512, at most 128 KiB).
    pub blksz: u32,
    /// log2 of the indirect block size.
    pub indblkshift: u8,
    /// Bonus buffer type.
    pub bonustype: u8,
    /// Bonus buffer (its length is the bonuslen).
    pub bonus: Vec<u8>,
    /// Block pointers in the dnode (1..=3), fixed by the bonus length at allocation.
    pub nblkptr: u8,
    /// Highest block id ever written (not lowered by holes, lowered by truncation).
    pub maxblkid: u64,
    /// Checksum property of the object (0 = inherit).
    pub checksum: u8,
    /// Compression property of the object (0 = inherit).
    pub compress: u8,
}

impl DnodeAttrs {
    /// Attributes of a freshly allocated object.
    #[must_use]
    pub fn new(ot: u8, blksz: u32, indblkshift: u8, bonustype: u8, bonuslen: usize) -> Self {
        assert!(ot != 0, "allocating type NONE");
        assert!(bonuslen <= DN_MAX_BONUSLEN, "bonuslen {bonuslen}");
        Self {
            ot,
            blksz,
            indblkshift,
            bonustype,
            bonus: vec![0; bonuslen],
            nblkptr: nblkptr_for_bonus(bonuslen),
            maxblkid: 0,
            checksum: 0,
            compress: 0,
        }
    }

    /// Bonus bytes this dnode can hold (DN_MAX_BONUS_LEN for its nblkptr).
    #[must_use]
    pub fn bonus_capacity(&self) -> usize {
        bonus_capacity(self.nblkptr)
    }

    /// Block pointers at the top level times entries per indirect at each level below.
    #[must_use]
    pub fn epb_shift(&self) -> u32 {
        u32::from(self.indblkshift) - BLKPTR_SIZE.trailing_zeros()
    }
}

/// Block pointers a dnode gets for a bonus of `bonuslen` bytes (ZFS: 1 + (320 - len) / 128).
#[must_use]
pub fn nblkptr_for_bonus(bonuslen: usize) -> u8 {
    assert!(bonuslen <= DN_MAX_BONUSLEN);
    let n = 1 + (DN_MAX_BONUSLEN - bonuslen) / BLKPTR_SIZE as usize;
    u8::try_from(n.min(DN_MAX_NBLKPTR)).expect("invariant: at most 3")
}

/// Bonus capacity of a dnode with `nblkptr` block pointers.
#[must_use]
pub fn bonus_capacity(nblkptr: u8) -> usize {
    DN_SLOT_TAIL - usize::from(nblkptr) * BP_BYTES
}

/// A dnode as stored: attributes plus the roots of its block tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnodePhys {
    /// Logical attributes (ot == 0 for a free slot).
    pub attrs: DnodeAttrs,
    /// Levels of the block tree (1 = the dnode points at data blocks).
    pub nlevels: u8,
    /// Bytes allocated below this dnode (all copies).
    pub used: u64,
    /// Root block pointers (`attrs.nblkptr` of them).
    pub blkptr: [BlkPtr; DN_MAX_NBLKPTR],
}

impl DnodePhys {
    /// The all-zero free slot.
    #[must_use]
    pub fn free_slot() -> Self {
        Self {
            attrs: DnodeAttrs {
                ot: 0,
                blksz: 0,
                indblkshift: 0,
                bonustype: 0,
                bonus: Vec::new(),
                nblkptr: 0,
                maxblkid: 0,
                checksum: 0,
                compress: 0,
            },
            nlevels: 0,
            used: 0,
            blkptr: [BlkPtr::HOLE; DN_MAX_NBLKPTR],
        }
    }

    /// A new, empty object with these attributes.
    #[must_use]
    pub fn new(attrs: DnodeAttrs) -> Self {
        Self { attrs, nlevels: 1, used: 0, blkptr: [BlkPtr::HOLE; DN_MAX_NBLKPTR] }
    }

    /// True if the slot holds no object.
    #[must_use]
    pub fn is_free(&self) -> bool {
        self.attrs.ot == 0
    }

    /// Number of level-0 blocks the tree can address at its current height.
    #[must_use]
    pub fn capacity_blocks(&self) -> u128 {
        let shift = self.attrs.epb_shift() * u32::from(self.nlevels.saturating_sub(1));
        u128::from(self.attrs.nblkptr) << shift.min(100)
    }

    /// Encode into a 512-byte slot.
    pub fn encode(&self, out: &mut [u8]) {
        assert_eq!(out.len(), DNODE_SIZE as usize);
        out.fill(0);
        if self.is_free() {
            return;
        }
        let a = &self.attrs;
        assert!(
            a.bonus.len() <= a.bonus_capacity(),
            "bonus {} > {}",
            a.bonus.len(),
            a.bonus_capacity()
        );
        assert_eq!(u64::from(a.blksz) % SPA_MINBLOCKSIZE, 0, "blksz {}", a.blksz);
        out[0] = a.ot;
        out[1] = a.indblkshift;
        out[2] = self.nlevels;
        out[3] = a.nblkptr;
        out[4] = a.bonustype;
        out[5] = a.checksum;
        out[6] = a.compress;
        let szsec = u16::try_from(u64::from(a.blksz) >> SPA_MINBLOCKSHIFT).expect("invariant");
        out[8..10].copy_from_slice(&szsec.to_le_bytes());
        let bonuslen = u16::try_from(a.bonus.len()).expect("invariant: bonus <= 320");
        out[10..12].copy_from_slice(&bonuslen.to_le_bytes());
        out[16..24].copy_from_slice(&a.maxblkid.to_le_bytes());
        out[24..32].copy_from_slice(&self.used.to_le_bytes());
        for i in 0..usize::from(a.nblkptr) {
            let at = DNODE_CORE_SIZE + i * BP_BYTES;
            self.blkptr[i].encode(&mut out[at..at + BP_BYTES]);
        }
        let bonus_at = DNODE_CORE_SIZE + usize::from(a.nblkptr) * BP_BYTES;
        out[bonus_at..bonus_at + a.bonus.len()].copy_from_slice(&a.bonus);
    }

    /// Decode a 512-byte slot read from disk.
    ///
    /// # Errors
    /// `ZioError::BadBlkPtr` (with a dnode reason) for out-of-range fields.
    pub fn decode(raw: &[u8]) -> Result<Self, ZioError> {
        if raw.len() != DNODE_SIZE as usize {
            return Err(ZioError::BadBlkPtr { reason: "short dnode" });
        }
        if raw[0] == 0 {
            return Ok(Self::free_slot());
        }
        let bad = |reason| Err(ZioError::BadBlkPtr { reason });
        let nblkptr = raw[3];
        if nblkptr == 0 || usize::from(nblkptr) > DN_MAX_NBLKPTR {
            return bad("dnode nblkptr out of range");
        }
        let indblkshift = raw[1];
        if !(DN_MIN_INDBLKSHIFT..=DN_MAX_INDBLKSHIFT).contains(&u32::from(indblkshift)) {
            return bad("dnode indblkshift out of range");
        }
        let nlevels = raw[2];
        if nlevels == 0 || nlevels > DN_MAX_LEVELS {
            return bad("dnode nlevels out of range");
        }
        let blksz = u64::from(u16::from_le_bytes([raw[8], raw[9]])) << SPA_MINBLOCKSHIFT;
        if blksz == 0 || blksz > SPA_MAXBLOCKSIZE {
            return bad("dnode block size out of range");
        }
        let bonuslen = usize::from(u16::from_le_bytes([raw[10], raw[11]]));
        if bonuslen > bonus_capacity(nblkptr) {
            return bad("dnode bonus too long");
        }
        let mut blkptr = [BlkPtr::HOLE; DN_MAX_NBLKPTR];
        for (i, bp) in blkptr.iter_mut().enumerate().take(usize::from(nblkptr)) {
            let at = DNODE_CORE_SIZE + i * BP_BYTES;
            *bp = BlkPtr::decode(&raw[at..at + BP_BYTES])?;
        }
        let bonus_at = DNODE_CORE_SIZE + usize::from(nblkptr) * BP_BYTES;
        let attrs = DnodeAttrs {
            ot: raw[0],
            blksz: u32::try_from(blksz).expect("invariant: <= 128K"),
            indblkshift,
            bonustype: raw[4],
            bonus: raw[bonus_at..bonus_at + bonuslen].to_vec(),
            nblkptr,
            maxblkid: get64(raw, 16),
            checksum: raw[5],
            compress: raw[6],
        };
        Ok(Self { attrs, nlevels, used: get64(raw, 24), blkptr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nblkptr_follows_bonus_length() {
        assert_eq!(nblkptr_for_bonus(0), 3);
        assert_eq!(nblkptr_for_bonus(32), 3);
        assert_eq!(nblkptr_for_bonus(64), 3);
        assert_eq!(nblkptr_for_bonus(65), 2);
        assert_eq!(nblkptr_for_bonus(192), 2);
        assert_eq!(nblkptr_for_bonus(320), 1);
        assert_eq!(bonus_capacity(3), 64);
        assert_eq!(bonus_capacity(1), 320);
    }

    #[test]
    fn dnode_round_trips() {
        let mut attrs = DnodeAttrs::new(19, 4096, 14, 26, 32);
        attrs.bonus = (0..32).collect();
        attrs.maxblkid = 99;
        let mut dn = DnodePhys::new(attrs);
        dn.nlevels = 2;
        dn.blkptr[1] = BlkPtr::hole(5, 19, 1, 16384);
        let mut raw = vec![0u8; 512];
        dn.encode(&mut raw);
        assert_eq!(DnodePhys::decode(&raw).expect("decode"), dn);
        assert!(DnodePhys::decode(&[0u8; 512]).expect("free").is_free());
    }

    #[test]
    fn garbage_dnode_is_an_error() {
        let mut raw = vec![0xffu8; 512];
        assert!(DnodePhys::decode(&raw).is_err());
        raw[3] = 1;
        raw[1] = 14;
        raw[2] = 1;
        assert!(DnodePhys::decode(&raw).is_err(), "bonus/blksz garbage must be refused");
    }
}
