//! Space accounting (zdb -b's leak check, zdb_leak / zdb_check_for_obsolete_leaks): the
//! extents the walk found on disk must not overlap, must lie in the allocatable region, and
//! the persisted deferred frees must overlap nothing live. The engine persists no space
//! map (spa/metaslab.rs: import rebuilds the allocator from the trees, the logs and the
//! deferred lists), so the allocator it runs on is checked against what the disk implies:
//! every byte of every live or deferred extent allocated, the deferred lists equal, and its
//! allocated total equal to the disk's (no leak, no double allocation). Part of `zdb`.

use std::collections::BTreeSet;

use engine::limits::SPA_MINBLOCKSIZE;
use engine::zio::blkptr::Dva;

use super::{DiskSpace, Findings};
use crate::integrity::Problem;

/// What the engine's allocator holds now (the thing under test), read through its public
/// API by `integrity::check`.
pub struct AllocatorView<'a> {
    /// Bytes it counts as allocated (referenced, not deferred).
    pub allocated: u64,
    /// Bytes it counts as deferred.
    pub deferred_bytes: u64,
    /// Its deferred lists, as (txg of the free, extent).
    pub deferred: Vec<(u64, Dva)>,
    /// Extents its intent logs hold in memory (they may be ahead of the disk: a chain
    /// restarted at import is named on disk only by the next txg that writes its head).
    pub zil: Vec<Dva>,
    /// True if the 512-byte sector at this offset is free.
    pub sector_free: &'a dyn Fn(u64) -> bool,
}

fn end(d: &Dva) -> u64 {
    d.offset.saturating_add(d.asize)
}

/// An extent of `sorted` (sorted by offset) that shares a byte with `d`.
fn overlap(sorted: &[Dva], d: &Dva) -> Option<Dva> {
    let i = sorted.partition_point(|e| end(e) <= d.offset);
    sorted[i..].iter().take_while(|e| e.offset < end(d)).find(|e| end(e) > d.offset).copied()
}

/// Checks on the disk alone; returns the live extents (trees, MOS, logs) sorted.
pub fn check_disk(f: &mut Findings, s: &DiskSpace) -> Vec<Dva> {
    let mut live: Vec<Dva> = s.blocks.iter().chain(&s.zil).copied().collect();
    live.sort_unstable();
    for pair in live.windows(2) {
        if end(&pair[0]) > pair[1].offset {
            f.problem(Problem::Overlap { first: pair[0], second: pair[1] });
        }
    }
    let (start, stop) = s.region;
    assert!(start < stop, "region {start}..{stop}");
    let outside = |d: &Dva| d.offset < start || end(d) > stop || d.asize == 0;
    for d in live.iter().filter(|d| outside(d)) {
        f.problem(Problem::OutOfRange { dva: *d });
    }
    let mut deferred = s.deferred.clone();
    deferred.sort_unstable_by_key(|(_, d)| *d);
    for (txg, d) in &deferred {
        if outside(d) {
            f.problem(Problem::OutOfRange { dva: *d });
        } else if overlap(&live, d).is_some() {
            f.problem(Problem::DeferredOverlap { txg: *txg, dva: *d });
        }
    }
    for pair in deferred.windows(2) {
        if end(&pair[0].1) > pair[1].1.offset {
            f.problem(Problem::DeferredOverlap { txg: pair[1].0, dva: pair[1].1 });
        }
    }
    f.report.deferred_bytes = deferred.iter().map(|(_, d)| d.asize).sum();
    live
}

/// The engine's allocator against the disk: see the module comment.
pub fn check_allocator(f: &mut Findings, s: &DiskSpace, live: &[Dva], a: &AllocatorView<'_>) {
    let on_disk_zil: BTreeSet<Dva> = s.zil.iter().copied().collect();
    let mut disk_deferred: Vec<Dva> = s.deferred.iter().map(|(_, d)| *d).collect();
    disk_deferred.sort_unstable();
    let extra: BTreeSet<Dva> = a.zil.iter().filter(|d| !on_disk_zil.contains(d)).copied().collect();
    for d in &extra {
        if let Some(o) = overlap(live, d).or_else(|| overlap(&disk_deferred, d)) {
            f.problem(Problem::Overlap { first: *d, second: o });
        }
    }
    f.report.zil_memory_only_bytes = extra.iter().map(|d| d.asize).sum();
    let listed: u64 = a.deferred.iter().map(|(_, d)| d.asize).sum();
    if listed != a.deferred_bytes {
        f.problem(Problem::DeferredMismatch { counted: a.deferred_bytes, listed });
    }
    let released = deferred_lists(f, s, live, &on_disk_zil, a);
    let live_bytes: u64 = live.iter().map(|d| d.asize).sum();
    let referenced = (live_bytes + f.report.zil_memory_only_bytes).saturating_sub(released);
    // Below a block lost in every copy the walk sees nothing, while the allocator still
    // holds those blocks: then it must hold at least what the walk saw, no longer exactly.
    let leak_unknowable = f.lost_parents > 0;
    if a.allocated < referenced || (a.allocated > referenced && !leak_unknowable) {
        f.problem(Problem::SpaceMismatch { allocated: a.allocated, referenced });
    }
    let (start, stop) = s.region;
    let all = live.iter().chain(&extra).chain(&disk_deferred);
    for d in all.filter(|d| d.offset >= start && end(d) <= stop) {
        let mut sector = d.offset;
        while sector < end(d) {
            if (a.sector_free)(sector) {
                f.problem(Problem::LiveBlockFree { dva: *d });
                break;
            }
            sector += SPA_MINBLOCKSIZE;
        }
    }
}

/// The allocator's deferred lists against the disk's. Frees of txgs up to the committed
/// one must be exactly the persisted ones; later frees (made since the commit) may only be
/// intent-log extents the disk still names (import restarts every chain). Returns the bytes
/// of those: live on disk, deferred in the allocator.
fn deferred_lists(
    f: &mut Findings,
    s: &DiskSpace,
    live: &[Dva],
    on_disk_zil: &BTreeSet<Dva>,
    a: &AllocatorView<'_>,
) -> u64 {
    let disk: BTreeSet<(u64, Dva)> = s.deferred.iter().copied().collect();
    let old: BTreeSet<(u64, Dva)> =
        a.deferred.iter().filter(|(t, _)| *t <= s.txg).copied().collect();
    let new = a.deferred.iter().filter(|(t, _)| *t > s.txg);
    for &(txg, dva) in disk.difference(&old) {
        let why = "persisted, not in the allocator";
        f.problem(Problem::DeferredListDiffers { txg, dva, why });
    }
    for &(txg, dva) in old.difference(&disk) {
        if overlap(live, &dva).is_some() {
            f.problem(Problem::DeferredOverlap { txg, dva });
        } else {
            let why = "in the allocator, not persisted";
            f.problem(Problem::DeferredListDiffers { txg, dva, why });
        }
    }
    let mut released = 0;
    for &(txg, dva) in new {
        if on_disk_zil.contains(&dva) {
            released += dva.asize;
        } else if overlap(live, &dva).is_some() {
            f.problem(Problem::DeferredOverlap { txg, dva });
        } else {
            let why = super::ZIL_FREED_UNKNOWN;
            f.problem(Problem::DeferredListDiffers { txg, dva, why });
        }
    }
    released
}
