//! What a recording's event log says, for `explore`: the txg bounds of each crash point
//! (which uberblocks a returned flush made durable, which txg had started syncing), the step
//! bounds (committed, fsynced, logged, current: see the parent module's "Acceptance"), and
//! the seeded disk bugs that rewrite a correct log to prove the checks can fail.

use super::*;

/// A deliberately broken disk, made by rewriting a correct recording's event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskBug {
    /// The disk as recorded.
    None,
    /// Every flush directly followed by an uberblock write returns Ok and persists nothing.
    DropFlushBeforeUberblock,
    /// Every flush returns Ok and persists nothing.
    LyingFlush,
    /// Every flush that ends an intent-log commit returns Ok and persists nothing: a flush
    /// after writes that all lie outside the labels, not followed by an uberblock write (a
    /// txg sync flushes right before its uberblocks and right after them, pool creation
    /// after writing the labels; `fsync` writes its blocks in place and its log blocks, then
    /// flushes once).
    DropLogCommitFlush,
}

/// The byte range of the uberblock ring of label `l` on a device of `device_bytes`.
pub(super) fn ring_range(l: u64, device_bytes: u64) -> std::ops::Range<u64> {
    let start = label_offset(l, device_bytes) + VDEV_LABEL_HEADER_SIZE;
    start..label_offset(l, device_bytes) + VDEV_LABEL_SIZE
}

/// If event `e` writes an uberblock slot, the txg and label it commits.
pub(super) fn uberblock_write(e: &DiskEvent, device_bytes: u64) -> Option<(u64, u64)> {
    let DiskEvent::Write { offset, data } = e else { return None };
    let end = offset + data.len() as u64;
    let l = (0..VDEV_LABELS).find(|&l| {
        let ring = ring_range(l, device_bytes);
        *offset >= ring.start && end <= ring.end
    })?;
    let ub = UberblockPhys::decode(data, *offset)?;
    assert_eq!(uberblock_offset(l, device_bytes, ub.txg), *offset, "txg {} slot", ub.txg);
    Some((ub.txg, l))
}

/// The event log of `events` as a disk with `bug` would have recorded it. A dropped flush
/// becomes the disk's own `LyingFlush` fault event, so event indices stay the same.
#[must_use]
pub fn apply_bug(events: &[DiskEvent], bug: DiskBug, device_bytes: u64) -> Vec<DiskEvent> {
    let lying = DiskEvent::Fault(FaultEvent::LyingFlush);
    let mut out = events.to_vec();
    // Since the previous flush: (any write, any write into a label).
    let (mut wrote, mut wrote_label) = (false, false);
    for (i, e) in events.iter().enumerate() {
        if let DiskEvent::Write { offset, data } = e {
            let end = offset + data.len() as u64;
            wrote = true;
            wrote_label |= (0..VDEV_LABELS).any(|l| {
                let start = label_offset(l, device_bytes);
                *offset < start + VDEV_LABEL_SIZE && start < end
            });
        }
        if !is_flush(e) {
            continue;
        }
        let ub_next = events.get(i + 1).and_then(|n| uberblock_write(n, device_bytes)).is_some();
        let log_commit = wrote && !wrote_label && !ub_next;
        (wrote, wrote_label) = (false, false);
        if *e != DiskEvent::Flush {
            continue;
        }
        let drop = match bug {
            DiskBug::None => false,
            DiskBug::LyingFlush => true,
            DiskBug::DropFlushBeforeUberblock => ub_next,
            DiskBug::DropLogCommitFlush => log_commit,
        };
        if drop {
            out[i] = lying.clone();
        }
    }
    assert_eq!(out.len(), events.len());
    out
}

/// True for a flush as the engine saw it: a good one, or one that lied (returned Ok).
pub(super) fn is_flush(e: &DiskEvent) -> bool {
    matches!(e, DiskEvent::Flush | DiskEvent::Fault(FaultEvent::LyingFlush))
}

/// The durability bounds at every event of a log, from the engine's point of view.
///
/// lower(k): the newest txg whose uberblock writes (both labels) were followed by a flush
/// that returned Ok at or before event k: committed, so it must survive a crash after k.
/// upper(k): the newest txg that started syncing at or before k: the newest uberblock
/// written by then, or the txg after lower(k) once any event followed lower(k)'s flush
/// (every write of the engine belongs to a sync). Before the first commit lower is None
/// and a failed import ('not a pool', no valid uberblock) is acceptable.
///
/// Per event it also holds the `StepBounds` of the intent-log rules (module doc).
#[derive(Clone, Debug)]
pub struct Timeline {
    lower: Vec<Option<u64>>,
    upper: Vec<u64>,
    steps: Vec<StepBounds>,
    /// Event index -> (txg, label) of every uberblock write.
    pub(super) ub_writes: BTreeMap<usize, (u64, u64)>,
}

/// The steps whose states a crash right after one event may import (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepBounds {
    /// The step that committed lower (0 before the first commit).
    pub committed: usize,
    /// The newest fsync step whose flush returned at or before the event.
    pub fsynced: Option<usize>,
    /// The newest fsync step at or before `current`.
    pub logged: Option<usize>,
    /// The step the event belongs to.
    pub current: usize,
}

impl StepBounds {
    /// True when some fsync step follows the last commit: states are judged by step.
    #[must_use]
    pub fn replay_window(&self) -> bool {
        self.logged.is_some_and(|g| g > self.committed)
    }

    /// The first step a state may equal: neither older than the commit nor than the fsync.
    #[must_use]
    pub fn first(&self) -> usize {
        self.committed.max(self.fsynced.unwrap_or(0))
    }

    /// Whether step `s` (at most `current`) is an operation the intent log can bring back
    /// or a commit: the ordering part of the rule, without the fsync floor.
    pub(super) fn reachable(&self, s: &StepRecord, index: usize) -> bool {
        index >= self.committed
            && index <= self.current
            && (s.committed.is_some() || (self.logged.is_some_and(|g| index <= g) && !s.lost))
    }
}

impl Timeline {
    /// Bounds for `events` (the recording's log or a rewrite of it by `apply_bug`).
    ///
    /// # Errors
    /// The log's uberblocks disagree with the recorded txgs.
    pub fn new(rec: &ScenarioRecording, events: &[DiskEvent]) -> Result<Self, String> {
        let next_txg = |t: Option<u64>| match t {
            None => rec.txgs.keys().next().copied(),
            Some(t) => rec.txgs.range(t + 1..).next().map(|(&n, _)| n),
        };
        let mut tl = Self {
            lower: Vec::new(),
            upper: Vec::new(),
            steps: Vec::new(),
            ub_writes: BTreeMap::new(),
        };
        let (mut lower, mut newest_ub, mut busy) = (None, 0, false);
        let mut pending: BTreeMap<u64, u64> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            if let Some((txg, l)) = uberblock_write(e, rec.device_bytes) {
                tl.ub_writes.insert(i, (txg, l));
                *pending.entry(txg).or_default() += 1;
                newest_ub = newest_ub.max(txg);
            }
            if is_flush(e) {
                for (&txg, &labels) in &pending {
                    if labels >= VDEV_LABELS && lower.is_none_or(|t| txg > t) {
                        (lower, busy) = (Some(txg), false);
                    }
                }
                pending.clear();
            } else if matches!(e, DiskEvent::Write { .. }) {
                busy = true;
            }
            let started = if busy { next_txg(lower).unwrap_or(0) } else { 0 };
            tl.lower.push(lower);
            tl.upper.push(started.max(newest_ub).max(lower.unwrap_or(0)));
        }
        let ub_txgs: BTreeSet<u64> = tl.ub_writes.values().map(|&(t, _)| t).collect();
        let recorded: BTreeSet<u64> = rec.txgs.keys().copied().collect();
        if ub_txgs != recorded {
            return Err(format!("uberblocks for txgs {ub_txgs:?}, pool committed {recorded:?}"));
        }
        assert_eq!(tl.lower.len(), events.len());
        tl.steps = Self::step_bounds(rec, events, &tl.lower)?;
        Ok(tl)
    }

    /// `StepBounds` of every event, from the steps' event ranges, the flushes of `events`
    /// (a lying flush returned Ok, so the engine counted on it) and `lower`.
    fn step_bounds(
        rec: &ScenarioRecording,
        events: &[DiskEvent],
        lower: &[Option<u64>],
    ) -> Result<Vec<StepBounds>, String> {
        let end = rec.steps.last().map_or(0, |s| s.events_end);
        if end != events.len() {
            return Err(format!("steps end at event {end} of {}", events.len()));
        }
        // (event from which it counts, step) of every fsync step: its first flush; an fsync
        // that issued no event counts from the first event after it; one that wrote without
        // flushing never counts.
        let mut fsync_done: Vec<(usize, usize)> = Vec::new();
        let mut out = Vec::with_capacity(events.len());
        let mut logged = None;
        for (index, step) in rec.steps.iter().enumerate() {
            let range = step.events_start..step.events_end;
            if range.start > range.end || range.start != out.len() {
                return Err(format!("step {index} ({}) owns events {range:?}", step.name));
            }
            if step.kind == StepKind::Fsync {
                logged = Some(index);
                let flush = range.clone().find(|&i| is_flush(&events[i]));
                match flush {
                    Some(at) => fsync_done.push((at, index)),
                    None if range.is_empty() => fsync_done.push((range.start, index)),
                    None => {}
                }
            }
            for k in range {
                let committed = match lower[k] {
                    None => 0,
                    Some(t) => rec.txgs.get(&t).ok_or(format!("txg {t} not recorded"))?.step_index,
                };
                let fsynced = fsync_done.iter().filter(|&&(at, _)| at <= k).map(|&(_, f)| f).max();
                out.push(StepBounds { committed, fsynced, logged, current: index });
            }
        }
        assert_eq!(out.len(), events.len());
        Ok(out)
    }

    /// The bounds right after event `k`.
    #[must_use]
    pub fn bounds(&self, k: usize) -> (Option<u64>, u64) {
        (self.lower[k], self.upper[k])
    }

    /// The step bounds right after event `k`.
    #[must_use]
    pub fn step_bounds_at(&self, k: usize) -> StepBounds {
        self.steps[k]
    }
}
