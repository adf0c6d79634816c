//! Property 5, pool integrity, like `zdb -b`: every block reachable from the newest valid
//! uberblock decodes, reads back and verifies in every copy; birth txgs are consistent;
//! live copies never overlap; allocated space equals what the trees, the intent logs and
//! the deferred frees hold. OpenZFS: cmd/zdb. Called by `conformance::run_checked`, sim and
//! tests after each sync; the walk itself is `crate::zdb`, decoded from raw device bytes.
//!
//! Where the checker still relies on the engine, and why:
//! - `BlockDevice::read` / `size_bytes` of the pool's device (`Spa::zio_mut().dev`): the raw
//!   bytes. Every block on it is decoded and verified by `zdb`, not by the engine.
//! - `Spa::syncing_txg` / `last_synced_txg`: a syncing txg has no stable tree (`Syncing`),
//!   and the uberblock found on disk must be the txg the engine says it committed.
//! - The engine's allocator (`Spa::space`, `Metaslab::deferred`, `Metaslab::is_free`) and
//!   its in-memory intent-log extents (`Spa::pool_trees`, the `zil` field only): not as a
//!   source of truth but as the thing checked. The engine writes no space map, so the disk
//!   alone cannot show a leak; its allocator must agree with what the disk implies. The
//!   in-memory logs explain the one legitimate difference: chains restarted at import.
//! - `engine::limits` constants that define the format, and the `Dva` struct as a type.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use engine::vdev::BlockDevice;
use engine::zio::blkptr::Dva;
use engine::Spa;

use crate::zdb::space::{check_allocator, check_disk, AllocatorView};
use crate::zdb::{Findings, Walker};

/// Problems recorded before the checker stops collecting (bounded report).
pub const INTEGRITY_PROBLEMS_MAX: usize = 64;

/// Counts of what the walk saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Txg of the uberblock walked.
    pub uberblock_txg: u64,
    /// Trees walked (snapshots and heads).
    pub trees: u64,
    /// Datasets (heads) walked.
    pub datasets: u64,
    /// Snapshots walked.
    pub snapshots: u64,
    /// Distinct non-hole blocks (embedded included), MOS blocks included.
    pub blocks: u64,
    /// Blocks by level.
    pub blocks_by_level: BTreeMap<u8, u64>,
    /// Embedded blocks (no DVA).
    pub embedded: u64,
    /// Holes visited.
    pub holes: u64,
    /// Block pointers visited (holes, embedded and shared ones included).
    pub pointers: u64,
    /// Pointers to a block already walked from an older tree of the same dataset.
    pub shared: u64,
    /// Allocated dnodes.
    pub dnodes: u64,
    /// Logical bytes of the blocks.
    pub lsize_bytes: u64,
    /// Allocated bytes over every copy of every block.
    pub asize_bytes: u64,
    /// Copies read and checksummed.
    pub copies_verified: u64,
    /// Bytes read for those copies (every byte of every copy).
    pub bytes_read: u64,
    /// Blocks of the MOS.
    pub mos_blocks: u64,
    /// Extents held by intent logs on disk (log blocks, the next preallocated one, blocks
    /// written in place): allocated, in no tree.
    pub zil_bytes: u64,
    /// Valid log blocks walked.
    pub zil_blocks: u64,
    /// Intent-log extents the engine holds that no header on disk names yet.
    pub zil_memory_only_bytes: u64,
    /// Deferred-free bytes still owed after the uberblock's commit.
    pub deferred_bytes: u64,
    /// Problems the disk's recorded damage explains (`check_damaged`): not counted as
    /// problems.
    pub explained_by_damage: u64,
}

/// Sectors (of `engine::limits::SPA_MINBLOCKSIZE` bytes) the disk is known to have damaged:
/// corrupted, latent-bad, the target and the landing place of a misdirected write, a lost
/// write. Supplied by the harness that injected the damage, never by the engine.
#[derive(Clone, Debug, Default)]
pub struct Damage {
    /// Damaged sector numbers.
    pub sectors: BTreeSet<u64>,
    /// Size of the device, for the label positions.
    pub device_bytes: u64,
    /// Imports that rewound to an older txg, as (that txg, the sectors written after it
    /// committed): the engine rightly reused space the older tree's blocks held, so a copy
    /// of a block born at or before that txg may be found overwritten there.
    pub rewinds: Vec<(u64, BTreeSet<u64>)>,
}

impl Damage {
    /// True when any sector of `[offset, offset + len)` is damaged.
    #[must_use]
    pub fn hits(&self, offset: u64, len: u64) -> bool {
        let sector = engine::limits::SPA_MINBLOCKSIZE;
        let (first, last) = (offset / sector, (offset + len.max(1) - 1) / sector);
        self.sectors.range(first..=last).next().is_some()
    }

    /// True when a copy of a block born at `birth` lies in sectors written after the txg
    /// of a rewind at or after `birth` committed (`rewinds`).
    #[must_use]
    pub fn overwritten(&self, dva: &Dva, birth: u64) -> bool {
        let sector = engine::limits::SPA_MINBLOCKSIZE;
        let (first, last) = (dva.offset / sector, (dva.offset + dva.asize.max(1) - 1) / sector);
        self.rewinds
            .iter()
            .any(|(txg, written)| birth <= *txg && written.range(first..=last).next().is_some())
    }

    /// True when the uberblock of `txg` sits in damaged sectors in every label: the disk
    /// lost the commit record the engine wrote (a lost or misdirected write, a write a
    /// lying flush acknowledged), so the engine is a txg ahead of its disk.
    #[must_use]
    pub fn uberblock_lost(&self, txg: u64) -> bool {
        use engine::limits::{
            UBERBLOCK_RING_SLOTS, UBERBLOCK_SLOT_SIZE, VDEV_LABELS, VDEV_LABEL_HEADER_SIZE,
        };
        (0..VDEV_LABELS).all(|l| {
            let ring =
                engine::vdev::label::label_offset(l, self.device_bytes) + VDEV_LABEL_HEADER_SIZE;
            let slot = ring + (txg % UBERBLOCK_RING_SLOTS) * UBERBLOCK_SLOT_SIZE;
            self.hits(slot, UBERBLOCK_SLOT_SIZE)
        })
    }

    /// True when the damage explains `p`: a copy that failed to read or verify where the
    /// disk was damaged, or a label header in damaged sectors. Nothing else: every other
    /// problem (a wrong birth, a leak, an overlap, a malformed block that verified) is one
    /// no damage causes, since each block's other copy (ditto) lies outside the one damage
    /// window a budgeted profile allows, so the walk still reaches every block.
    #[must_use]
    pub fn explains(&self, p: &Problem) -> bool {
        match p {
            Problem::Unreadable {
                error: BlockError::Io { dva } | BlockError::Checksum { dva },
                birth,
                ..
            } => self.hits(dva.offset, dva.asize) || self.overwritten(dva, *birth),
            Problem::BadLabel { label, .. } => self.hits(
                engine::vdev::label::label_offset(*label, self.device_bytes),
                engine::limits::VDEV_LABEL_SIZE,
            ),
            _ => false,
        }
    }
}

/// Why one copy of a block did not read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The device failed the read.
    Io {
        /// The copy.
        dva: Dva,
    },
    /// The stored bytes do not match the pointer's checksum.
    Checksum {
        /// The copy.
        dva: Dva,
    },
    /// Verified bytes that do not decompress to `lsize`.
    Decompress {
        /// What was wrong.
        why: &'static str,
    },
}

/// One inconsistency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A txg is syncing: the synced trees are in flux.
    Syncing(u64),
    /// A label header does not verify or decode.
    BadLabel { label: u64, why: &'static str },
    /// Labels, uberblocks or the device as a whole are wrong.
    BadPool { why: String },
    /// The newest valid uberblock is not the txg the engine says it committed.
    UberblockTxg { disk_txg: u64, synced_txg: u64 },
    /// The MOS does not decode or contradicts its uberblock.
    BadMos { why: String },
    /// A copy of a block (born in txg `birth`) failed to read, verify or decompress.
    Unreadable { tree: String, object: u64, level: u8, blkid: u64, birth: u64, error: BlockError },
    /// A block pointer, dnode or objset block is malformed or out of place.
    Malformed { tree: String, object: u64, level: u8, blkid: u64, why: &'static str },
    /// A copy is named by two different pointers, by two datasets, or twice in one tree.
    DoubleReference { dva: Dva, first: String, second: String },
    /// Two live copies share bytes.
    Overlap { first: Dva, second: Dva },
    /// A live copy lies outside the allocatable region.
    OutOfRange { dva: Dva },
    /// A live copy or a deferred free is marked free by the allocator.
    LiveBlockFree { dva: Dva },
    /// The allocator's count differs from what the disk references.
    SpaceMismatch { allocated: u64, referenced: u64 },
    /// A deferred free overlaps a live copy or another deferred free.
    DeferredOverlap { txg: u64, dva: Dva },
    /// The allocator's deferred count differs from its lists.
    DeferredMismatch { counted: u64, listed: u64 },
    /// The allocator's deferred lists differ from the persisted ones.
    DeferredListDiffers { txg: u64, dva: Dva, why: &'static str },
    /// A block is born after the uberblock's txg, its parent, or its snapshot.
    Birth {
        tree: String,
        object: u64,
        level: u8,
        blkid: u64,
        birth: u64,
        limit: u64,
        why: &'static str,
    },
    /// A named limit of the walk was reached; the walk stopped there.
    Limit { what: &'static str },
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

/// Check the pool as zdb does, from the bytes on its device. Needs no txg syncing.
///
/// # Errors
/// `IntegrityError` listing every problem found (bounded), with the counts.
// The error carries the full report by value (its public shape); one per check, not hot.
#[allow(clippy::result_large_err)]
pub fn check(spa: &mut Spa) -> Result<IntegrityReport, IntegrityError> {
    check_with(spa, None, None)
}

/// `check` on a pool whose disk took the recorded `damage` (the faults profile), walking
/// `dev`, a fault-free view of the pool's device (reading through the faulty device would
/// inject new damage while checking): the problems the damage explains
/// (`Damage::explains`) are counted, not reported.
///
/// # Errors
/// As `check`, for every problem the damage does not explain.
#[allow(clippy::result_large_err)]
pub fn check_damaged(
    spa: &mut Spa,
    dev: &mut dyn BlockDevice,
    damage: Damage,
) -> Result<IntegrityReport, IntegrityError> {
    check_with(spa, Some((dev, damage)), None)
}

/// `check_damaged` for damage without a budget (the `unrestricted` profile), where both
/// copies of a block may be hit. Two things change, each only as far as that damage forces:
/// - Import may rewind past newer uberblocks whose trees it cannot load. Each uberblock
///   newer than the engine's committed txg is walked too and must show a problem (a copy
///   lost, a block that no longer verifies because the rewound pool reused its space): a
///   newer uberblock the walk finds flawless is `UberblockTxg`, a rewind without cause.
///   The pool is then walked at the engine's txg, which must be on disk.
/// - Below a block lost in every copy (`Findings::lost_parents`) the walk sees nothing, so
///   the allocator must hold at least what the walk saw rather than exactly that.
/// - A copy of a block born at or before a rewound txg may be found overwritten in sectors
///   the disk wrote after that txg committed (`Damage::rewinds`).
/// - When the disk lost the engine's newest commit record (its uberblock slot damaged in
///   every label) or every copy of the MOS, only the disk's own consistency is checked:
///   the allocator describes a state the disk no longer shows.
///
/// # Errors
/// As `check`, for every problem the damage does not explain.
#[allow(clippy::result_large_err)]
pub fn check_unbudgeted(
    spa: &mut Spa,
    dev: &mut dyn BlockDevice,
    damage: &Damage,
) -> Result<IntegrityReport, IntegrityError> {
    if let Some(txg) = spa.syncing_txg() {
        let problems = vec![Problem::Syncing(txg)];
        return Err(IntegrityError { problems, report: IntegrityReport::default() });
    }
    let synced_txg = spa.last_synced_txg();
    let mut cap: Option<u64> = None;
    let mut rewind_problems = Vec::new();
    // Each pass walks the newest uberblock at or below `cap`; the ring bounds the passes.
    for _ in 0..=engine::limits::UBERBLOCK_RING_SLOTS {
        let mut w = Walker::new(&mut *dev);
        w.max_txg = cap;
        w.f.damage = Some(damage.clone());
        let walked = w.walk_pool();
        let disk_txg = w.space.txg;
        if !walked || disk_txg <= synced_txg {
            break;
        }
        let flawed =
            !w.f.problems.is_empty() || w.f.report.explained_by_damage > 0 || w.f.lost_parents > 0;
        if !flawed {
            rewind_problems.push(Problem::UberblockTxg { disk_txg, synced_txg });
        }
        cap = Some(disk_txg - 1);
    }
    match check_with(spa, Some((dev, damage.clone())), Some(synced_txg)) {
        Ok(report) if rewind_problems.is_empty() => Ok(report),
        Ok(report) => Err(IntegrityError { problems: rewind_problems, report }),
        Err(mut e) => {
            e.problems.splice(0..0, rewind_problems);
            e.problems.truncate(INTEGRITY_PROBLEMS_MAX);
            Err(e)
        }
    }
}

#[allow(clippy::result_large_err)]
fn check_with(
    spa: &mut Spa,
    damaged: Option<(&mut dyn BlockDevice, Damage)>,
    max_txg: Option<u64>,
) -> Result<IntegrityReport, IntegrityError> {
    if let Some(txg) = spa.syncing_txg() {
        let problems = vec![Problem::Syncing(txg)];
        return Err(IntegrityError { problems, report: IntegrityReport::default() });
    }
    let synced_txg = spa.last_synced_txg();
    let mut w = match damaged {
        Some((dev, damage)) => {
            let mut w = Walker::new(dev);
            w.f.damage = Some(damage);
            w
        }
        None => Walker::new(spa.zio_mut().dev.as_mut()),
    };
    w.max_txg = max_txg;
    let walked = w.walk_pool();
    let (mut f, disk): (Findings, _) = (w.f, w.space);
    let commit_lost = f.damage.as_ref().is_some_and(|d| d.uberblock_lost(synced_txg));
    if walked && ((disk.txg < synced_txg && commit_lost) || f.mos_lost) {
        // The disk lost the engine's last commit record, or every copy of its MOS: the
        // allocator describes a state the disk no longer shows, so only the disk's own
        // consistency can be checked.
        f.report.explained_by_damage += 1;
        check_disk(&mut f, &disk);
    } else if walked {
        let disk_txg = disk.txg;
        if disk_txg != synced_txg {
            f.problem(Problem::UberblockTxg { disk_txg, synced_txg });
        }
        let live = check_disk(&mut f, &disk);
        let zil = spa.pool_trees().0.into_iter().flat_map(|t| t.zil).collect();
        let space = spa.space();
        let ms = &spa.zio_mut().ms;
        let deferred = ms.deferred().iter().flat_map(|(&t, v)| v.iter().map(move |d| (t, *d)));
        let view = AllocatorView {
            allocated: space.allocated,
            deferred_bytes: space.deferred,
            deferred: deferred.collect(),
            zil,
            sector_free: &|s| ms.is_free(s, engine::limits::SPA_MINBLOCKSIZE),
        };
        check_allocator(&mut f, &disk, &live, &view);
    }
    if f.problems.is_empty() {
        Ok(f.report)
    } else {
        Err(IntegrityError { problems: f.problems, report: f.report })
    }
}
