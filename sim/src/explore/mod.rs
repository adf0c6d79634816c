//! Crash-state exploration (`zsim explore SCENARIO`): build a golden scenario on a recording
//! `SimDisk`, fingerprint the model after the builder's steps (every committed txg, and every
//! step an intent-log replay can reach), then crash after every write and flush of the event
//! log, import each combination of the cached writes (all when few, a seeded sample plus torn
//! variants beyond) and check durability (design.md property 2, with the intent log),
//! newest-uberblock import and integrity (5). Counterpart: the crash-state enumeration of
//! ALICE/CrashMonkey. Uses `disk::Replayer`, `golden::build_on`, `oracle`; never the engine's
//! internals. Files: `fingerprint.rs` (state fingerprints), `record.rs` (the recording).
//! Invariant: a state is judged only against the recording (step fingerprints and
//! flush/uberblock positions in the log); the run is a pure function of scenario and seed.
//!
//! The reference is the model: a step's fingerprint takes its dataset and snapshot names and
//! every manifest from the `oracle::Model` that `golden::build_on` drives beside the engine,
//! and the engine's own fingerprint of the step must equal it (else `EngineVsModel`: an
//! engine bug while building). Taken from the engine while recording, because the model has
//! no such data: snapshot guids, creation txgs and times, dataset props, which step committed
//! which txg (checked against the log's uberblocks by `Timeline`), and a received object's
//! maxblkid inside the range the model allows (`RecvMaxblkids::observed`). A crash state is
//! read from the engine after import: that is what is judged.
//!
//! Acceptance (crash right after event k). Steps are numbered in builder order; step s owns
//! the events recorded between the end of step s-1 and its own end; a step commits txg T when
//! the pool's last synced txg becomes T during it. Bounds from the log: lower(k) is the newest
//! txg whose uberblocks were followed by a flush that returned at or before k, upper(k) the
//! newest txg that had started syncing (see `Timeline`). Bounds from the steps (`StepBounds`):
//! - `committed`: the step that committed lower(k) (0 before the first commit);
//! - `fsynced`: the newest `"fsync"` step whose first flush is at or before k (an fsync that
//!   wrote nothing counts from the first event after its start): its operations must survive;
//! - `logged`: the newest `"fsync"` step at or before `current` (what the log can hold);
//! - `current`: the step event k belongs to.
//!
//! With no fsync step after `committed` (`logged` <= `committed`), the check is the one
//! without an intent log: the imported state equals the fingerprint of a recorded txg in
//! [lower, upper]. Otherwise it must equal the fingerprint of a step s with
//! max(committed, fsynced) <= s <= current that either committed a txg or is an operation the
//! log can hold: s <= logged and s is not lost (lost: a step after the last fsync or commit
//! before an `"import"` step, i.e. dropped by the scenario's own crash). That is "the last
//! committed state plus a prefix, in order, of the later operations, including every
//! operation whose fsync returned", compared by fingerprint because the replay commits a txg
//! of its own. A state equal to an acceptable step older than `fsynced` is reported as
//! `FsyncLost`. The scenario's own crash (`Builder::crash_and_import`) is just more events:
//! its replay commit is a txg of the recording and a new chain continues after it.
//!
//! Txg checks use `ImportReport::loaded_txg` (the uberblock import chose), never the txg the
//! replay then commits: that commit writes new uberblocks into the crash device's private
//! overlay, after the crash, and is no part of the recording. Log blocks and blocks written in
//! place by an fsync lie outside the label rings, so the uberblock slot model (`Rewound`: the
//! newest uberblock that verifies must be the one imported) is unchanged by the intent log.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::process::ExitCode;
use std::sync::Arc;

use engine::limits::{UBERBLOCK_SLOT_SIZE, VDEV_LABELS, VDEV_LABEL_HEADER_SIZE, VDEV_LABEL_SIZE};
use engine::spa::uberblock::UberblockPhys;
use engine::vdev::label::{label_offset, uberblock_offset};
use engine::vdev::{check_range, BlockDevice, VdevError};
use engine::{Spa, SpaConfig};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::disk::{DiskEvent, FaultEvent, Replayer};
use crate::fault::{RATE_PPM_MAX, SECTOR_SIZE};

mod fingerprint;
mod record;
mod report;
mod timeline;

pub use fingerprint::{
    fingerprint, first_difference, model_fingerprint, DatasetPrint, Fingerprint, ManifestStore,
    ModelManifests, SnapPrint,
};
pub use record::{
    device_bytes_for, record_scenario, record_scenario_as, record_scenario_with, BuildBug,
    RecordConfig, ScenarioRecording, StepKind, StepPrints, StepRecord, TxgRecord,
    BUILD_BUG_STRAY_BYTES,
};
pub use report::{ExploreReport, Violation, ViolationKind};
pub use timeline::{apply_bug, DiskBug, StepBounds, Timeline};
use timeline::{is_flush, ring_range, uberblock_write};

/// Smallest device a scenario is explored on (the "16 MiB pool").
pub const EXPLORE_DEVICE_BYTES_MIN: u64 = 16 << 20;
/// Largest device tried when a scenario does not fit the smaller ones.
pub const EXPLORE_DEVICE_BYTES_MAX: u64 = 256 << 20;
/// Up to this many cached writes, every subset of them (per write) is checked.
pub const EXPLORE_SUBSETS_ALL_MAX: usize = 10;
/// Largest `ExploreConfig::subsets_all_max` accepted (2^16 states per crash point).
pub const EXPLORE_SUBSETS_ALL_LIMIT: usize = 16;
/// Beyond `EXPLORE_SUBSETS_ALL_MAX`, subsets checked per crash point (empty and full included).
pub const EXPLORE_SAMPLE: usize = 64;
/// Extra per-sector states per crash point: torn writes and per-sector choices.
pub const EXPLORE_TORN_VARIANTS: usize = 4;
/// Violations described in a report (all are counted).
pub const EXPLORE_VIOLATIONS_KEPT: usize = 16;
/// Violations `zsim explore` prints.
pub const EXPLORE_VIOLATIONS_SHOWN: usize = 5;
/// Cached writes a subset description lists by event index before it abbreviates.
const SUBSET_LISTED_MAX: usize = 12;

const SECTOR_BYTES: usize = SECTOR_SIZE as usize;
const _: () = assert!(EXPLORE_SAMPLE >= 2, "a sample holds the empty and the full set");
const _: () = assert!(EXPLORE_SUBSETS_ALL_MAX <= EXPLORE_SUBSETS_ALL_LIMIT);
const _: () = assert!(1 << EXPLORE_SUBSETS_ALL_MAX >= EXPLORE_SAMPLE);
const _: () = assert!(EXPLORE_DEVICE_BYTES_MIN.is_power_of_two());
const _: () = assert!(EXPLORE_DEVICE_BYTES_MIN <= EXPLORE_DEVICE_BYTES_MAX);
const _: () = assert!(EXPLORE_VIOLATIONS_SHOWN <= EXPLORE_VIOLATIONS_KEPT);

/// How much of each crash point to explore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExploreConfig {
    /// Seed of every sampling choice (`zsim explore --seed`).
    pub seed: u64,
    /// Every subset of the cached writes is checked up to this many cached writes.
    pub subsets_all_max: usize,
    /// Subsets per crash point beyond `subsets_all_max` (at least 2: empty and full).
    pub sample: usize,
    /// Torn / per-sector variants per crash point.
    pub torn_variants: usize,
    /// Reuse a manifest for an objset whose root block pointer was seen before. Sound
    /// because the root pointer checksums the whole tree and `oracle::integrity::check`
    /// reads and verifies every reachable block of every imported state. A head with
    /// unsynced changes (recorded steps between commits) is always read (`fingerprint`).
    pub manifest_cache: bool,
}

impl ExploreConfig {
    /// The `zsim explore` defaults with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            subsets_all_max: EXPLORE_SUBSETS_ALL_MAX,
            sample: EXPLORE_SAMPLE,
            torn_variants: EXPLORE_TORN_VARIANTS,
            manifest_cache: true,
        }
    }
}

/// Why a scenario could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    /// No scenario of that name.
    #[error("unknown scenario {0:?}; see zsim explore --list")]
    UnknownScenario(String),
    /// The scenario failed to build (on the largest device tried, from `device_bytes_for`).
    #[error("scenario {name} on a {device_bytes}-byte device: {source}")]
    Build {
        /// Scenario name.
        name: String,
        /// Device size tried last.
        device_bytes: u64,
        /// The builder's error.
        source: golden::GoldenError,
    },
    /// While recording, the engine's own state after a step differs from the model's (or
    /// lacks a snapshot the model has): an engine bug while building, or a model bug.
    #[error("recording of {name}, step #{index} ({step}): engine vs model: {difference}")]
    EngineVsModel {
        /// Scenario name.
        name: String,
        /// Index of the step.
        index: usize,
        /// The step's name.
        step: String,
        /// The first difference (engine first, then the model's).
        difference: String,
    },
    /// The recording contradicts itself or the pool (a bug of the disk or the hook).
    #[error("recording of {name} is inconsistent: {reason}")]
    Recording {
        /// Scenario name.
        name: String,
        /// What disagreed.
        reason: String,
    },
}

/// What a crash keeps of one cached write.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Keep {
    Nothing,
    All,
    Sectors(Vec<bool>),
}

impl Keep {
    /// The canonical form: `Sectors` only when some but not all sectors are kept.
    fn canonical(sectors: Vec<bool>) -> Self {
        if sectors.iter().all(|&k| k) {
            Self::All
        } else if sectors.iter().all(|&k| !k) {
            Self::Nothing
        } else {
            Self::Sectors(sectors)
        }
    }
}

/// A write's data with the sectors a crash kept.
#[derive(Clone, Debug)]
struct KeptWrite {
    offset: u64,
    data: Arc<[u8]>,
    sectors: Option<Vec<bool>>,
}

/// The device a crash leaves: a shared durable image, the kept parts of the cached
/// writes on top (in write order), and a private overlay for anything the importer writes.
#[derive(Clone)]
struct CrashDevice {
    base: Arc<Vec<u8>>,
    kept: Vec<KeptWrite>,
    written: Vec<(u64, Vec<u8>)>,
}

/// Copy into `buf` (at `buf_offset`) the sectors of `data` (at `data_offset`) that overlap it
/// and that `sectors` keeps (all when `None`).
fn overlay_sectors(
    buf: &mut [u8],
    buf_offset: u64,
    data: &[u8],
    data_offset: u64,
    sectors: Option<&[bool]>,
) {
    assert_eq!(data.len() % SECTOR_BYTES, 0, "write of {} B", data.len());
    if let Some(keep) = sectors {
        assert_eq!(keep.len() * SECTOR_BYTES, data.len(), "choices do not match the write");
    }
    let start = buf_offset.max(data_offset);
    let end = (buf_offset + buf.len() as u64).min(data_offset + data.len() as u64);
    let mut at = start;
    while at < end {
        let s = usize::try_from((at - data_offset) / SECTOR_SIZE).expect("small");
        let run_end = match sectors {
            None => end,
            Some(_) => (at + SECTOR_SIZE).min(end),
        };
        if sectors.is_none_or(|k| k[s]) {
            let len = usize::try_from(run_end - at).expect("small");
            let to = usize::try_from(at - buf_offset).expect("small");
            let from = usize::try_from(at - data_offset).expect("small");
            buf[to..to + len].copy_from_slice(&data[from..from + len]);
        }
        at = run_end;
    }
}

impl BlockDevice for CrashDevice {
    fn size_bytes(&self) -> u64 {
        self.base.len() as u64
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VdevError> {
        check_range(offset, buf.len() as u64, self.size_bytes())?;
        let at = usize::try_from(offset).expect("checked");
        buf.copy_from_slice(&self.base[at..at + buf.len()]);
        for w in self.kept.iter() {
            overlay_sectors(buf, offset, &w.data, w.offset, w.sectors.as_deref());
        }
        for (o, data) in &self.written {
            overlay_sectors(buf, offset, data, *o, None);
        }
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VdevError> {
        check_range(offset, data.len() as u64, self.size_bytes())?;
        self.written.push((offset, data.to_vec()));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), VdevError> {
        Ok(())
    }
}

/// True for events after which a crash is explored: writes and flushes (lying ones too).
fn is_crash_point(e: &DiskEvent) -> bool {
    matches!(e, DiskEvent::Write { .. }) || is_flush(e)
}

/// The writes event `i` makes durable, given the replay right before it.
fn durable_writes(events: &[DiskEvent], i: usize, before: &Replayer<'_>) -> Vec<usize> {
    match &events[i] {
        DiskEvent::Flush => before.cached_writes(),
        DiskEvent::Destage { write } => vec![*write],
        _ => Vec::new(),
    }
}

/// The durable side of the replay, kept shareable: the image (an `Arc` that crash devices
/// borrow and that is updated in place once they are gone, so a flush costs its writes, not
/// a device copy) and the uberblock slot model: slot offset -> the txg of the valid
/// uberblock it holds (None: zeroed, torn or overwritten by other data).
struct Durable {
    image: Arc<Vec<u8>>,
    slots: BTreeMap<u64, Option<u64>>,
}

impl Durable {
    fn new(base_image: Vec<u8>) -> Self {
        assert_eq!(base_image.len() % SECTOR_BYTES, 0, "base image not sector aligned");
        Self { image: Arc::new(base_image), slots: BTreeMap::new() }
    }

    /// Write event `w` became durable.
    fn apply(&mut self, ex: &Explorer<'_>, w: usize) {
        let DiskEvent::Write { offset, data } = &ex.events[w] else {
            panic!("invariant: durable event {w} is a write");
        };
        let at = usize::try_from(*offset).expect("invariant: offset fits usize");
        Arc::make_mut(&mut self.image)[at..at + data.len()].copy_from_slice(data);
        ex.slot_effects(w, &Keep::All, &mut self.slots);
    }

    fn corrupt(&mut self, offset: u64, mask: u8) {
        let at = usize::try_from(offset).expect("invariant: offset fits usize");
        Arc::make_mut(&mut self.image)[at] ^= mask;
        for (&slot, txg) in &mut self.slots {
            if (slot..slot + UBERBLOCK_SLOT_SIZE).contains(&offset) {
                *txg = None;
            }
        }
    }
}

/// Explore every crash point of `events` (the recording's log, or a rewrite by
/// `apply_bug`) against the fingerprints of `rec`.
///
/// # Errors
/// `Recording` when the log's uberblocks disagree with the recorded txgs.
pub fn explore(
    rec: &ScenarioRecording,
    events: &[DiskEvent],
    cfg: &ExploreConfig,
) -> Result<ExploreReport, ExploreError> {
    explore_with(rec, events, cfg, false)
}

/// `explore`; with `cross_check`, every state's uberblock slot model is compared with the
/// engine's own reading of the rings (`Spa::uberblock_txgs`), at twice the ring cost.
fn explore_with(
    rec: &ScenarioRecording,
    events: &[DiskEvent],
    cfg: &ExploreConfig,
    cross_check: bool,
) -> Result<ExploreReport, ExploreError> {
    assert!(cfg.sample >= 2, "a sample holds the empty and the full set");
    assert!(cfg.subsets_all_max <= EXPLORE_SUBSETS_ALL_LIMIT, "2^{}", cfg.subsets_all_max);
    let timeline = Timeline::new(rec, events)
        .map_err(|reason| ExploreError::Recording { name: rec.name.clone(), reason })?;
    let report = ExploreReport {
        scenario: rec.name.clone(),
        device_bytes: rec.device_bytes,
        events: events.len(),
        txgs: rec.txgs.keys().copied().collect(),
        ..ExploreReport::default()
    };
    let mut ex = Explorer {
        rec,
        events,
        timeline,
        cfg: *cfg,
        store: rec.manifests.clone(),
        rng: ChaCha8Rng::seed_from_u64(cfg.seed),
        report,
        cross_check,
    };
    let mut replayer = Replayer::new(rec.recording.base_image.clone(), events);
    let mut durable = Durable::new(rec.recording.base_image.clone());
    let mut next = 0;
    for k in (0..events.len()).filter(|&k| is_crash_point(&events[k])) {
        while next <= k {
            let drained = durable_writes(events, next, &replayer);
            replayer.advance_to(next);
            for w in drained {
                durable.apply(&ex, w);
            }
            if let DiskEvent::Fault(FaultEvent::Corruption { offset, mask }) = &events[next] {
                durable.corrupt(*offset, *mask);
            }
            next += 1;
        }
        ex.crash_point(k, &durable, &replayer.cached_writes());
    }
    assert!(durable.image[..] == *replayer.durable_image(), "durable image diverged");
    ex.report.manifests_computed = ex.store.computed - rec.manifests.computed;
    assert!(ex.report.states >= ex.report.crash_points, "every crash point has a state");
    Ok(ex.report)
}

/// A state's verdict: Ok(imported txg, or None for an acceptable failed import), or
/// Err(imported txg if any, every property broken with what was seen).
type Judgement = Result<Option<u64>, (Option<u64>, Vec<(ViolationKind, String)>)>;

/// The exploration in progress.
struct Explorer<'a> {
    rec: &'a ScenarioRecording,
    events: &'a [DiskEvent],
    timeline: Timeline,
    cfg: ExploreConfig,
    store: ManifestStore,
    rng: ChaCha8Rng,
    report: ExploreReport,
    cross_check: bool,
}

impl Explorer<'_> {
    fn sectors_of(&self, write: usize) -> usize {
        let DiskEvent::Write { data, .. } = &self.events[write] else {
            panic!("invariant: cached event {write} is a write");
        };
        assert_eq!(data.len() % SECTOR_BYTES, 0, "write of {} B", data.len());
        data.len() / SECTOR_BYTES
    }

    /// Check every chosen state of the crash right after event `k`.
    fn crash_point(&mut self, k: usize, durable: &Durable, cached: &[usize]) {
        let variants = self.variants(cached);
        assert!(!variants.is_empty(), "the empty subset is always checked");
        self.report.crash_points += 1;
        for keep in &variants {
            self.check_state(k, durable, cached, keep);
        }
    }

    /// What a crash keeping `keep` of write `w` does to the uberblock slots: a whole
    /// uberblock write makes its slot hold its txg; a torn one, or any other data over a
    /// ring, leaves the slots it touches invalid (their embedded checksums fail).
    fn slot_effects(&self, w: usize, keep: &Keep, slots: &mut BTreeMap<u64, Option<u64>>) {
        let DiskEvent::Write { offset, data } = &self.events[w] else {
            panic!("invariant: event {w} is a write");
        };
        if *keep == Keep::Nothing {
            return;
        }
        if let Some(&(txg, _)) = self.timeline.ub_writes.get(&w) {
            slots.insert(*offset, (*keep == Keep::All).then_some(txg));
            return;
        }
        let end = offset + data.len() as u64;
        for l in 0..VDEV_LABELS {
            let ring = ring_range(l, self.rec.device_bytes);
            let skip = offset.saturating_sub(ring.start) / UBERBLOCK_SLOT_SIZE;
            let mut slot = ring.start + skip * UBERBLOCK_SLOT_SIZE;
            while slot < ring.end.min(end) {
                slots.insert(slot, None);
                slot += UBERBLOCK_SLOT_SIZE;
            }
        }
    }

    /// The newest txg whose uberblock verifies in the state (durable slots, then the kept
    /// cached writes in order): import must take it, its tree being durable before it.
    fn newest_uberblock(&self, durable: &Durable, cached: &[usize], keep: &[Keep]) -> Option<u64> {
        let mut touched = BTreeMap::new();
        for (&w, k) in cached.iter().zip(keep) {
            self.slot_effects(w, k, &mut touched);
        }
        let untouched = durable.slots.iter().filter(|(slot, _)| !touched.contains_key(*slot));
        untouched.chain(touched.iter()).filter_map(|(_, txg)| *txg).max()
    }

    /// The states of one crash point: whole-write subsets (all, or a sample with the empty
    /// and the full set), then torn / per-sector variants; duplicates removed, order kept.
    fn variants(&mut self, cached: &[usize]) -> Vec<Vec<Keep>> {
        let n = cached.len();
        let mut out: Vec<Vec<Keep>> = Vec::new();
        let mut seen: BTreeSet<Vec<Keep>> = BTreeSet::new();
        let mut add = |v: Vec<Keep>| {
            assert_eq!(v.len(), n);
            if seen.insert(v.clone()) {
                out.push(v);
            }
        };
        if n <= self.cfg.subsets_all_max {
            for mask in 0..1u64 << n {
                add((0..n)
                    .map(|i| if mask >> i & 1 == 1 { Keep::All } else { Keep::Nothing })
                    .collect());
            }
        } else {
            add(vec![Keep::Nothing; n]);
            add(vec![Keep::All; n]);
            for _ in 2..self.cfg.sample {
                let rate = self.rng.random_range(0..=RATE_PPM_MAX);
                let rng = &mut self.rng;
                let keep = (0..n).map(|_| {
                    if rng.random_range(0..RATE_PPM_MAX) < rate {
                        Keep::All
                    } else {
                        Keep::Nothing
                    }
                });
                add(keep.collect());
            }
        }
        for j in 0..self.cfg.torn_variants {
            if let Some(v) = self.torn_variant(cached, j) {
                add(v);
            }
        }
        out
    }

    /// Variant `j`: even, a write torn after a prefix of its sectors with every older cached
    /// write kept and every newer one lost (power failed while it was in flight); odd, an
    /// independent choice per sector of every cached write at a random keep rate.
    fn torn_variant(&mut self, cached: &[usize], j: usize) -> Option<Vec<Keep>> {
        let sectors: Vec<usize> = cached.iter().map(|&w| self.sectors_of(w)).collect();
        if j.is_multiple_of(2) {
            let multi: Vec<usize> = (0..cached.len()).filter(|&i| sectors[i] > 1).collect();
            if multi.is_empty() {
                return None;
            }
            let torn = multi[self.rng.random_range(0..multi.len())];
            let prefix = self.rng.random_range(1..sectors[torn]);
            let keep = (0..cached.len()).map(|i| match i.cmp(&torn) {
                std::cmp::Ordering::Less => Keep::All,
                std::cmp::Ordering::Equal => {
                    Keep::canonical((0..sectors[torn]).map(|s| s < prefix).collect())
                }
                std::cmp::Ordering::Greater => Keep::Nothing,
            });
            return Some(keep.collect());
        }
        if cached.is_empty() {
            return None;
        }
        let rate = self.rng.random_range(0..=RATE_PPM_MAX);
        let mut keep = Vec::with_capacity(sectors.len());
        for &len in &sectors {
            let choice = (0..len).map(|_| self.rng.random_range(0..RATE_PPM_MAX) < rate);
            keep.push(Keep::canonical(choice.collect()));
        }
        Some(keep)
    }

    /// Import and check one crash state.
    fn check_state(&mut self, k: usize, durable: &Durable, cached: &[usize], keep: &[Keep]) {
        assert_eq!(cached.len(), keep.len());
        self.report.states += 1;
        let kept = cached.iter().zip(keep).filter_map(|(&w, keep)| {
            let DiskEvent::Write { offset, data } = &self.events[w] else {
                panic!("invariant: cached event {w} is a write");
            };
            let sectors = match keep {
                Keep::Nothing => return None,
                Keep::All => None,
                Keep::Sectors(s) => Some(s.clone()),
            };
            Some(KeptWrite { offset: *offset, data: Arc::clone(data), sectors })
        });
        let dev = CrashDevice {
            base: Arc::clone(&durable.image),
            kept: kept.collect(),
            written: Vec::new(),
        };
        let newest_ub = self.newest_uberblock(durable, cached, keep);
        if self.cross_check {
            let mut probe = CrashDevice { written: Vec::new(), ..dev.clone() };
            // Without a label the import fails first and the model is not consulted.
            if let Ok(txgs) = Spa::uberblock_txgs(&mut probe) {
                let engine = txgs.first().copied();
                assert_eq!(newest_ub, engine, "slot model vs rings after event {k}, {keep:?}");
            }
        }
        let (lower, upper) = self.timeline.bounds(k);
        match self.judge(dev, k, newest_ub) {
            Ok(Some(txg)) => *self.report.imported.entry(txg).or_default() += 1,
            Ok(None) => self.report.no_pool_yet += 1,
            Err((imported_txg, problems)) => {
                self.report.violations += 1;
                for (kind, _) in &problems {
                    *self.report.kinds.entry(*kind).or_default() += 1;
                }
                if self.report.first.len() < EXPLORE_VIOLATIONS_KEPT {
                    let kinds = problems.iter().map(|(k, _)| *k).collect();
                    let what: Vec<String> = problems.into_iter().map(|(_, w)| w).collect();
                    let v = Violation {
                        crash_point: self.report.crash_points - 1,
                        event: k,
                        event_desc: self.describe_event(k),
                        subset: self.describe_subset(cached, keep),
                        lower,
                        upper,
                        steps: self.timeline.step_bounds_at(k),
                        imported_txg,
                        kinds,
                        what: what.join("; "),
                    };
                    self.report.first.push(v);
                }
            }
        }
    }

    /// Import `dev`, the crash right after event `k`, and judge it against the bounds and
    /// the newest valid uberblock.
    fn judge(&mut self, dev: CrashDevice, k: usize, newest_ub: Option<u64>) -> Judgement {
        let (lower, upper) = self.timeline.bounds(k);
        let mut spa = match Spa::import(Box::new(dev), SpaConfig::default(), None) {
            Ok(spa) => spa,
            Err(_) if lower.is_none() => return Ok(None),
            Err(e) => {
                return Err((None, vec![(ViolationKind::ImportFailed, format!("import: {e}"))]))
            }
        };
        // The txg import loaded; a replay then commits one more, after the crash.
        let txg = spa.import_report().loaded_txg;
        if spa.import_report().replayed.values().any(|&n| n > 0) {
            self.report.replayed_states += 1;
        }
        let lo = lower.unwrap_or(0);
        let mut problems = Vec::new();
        if txg < lo || txg > upper {
            let what = format!("imported txg {txg} outside [{lo}, {upper}]");
            problems.push((ViolationKind::OutOfRange, what));
        }
        if let Some(newest) = newest_ub.filter(|&n| n != txg) {
            let what = format!(
                "the uberblock of txg {newest} verifies but import took txg {txg}: txg \
                 {newest}'s blocks were not durable before its uberblock"
            );
            problems.push((ViolationKind::Rewound, what));
        }
        if let Err(e) = oracle::integrity::check(&mut spa) {
            problems.push((ViolationKind::Integrity, clip(&format!("integrity: {e}"))));
        }
        match fingerprint(&mut spa, &mut self.store, self.cfg.manifest_cache) {
            Err(e) => problems.push((ViolationKind::Unreadable, clip(&e))),
            Ok(print) => {
                let steps = self.timeline.step_bounds_at(k);
                let problem = if steps.replay_window() {
                    self.judge_steps(&print, steps)
                } else {
                    self.judge_txgs(&print, txg, lo, upper)
                };
                problems.extend(problem);
            }
        }
        if problems.is_empty() {
            Ok(Some(txg))
        } else {
            Err((Some(txg), problems))
        }
    }

    /// No fsync since the last commit: the state must be a recorded txg's in [lo, upper].
    fn judge_txgs(
        &self,
        print: &Fingerprint,
        txg: u64,
        lo: u64,
        upper: u64,
    ) -> Option<(ViolationKind, String)> {
        let matches = |t: &u64| self.rec.txgs.get(t).is_some_and(|r| r.print == *print);
        if (lo..=upper).any(|t| matches(&t)) {
            return None;
        }
        Some((ViolationKind::Mismatch, self.mismatch(print, txg, lo, upper)))
    }

    /// An fsync since the last commit: the state must be a step's that the bounds accept
    /// (module doc); a step older than the newest returned fsync is `FsyncLost`.
    fn judge_steps(
        &self,
        print: &Fingerprint,
        bounds: StepBounds,
    ) -> Option<(ViolationKind, String)> {
        let steps = &self.rec.steps;
        let first = bounds.first();
        let reachable: Vec<usize> = (bounds.committed..=bounds.current)
            .filter(|&s| bounds.reachable(&steps[s], s) && steps[s].print.is_some())
            .collect();
        let equal: Vec<usize> =
            reachable.iter().copied().filter(|&s| steps[s].print.as_ref() == Some(print)).collect();
        if equal.iter().any(|&s| s >= first) {
            return None;
        }
        let step = |s: usize| format!("#{s} ({})", steps[s].name);
        if let Some(&older) = equal.last() {
            let fsync = bounds.fsynced.expect("invariant: only the fsync floor is above committed");
            let what = format!(
                "state of step {}, but the fsync of step {} had returned: the operations of \
                 steps #{}..=#{fsync} are lost",
                step(older),
                step(fsync),
                older + 1
            );
            return Some((ViolationKind::FsyncLost, what));
        }
        let want = reachable.iter().rev().copied().find(|&s| s >= first);
        let diff = want.map_or("no step recorded".to_owned(), |s| {
            let w = steps[s].print.as_ref().expect("invariant: filtered on prints");
            let d = first_difference(&self.store, print, w)
                .unwrap_or_else(|| "equal (outside the window)".to_owned());
            format!("against step {}: {d}", step(s))
        });
        let what = format!(
            "state matches no step of #{first}..=#{} that a replay can reach; {diff}",
            bounds.current
        );
        Some((ViolationKind::Mismatch, clip(&what)))
    }

    /// Describe a fingerprint that matches no txg of the range: its first difference from
    /// the imported txg's recorded state (or from `upper`'s).
    fn mismatch(&self, print: &Fingerprint, txg: u64, lo: u64, upper: u64) -> String {
        let want = if self.rec.txgs.contains_key(&txg) { txg } else { upper };
        let diff = self.rec.txgs.get(&want).map_or("no such txg recorded".to_owned(), |r| {
            first_difference(&self.store, print, &r.print)
                .unwrap_or_else(|| "equal (outside the range)".to_owned())
        });
        clip(&format!("state matches no txg in [{lo}, {upper}]; against txg {want}: {diff}"))
    }

    fn describe_event(&self, k: usize) -> String {
        let e = &self.events[k];
        let current = self.timeline.step_bounds_at(k).current;
        let step = format!("step #{current} {}", self.rec.steps[current].name);
        if let Some((txg, l)) = uberblock_write(e, self.rec.device_bytes) {
            return format!("uberblock write of txg {txg}, label {l}, {step}");
        }
        match e {
            DiskEvent::Write { offset, data } => {
                format!("write of {} B at {offset:#x}, {step}", data.len())
            }
            DiskEvent::Flush => format!("flush, {step}"),
            DiskEvent::Fault(FaultEvent::LyingFlush) => {
                format!("flush, dropped by the disk, {step}")
            }
            other => format!("{other:?}, {step}"),
        }
    }

    fn describe_subset(&self, cached: &[usize], keep: &[Keep]) -> String {
        let n = cached.len();
        if n == 0 {
            return "no cached writes".to_owned();
        }
        let span = format!("of {n} cached writes (events {}..={})", cached[0], cached[n - 1]);
        if keep.iter().all(|k| *k == Keep::All) {
            return format!("kept all {span}");
        }
        let kept: Vec<String> = cached
            .iter()
            .zip(keep)
            .filter_map(|(w, k)| match k {
                Keep::Nothing => None,
                Keep::All => Some(format!("e{w}")),
                Keep::Sectors(s) if s.len() <= 32 => {
                    let bits: String = s.iter().map(|&b| if b { '1' } else { '0' }).collect();
                    Some(format!("e{w}[sectors {bits}]"))
                }
                Keep::Sectors(s) => {
                    Some(format!("e{w}[{}/{} sectors]", s.iter().filter(|&&b| b).count(), s.len()))
                }
            })
            .collect();
        if kept.is_empty() {
            return format!("kept none {span}");
        }
        let more = kept.len().saturating_sub(SUBSET_LISTED_MAX);
        let listed = kept[..kept.len() - more].join(" ");
        let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
        format!("kept {listed}{tail} {span}")
    }
}

/// A message cut to a readable length.
fn clip(msg: &str) -> String {
    const CLIP_CHARS_MAX: usize = 400;
    match msg.char_indices().nth(CLIP_CHARS_MAX) {
        Some((at, _)) => format!("{}...", &msg[..at]),
        None => msg.to_owned(),
    }
}

/// Record scenario `name` on its smallest device and explore it with the defaults.
///
/// # Errors
/// As `record_scenario` and `explore`.
pub fn explore_scenario(name: &str, cfg: &ExploreConfig) -> Result<ExploreReport, ExploreError> {
    let device_bytes = device_bytes_for(name)?;
    let rec = record_scenario(name, device_bytes, cfg.manifest_cache)?;
    explore(&rec, &rec.recording.events, cfg)
}

/// `zsim explore SCENARIO [--seed S]`: explore, print the report and states/second; exit 1
/// on any violation.
///
/// # Errors
/// Unknown scenario or an inconsistent recording.
pub fn cmd_explore(name: &str, seed: u64) -> anyhow::Result<ExitCode> {
    // Wall clock for the states/s line only; it never feeds the exploration.
    let started = std::time::Instant::now();
    let cfg = ExploreConfig::new(seed);
    let device_bytes = device_bytes_for(name)?;
    let rec = record_scenario(name, device_bytes, cfg.manifest_cache)?;
    let recorded = started.elapsed();
    let report = explore(&rec, &rec.recording.events, &cfg)?;
    let explored = started.elapsed() - recorded;
    println!("{report}");
    let secs = explored.as_secs_f64().max(1e-9);
    #[allow(clippy::cast_precision_loss)]
    let rate = report.states as f64 / secs;
    println!(
        "seed {seed}; recorded in {:.2} s, explored in {:.2} s: {rate:.0} states/s",
        recorded.as_secs_f64(),
        secs
    );
    Ok(if report.violations == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::record::step_plan;
    use super::*;

    #[test]
    fn slot_model_agrees_with_the_engine_rings() {
        let rec = record_scenario("basic", EXPLORE_DEVICE_BYTES_MIN, true).expect("records");
        let cfg = ExploreConfig { subsets_all_max: 2, sample: 4, ..ExploreConfig::new(5) };
        for bug in [DiskBug::None, DiskBug::DropFlushBeforeUberblock, DiskBug::LyingFlush] {
            let events = apply_bug(&rec.recording.events, bug, rec.device_bytes);
            let report = explore_with(&rec, &events, &cfg, true).expect("consistent");
            assert!(report.states > report.crash_points, "{bug:?}: {report}");
        }
    }

    /// Log blocks and blocks written in place lie outside the label rings: the slot model
    /// still matches the engine's reading of the rings with fsync writes in the log.
    #[test]
    fn slot_model_agrees_with_the_engine_rings_around_log_writes() {
        let rec = record_scenario("zil-replay", EXPLORE_DEVICE_BYTES_MIN, true).expect("records");
        let cfg = ExploreConfig { subsets_all_max: 3, sample: 4, ..ExploreConfig::new(6) };
        for bug in [DiskBug::None, DiskBug::DropLogCommitFlush] {
            let events = apply_bug(&rec.recording.events, bug, rec.device_bytes);
            let report = explore_with(&rec, &events, &cfg, true).expect("consistent");
            assert!(report.replayed_states > 0, "{bug:?}: {report}");
        }
    }

    #[test]
    fn step_plan_marks_what_a_replay_reaches_and_what_a_crash_loses() {
        use StepKind::{Fsync, Import, Other};
        // create+commit, write, fsync, write (lost), import+commit, write, fsync+commit,
        // write, sync+commit, write (after the last boundary).
        let steps = [
            (Other, true),
            (Other, false),
            (Fsync, false),
            (Other, false),
            (Import, true),
            (Other, false),
            (Fsync, true),
            (Other, false),
            (Other, true),
            (Other, false),
        ];
        let (lost, reachable) = step_plan(&steps);
        let at = |v: &[bool]| (0..v.len()).filter(|&i| v[i]).collect::<Vec<_>>();
        assert_eq!(at(&lost), [3]);
        assert_eq!(at(&reachable), [0, 1, 2, 4, 5, 6, 8]);
    }

    #[test]
    fn step_bounds_accept_commits_and_logged_steps_only() {
        let step = |committed: Option<u64>, lost: bool| StepRecord {
            name: String::new(),
            kind: StepKind::Other,
            events_start: 0,
            events_end: 0,
            committed,
            lost,
            print: None,
        };
        let b = StepBounds { committed: 2, fsynced: Some(4), logged: Some(5), current: 7 };
        assert!(b.replay_window());
        assert_eq!(b.first(), 4);
        assert!(b.reachable(&step(None, false), 5), "logged by the fsync of step 5");
        assert!(!b.reachable(&step(None, false), 6), "after the last fsync, not a commit");
        assert!(b.reachable(&step(Some(9), false), 7), "a commit in flight");
        assert!(!b.reachable(&step(None, true), 3), "lost by the scenario's crash");
        assert!(!b.reachable(&step(Some(1), false), 1), "older than the last commit");
        let no_fsync = StepBounds { fsynced: None, logged: Some(2), ..b };
        assert!(!no_fsync.replay_window(), "judged by txg");
    }

    #[test]
    fn crash_device_keeps_sectors_in_write_order() {
        let data = |b: u8| -> Arc<[u8]> { Arc::from(vec![b; 1024]) };
        let kept = vec![
            KeptWrite { offset: 512, data: data(1), sectors: None },
            KeptWrite { offset: 1024, data: data(2), sectors: Some(vec![false, true]) },
        ];
        let mut dev = CrashDevice { base: Arc::new(vec![9; 4096]), kept, written: Vec::new() };
        let mut buf = vec![0; 4096];
        dev.read(0, &mut buf).expect("in range");
        assert_eq!([buf[0], buf[512], buf[1024], buf[1536], buf[2048]], [9, 1, 1, 2, 9]);
        dev.write(0, &[3; 512]).expect("in range");
        dev.read(0, &mut buf[..1024]).expect("in range");
        assert_eq!([buf[0], buf[512]], [3, 1]);
        assert!(dev.read(4096, &mut buf[..512]).is_err(), "beyond the device");
    }

    #[test]
    fn subsets_are_all_when_few_and_sampled_with_both_ends_beyond() {
        let rec = record_scenario("empty", EXPLORE_DEVICE_BYTES_MIN, true).expect("records");
        let events = &rec.recording.events;
        let timeline = Timeline::new(&rec, events).expect("consistent");
        let cfg = ExploreConfig {
            subsets_all_max: 2,
            sample: 5,
            torn_variants: 0,
            ..ExploreConfig::new(1)
        };
        let mut ex = Explorer {
            rec: &rec,
            events,
            timeline,
            cfg,
            store: ManifestStore::default(),
            rng: ChaCha8Rng::seed_from_u64(1),
            report: ExploreReport::default(),
            cross_check: false,
        };
        let writes: Vec<usize> =
            (0..events.len()).filter(|&i| matches!(events[i], DiskEvent::Write { .. })).collect();
        assert_eq!(ex.variants(&writes[..2]).len(), 4, "every subset of two writes");
        let sampled = ex.variants(&writes[..6]);
        assert!(sampled.len() <= 5 && sampled.len() >= 2, "{}", sampled.len());
        assert_eq!(sampled[0], vec![Keep::Nothing; 6]);
        assert_eq!(sampled[1], vec![Keep::All; 6]);
        ex.cfg.torn_variants = 2;
        let ub = *ex.timeline.ub_writes.keys().next().expect("an uberblock write");
        let torn = ex.variants(&[ub]);
        assert!(torn.iter().any(|v| matches!(v[0], Keep::Sectors(_))), "{torn:?}");
    }
}
