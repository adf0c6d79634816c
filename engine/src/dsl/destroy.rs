//! Freeing exactly the blocks nothing else references: snapshot destroy, dataset destroy,
//! rollback and discarding a failed receive. OpenZFS: dsl_destroy.c, dsl_dataset.c
//! (rollback), dsl_deadlist.c. Without clones, a block's references form a contiguous run of
//! one dataset's snapshots (and maybe its head), so a block of snapshot S (between P and N)
//! is shared with P iff born at or before P, and with N iff N's tree still names it: we
//! traverse S and N pruned at P's txg and free S's blocks that N lacks. Syncing context only.

use std::collections::BTreeSet;

use crate::dmu::traverse::{traverse_objset, Visit};
use crate::error::ZioError;
use crate::zio::blkptr::BlkPtr;
use crate::zio::Zio;

/// Every owned block (non-hole, non-embedded) of the objset `root` born after `min_txg`.
///
/// # Errors
/// Read errors of metadata.
pub fn blocks_after(zio: &mut Zio, root: &BlkPtr, min_txg: u64) -> Result<Vec<BlkPtr>, ZioError> {
    let mut out = Vec::new();
    traverse_objset(zio, root, min_txg, &mut |_, v| {
        if let Visit::Block { bp, .. } = v {
            if !bp.is_hole() && !bp.embedded {
                out.push(**bp);
            }
        }
    })?;
    Ok(out)
}

/// Free (in `txg`) every block of `root` born after `min_txg`: the blocks it owns alone
/// when no later tree shares them (rollback, head of a destroyed dataset, failed receive).
///
/// # Errors
/// Read errors of metadata.
pub fn free_owned(zio: &mut Zio, root: &BlkPtr, min_txg: u64, txg: u64) -> Result<(), ZioError> {
    for bp in &blocks_after(zio, root, min_txg)? {
        zio.free(bp, txg);
    }
    Ok(())
}

/// Free the blocks of snapshot `snap` (born after `prev_txg`) that `next` (the next
/// snapshot or the synced head) no longer references.
///
/// # Errors
/// Read errors of metadata.
pub fn free_snapshot(
    zio: &mut Zio,
    snap: &BlkPtr,
    prev_txg: u64,
    next: &BlkPtr,
    txg: u64,
) -> Result<(), ZioError> {
    let kept: BTreeSet<u64> =
        blocks_after(zio, next, prev_txg)?.iter().map(|bp| bp.dva[0].offset).collect();
    for bp in blocks_after(zio, snap, prev_txg)? {
        if !kept.contains(&bp.dva[0].offset) {
            zio.free(&bp, txg);
        }
    }
    Ok(())
}
