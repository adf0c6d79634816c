//! The oracle's own walk of a pool image (zdb -b), from raw device bytes only. OpenZFS:
//! cmd/zdb/zdb.c (dump_block_stats, zdb_blkptr_cb), module/zfs/vdev_label.c (uberblock
//! choice). Called by `integrity::check`; calls nothing of the engine but
//! `BlockDevice::read` and its format constants. Order: labels, the newest sealed uberblock,
//! the MOS (tree.rs walks each dataset's snapshots oldest first, then its head), the intent
//! logs of the heads (zil.rs), then space accounting (space.rs). Every block is read and
//! verified in every copy; a block named by several trees of one dataset is walked once,
//! keyed by its DVA. Bounded by named limits: a corrupt image yields problems, not loops.

pub mod cksum;
pub mod phys;
pub mod space;
mod tree;
mod zil;

use std::collections::BTreeMap;

use engine::limits::{
    SPA_MAXBLOCKSIZE, SPA_MINDEVSIZE, UBERBLOCK_RING_SLOTS, UBERBLOCK_SLOT_SIZE, VDEV_LABELS,
    VDEV_LABEL_HEADER_SIZE, VDEV_LABEL_SIZE,
};
use engine::vdev::BlockDevice;
use engine::zio::blkptr::Dva;

use crate::integrity::{BlockError, Damage, IntegrityReport, Problem, INTEGRITY_PROBLEMS_MAX};
use phys::{Bp, MosPhys, UberblockPhys, ZilHeaderPhys, BP_BYTES, SEALED_BYTES};

/// Object number used for the objset block and the MOS blocks in problems and visits.
pub const OBJSET_OBJECT: u64 = u64::MAX;
/// Why a free made since the commit is a problem: the disk names no such log extent.
pub const ZIL_FREED_UNKNOWN: &str = "freed after the commit, not an intent-log extent";
/// Block pointers (holes and embedded included) visited before the walk gives up: a
/// checksummed but malicious image could otherwise fan out far beyond any real pool.
pub const WALK_POINTERS_MAX: u64 = 1 << 28;
/// Owner index of MOS blocks (datasets are 0..).
const MOS_OWNER: usize = usize::MAX;
/// Largest MOS blob: one root block of block pointers to 128 KiB chunks (spa/load.rs).
const MOS_LEN_MAX: u64 = SPA_MAXBLOCKSIZE * (SPA_MAXBLOCKSIZE / BP_BYTES as u64);

/// What the walk found on disk, for space accounting.
#[derive(Debug, Default)]
pub struct DiskSpace {
    /// Allocatable region `[start, end)` of the device.
    pub region: (u64, u64),
    /// The txg of the uberblock walked.
    pub txg: u64,
    /// Every copy of every distinct block of the MOS and the trees.
    pub blocks: Vec<Dva>,
    /// Extents the intent logs hold, as import claims them.
    pub zil: Vec<Dva>,
    /// Deferred frees the MOS lists that the uberblock's commit did not release.
    pub deferred: Vec<(u64, Dva)>,
}

/// Problems (bounded) and counts.
#[derive(Debug, Default)]
pub struct Findings {
    /// Counts.
    pub report: IntegrityReport,
    /// Problems, at most `INTEGRITY_PROBLEMS_MAX`.
    pub problems: Vec<Problem>,
    /// Damage known to the harness: the problems it explains are counted, not kept.
    pub damage: Option<Damage>,
    /// An intent-log chain ended at a block in damaged sectors: the blocks after it, which
    /// the engine still holds (and frees once it replays or drops the log), are unknown to
    /// the walk.
    pub zil_cut_by_damage: bool,
    /// Blocks that name other blocks (indirect, dnode, objset and MOS blocks) that failed
    /// in every copy: what lies below them is unknown to the walk. Only damage without a
    /// budget (both copies hit) explains them.
    pub lost_parents: u64,
    /// The MOS was lost in every copy: no dataset, log or deferred list could be walked.
    pub mos_lost: bool,
}

impl Findings {
    /// Record a problem (dropped once the list is full; counted if damage explains it).
    pub fn problem(&mut self, p: Problem) {
        let beyond_cut = self.zil_cut_by_damage
            && matches!(p, Problem::DeferredListDiffers { why, .. } if why == ZIL_FREED_UNKNOWN);
        if beyond_cut || self.damage.as_ref().is_some_and(|d| d.explains(&p)) {
            self.report.explained_by_damage += 1;
        } else if self.problems.len() < INTEGRITY_PROBLEMS_MAX {
            self.problems.push(p);
        }
    }
}

/// A tree being walked: who owns its blocks and the newest birth allowed in it.
#[derive(Clone, Debug)]
struct Tree {
    name: String,
    owner: usize,
    index: usize,
    /// Snapshot txg (for snapshots) or the uberblock txg.
    limit: u64,
    snapshot: bool,
}

/// Where a pointer sits.
#[derive(Clone, Copy, Debug)]
struct At {
    object: u64,
    level: u8,
    blkid: u64,
}

/// What a pointer at this place must look like.
#[derive(Clone, Copy, Debug)]
struct Want {
    lsize: Option<u32>,
    ot: Option<u8>,
}

/// First reference to a copy, by device offset.
#[derive(Clone, Debug)]
struct Seen {
    asize: u64,
    bp: Bp,
    owner: usize,
    tree: usize,
}

/// The walk's state.
pub struct Walker<'a> {
    dev: &'a mut dyn BlockDevice,
    /// Problems and counts.
    pub f: Findings,
    /// Space seen.
    pub space: DiskSpace,
    seen: BTreeMap<u64, Seen>,
    trees: Vec<String>,
    objset_zil: BTreeMap<u64, ZilHeaderPhys>,
    ub_txg: u64,
    stopped: bool,
    /// Walk the newest uberblock at or before this txg (None: the newest of all).
    pub max_txg: Option<u64>,
}

impl<'a> Walker<'a> {
    /// A walker over `dev` (read only).
    pub fn new(dev: &'a mut dyn BlockDevice) -> Self {
        Self {
            dev,
            f: Findings::default(),
            space: DiskSpace::default(),
            seen: BTreeMap::new(),
            trees: Vec::new(),
            objset_zil: BTreeMap::new(),
            ub_txg: 0,
            stopped: false,
            max_txg: None,
        }
    }

    /// Walk the pool: labels, uberblock, MOS, every tree, every intent log. Returns false
    /// when no uberblock could be used (nothing else was walked).
    pub fn walk_pool(&mut self) -> bool {
        let Some(ub) = self.active_uberblock() else { return false };
        self.ub_txg = ub.txg;
        self.space.txg = ub.txg;
        self.f.report.uberblock_txg = ub.txg;
        let Some(mos) = self.walk_mos(&ub) else {
            self.f.mos_lost = self.f.lost_parents > 0;
            return true;
        };
        if mos.pool_guid != ub.pool_guid {
            self.bad_mos("MOS of another pool".into());
        }
        self.walk_datasets(&mos);
        self.keep_deferred(&mos);
        true
    }

    fn bad_pool(&mut self, why: String) {
        self.f.problem(Problem::BadPool { why });
    }

    fn bad_mos(&mut self, why: String) {
        self.f.problem(Problem::BadMos { why });
    }

    /// Read `len` bytes at `offset`, or None (the caller reports).
    fn read(&mut self, offset: u64, len: u64) -> Option<Vec<u8>> {
        assert!(len <= SPA_MAXBLOCKSIZE.max(UBERBLOCK_RING_SLOTS * UBERBLOCK_SLOT_SIZE));
        let mut buf = vec![0u8; usize::try_from(len).ok()?];
        self.dev.read(offset, &mut buf).ok().map(|()| buf)
    }

    /// The label headers, then the newest uberblock whose seal verifies and whose pool guid
    /// is the label's (vdev_uberblock_load: the best uberblock is the newest valid one).
    fn active_uberblock(&mut self) -> Option<UberblockPhys> {
        let size = self.dev.size_bytes();
        if size < SPA_MINDEVSIZE {
            self.bad_pool(format!("device of {size} bytes is too small for a pool"));
            return None;
        }
        self.space.region = (VDEV_LABEL_SIZE, size - VDEV_LABEL_SIZE);
        let mut label = None;
        for l in 0..VDEV_LABELS {
            let at = if l == 0 { 0 } else { size - VDEV_LABEL_SIZE };
            let hdr = self.read(at, SEALED_BYTES as u64);
            let decoded = hdr
                .filter(|b| cksum::seal_ok(b, at))
                .ok_or("seal")
                .and_then(|b| phys::decode_label(&b));
            match decoded {
                Ok(lab) if lab.device_size == size => label = label.or(Some(lab)),
                Ok(lab) => self.bad_pool(format!("label {l}: device size {}", lab.device_size)),
                Err(why) => self.f.problem(Problem::BadLabel { label: l, why }),
            }
        }
        let label = label?;
        let mut best: Option<UberblockPhys> = None;
        for l in 0..VDEV_LABELS {
            let ring_at = if l == 0 { 0 } else { size - VDEV_LABEL_SIZE } + VDEV_LABEL_HEADER_SIZE;
            // One read per slot, as vdev_uberblock_load does: a bad sector costs one slot.
            for i in 0..UBERBLOCK_RING_SLOTS {
                let at = ring_at + i * UBERBLOCK_SLOT_SIZE;
                let Some(slot) = self.read(at, SEALED_BYTES as u64) else {
                    self.f
                        .problem(Problem::BadLabel { label: l, why: "uberblock slot unreadable" });
                    continue;
                };
                // Torn or never-written slots are normal; only sealed ones count.
                if phys::le64(&slot, 0) != phys::UBERBLOCK_MAGIC || !cksum::seal_ok(&slot, at) {
                    continue;
                }
                match phys::decode_uberblock(&slot) {
                    Ok(Some(ub)) if ub.pool_guid == label.pool_guid => {
                        if ub.txg % UBERBLOCK_RING_SLOTS != i {
                            self.bad_pool(format!("uberblock of txg {} in slot {i}", ub.txg));
                        } else if self.max_txg.is_some_and(|m| ub.txg > m) {
                            // A newer uberblock the caller judges separately.
                        } else if best.is_none_or(|b| ub.txg > b.txg) {
                            best = Some(ub);
                        }
                    }
                    Ok(_) => {}
                    Err(why) => self.bad_pool(format!("sealed uberblock in slot {i}: {why}")),
                }
            }
        }
        if best.is_none() {
            self.bad_pool("no uberblock verifies".into());
        }
        best
    }

    /// The MOS: a root block listing 128 KiB chunks of the serialized pool directory.
    fn walk_mos(&mut self, ub: &UberblockPhys) -> Option<MosPhys> {
        let t =
            Tree { name: "MOS".into(), owner: MOS_OWNER, index: 0, limit: ub.txg, snapshot: false };
        self.trees.push(t.name.clone());
        if ub.rootbp.birth != ub.txg {
            let at = At { object: OBJSET_OBJECT, level: 1, blkid: 0 };
            self.birth_problem(&t, at, ub.rootbp.birth, ub.txg, "MOS root not born in its txg");
        }
        let want = Want { lsize: None, ot: Some(phys::DMU_OT_OBJECT_DIRECTORY) };
        let at = At { object: OBJSET_OBJECT, level: 1, blkid: 0 };
        self.f.report.mos_blocks += 1;
        let root = self.block(&t, at, &ub.rootbp, want, u64::MAX)?;
        if root.len() < 16 {
            self.bad_mos("MOS root too short".into());
            return None;
        }
        let len = phys::le64(&root, 0);
        if len != ub.mos_len || len > MOS_LEN_MAX {
            self.bad_mos(format!("MOS length {len}, uberblock says {}", ub.mos_len));
            return None;
        }
        let nchunks = usize::try_from(len.div_ceil(SPA_MAXBLOCKSIZE)).ok()?;
        if root.len() < 16 + nchunks * BP_BYTES {
            self.bad_mos("MOS root lists too few chunks".into());
            return None;
        }
        let mut blob = Vec::new();
        for i in 0..nchunks {
            let raw = &root[16 + i * BP_BYTES..16 + (i + 1) * BP_BYTES];
            let at = At { object: OBJSET_OBJECT, level: 0, blkid: i as u64 };
            let left = len - i as u64 * SPA_MAXBLOCKSIZE;
            let lsize = u32::try_from(left.min(SPA_MAXBLOCKSIZE).next_multiple_of(512)).ok();
            let bp = match phys::decode_bp(raw) {
                Ok(bp) => bp,
                Err(why) => return self.malformed(&t, at, why),
            };
            self.f.report.mos_blocks += 1;
            blob.extend_from_slice(&self.block(
                &t,
                at,
                &bp,
                Want { lsize, ..want },
                ub.rootbp.birth,
            )?);
        }
        blob.truncate(usize::try_from(len).ok()?);
        match phys::decode_mos(&blob) {
            Ok(mos) => Some(mos),
            Err(why) => {
                self.bad_mos(why.into());
                None
            }
        }
    }

    /// Every dataset: its snapshots oldest first, then its head, then the head's log.
    fn walk_datasets(&mut self, mos: &MosPhys) {
        let ub_txg = self.ub_txg;
        for (owner, ds) in mos.datasets.iter().enumerate() {
            let head = At { object: OBJSET_OBJECT, level: 0, blkid: 0 };
            if ds.creation_txg > ub_txg {
                let t = self.tree(&ds.name, owner, ub_txg, false);
                self.birth_problem(&t, head, ds.creation_txg, ub_txg, "dataset created later");
            }
            for (snap, txg, root) in &ds.snapshots {
                let t = self.tree(&format!("{}@{snap}", ds.name), owner, (*txg).min(ub_txg), true);
                if *txg > ub_txg {
                    self.birth_problem(&t, head, *txg, ub_txg, "snapshot created later");
                }
                self.f.report.snapshots += 1;
                self.walk_objset(&t, root);
            }
            let t = self.tree(&ds.name, owner, ub_txg, false);
            self.f.report.datasets += 1;
            self.walk_objset(&t, &ds.head);
            if let Some(h) = self.objset_zil.get(&ds.head.dva[0].offset).copied() {
                if !ds.head.is_hole() {
                    self.walk_zil(&h);
                }
            }
        }
    }

    fn tree(&mut self, name: &str, owner: usize, limit: u64, snapshot: bool) -> Tree {
        self.trees.push(name.to_owned());
        Tree { name: name.to_owned(), owner, index: self.trees.len() - 1, limit, snapshot }
    }

    /// The deferred frees still held after the uberblock's commit: a free of txg F is
    /// released when txg F + TXG_DEFER_SIZE commits (spa/metaslab.rs sync_done; the MOS of
    /// that txg is written before the release, so it still lists them).
    fn keep_deferred(&mut self, mos: &MosPhys) {
        // TXG_DEFER_SIZE defines which persisted frees are still owed (format constant).
        let keep_from = self.ub_txg.saturating_sub(engine::limits::TXG_DEFER_SIZE - 1);
        for &(txg, dva) in &mos.defer {
            if txg > self.ub_txg {
                self.bad_mos(format!("deferred free of txg {txg} {dva:?} after the uberblock"));
            } else if txg >= keep_from {
                self.space.deferred.push((txg, dva));
            }
        }
    }

    fn birth_problem(&mut self, t: &Tree, at: At, birth: u64, limit: u64, why: &'static str) {
        let tree = t.name.clone();
        let (object, level, blkid) = (at.object, at.level, at.blkid);
        self.f.problem(Problem::Birth { tree, object, level, blkid, birth, limit, why });
    }

    fn malformed<T>(&mut self, t: &Tree, at: At, why: &'static str) -> Option<T> {
        let tree = t.name.clone();
        let (object, level, blkid) = (at.object, at.level, at.blkid);
        self.f.problem(Problem::Malformed { tree, object, level, blkid, why });
        None
    }

    fn unreadable(&mut self, t: &Tree, at: At, birth: u64, error: BlockError) {
        let tree = t.name.clone();
        let (object, level, blkid) = (at.object, at.level, at.blkid);
        self.f.problem(Problem::Unreadable { tree, object, level, blkid, birth, error });
    }
}
