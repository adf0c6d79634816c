//! The block tree of one dnode: lookup, and the syncing-context update that applies a txg's
//! frees and block writes copy-on-write, bottom-up. OpenZFS: dnode_sync.c, dbuf.c
//! (dbuf_write_ready: fill counts, holes with birth), dmu_traverse.c (subtree frees).
//! Called by dmu::objset during txg sync and by reads in open context (lookup only).
//! Invariants: a block is freed only if born after the previous snapshot (else a snapshot
//! still references it); a hole created in txg N has birth N; an indirect block whose children
//! are all holes becomes a hole; children of an expanded hole inherit its birth (hole_birth,
//! OpenZFS 6513). Crash argument: nothing here is reachable until the uberblock names it.

use std::collections::BTreeMap;

use crate::dnode::{DnodeAttrs, DnodePhys};
use crate::error::ZioError;
use crate::limits::DN_MAX_LEVELS;
use crate::spa::ZIO_MAX_RETRIES;
use crate::zio::blkptr::{BlkPtr, BP_BYTES};
use crate::zio::checksum::ChecksumType;
use crate::zio::compress::Compress;
use crate::zio::{WriteProps, Zio, ZioWriteError};

/// DMU type of dnode blocks (DMU_OT_DNODE).
pub const DMU_OT_DNODE: u8 = 10;

/// Why a syncing-context tree update failed (the txg cannot commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncError {
    /// An indirect block could not be read.
    Read(ZioError),
    /// A block could not be written.
    Write(ZioWriteError),
}

impl From<ZioError> for SyncError {
    fn from(e: ZioError) -> Self {
        Self::Read(e)
    }
}

impl From<ZioWriteError> for SyncError {
    fn from(e: ZioWriteError) -> Self {
        Self::Write(e)
    }
}

/// Syncing context for one tree: where to write, which txg, what a snapshot still owns.
pub struct TreeCtx<'a> {
    /// Block I/O.
    pub zio: &'a mut Zio,
    /// The txg being synced.
    pub txg: u64,
    /// Blocks born at or before this txg belong to a snapshot and are never freed here.
    pub prev_snap_txg: u64,
    /// Checksum for data blocks.
    pub checksum: ChecksumType,
    /// Compression for data blocks.
    pub compress: Compress,
}

/// The changes of one txg to one tree: block-id ranges to free, then blocks to write.
pub struct TreeOps<'a> {
    /// Sorted, merged, half-open block-id ranges.
    pub frees: &'a [(u64, u64)],
    /// Full logical blocks by block id.
    pub writes: &'a BTreeMap<u64, crate::dbuf::BlockBuf>,
}

impl TreeOps<'_> {
    fn has_writes(&self, s: u128, e: u128) -> bool {
        let Ok(s) = u64::try_from(s) else { return false };
        let e = u64::try_from(e).unwrap_or(u64::MAX);
        self.writes.range(s..e).next().is_some()
    }

    fn has_frees(&self, s: u128, e: u128) -> bool {
        let i = self.frees.partition_point(|&(_, fe)| u128::from(fe) <= s);
        self.frees.get(i).is_some_and(|&(fs, _)| u128::from(fs) < e)
    }

    fn frees_cover(&self, s: u128, e: u128) -> bool {
        let i = self.frees.partition_point(|&(_, fe)| u128::from(fe) <= s);
        self.frees.get(i).is_some_and(|&(fs, fe)| u128::from(fs) <= s && u128::from(fe) >= e)
    }
}

/// log2 of block pointers per indirect block.
fn epbs(attrs: &DnodeAttrs) -> u32 {
    attrs.epb_shift()
}

/// Level-0 blocks under one pointer at `level`.
fn span(attrs: &DnodeAttrs, level: u32) -> u128 {
    1u128 << (epbs(attrs) * level).min(120)
}

/// Decode the block pointers of an indirect block.
///
/// # Errors
/// `ZioError::BadBlkPtr` for a malformed entry.
pub fn decode_indirect(raw: &[u8]) -> Result<Vec<BlkPtr>, ZioError> {
    raw.chunks_exact(BP_BYTES).map(BlkPtr::decode).collect()
}

/// The children of `bp`, an indirect pointer at `level` (>= 1). A hole's children are holes
/// that inherit its birth. Holes do not record their level reliably (never-written ones are
/// all zero), so the caller says where the pointer sits.
fn children_of(
    zio: &mut Zio,
    bp: &BlkPtr,
    level: u8,
    attrs: &DnodeAttrs,
) -> Result<Vec<BlkPtr>, ZioError> {
    let epb = 1usize << epbs(attrs);
    if bp.is_hole() {
        let child_level = level.checked_sub(1).expect("invariant: indirect level >= 1");
        let lsize = if child_level == 0 { attrs.blksz } else { 1 << attrs.indblkshift };
        return Ok(vec![BlkPtr::hole(bp.birth_txg, attrs.ot, child_level, lsize); epb]);
    }
    let raw = zio.read(bp)?;
    if raw.len() != epb * BP_BYTES {
        return Err(ZioError::BadBlkPtr { reason: "indirect block of the wrong size" });
    }
    decode_indirect(&raw)
}

/// The level-0 block pointer for `blkid` (a hole if none).
///
/// # Errors
/// Read errors of indirect blocks.
pub fn lookup(zio: &mut Zio, dn: &DnodePhys, blkid: u64) -> Result<BlkPtr, ZioError> {
    let a = &dn.attrs;
    let top = u32::from(dn.nlevels) - 1;
    let idx = u128::from(blkid) >> (epbs(a) * top).min(120);
    if idx >= u128::from(a.nblkptr) {
        return Ok(BlkPtr::HOLE);
    }
    let mut bp = dn.blkptr[usize::try_from(idx).expect("invariant: < 3")];
    for level in (0..top).rev() {
        if bp.is_hole() {
            return Ok(BlkPtr::hole(bp.birth_txg, a.ot, 0, a.blksz));
        }
        let raw = zio.read(&bp)?;
        let i = usize::try_from((u128::from(blkid) >> (epbs(a) * level)) & ((1 << epbs(a)) - 1))
            .expect("invariant: index < epb");
        let at = i * BP_BYTES;
        if raw.len() < at + BP_BYTES {
            return Err(ZioError::BadBlkPtr { reason: "indirect block too short" });
        }
        bp = BlkPtr::decode(&raw[at..at + BP_BYTES])?;
    }
    Ok(bp)
}

/// The first level-0 block id >= `from` that is not a hole, skipping hole subtrees whole
/// (OpenZFS dnode_next_offset): cost follows the tree, not the id space.
///
/// # Errors
/// Read errors of indirect blocks.
pub fn next_nonhole(zio: &mut Zio, dn: &DnodePhys, from: u64) -> Result<Option<u64>, ZioError> {
    let top = u32::from(dn.nlevels) - 1;
    let n = usize::from(dn.attrs.nblkptr);
    let roots = dn.blkptr[..n].to_vec();
    next_in(zio, &dn.attrs, top, 0, &roots, u128::from(from))
}

/// Every level-0 block id that is not a hole, ascending, in one walk of the tree: each
/// indirect block is read once (calling `next_nonhole` per block reads the whole path again
/// for every block).
///
/// # Errors
/// Read errors of indirect blocks.
pub fn nonhole_blocks(zio: &mut Zio, dn: &DnodePhys) -> Result<Vec<u64>, ZioError> {
    let Some(top) = u32::from(dn.nlevels).checked_sub(1) else { return Ok(Vec::new()) };
    let n = usize::from(dn.attrs.nblkptr);
    let mut out = Vec::new();
    collect_nonholes(zio, &dn.attrs, top, 0, &dn.blkptr[..n], &mut out)?;
    Ok(out)
}

fn collect_nonholes(
    zio: &mut Zio,
    attrs: &DnodeAttrs,
    level: u32,
    first: u128,
    children: &[BlkPtr],
    out: &mut Vec<u64>,
) -> Result<(), ZioError> {
    let sp = span(attrs, level);
    for (i, child) in children.iter().enumerate() {
        if child.is_hole() {
            continue;
        }
        let s = first + i as u128 * sp;
        if level == 0 {
            match u64::try_from(s) {
                Ok(b) => out.push(b),
                Err(_) => return Ok(()),
            }
            continue;
        }
        let grand = children_of(zio, child, u8::try_from(level).expect("<= 12"), attrs)?;
        collect_nonholes(zio, attrs, level - 1, s, &grand, out)?;
    }
    Ok(())
}

fn next_in(
    zio: &mut Zio,
    attrs: &DnodeAttrs,
    level: u32,
    first: u128,
    children: &[BlkPtr],
    from: u128,
) -> Result<Option<u64>, ZioError> {
    let sp = span(attrs, level);
    for (i, child) in children.iter().enumerate() {
        let s = first + i as u128 * sp;
        if s + sp <= from || child.is_hole() {
            continue;
        }
        if level == 0 {
            return Ok(u64::try_from(s).ok());
        }
        let grand = children_of(zio, child, u8::try_from(level).expect("<= 12"), attrs)?;
        if let Some(b) = next_in(zio, attrs, level - 1, s, &grand, from)? {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

impl TreeCtx<'_> {
    /// Free `bp` (not its children) if this txg owns it (born after the previous snapshot).
    pub fn release_bp(&mut self, bp: &BlkPtr) {
        if !bp.is_hole() && bp.birth_txg > self.prev_snap_txg {
            self.zio.free(bp, self.txg);
        }
    }

    /// Free `bp` and everything below it that no snapshot references.
    ///
    /// # Errors
    /// Read errors of indirect blocks.
    pub fn free_subtree(&mut self, bp: &BlkPtr, attrs: &DnodeAttrs) -> Result<(), ZioError> {
        if bp.is_hole() || bp.embedded || bp.birth_txg <= self.prev_snap_txg {
            return Ok(());
        }
        if bp.level > 0 {
            for child in children_of(self.zio, bp, bp.level, attrs)? {
                self.free_subtree(&child, attrs)?;
            }
        }
        self.zio.free(bp, self.txg);
        Ok(())
    }

    /// Free the whole tree of `dn`.
    ///
    /// # Errors
    /// Read errors of indirect blocks.
    pub fn free_tree(&mut self, dn: &DnodePhys) -> Result<(), ZioError> {
        for bp in &dn.blkptr[..usize::from(dn.attrs.nblkptr)] {
            self.free_subtree(bp, &dn.attrs)?;
        }
        Ok(())
    }

    /// Apply `ops` to the tree of `dn` (growing it as needed), writing new blocks.
    ///
    /// # Errors
    /// Read or write failures: the txg cannot commit.
    pub fn sync_tree(&mut self, dn: &mut DnodePhys, ops: &TreeOps<'_>) -> Result<(), SyncError> {
        assert!(dn.nlevels >= 1 && dn.nlevels <= DN_MAX_LEVELS, "nlevels {}", dn.nlevels);
        if let Some((&last, _)) = ops.writes.iter().next_back() {
            while dn.capacity_blocks() <= u128::from(last) {
                self.grow(dn)?;
            }
        }
        let top = u32::from(dn.nlevels) - 1;
        let attrs = dn.attrs.clone();
        let n = usize::from(attrs.nblkptr);
        self.update(&attrs, top, 0, &mut dn.blkptr[..n], ops)?;
        Ok(())
    }

    /// Add a level on top: the dnode's block pointers become the first entries of a new
    /// indirect block, which becomes its only one.
    ///
    /// # Errors
    /// Write failures.
    pub fn grow(&mut self, dn: &mut DnodePhys) -> Result<(), SyncError> {
        assert!(dn.nlevels < DN_MAX_LEVELS, "tree cannot grow past {DN_MAX_LEVELS} levels");
        let epb = 1usize << epbs(&dn.attrs);
        let mut children = vec![BlkPtr::HOLE; epb];
        let n = usize::from(dn.attrs.nblkptr);
        children[..n].copy_from_slice(&dn.blkptr[..n]);
        let level = dn.nlevels;
        let top = self.write_indirect(&dn.attrs, level, &children)?;
        dn.blkptr = [BlkPtr::HOLE; 3];
        dn.blkptr[0] = top;
        dn.nlevels += 1;
        Ok(())
    }

    /// Update `children` (pointers at `level`, the first covering block id `first`).
    fn update(
        &mut self,
        attrs: &DnodeAttrs,
        level: u32,
        first: u128,
        children: &mut [BlkPtr],
        ops: &TreeOps<'_>,
    ) -> Result<bool, SyncError> {
        let sp = span(attrs, level);
        let mut changed = false;
        for (i, child) in children.iter_mut().enumerate() {
            let s = first + i as u128 * sp;
            let e = s + sp;
            let writes = ops.has_writes(s, e);
            if !writes && !ops.has_frees(s, e) {
                continue;
            }
            changed |= if level == 0 {
                self.update_leaf(
                    attrs,
                    child,
                    u64::try_from(s).expect("invariant: leaf blkid"),
                    ops,
                )?
            } else if !writes && (ops.frees_cover(s, e) || child.is_hole()) {
                self.free_child(attrs, child, level)?
            } else {
                let level_u8 = u8::try_from(level).expect("invariant: <= 12");
                let mut grand = children_of(self.zio, child, level_u8, attrs)?;
                if self.update(attrs, level - 1, s, &mut grand, ops)? {
                    let new = self.write_indirect(attrs, level_u8, &grand)?;
                    self.release_bp(child);
                    *child = new;
                    true
                } else {
                    false
                }
            };
        }
        Ok(changed)
    }

    fn free_child(
        &mut self,
        attrs: &DnodeAttrs,
        child: &mut BlkPtr,
        level: u32,
    ) -> Result<bool, SyncError> {
        if child.is_hole() {
            return Ok(false);
        }
        self.free_subtree(child, attrs)?;
        let lsize = if level == 0 { attrs.blksz } else { 1 << attrs.indblkshift };
        let level = u8::try_from(level).expect("invariant: <= 12");
        *child = BlkPtr::hole(self.txg, attrs.ot, level, lsize);
        Ok(true)
    }

    fn update_leaf(
        &mut self,
        attrs: &DnodeAttrs,
        child: &mut BlkPtr,
        blkid: u64,
        ops: &TreeOps<'_>,
    ) -> Result<bool, SyncError> {
        let Some(data) = ops.writes.get(&blkid) else {
            return self.free_child(attrs, child, 0);
        };
        assert_eq!(data.len(), attrs.blksz as usize, "dirty block size for blkid {blkid}");
        let fill = leaf_fill(attrs.ot, data);
        let zero_hole = self.compress == Compress::Lz4 && data.iter().all(|&b| b == 0);
        if fill == 0 || (attrs.ot != DMU_OT_DNODE && zero_hole) {
            return self.free_child(attrs, child, 0);
        }
        let props = self.leaf_props(attrs);
        let mut new = self.zio.write_retrying(&data[..], &props, self.txg, ZIO_MAX_RETRIES)?;
        new.fill = fill;
        self.release_bp(child);
        *child = new;
        Ok(true)
    }

    fn leaf_props(&self, attrs: &DnodeAttrs) -> WriteProps {
        let meta = attrs.ot == DMU_OT_DNODE;
        WriteProps {
            ot: attrs.ot,
            level: 0,
            checksum: if meta { ChecksumType::Fletcher4 } else { self.checksum },
            compress: if meta { Compress::Lz4 } else { self.compress },
            copies: if meta { 2 } else { 1 },
            embed: !meta,
        }
    }

    fn write_indirect(
        &mut self,
        attrs: &DnodeAttrs,
        level: u8,
        children: &[BlkPtr],
    ) -> Result<BlkPtr, SyncError> {
        assert!(level >= 1);
        assert_eq!(children.len(), 1 << epbs(attrs), "indirect fan-out");
        let lsize = 1u32 << attrs.indblkshift;
        if children.iter().all(BlkPtr::is_hole) {
            let birth = children.iter().map(|c| c.birth_txg).max().unwrap_or(0);
            return Ok(BlkPtr::hole(birth, attrs.ot, level, lsize));
        }
        let mut raw = vec![0u8; lsize as usize];
        for (c, out) in children.iter().zip(raw.chunks_exact_mut(BP_BYTES)) {
            c.encode(out);
        }
        let props = WriteProps {
            ot: attrs.ot,
            level,
            checksum: ChecksumType::Fletcher4,
            compress: Compress::Lz4,
            copies: 2,
            embed: false,
        };
        let mut bp = self.zio.write_retrying(&raw, &props, self.txg, ZIO_MAX_RETRIES)?;
        bp.fill = children.iter().map(|c| c.fill).sum();
        Ok(bp)
    }
}

/// Fill of a level-0 block: allocated dnodes for dnode blocks (0 makes it a hole), else 1.
fn leaf_fill(ot: u8, data: &[u8]) -> u64 {
    if ot == DMU_OT_DNODE {
        return data.chunks_exact(512).filter(|slot| slot[0] != 0).count() as u64;
    }
    1
}
