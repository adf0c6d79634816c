//! Property 5, pool integrity, like `zdb -b`: every reachable block reads back and verifies,
//! live copies never overlap, allocated space equals what the trees reference, deferred
//! frees overlap nothing live, and birth txgs are consistent. OpenZFS: cmd/zdb (zdb_leak,
//! zdb_blkptr_cb). Called by `conformance::run_checked`, sim and tests after each sync; uses
//! `Spa::pool_trees`, `traverse_objset` and zio reads only (it drops the zio cache first so
//! the disk itself is read). Each dataset's snapshots are walked oldest first and then the
//! head, each pruned at the previous snapshot's txg: every block is visited exactly once.
//! Intent-log extents count as live space (no overlap allowed) but are not read here.

use std::collections::BTreeMap;
use std::fmt;

use engine::dmu::traverse::{traverse_objset, Visit, OBJSET_BLOCK_OBJECT};
use engine::limits::VDEV_LABEL_SIZE;
use engine::zio::blkptr::{BlkPtr, Dva};
use engine::zio::Zio;
use engine::{Spa, ZioError};

/// Problems recorded before the checker stops collecting (bounded report).
pub const INTEGRITY_PROBLEMS_MAX: usize = 64;

/// Counts of what the walk saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Trees walked (snapshots and heads).
    pub trees: u64,
    /// Non-hole blocks (embedded included), MOS blocks included.
    pub blocks: u64,
    /// Blocks by level.
    pub blocks_by_level: BTreeMap<u8, u64>,
    /// Embedded blocks (no DVA).
    pub embedded: u64,
    /// Holes visited.
    pub holes: u64,
    /// Logical bytes of the blocks.
    pub lsize_bytes: u64,
    /// Allocated bytes over every copy of every block.
    pub asize_bytes: u64,
    /// Blocks of the MOS.
    pub mos_blocks: u64,
    /// Extents held by intent logs (log blocks, the next preallocated one, blocks written in
    /// place): allocated, in no tree; counted as live but not read (zil.rs verifies them).
    pub zil_bytes: u64,
    /// Deferred-free bytes.
    pub deferred_bytes: u64,
}

/// One inconsistency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A txg is syncing: the synced trees are in flux.
    Syncing(u64),
    /// A block failed to read or verify.
    Unreadable { tree: String, object: u64, level: u8, blkid: u64, error: ZioError },
    /// The walk of a tree stopped on a metadata read error.
    TraverseFailed { tree: String, error: ZioError },
    /// Two live copies share bytes.
    Overlap { first: Dva, second: Dva },
    /// A live copy lies outside the allocatable region.
    OutOfRange { dva: Dva },
    /// A live copy is marked free by the allocator.
    LiveBlockFree { dva: Dva },
    /// The allocator's count differs from what the trees reference.
    SpaceMismatch { allocated: u64, referenced: u64 },
    /// A deferred free overlaps a live copy or another deferred free.
    DeferredOverlap { txg: u64, dva: Dva },
    /// The allocator's deferred count differs from its lists.
    DeferredMismatch { counted: u64, listed: u64 },
    /// A block is born after the last synced txg, its parent, or its snapshot.
    Birth {
        tree: String,
        object: u64,
        level: u8,
        blkid: u64,
        birth: u64,
        limit: u64,
        why: &'static str,
    },
}

/// The checker found problems; `report` holds the counts anyway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrityError {
    /// What was wrong (at most `INTEGRITY_PROBLEMS_MAX`).
    pub problems: Vec<Problem>,
    /// Counts.
    pub report: IntegrityReport,
}

impl fmt::Display for IntegrityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} integrity problem(s):", self.problems.len())?;
        for p in &self.problems {
            write!(f, " {p:?};")?;
        }
        Ok(())
    }
}

impl std::error::Error for IntegrityError {}

/// A frame of the parent stack: pre-order traversal means a block's parent is the nearest
/// earlier block that can contain it.
#[derive(Clone, Copy)]
struct Frame {
    object: u64,
    level: u8,
    birth: u64,
}

impl Frame {
    fn contains(&self, object: u64, level: u8) -> bool {
        (self.object == OBJSET_BLOCK_OBJECT && object == 0)
            || (self.object == object && self.level > level)
            || (object != 0 && self.object == 0 && self.level == 0)
    }
}

struct Walker {
    synced_txg: u64,
    tree: String,
    /// Creation txg when walking a snapshot.
    snap_txg: Option<u64>,
    stack: Vec<Frame>,
    extents: Vec<Dva>,
    report: IntegrityReport,
    problems: Vec<Problem>,
}

impl Walker {
    fn problem(&mut self, p: Problem) {
        if self.problems.len() < INTEGRITY_PROBLEMS_MAX {
            self.problems.push(p);
        }
    }

    fn birth(
        &mut self,
        object: u64,
        level: u8,
        blkid: u64,
        birth: u64,
        limit: u64,
        why: &'static str,
    ) {
        if birth > limit {
            let tree = self.tree.clone();
            self.problem(Problem::Birth { tree, object, level, blkid, birth, limit, why });
        }
    }

    fn visit(&mut self, zio: &mut Zio, object: u64, level: u8, blkid: u64, bp: &BlkPtr) {
        let frame = Frame { object, level, birth: bp.birth_txg };
        if object == OBJSET_BLOCK_OBJECT {
            self.stack.clear();
        } else {
            while self.stack.last().is_some_and(|f| !f.contains(object, level)) {
                self.stack.pop();
            }
            let parent = self.stack.last().map_or(0, |f| f.birth);
            self.birth(object, level, blkid, bp.birth_txg, parent, "after its parent");
        }
        self.stack.push(frame);
        self.birth(
            object,
            level,
            blkid,
            bp.birth_txg,
            self.synced_txg,
            "after the last synced txg",
        );
        if let Some(t) = self.snap_txg {
            self.birth(object, level, blkid, bp.birth_txg, t, "after its snapshot");
        }
        if bp.is_hole() {
            self.report.holes += 1;
            return;
        }
        self.count(bp);
        if let Err(error) = zio.read(bp) {
            let tree = self.tree.clone();
            self.problem(Problem::Unreadable { tree, object, level, blkid, error });
        }
    }

    fn count(&mut self, bp: &BlkPtr) {
        self.report.blocks += 1;
        *self.report.blocks_by_level.entry(bp.level).or_default() += 1;
        self.report.lsize_bytes += u64::from(bp.lsize);
        self.report.embedded += u64::from(bp.embedded);
        for d in bp.dvas() {
            assert!(d.is_valid(), "dvas() yields valid copies only");
            self.report.asize_bytes += d.asize;
            self.extents.push(*d);
        }
    }

    fn walk(
        &mut self,
        zio: &mut Zio,
        tree: String,
        root: &BlkPtr,
        min_txg: u64,
        snap: Option<u64>,
    ) {
        self.tree = tree;
        self.snap_txg = snap;
        self.stack.clear();
        self.report.trees += 1;
        let r = traverse_objset(zio, root, min_txg, &mut |zio, v| {
            if let Visit::Block { object, level, blkid, bp, .. } = v {
                self.visit(zio, *object, *level, *blkid, bp);
            }
        });
        if let Err(error) = r {
            let tree = self.tree.clone();
            self.problem(Problem::TraverseFailed { tree, error });
        }
    }
}

/// Check the pool as zdb does. Needs no txg syncing; drops the zio cache so every block
/// comes from the device.
///
/// # Errors
/// `IntegrityError` listing every problem found (bounded), with the counts.
pub fn check(spa: &mut Spa) -> Result<IntegrityReport, IntegrityError> {
    let mut w = Walker {
        synced_txg: spa.last_synced_txg(),
        tree: String::new(),
        snap_txg: None,
        stack: Vec::new(),
        extents: Vec::new(),
        report: IntegrityReport::default(),
        problems: Vec::new(),
    };
    if let Some(txg) = spa.syncing_txg() {
        w.problem(Problem::Syncing(txg));
        return Err(IntegrityError { problems: w.problems, report: w.report });
    }
    let (trees, mos) = spa.pool_trees();
    let zio = spa.zio_mut();
    zio.cache_clear();
    for t in &trees {
        let mut prev = t.origin_txg;
        for (snap, txg, root) in &t.snapshots {
            w.walk(zio, format!("{}@{snap}", t.name), root, prev, Some(*txg));
            prev = *txg;
        }
        w.walk(zio, t.name.clone(), &t.head, prev, None);
        for d in &t.zil {
            assert!(d.is_valid(), "{}: empty intent-log extent {d:?}", t.name);
            w.report.zil_bytes += d.asize;
            w.extents.push(*d);
        }
    }
    w.tree = "MOS".to_owned();
    w.snap_txg = None;
    for bp in &mos {
        w.report.mos_blocks += 1;
        w.stack.clear();
        w.visit(zio, OBJSET_BLOCK_OBJECT, bp.level, 0, bp);
    }
    check_space(spa, &mut w);
    if w.problems.is_empty() {
        Ok(w.report)
    } else {
        Err(IntegrityError { problems: w.problems, report: w.report })
    }
}

/// Overlaps, bounds, allocator agreement and deferred frees.
fn check_space(spa: &mut Spa, w: &mut Walker) {
    let space = spa.space();
    let dev_bytes = spa.zio_mut().dev.size_bytes();
    let region = VDEV_LABEL_SIZE..dev_bytes - VDEV_LABEL_SIZE;
    let mut extents = std::mem::take(&mut w.extents);
    extents.sort_unstable();
    for pair in extents.windows(2) {
        if pair[0].offset + pair[0].asize > pair[1].offset {
            w.problem(Problem::Overlap { first: pair[0], second: pair[1] });
        }
    }
    let ms = &spa.zio_mut().ms;
    for d in &extents {
        if d.offset < region.start || d.offset.saturating_add(d.asize) > region.end {
            w.problem(Problem::OutOfRange { dva: *d });
        } else if ms.is_free(d.offset, 512) || ms.is_free(d.offset + d.asize - 512, 512) {
            w.problem(Problem::LiveBlockFree { dva: *d });
        }
    }
    let referenced: u64 = extents.iter().map(|d| d.asize).sum();
    assert_eq!(referenced, w.report.asize_bytes + w.report.zil_bytes, "extents vs counts");
    if referenced != space.allocated {
        w.problem(Problem::SpaceMismatch { allocated: space.allocated, referenced });
    }
    let deferred: Vec<(u64, Dva)> =
        ms.deferred().iter().flat_map(|(&t, v)| v.iter().map(move |d| (t, *d))).collect();
    check_deferred(w, &extents, deferred, space.deferred);
}

fn overlaps(sorted: &[Dva], d: &Dva) -> bool {
    let i = sorted.partition_point(|e| e.offset + e.asize <= d.offset);
    sorted.get(i).is_some_and(|e| e.offset < d.offset + d.asize)
}

fn check_deferred(w: &mut Walker, live: &[Dva], mut deferred: Vec<(u64, Dva)>, counted: u64) {
    let listed: u64 = deferred.iter().map(|(_, d)| d.asize).sum();
    w.report.deferred_bytes = listed;
    if listed != counted {
        w.problem(Problem::DeferredMismatch { counted, listed });
    }
    for (txg, d) in &deferred {
        if overlaps(live, d) {
            w.problem(Problem::DeferredOverlap { txg: *txg, dva: *d });
        }
    }
    deferred.sort_unstable_by_key(|(_, d)| *d);
    for pair in deferred.windows(2) {
        if pair[0].1.offset + pair[0].1.asize > pair[1].1.offset {
            w.problem(Problem::DeferredOverlap { txg: pair[1].0, dva: pair[1].1 });
        }
    }
}
