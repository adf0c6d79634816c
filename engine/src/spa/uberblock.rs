//! Uberblocks: the root of the pool for one txg, one 1 KiB slot in each label's ring.
//! OpenZFS: uberblock.c, include/sys/uberblock_impl.h. Written by spa sync after the txg's
//! blocks are flushed; read by import, which takes the newest slot that verifies and whose
//! tree verifies. Layout: 0 magic 8 version 16 txg 24 pool_guid 32 timestamp 40 rootbp
//! (the MOS root block) 168 mos_len, checksum in the last 32 bytes (vdev::label::seal).

use crate::limits::UBERBLOCK_SLOT_SIZE;
use crate::vdev::label::{seal, verify, SPA_VERSION};
use crate::zio::blkptr::{get64, BlkPtr, BP_BYTES};

/// Uberblock magic (ZFS's "oo-ba-bloc").
pub const UBERBLOCK_MAGIC: u64 = 0x00ba_b10c;

/// A decoded uberblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UberblockPhys {
    /// The txg this uberblock commits.
    pub txg: u64,
    /// Pool guid (must match the label's).
    pub pool_guid: u64,
    /// Host time of the sync, in seconds.
    pub timestamp: u64,
    /// Block pointer of the MOS root block.
    pub rootbp: BlkPtr,
    /// Bytes of the serialized MOS.
    pub mos_len: u64,
}

impl UberblockPhys {
    /// Encode for the slot at device `offset`.
    #[must_use]
    pub fn encode(&self, offset: u64) -> Vec<u8> {
        let mut b = vec![0u8; UBERBLOCK_SLOT_SIZE as usize];
        b[0..8].copy_from_slice(&UBERBLOCK_MAGIC.to_le_bytes());
        b[8..16].copy_from_slice(&SPA_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.txg.to_le_bytes());
        b[24..32].copy_from_slice(&self.pool_guid.to_le_bytes());
        b[32..40].copy_from_slice(&self.timestamp.to_le_bytes());
        self.rootbp.encode(&mut b[40..40 + BP_BYTES]);
        b[168..176].copy_from_slice(&self.mos_len.to_le_bytes());
        seal(&mut b, offset);
        b
    }

    /// Decode the slot read at `offset`; None if it does not verify or is empty.
    #[must_use]
    pub fn decode(b: &[u8], offset: u64) -> Option<Self> {
        // The magic first: empty and foreign slots are rejected without a checksum pass.
        if b.len() != UBERBLOCK_SLOT_SIZE as usize || get64(b, 0) != UBERBLOCK_MAGIC {
            return None;
        }
        if get64(b, 8) != SPA_VERSION || !verify(b, offset) {
            return None;
        }
        let rootbp = BlkPtr::decode(&b[40..40 + BP_BYTES]).ok()?;
        let txg = get64(b, 16);
        if txg == 0 || rootbp.is_hole() {
            return None;
        }
        Some(Self {
            txg,
            pool_guid: get64(b, 24),
            timestamp: get64(b, 32),
            rootbp,
            mos_len: get64(b, 168),
        })
    }
}
