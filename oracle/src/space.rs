//! The model's space bound: at most how many bytes the engine's allocator can hold for the
//! model's pool, and so when a refusal for space (ENOSPC) is a violation.
//! OpenZFS: dmu_tx_assign and dsl_dir_tempreserve_space (a change that might not fit is
//! refused), spa_get_slop_space, TXG_DEFER_SIZE (freed space returns three txgs later).
//! Kept by `model` after every change (`SpaceHistory`); judged by `op` and `replica`
//! (`judge`). Computed from the model and the on-disk format's sizes only; the one fact taken
//! from the engine is the size of the device the pool lives on.
//!
//! The argument, for a pool of capacity C (the device minus its two labels). The window is
//! every model state since the (`TXG_DEFER_SIZE` + 2)-th latest full sync (a sync, snapshot,
//! rollback, filesystem create or destroy: each syncs every txg); the trees the allocator can
//! hold (the last synced one, one being synced, and those whose frees wait out the defer
//! period) are all trees of states in the window.
//! - Data blocks, one copy each. The model keeps a block a snapshot shares with its head as
//!   one `Arc`, and every change to a block makes a new one, so the distinct `Arc`s of a
//!   filesystem are the data blocks the engine can hold for it now, and the ones that left
//!   since the window began (`freed`) the ones it may still hold allocated or deferred.
//! - Metadata, two copies each, per tree as if nothing were shared: indirect blocks (one
//!   exists only above a data block, up to the height the object ever needed), dnode blocks,
//!   meta-dnode indirects and the objset block. A snapshot's never changes, so its count
//!   once (the largest over the window); a head's is rewritten every txg, so its largest
//!   over the window counts `TXG_DEFER_SIZE + 2` times. So does the MOS (a fixed part and a
//!   record per filesystem and snapshot) and the intent log, which holds only unsynced
//!   changes: at most twice the bytes logged since the last full sync plus two blocks per
//!   commit and per head. The MOS also lists deferred frees: 16 bytes per freed extent of at
//!   least a sector, so at most a sixteenth of what is held, in each of those txgs.
//! - Dirty bytes are at most what the model charged since the last full sync (a data block
//!   per block a write touches, a fixed charge per other change); an implicit sync only
//!   lowers them.
//! - The engine refuses a change only when 5/4 × (dirty + the change) + slop exceeds the free
//!   bytes. So a refusal is a violation when held + 5/4 × (D + change) + slop + C/8 ≤ C
//!   (C/8: room for fragmentation, as every block needs one contiguous extent).
//! - An import (a crash's or an export's) may replay and claim log blocks outside the
//!   model's history: no refusal is judged until `TXG_DEFER_SIZE + 2` full syncs later.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use engine::limits::{
    DNODES_PER_BLOCK, DNODE_BLOCK_SIZE, DN_DFL_INDBLKSHIFT, SPA_MINBLOCKSIZE, SPA_SLOP_MIN_BYTES,
    SPA_SLOP_SHIFT, TXG_DEFER_SIZE, VDEV_LABELS, VDEV_LABEL_SIZE,
};
use engine::zil::ZIL_BLOCK_SIZE;

use crate::model::{ModelObject, ModelObjset};

/// Full-sync intervals the window spans, and the times a head's metadata counts.
const SPACE_WINDOW_SYNCS: usize = TXG_DEFER_SIZE as usize + 2;
/// log2 of the bytes one block pointer takes in an indirect block.
const BLKPTR_SHIFT: u32 = 7;
/// Bytes an objset block takes (objset_phys_t, sector-rounded), per copy.
const OBJSET_BLOCK_BYTES: u64 = 1024;
/// The MOS's fixed part (its root block and pool record), per copy.
const MOS_FIXED_BYTES: u64 = 8 * 1024;
/// MOS bytes per filesystem or snapshot record (names, guids, txgs, block pointers), per copy.
const MOS_RECORD_BYTES: u64 = 1024;
/// Held bytes per byte of the MOS's deferred-free lists (16 bytes per extent of at least a
/// sector, two copies).
const DEFER_LIST_DIVISOR: u64 = 16;
/// Dirty bytes charged for a change that writes no data (an allocation, a free, a bonus).
pub const SPACE_CHANGE_CHARGE: u64 = 16 * 1024;
/// Dirty bytes a receive's FREE record may charge, counted once per block it carries.
const SPACE_RECORD_CHARGE: u64 = 1024;
/// Log bytes charged per logged change, beyond its data (the record header).
const SPACE_LOG_RECORD_BYTES: u64 = 512;
/// Dirty bytes charged when they cannot be known (a damaged stream received): more than any
/// device, so nothing is judged until the next full sync.
pub const SPACE_DIRTY_UNKNOWN: u64 = 1 << 62;
/// Transient room a change needs beyond its data: the indirect blocks and dnode it dirties.
pub const SPACE_CHANGE_METADATA: u64 = 256 * 1024;

/// Bytes an `n`-byte block takes on disk (whole sectors).
const fn asize(n: u64) -> u64 {
    n.div_ceil(SPA_MINBLOCKSIZE) * SPA_MINBLOCKSIZE
}

/// Data blocks by identity (the `Arc`'s address; the `Arc` is held so no address is reused
/// while it is compared), with their on-disk size. Order is never observed.
type DataBlocks = HashMap<usize, (Arc<Vec<u8>>, u64)>;

/// One filesystem's part of the current state. Its snapshots never change, so their part is
/// kept while the same snapshots exist.
#[derive(Clone, Debug, Default)]
struct FsSpace {
    /// Identities of its snapshots, oldest first.
    snaps: Vec<u64>,
    /// Their data blocks, and one copy of their metadata.
    snap_blocks: Arc<DataBlocks>,
    snap_bytes: u64,
    snap_meta: u64,
    /// The head's data blocks that no snapshot shares.
    head_blocks: DataBlocks,
}

impl FsSpace {
    fn bytes(&self) -> u64 {
        self.snap_bytes + sum(&self.head_blocks)
    }
}

fn sum(blocks: &DataBlocks) -> u64 {
    blocks.values().map(|(_, bs)| bs).sum()
}

/// Add the data blocks of `os` not in `but` to `into`.
fn collect(os: &ModelObjset, but: &DataBlocks, into: &mut DataBlocks) {
    for ob in os.values() {
        let bs = asize(u64::from(ob.blksz));
        for b in ob.blocks.values() {
            let p = Arc::as_ptr(b) as usize;
            if !but.contains_key(&p) {
                into.entry(p).or_insert_with(|| (Arc::clone(b), bs));
            }
        }
    }
}

/// The model's history of its space bound (a field of `Model`, cloned with it).
#[derive(Clone, Debug)]
pub struct SpaceHistory {
    /// Each full-sync interval of the window, oldest first; the last is the current one.
    intervals: VecDeque<Interval>,
    /// The current state's data blocks and snapshot metadata, per filesystem.
    data: BTreeMap<String, FsSpace>,
    /// Their bytes.
    data_bytes: u64,
    /// Dirty bytes charged since the last full sync.
    dirty: u64,
    /// Bytes logged since the last full sync, and log commits (fsyncs) since then.
    logged: u64,
    commits: u64,
    /// Full syncs still to pass before a refusal is judged (after an import).
    blind_syncs: usize,
    /// Highest object number ever allocated (any filesystem): the meta-dnode never shrinks.
    peak_object: u64,
    /// Per object number (any filesystem): the most levels its tree ever needed, and the
    /// levels a receive added by lowering its block-pointer count (a tree never gets
    /// shallower, not even when the object is re-created).
    peaks: BTreeMap<u64, ObjectPeak>,
}

/// One full-sync interval: data freed in it, and the largest of the other parts.
#[derive(Clone, Copy, Debug, Default)]
struct Interval {
    freed: u64,
    head_meta: u64,
    snap_meta: u64,
    mos: u64,
    log: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct ObjectPeak {
    levels: u32,
    nblkptr: u8,
    extra_levels: u32,
}

impl Default for SpaceHistory {
    fn default() -> Self {
        Self {
            intervals: VecDeque::from([Interval::default()]),
            data: BTreeMap::new(),
            data_bytes: 0,
            dirty: 0,
            logged: 0,
            commits: 0,
            blind_syncs: 0,
            peak_object: 0,
            peaks: BTreeMap::new(),
        }
    }
}

/// What a change needs: dirty bytes (transient) and bytes it adds to the live trees.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpaceNeed {
    /// Bytes the change dirties (its data and the metadata above it).
    pub dirty: u64,
    /// Bytes it adds to what the pool holds (a received snapshot: `objset_bound`).
    pub live: u64,
}

/// A filesystem as the bound counts it (data blocks are shared within one only): its head
/// (rewritten every txg) and its snapshots (never changed) with their identities.
pub struct FsView<'a> {
    /// The filesystem's name.
    pub fs: &'a str,
    /// Its head.
    pub head: &'a ModelObjset,
    /// Its snapshots, oldest first: identity and contents.
    pub snaps: Vec<(u64, &'a ModelObjset)>,
}

impl SpaceHistory {
    /// Charge a change: `dirty` bytes dirtied, `logged` bytes of data logged.
    pub fn charge(&mut self, dirty: u64, logged: u64) {
        self.dirty = self.dirty.saturating_add(dirty);
        self.logged = self.logged.saturating_add(logged + SPACE_LOG_RECORD_BYTES);
    }

    /// What changing blocks `first..=last` of `object` (`ob`) dirties at most: the blocks,
    /// and the metadata above them (the engine's `write_cost`): the dnode's block and every
    /// indirect block over the range, two copies each, in a tree as tall as the object ever
    /// was or the range needs.
    #[must_use]
    pub fn write_charge(&self, object: u64, ob: &ModelObject, first: u64, last: u64) -> u64 {
        assert!(first <= last, "empty block range {first}..={last}");
        let ibs = u32::from(ob.indblkshift);
        let epbs = ibs - BLKPTR_SHIFT;
        let levels = self.levels(object, ob, last);
        let mut bytes = (last - first + 1).saturating_mul(u64::from(ob.blksz));
        bytes = bytes.saturating_add(2 * DNODE_BLOCK_SIZE);
        for l in 1..levels {
            let shift = epbs * l;
            let (a, b) = if shift >= 64 { (0, 0) } else { (first >> shift, last >> shift) };
            bytes = bytes.saturating_add((2 * (b - a + 1)) << ibs);
        }
        bytes
    }

    /// What receiving `objset` needs: every block it carries dirty as a write of that block
    /// (and a record's worth per object and per hole), and the tree added to what is held.
    #[must_use]
    pub fn recv_need(&self, objset: &ModelObjset) -> SpaceNeed {
        let mut dirty = 0u64;
        for (&o, ob) in objset {
            dirty = dirty.saturating_add(SPACE_CHANGE_CHARGE);
            for &b in ob.blocks.keys() {
                dirty = dirty.saturating_add(self.write_charge(o, ob, b, b) + SPACE_RECORD_CHARGE);
            }
        }
        SpaceNeed { dirty, live: objset_bound(objset) }
    }

    /// An fsync commits the log (one more partly filled block at most).
    pub fn commit(&mut self) {
        self.commits += 1;
    }

    /// After a change: take the new state into the current interval.
    pub fn observe<'a>(&mut self, views: impl Iterator<Item = FsView<'a>>) {
        let mut data = BTreeMap::new();
        let (mut head_meta, mut snap_meta, mut records, mut freed, mut heads) = (0, 0, 0, 0, 0);
        for v in views {
            heads += 1;
            records += 1 + v.snaps.len() as u64;
            self.note_peaks(v.head);
            head_meta += self.tree_metadata(v.head);
            let old = self.data.remove(v.fs).unwrap_or_default();
            let serials: Vec<u64> = v.snaps.iter().map(|&(serial, _)| serial).collect();
            let mut now = if serials == old.snaps {
                FsSpace {
                    snaps: serials,
                    snap_blocks: Arc::clone(&old.snap_blocks),
                    snap_bytes: old.snap_bytes,
                    snap_meta: old.snap_meta,
                    head_blocks: DataBlocks::new(),
                }
            } else {
                let mut blocks = DataBlocks::new();
                let mut meta = 0;
                for &(_, os) in &v.snaps {
                    self.note_peaks(os);
                    meta += self.tree_metadata(os);
                    collect(os, &DataBlocks::new(), &mut blocks);
                }
                let snap_bytes = sum(&blocks);
                let snap_blocks = Arc::new(blocks);
                let head_blocks = DataBlocks::new();
                FsSpace { snaps: serials, snap_blocks, snap_bytes, snap_meta: meta, head_blocks }
            };
            collect(v.head, &now.snap_blocks, &mut now.head_blocks);
            freed += if Arc::ptr_eq(&now.snap_blocks, &old.snap_blocks) {
                gone(&old.head_blocks, &now.head_blocks, &DataBlocks::new())
            } else {
                gone(&old.snap_blocks, &now.snap_blocks, &now.head_blocks)
                    + gone(&old.head_blocks, &now.head_blocks, &now.snap_blocks)
            };
            snap_meta += now.snap_meta;
            data.insert(v.fs.to_owned(), now);
        }
        // Filesystems destroyed since: all their blocks are freed.
        freed += self.data.values().map(FsSpace::bytes).sum::<u64>();
        self.data_bytes = data.values().map(FsSpace::bytes).sum();
        self.data = data;
        let log = 2 * self.logged + 2 * (self.commits + heads + 1) * ZIL_BLOCK_SIZE;
        let mos = MOS_FIXED_BYTES + records * MOS_RECORD_BYTES;
        let cur = self.intervals.back_mut().expect("invariant: an interval is open");
        cur.freed += freed;
        cur.head_meta = cur.head_meta.max(2 * head_meta);
        cur.snap_meta = cur.snap_meta.max(2 * snap_meta);
        cur.mos = cur.mos.max(2 * mos);
        cur.log = cur.log.max(log);
    }

    /// Levels the tree of `object` (`ob`) may have with a block `last` in it: as many as it
    /// ever needed (with the indirect block size it had then: a re-created object keeps its
    /// height), or `last` needs, plus those a receive added.
    fn levels(&self, object: u64, ob: &ModelObject, last: u64) -> u32 {
        let p = self.peaks.get(&object).copied().unwrap_or_default();
        let now = height(ob.maxblkid.max(last), u32::from(ob.indblkshift));
        p.levels.max(now) + p.extra_levels
    }

    fn note_peaks(&mut self, os: &ModelObjset) {
        for (&o, ob) in os {
            self.peak_object = self.peak_object.max(o);
            let p = self.peaks.entry(o).or_default();
            p.levels = p.levels.max(height(ob.maxblkid, u32::from(ob.indblkshift)));
            if p.nblkptr != 0 && ob.nblkptr < p.nblkptr {
                p.extra_levels += 1;
            }
            p.nblkptr = ob.nblkptr;
        }
    }

    /// A full sync: every dirty change is on disk and the log is empty. Call after `observe`.
    pub fn full_sync(&mut self) {
        self.dirty = 0;
        self.logged = 0;
        self.commits = 0;
        let cur = *self.intervals.back().expect("invariant: an interval is open");
        self.intervals.push_back(Interval { freed: 0, log: 0, ..cur });
        while self.intervals.len() > SPACE_WINDOW_SYNCS {
            self.intervals.pop_front();
        }
        self.blind_syncs = self.blind_syncs.saturating_sub(1);
    }

    /// An import: what it replays and claims is outside this history for a while.
    pub fn imported(&mut self) {
        self.blind_syncs = SPACE_WINDOW_SYNCS;
    }

    /// One copy of a tree's metadata: objset block, dnode blocks, every indirect block.
    fn tree_metadata(&self, os: &ModelObjset) -> u64 {
        let dnode_blocks: Vec<u64> = os.keys().map(|o| o / DNODES_PER_BLOCK).collect();
        let mut bytes = OBJSET_BLOCK_BYTES;
        bytes += distinct_at(&dnode_blocks, 0, 0) * DNODE_BLOCK_SIZE;
        let mdn_levels = height(self.peak_object / DNODES_PER_BLOCK, DN_DFL_INDBLKSHIFT);
        bytes +=
            indirect_blocks(&dnode_blocks, mdn_levels, DN_DFL_INDBLKSHIFT) << DN_DFL_INDBLKSHIFT;
        for (o, ob) in os {
            let ibs = u32::from(ob.indblkshift);
            let levels = self.levels(*o, ob, ob.maxblkid);
            let ids: Vec<u64> = ob.blocks.keys().copied().collect();
            bytes += indirect_blocks(&ids, levels, ibs) << ibs;
        }
        bytes
    }

    /// The most the engine's allocator may hold (allocated plus deferred bytes) for the
    /// states seen, and the most it may have dirty; `None` while blind after an import.
    #[must_use]
    pub fn bounds(&self) -> Option<(u64, u64)> {
        (self.blind_syncs == 0).then(|| (self.held(0), self.dirty))
    }

    /// Held bytes (see the module header), with `new_live` more bytes received.
    fn held(&self, new_live: u64) -> u64 {
        let w = self.intervals.iter().fold(Interval::default(), |a, i| Interval {
            freed: a.freed + i.freed,
            head_meta: a.head_meta.max(i.head_meta),
            snap_meta: a.snap_meta.max(i.snap_meta),
            mos: a.mos.max(i.mos),
            log: a.log.max(i.log),
        });
        let per_txg = w.head_meta + w.mos + w.log;
        let held = self.data_bytes + new_live + w.freed + w.snap_meta;
        let held = held.saturating_add(per_txg.saturating_mul(SPACE_WINDOW_SYNCS as u64));
        let lists = held / DEFER_LIST_DIVISOR * SPACE_WINDOW_SYNCS as u64;
        held.saturating_add(lists)
    }

    /// When the engine refuses a change needing `need` on a device of `device_bytes`: `None`
    /// if the bound allows the refusal, else the figures that make it a violation.
    #[must_use]
    pub fn judge(&self, device_bytes: u64, need: SpaceNeed) -> Option<SpaceFit> {
        if self.blind_syncs > 0 {
            return None;
        }
        let capacity = device_bytes.saturating_sub(VDEV_LABELS * VDEV_LABEL_SIZE);
        let slop = (capacity >> SPA_SLOP_SHIFT).max(SPA_SLOP_MIN_BYTES);
        let held = self.held(need.live);
        let pending = self.dirty.saturating_add(need.dirty);
        let total = held
            .saturating_add(pending.saturating_add(pending / 4))
            .saturating_add(slop)
            .saturating_add(capacity / 8);
        let data = self.data_bytes;
        (total <= capacity).then_some(SpaceFit { held, data, need, pending, capacity })
    }
}

/// The figures of a refusal the space bound says cannot happen.
#[derive(Clone, Copy, Debug)]
pub struct SpaceFit {
    held: u64,
    data: u64,
    need: SpaceNeed,
    pending: u64,
    capacity: u64,
}

impl std::fmt::Display for SpaceFit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { held, data, need, pending, capacity } = *self;
        write!(
            f,
            "refused for space although the model's bound says it fits: at most {held} bytes \
             held (data {data}, received {}, freed data, metadata, log), {pending} dirty with \
             this change, on a capacity of {capacity} (slop and an eighth for fragmentation \
             kept aside)",
            need.live
        )
    }
}

/// What receiving `objset` into a new filesystem adds to what a pool holds: its data, and
/// its metadata, MOS record and log as a head's (rewritten in every txg the receive spans).
#[must_use]
pub fn objset_bound(objset: &ModelObjset) -> u64 {
    let mut h = SpaceHistory::default();
    h.observe(std::iter::once(FsView { fs: "", head: objset, snaps: Vec::new() }));
    h.held(0)
}

/// Bytes of the blocks of `old` in neither `a` nor `b`.
fn gone(old: &DataBlocks, a: &DataBlocks, b: &DataBlocks) -> u64 {
    old.iter()
        .filter(|(p, _)| !a.contains_key(p) && !b.contains_key(p))
        .map(|(_, (_, bs))| bs)
        .sum()
}

/// Levels of a tree whose highest block id is `maxblkid`, with one block pointer in the
/// dnode (the fewest: any more only lower the height) and indirect blocks of `1 << ibs`.
fn height(maxblkid: u64, ibs: u32) -> u32 {
    let epbs = ibs - BLKPTR_SHIFT;
    let mut levels = 1;
    let mut span: u128 = 1;
    while span <= u128::from(maxblkid) {
        span <<= epbs;
        levels += 1;
    }
    levels
}

/// Indirect blocks above the (ascending) block ids `ids` in a tree of `levels` levels.
fn indirect_blocks(ids: &[u64], levels: u32, ibs: u32) -> u64 {
    let epbs = ibs - BLKPTR_SHIFT;
    (1..levels).map(|l| distinct_at(ids, epbs, l)).sum()
}

/// Distinct ancestors at level `l` of the ascending ids `ids`.
fn distinct_at(ids: &[u64], epbs: u32, l: u32) -> u64 {
    let shift = epbs * l;
    let anc = |id: u64| if shift >= 64 { 0 } else { id >> shift };
    let mut n = 0;
    let mut last = None;
    for &id in ids {
        let a = anc(id);
        if last != Some(a) {
            n += 1;
            last = Some(a);
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heights_follow_the_fan_out() {
        assert_eq!(height(0, 14), 1);
        assert_eq!(height(1, 14), 2);
        assert_eq!(height(128, 14), 3);
        assert_eq!(height(127, 14), 2);
        assert_eq!(height(u64::MAX, 12), 14);
    }

    #[test]
    fn indirects_count_distinct_ancestors() {
        // Blocks 0, 1 and 200 under 16 KiB indirects (128 pointers): two level-1 blocks,
        // one level-2 block.
        assert_eq!(indirect_blocks(&[0, 1, 200], 3, 14), 3);
        assert_eq!(indirect_blocks(&[5], 1, 14), 0);
    }
}
