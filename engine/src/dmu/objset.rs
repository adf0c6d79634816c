//! Object sets: the meta-dnode (object 0) whose data blocks hold every dnode, plus the
//! in-memory dnodes with their dirty records. OpenZFS: dmu_objset.c, dnode.c, dnode_sync.c.
//! Open context (object.rs) changes dnodes through per-txg records; syncing context
//! (`sync`) applies one txg's records to the trees, writes the changed dnode blocks, then a
//! new objset block. Called by dsl (one Objset per head, read-only ones for snapshots).
//! Invariants: `allocated` equals the set of objects whose current attrs have ot != 0;
//! the objset block is written last, after every block it names.

use std::collections::{BTreeMap, BTreeSet};

use crate::dbuf::Dnode;
use crate::dmu::ot::{DMU_OT_DNODE, DMU_OT_OBJSET};
use crate::dnode::sync::{lookup, SyncError, TreeCtx, TreeOps};
use crate::dnode::{DnodeAttrs, DnodePhys};
use crate::error::{DmuError, ZioError};
use crate::limits::{DNODES_PER_BLOCK, DNODE_BLOCK_SIZE, DNODE_SIZE, DN_DFL_INDBLKSHIFT};
use crate::spa::ZIO_MAX_RETRIES;
use crate::zio::blkptr::{get64, BlkPtr};
use crate::zio::checksum::ChecksumType;
use crate::zio::compress::Compress;
use crate::zio::{WriteProps, Zio};

/// Objset type of a filesystem (DMU_OST_ZFS).
pub const DMU_OST_ZFS: u64 = 2;
/// Bytes of an objset block.
pub const OBJSET_PHYS_SIZE: usize = 1024;

/// What `object_info` reports (dmu_object_info_t).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Object type.
    pub ot: u8,
    /// Data block size.
    pub blksz: u32,
    /// log2 of the indirect block size.
    pub indblkshift: u8,
    /// Levels of the synced tree (it may grow at the next sync).
    pub nlevels: u8,
    /// Bonus type.
    pub bonustype: u8,
    /// Bonus length.
    pub bonuslen: u16,
    /// Highest block id.
    pub maxblkid: u64,
    /// Block pointers in the dnode.
    pub nblkptr: u8,
}

/// Attributes of the meta-dnode.
fn meta_attrs() -> DnodeAttrs {
    let mut a =
        DnodeAttrs::new(DMU_OT_DNODE, DNODE_BLOCK_SIZE as u32, DN_DFL_INDBLKSHIFT as u8, 0, 0);
    a.maxblkid = 0;
    a
}

/// An object set in memory.
#[derive(Clone, Debug)]
pub struct Objset {
    /// Objset type (2 = filesystem).
    pub os_type: u64,
    /// The synced objset block (a hole before the first sync).
    pub root: BlkPtr,
    /// The synced meta-dnode.
    pub meta: DnodePhys,
    pub(crate) dnodes: BTreeMap<u64, Dnode>,
    allocated: Option<BTreeSet<u64>>,
    free_hint: u64,
    dirty_txgs: BTreeMap<u64, BTreeSet<u64>>,
    /// Snapshots are opened read-only.
    pub read_only: bool,
    /// The intent log of a head (None for snapshots and receives in progress).
    pub zil: Option<crate::zil::Zilog>,
    /// The ZIL header as read from disk (heads replace it with their log's).
    pub zil_header: crate::zil::ZilHeader,
}

impl Objset {
    /// A new, empty objset (nothing on disk until the first sync).
    #[must_use]
    pub fn create(os_type: u64) -> Self {
        Self {
            os_type,
            root: BlkPtr::HOLE,
            meta: DnodePhys::new(meta_attrs()),
            dnodes: BTreeMap::new(),
            allocated: Some(BTreeSet::new()),
            free_hint: 1,
            dirty_txgs: BTreeMap::new(),
            read_only: false,
            zil: None,
            zil_header: crate::zil::ZilHeader::default(),
        }
    }

    /// Open the objset whose block `root` names. Heads scan their dnodes at once.
    ///
    /// # Errors
    /// Read or decode errors of the objset block or dnode blocks.
    pub fn open(zio: &mut Zio, root: &BlkPtr, read_only: bool) -> Result<Self, ZioError> {
        let raw = zio.read(root)?;
        if raw.len() != OBJSET_PHYS_SIZE || root.ot != DMU_OT_OBJSET {
            return Err(ZioError::BadBlkPtr { reason: "objset block of the wrong size or type" });
        }
        let meta = DnodePhys::decode(&raw[..DNODE_SIZE as usize])?;
        if meta.attrs.ot != DMU_OT_DNODE || meta.attrs.blksz != DNODE_BLOCK_SIZE as u32 {
            return Err(ZioError::BadBlkPtr { reason: "meta-dnode malformed" });
        }
        let mut os = Self {
            os_type: get64(&raw, DNODE_SIZE as usize),
            root: *root,
            meta,
            dnodes: BTreeMap::new(),
            allocated: None,
            free_hint: 1,
            dirty_txgs: BTreeMap::new(),
            read_only,
            zil: None,
            zil_header: crate::zil::ZilHeader::decode(
                &raw[crate::zil::ZIL_HEADER_OFFSET
                    ..crate::zil::ZIL_HEADER_OFFSET + crate::zil::ZIL_HEADER_PHYS_BYTES],
            ),
        };
        if !read_only {
            os.allocated = Some(os.scan_allocated(zio)?);
        }
        Ok(os)
    }

    fn scan_allocated(&self, zio: &mut Zio) -> Result<BTreeSet<u64>, ZioError> {
        // Walk only the dnode blocks that exist: cost follows the tree, not the largest
        // object number (an object near DN_MAX_OBJECT must not mean 2^43 lookups).
        let mut set = BTreeSet::new();
        for blkid in crate::dnode::sync::nonhole_blocks(zio, &self.meta)? {
            let bp = lookup(zio, &self.meta, blkid)?;
            let raw = zio.read(&bp)?;
            for (slot, chunk) in raw.chunks_exact(DNODE_SIZE as usize).enumerate() {
                if chunk[0] != 0 {
                    set.insert(blkid * DNODES_PER_BLOCK + slot as u64);
                }
            }
        }
        set.remove(&0);
        Ok(set)
    }

    /// Read the synced dnode of `object` from the meta-dnode.
    fn load_phys(&self, zio: &mut Zio, object: u64) -> Result<DnodePhys, ZioError> {
        let blkid = object / DNODES_PER_BLOCK;
        if blkid > self.meta.attrs.maxblkid {
            return Ok(DnodePhys::free_slot());
        }
        let bp = lookup(zio, &self.meta, blkid)?;
        if bp.is_hole() {
            return Ok(DnodePhys::free_slot());
        }
        let raw = zio.read(&bp)?;
        if raw.len() != DNODE_BLOCK_SIZE as usize {
            return Err(ZioError::BadBlkPtr { reason: "dnode block of the wrong size" });
        }
        let at = usize::try_from(object % DNODES_PER_BLOCK).expect("small") * DNODE_SIZE as usize;
        DnodePhys::decode(&raw[at..at + DNODE_SIZE as usize])
    }

    /// The in-memory dnode of `object`, loaded on first use (it may be a free slot).
    ///
    /// # Errors
    /// Read errors of the dnode block.
    pub fn dnode(&mut self, zio: &mut Zio, object: u64) -> Result<&mut Dnode, ZioError> {
        if !self.dnodes.contains_key(&object) {
            let phys = self.load_phys(zio, object)?;
            self.dnodes.insert(object, Dnode::new(object, phys));
        }
        Ok(self.dnodes.get_mut(&object).expect("invariant: just inserted"))
    }

    /// The allocated dnode of `object`.
    ///
    /// # Errors
    /// `NoSuchObject` if the slot is free; read errors.
    pub fn hold(&mut self, zio: &mut Zio, object: u64) -> Result<&mut Dnode, DmuError> {
        let dn = self.dnode(zio, object)?;
        if dn.is_allocated() {
            Ok(dn)
        } else {
            Err(DmuError::NoSuchObject { object })
        }
    }

    /// Note that `object` has a record in `txg`.
    pub(crate) fn mark_dirty(&mut self, txg: u64, object: u64) {
        assert!(!self.read_only, "dirtying a snapshot");
        self.dirty_txgs.entry(txg).or_default().insert(object);
    }

    /// Record the allocation state of `object` in the current view.
    pub(crate) fn set_allocated(&mut self, object: u64, allocated: bool) {
        let set = self.allocated.as_mut().expect("invariant: heads track allocation");
        if allocated {
            set.insert(object);
        } else {
            set.remove(&object);
            self.free_hint = self.free_hint.min(object);
        }
    }

    /// The lowest free object number >= 1.
    pub(crate) fn lowest_free(&mut self) -> u64 {
        let set = self.allocated.as_ref().expect("invariant: heads track allocation");
        let mut n = self.free_hint.max(1);
        for &o in set.range(n..) {
            if o != n {
                break;
            }
            n += 1;
        }
        self.free_hint = n;
        n
    }

    /// True if any txg has unsynced changes.
    #[must_use]
    pub fn is_dirty(&self) -> bool {
        !self.dirty_txgs.is_empty()
    }

    /// True if `txg` has unsynced changes.
    #[must_use]
    pub fn is_dirty_in(&self, txg: u64) -> bool {
        self.dirty_txgs.contains_key(&txg)
    }

    /// The next allocated object after `after`, in the current view.
    ///
    /// # Errors
    /// Read errors while scanning a snapshot's dnode blocks.
    pub fn next_object(&mut self, zio: &mut Zio, after: u64) -> Result<Option<u64>, ZioError> {
        if let Some(set) = &self.allocated {
            return Ok(set.range(after + 1..).next().copied());
        }
        // Snapshots: walk the synced dnode blocks, skipping holes through the meta-dnode tree;
        // free slots are decoded in place, never cached.
        let mut obj = after.saturating_add(1);
        loop {
            let blk = obj / DNODES_PER_BLOCK;
            let Some(b) = crate::dnode::sync::next_nonhole(zio, &self.meta, blk)? else {
                return Ok(None);
            };
            if b > blk {
                obj = b * DNODES_PER_BLOCK;
            }
            if let Some(o) = self.dnode_block_next(zio, b, obj)? {
                return Ok(Some(o));
            }
            obj = (b + 1) * DNODES_PER_BLOCK;
        }
    }

    /// The first allocated object >= `from` in synced dnode block `blkid` (dirty state of
    /// loaded dnodes wins: a head's view).
    fn dnode_block_next(
        &mut self,
        zio: &mut Zio,
        blkid: u64,
        from: u64,
    ) -> Result<Option<u64>, ZioError> {
        let bp = lookup(zio, &self.meta, blkid)?;
        let raw = zio.read(&bp)?;
        let base = blkid * DNODES_PER_BLOCK;
        for (slot, chunk) in raw.chunks_exact(DNODE_SIZE as usize).enumerate() {
            let o = base + slot as u64;
            if o < from || o == 0 {
                continue;
            }
            let allocated = match self.dnodes.get(&o) {
                Some(dn) => dn.is_allocated(),
                None => chunk[0] != 0,
            };
            if allocated {
                return Ok(Some(o));
            }
        }
        Ok(None)
    }

    /// Information about an allocated object.
    ///
    /// # Errors
    /// `NoSuchObject`, read errors.
    pub fn object_info(&mut self, zio: &mut Zio, object: u64) -> Result<ObjectInfo, DmuError> {
        let dn = self.hold(zio, object)?;
        let a = dn.attrs();
        Ok(ObjectInfo {
            ot: a.ot,
            blksz: a.blksz,
            indblkshift: a.indblkshift,
            nlevels: dn.phys.nlevels.max(1),
            bonustype: a.bonustype,
            bonuslen: u16::try_from(a.bonus.len()).expect("invariant: <= 320"),
            maxblkid: a.maxblkid,
            nblkptr: a.nblkptr,
        })
    }

    /// Syncing context: apply txg `txg`'s records, write dnode blocks and a new objset
    /// block. Returns true if a new objset block was written.
    ///
    /// # Errors
    /// Read/write failures: the txg cannot commit.
    pub fn sync(&mut self, ctx: &mut TreeCtx<'_>) -> Result<bool, SyncError> {
        let txg = ctx.txg;
        let objects = self.dirty_txgs.remove(&txg).unwrap_or_default();
        if let Some(z) = self.zil.as_mut() {
            z.sync(ctx.zio, txg);
        }
        let zil_dirty = self.zil.as_ref().is_some_and(|z| z.dirty);
        if objects.is_empty() && !self.root.is_hole() && !zil_dirty {
            return Ok(false);
        }
        assert!(self.dirty_txgs.keys().all(|&t| t > txg), "older txg left unsynced");
        let mut slots: BTreeMap<u64, Vec<(u64, DnodePhys)>> = BTreeMap::new();
        for object in objects {
            let phys = self.sync_dnode(ctx, object)?;
            slots.entry(object / DNODES_PER_BLOCK).or_default().push((object, phys));
        }
        self.sync_meta(ctx, &slots)?;
        self.write_root(ctx)?;
        Ok(true)
    }

    fn sync_dnode(&mut self, ctx: &mut TreeCtx<'_>, object: u64) -> Result<DnodePhys, SyncError> {
        let dn = self.dnodes.get_mut(&object).expect("invariant: dirty dnode is loaded");
        let rec = dn.take_record(ctx.txg).expect("invariant: dirty object has a record");
        let mut phys = dn.phys.clone();
        if rec.reset {
            if !phys.is_free() {
                ctx.free_tree(&phys)?;
            }
            phys = if rec.attrs.ot == 0 {
                DnodePhys::free_slot()
            } else {
                DnodePhys::new(rec.attrs.clone())
            };
        } else {
            assert_eq!(phys.attrs.blksz, rec.attrs.blksz, "blksz changed without reset");
            let (keep, had) = (usize::from(rec.attrs.nblkptr), usize::from(phys.attrs.nblkptr));
            if keep < had && phys.blkptr[keep..had].iter().any(|b| !b.is_hole()) {
                // Fewer block pointers (a reallocation with a longer bonus): the old ones
                // move one level down, as tree growth moves them (dnode_increase_indirection),
                // so every block keeps its block pointer and birth.
                ctx.grow(&mut phys)?;
            }
            phys.blkptr[keep..].fill(BlkPtr::HOLE);
            phys.attrs = rec.attrs.clone();
        }
        if !phys.is_free() {
            ctx.sync_tree(&mut phys, &TreeOps { frees: &rec.frees, writes: &rec.blocks })?;
        }
        dn.phys = phys.clone();
        if dn.dirty.is_empty() && phys.is_free() {
            self.dnodes.remove(&object);
        }
        Ok(phys)
    }

    fn sync_meta(
        &mut self,
        ctx: &mut TreeCtx<'_>,
        slots: &BTreeMap<u64, Vec<(u64, DnodePhys)>>,
    ) -> Result<(), SyncError> {
        let mut writes = BTreeMap::new();
        let mut frees = Vec::new();
        for (&blkid, list) in slots {
            let mut block = if blkid <= self.meta.attrs.maxblkid {
                let bp = lookup(ctx.zio, &self.meta, blkid)?;
                (*ctx.zio.read(&BlkPtr { lsize: DNODE_BLOCK_SIZE as u32, ..bp })?).clone()
            } else {
                vec![0; DNODE_BLOCK_SIZE as usize]
            };
            block.resize(DNODE_BLOCK_SIZE as usize, 0);
            for (object, phys) in list {
                let at = usize::try_from(object % DNODES_PER_BLOCK).expect("small")
                    * DNODE_SIZE as usize;
                phys.encode(&mut block[at..at + DNODE_SIZE as usize]);
            }
            if block.iter().all(|&b| b == 0) {
                frees.push((blkid, blkid + 1));
            } else {
                writes.insert(blkid, std::sync::Arc::new(block));
            }
        }
        if let Some((&last, _)) = writes.iter().next_back() {
            self.meta.attrs.maxblkid = self.meta.attrs.maxblkid.max(last);
        }
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in frees {
            match merged.last_mut() {
                Some(l) if l.1 == s => l.1 = e,
                _ => merged.push((s, e)),
            }
        }
        ctx.sync_tree(&mut self.meta, &TreeOps { frees: &merged, writes: &writes })
    }

    fn write_root(&mut self, ctx: &mut TreeCtx<'_>) -> Result<(), SyncError> {
        let mut raw = vec![0u8; OBJSET_PHYS_SIZE];
        self.meta.encode(&mut raw[..DNODE_SIZE as usize]);
        raw[DNODE_SIZE as usize..DNODE_SIZE as usize + 8]
            .copy_from_slice(&self.os_type.to_le_bytes());
        if let Some(z) = self.zil.as_mut() {
            self.zil_header = z.header();
            if z.dirty {
                z.header_txg = Some(ctx.txg);
            }
            z.dirty = false;
        }
        let at = crate::zil::ZIL_HEADER_OFFSET;
        self.zil_header.encode(&mut raw[at..at + crate::zil::ZIL_HEADER_PHYS_BYTES]);
        let props = WriteProps {
            ot: DMU_OT_OBJSET,
            level: 0,
            checksum: ChecksumType::Fletcher4,
            compress: Compress::Lz4,
            copies: 2,
            embed: false,
        };
        let mut bp = ctx.zio.write_retrying(&raw, &props, ctx.txg, ZIO_MAX_RETRIES)?;
        bp.fill = self.allocated.as_ref().map_or(0, |s| s.len() as u64);
        ctx.release_bp(&self.root);
        self.root = bp;
        Ok(())
    }
}
