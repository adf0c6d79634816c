//! Pre-order traversal of an objset's block tree, pruned by birth txg.
//! OpenZFS: dmu_traverse.c (traverse_visitbp, traverse_dnode). The walk visits the objset
//! block's meta-dnode tree; each dnode block is expanded in place: every dnode in it, then
//! that dnode's tree in block order. Pointers born at or before `min_txg` are skipped with
//! their subtree (they are shared with an older snapshot), except never-written holes
//! (birth 0), which are always reported, as OpenZFS's send_holes_without_birth_time does.
//! Used by send, snapshot destroy, import (space rebuild) and the integrity checker.

use crate::dmu::ot::DMU_OT_DNODE;
use crate::dnode::sync::decode_indirect;
use crate::dnode::DnodePhys;
use crate::error::ZioError;
use crate::limits::{DNODES_PER_BLOCK, DNODE_BLOCK_SIZE, DNODE_SIZE};
use crate::zio::blkptr::BlkPtr;
use crate::zio::Zio;

/// Object number used in visits of the objset block itself.
pub const OBJSET_BLOCK_OBJECT: u64 = u64::MAX;

/// One step of the traversal.
#[derive(Debug)]
pub enum Visit<'a> {
    /// A block pointer (data, indirect, dnode block, objset block, or hole).
    Block {
        /// Object the pointer belongs to (0 = meta-dnode).
        object: u64,
        /// Level of the pointer.
        level: u8,
        /// Index of the pointer at its level.
        blkid: u64,
        /// The pointer.
        bp: &'a BlkPtr,
        /// Block size of the object's data blocks (for hole spans).
        datablksz: u32,
        /// log2 of the object's indirect block size.
        indblkshift: u8,
    },
    /// A dnode inside a visited dnode block (free slots included).
    Dnode {
        /// Object number.
        object: u64,
        /// The dnode.
        phys: &'a DnodePhys,
    },
}

/// Walk the objset named by `root`, reporting pointers born after `min_txg`.
///
/// # Errors
/// Read or decode errors of any metadata block.
pub fn traverse_objset(
    zio: &mut Zio,
    root: &BlkPtr,
    min_txg: u64,
    visit: &mut dyn FnMut(&mut Zio, &Visit<'_>),
) -> Result<(), ZioError> {
    if root.is_hole() || root.birth_txg <= min_txg {
        return Ok(());
    }
    visit(
        zio,
        &Visit::Block {
            object: OBJSET_BLOCK_OBJECT,
            level: 0,
            blkid: 0,
            bp: root,
            datablksz: 0,
            indblkshift: 0,
        },
    );
    let raw = zio.read(root)?;
    if raw.len() < DNODE_SIZE as usize {
        return Err(ZioError::BadBlkPtr { reason: "objset block too short" });
    }
    let meta = DnodePhys::decode(&raw[..DNODE_SIZE as usize])?;
    traverse_dnode(zio, 0, &meta, min_txg, visit)
}

/// Walk one dnode's tree.
///
/// # Errors
/// Read or decode errors.
pub fn traverse_dnode(
    zio: &mut Zio,
    object: u64,
    dn: &DnodePhys,
    min_txg: u64,
    visit: &mut dyn FnMut(&mut Zio, &Visit<'_>),
) -> Result<(), ZioError> {
    if dn.is_free() {
        return Ok(());
    }
    let top = dn.nlevels - 1;
    for (i, bp) in dn.blkptr[..usize::from(dn.attrs.nblkptr)].iter().enumerate() {
        visit_bp(zio, object, dn, top, i as u64, bp, min_txg, visit)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn visit_bp(
    zio: &mut Zio,
    object: u64,
    dn: &DnodePhys,
    level: u8,
    blkid: u64,
    bp: &BlkPtr,
    min_txg: u64,
    visit: &mut dyn FnMut(&mut Zio, &Visit<'_>),
) -> Result<(), ZioError> {
    if bp.birth_txg <= min_txg && !(bp.is_hole() && bp.birth_txg == 0) {
        return Ok(());
    }
    let a = &dn.attrs;
    visit(
        zio,
        &Visit::Block { object, level, blkid, bp, datablksz: a.blksz, indblkshift: a.indblkshift },
    );
    if bp.is_hole() {
        return Ok(());
    }
    if level > 0 {
        let raw = zio.read(bp)?;
        let children = decode_indirect(&raw)?;
        let epb = children.len() as u64;
        for (i, child) in children.iter().enumerate() {
            let Some(id) = blkid.checked_mul(epb).and_then(|b| b.checked_add(i as u64)) else {
                break;
            };
            visit_bp(zio, object, dn, level - 1, id, child, min_txg, visit)?;
        }
    } else if object == 0 && a.ot == DMU_OT_DNODE {
        visit_dnode_block(zio, blkid, bp, min_txg, visit)?;
    }
    Ok(())
}

fn visit_dnode_block(
    zio: &mut Zio,
    blkid: u64,
    bp: &BlkPtr,
    min_txg: u64,
    visit: &mut dyn FnMut(&mut Zio, &Visit<'_>),
) -> Result<(), ZioError> {
    let raw = zio.read(bp)?;
    if raw.len() != DNODE_BLOCK_SIZE as usize {
        return Err(ZioError::BadBlkPtr { reason: "dnode block of the wrong size" });
    }
    for (slot, chunk) in raw.chunks_exact(DNODE_SIZE as usize).enumerate() {
        let object = blkid * DNODES_PER_BLOCK + slot as u64;
        if object == 0 {
            continue;
        }
        let phys = DnodePhys::decode(chunk)?;
        visit(zio, &Visit::Dnode { object, phys: &phys });
        traverse_dnode(zio, object, &phys, min_txg, visit)?;
    }
    Ok(())
}
