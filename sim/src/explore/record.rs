//! Recording a scenario for exploration: build it on a recording `SimDisk`, note which
//! events each builder step owns and which txg it committed, and fingerprint the steps a
//! crash state may be compared with (`explore`'s module doc). Calls `golden::build_on`;
//! its output, `ScenarioRecording`, is all `explore` judges by.

use std::collections::BTreeMap;

use engine::{MemoryDevice, Spa};

use oracle::Model;

use super::fingerprint::{
    fingerprint, first_difference, model_fingerprint, Fingerprint, ManifestStore, ModelManifests,
};
use super::{ExploreError, Timeline, EXPLORE_DEVICE_BYTES_MAX, EXPLORE_DEVICE_BYTES_MIN};
use crate::disk::CACHE_CAPACITY_WRITES_MAX;
use crate::disk::{DiskConfig, Recording, SimDisk};
use crate::fault::FaultConfig;

/// One committed txg of the recording.
#[derive(Clone, Debug)]
pub struct TxgRecord {
    /// The scenario step that committed it (`"snapshot"`, `"create"`, ...).
    pub step: String,
    /// Index of that step in `ScenarioRecording::steps`.
    pub step_index: usize,
    /// The pool's fingerprint right after it committed.
    pub print: Fingerprint,
}

/// What a builder step means to the intent-log rules (by the hook's step name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// `"fsync"`: every earlier change is durable in the intent log once its flush returns.
    Fsync,
    /// `"import"`: the host crashed (`Builder::crash_and_import`) and the pool was imported.
    Import,
    /// Any other step.
    Other,
}

impl StepKind {
    /// The kind of the step the hook names `name`.
    #[must_use]
    pub fn of(name: &str) -> Self {
        match name {
            "fsync" => Self::Fsync,
            "import" => Self::Import,
            _ => Self::Other,
        }
    }
}

/// One builder step of the recording.
#[derive(Clone, Debug)]
pub struct StepRecord {
    /// The hook's step name (`"write"`, `"fsync"`, ...).
    pub name: String,
    /// Its kind.
    pub kind: StepKind,
    /// Its events are `events_start..events_end` of the log.
    pub events_start: usize,
    /// See `events_start`.
    pub events_end: usize,
    /// The txg it committed, if any.
    pub committed: Option<u64>,
    /// Dropped by the scenario's own crash: after the last fsync or commit before an
    /// `"import"` step, so no later state can hold it.
    pub lost: bool,
    /// The pool's fingerprint right after the step; `None` for a step no crash state can be
    /// compared with (see `StepPrints::Reachable`).
    pub print: Option<Fingerprint>,
}

/// Which steps a recording fingerprints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepPrints {
    /// Steps that commit a txg and steps a replay can reach: those followed by an fsync step
    /// before the next commit or import (found by a first, unrecorded build). No other step
    /// is ever compared with a crash state (see the module doc), and a head with pending
    /// changes is read in full, which is slow for the large scenarios.
    Reachable,
    /// Every step.
    Every,
}

/// A scenario run on a recording disk: the event log and the fingerprint of every txg.
#[derive(Clone, Debug)]
pub struct ScenarioRecording {
    /// Scenario name.
    pub name: String,
    /// Device size used.
    pub device_bytes: u64,
    /// The disk's events from a zeroed device.
    pub recording: Recording,
    /// Every committed txg, ascending and consecutive.
    pub txgs: BTreeMap<u64, TxgRecord>,
    /// Every builder step, in order; their event ranges tile the log.
    pub steps: Vec<StepRecord>,
    /// Manifests of the recorded fingerprints.
    pub manifests: ManifestStore,
}

/// The smallest device (`EXPLORE_DEVICE_BYTES_MIN` doubled as needed) scenario `name`
/// builds on, probed on an in-memory device.
///
/// # Errors
/// `UnknownScenario`; `Build` when even `EXPLORE_DEVICE_BYTES_MAX` does not do.
pub fn device_bytes_for(name: &str) -> Result<u64, ExploreError> {
    if golden::about(name).is_none() {
        return Err(ExploreError::UnknownScenario(name.to_owned()));
    }
    let mut device_bytes = EXPLORE_DEVICE_BYTES_MIN;
    loop {
        let dev = Box::new(MemoryDevice::new(device_bytes));
        match golden::build_on(name, dev, &mut |_, _, _| {}) {
            Ok(_) => return Ok(device_bytes),
            Err(source) if device_bytes >= EXPLORE_DEVICE_BYTES_MAX => {
                return Err(ExploreError::Build { name: name.to_owned(), device_bytes, source });
            }
            Err(_) => device_bytes *= 2,
        }
    }
}

/// Per step, from (kind, commits a txg) of every step: (lost, reachable by a replay or a
/// commit). One pass from the end: an fsync makes the steps before it reachable back to the
/// previous commit (an fsync that also commits logged them first); an import loses the
/// steps after the last fsync or commit before it.
pub(super) fn step_plan(steps: &[(StepKind, bool)]) -> (Vec<bool>, Vec<bool>) {
    let mut lost = vec![false; steps.len()];
    let mut reachable = vec![false; steps.len()];
    let (mut fsync_follows, mut import_follows) = (false, false);
    for (s, &(kind, commits)) in steps.iter().enumerate().rev() {
        if kind == StepKind::Fsync {
            (fsync_follows, import_follows) = (true, false);
        }
        lost[s] = import_follows && !commits;
        reachable[s] = commits || (fsync_follows && !lost[s]);
        if commits && kind != StepKind::Fsync {
            (fsync_follows, import_follows) = (false, false);
        }
        if kind == StepKind::Import {
            (fsync_follows, import_follows) = (false, true);
        }
    }
    (lost, reachable)
}

/// (kind, commits a txg) of every step of scenario `name`, from an unrecorded build on an
/// in-memory device of `device_bytes` (the steps do not depend on the device's kind).
fn step_shapes(name: &str, device_bytes: u64) -> Result<Vec<(StepKind, bool)>, ExploreError> {
    let mut shapes = Vec::new();
    let mut last = None;
    let dev = Box::new(MemoryDevice::new(device_bytes));
    let built = golden::build_on(name, dev, &mut |spa, _, step| {
        let synced = spa.last_synced_txg();
        shapes.push((StepKind::of(step), last != Some(synced)));
        last = Some(synced);
    });
    match built {
        Ok(_) => Ok(shapes),
        Err(golden::GoldenError::UnknownScenario(n)) => Err(ExploreError::UnknownScenario(n)),
        Err(source) => Err(ExploreError::Build { name: name.to_owned(), device_bytes, source }),
    }
}

/// A deliberately broken engine while a scenario is recorded: its state goes wrong where
/// the model's does not (the record-time check must name the step; with that check off,
/// the crash states must be caught against the model's reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildBug {
    /// The engine as it is.
    None,
    /// Right after step `step` (and before it is fingerprinted), the engine alone writes
    /// `BUILD_BUG_STRAY_BYTES` at `offset` of object `obj` of `golden::FS_NAME`.
    StrayWrite {
        /// Index of the step (as `StepRecord`s count them).
        step: usize,
        /// Object written.
        obj: u64,
        /// Offset written.
        offset: u64,
    },
}

/// What `BuildBug::StrayWrite` writes.
pub const BUILD_BUG_STRAY_BYTES: &[u8] = b"stray";

/// How a scenario is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordConfig {
    /// See `ExploreConfig::manifest_cache` (the engine's manifests only).
    pub manifest_cache: bool,
    /// Which steps get a fingerprint.
    pub prints: StepPrints,
    /// Compare the engine's own fingerprint of every printed step with the model's, and
    /// fail with `ExploreError::EngineVsModel` on the first difference (on by default;
    /// off only in tests that show what the crash states alone catch).
    pub cross_check: bool,
    /// An engine broken on purpose (tests).
    pub bug: BuildBug,
}

impl RecordConfig {
    /// The defaults: `prints`, the cache as given, the cross-check on, no bug.
    #[must_use]
    pub fn new(manifest_cache: bool, prints: StepPrints) -> Self {
        Self { manifest_cache, prints, cross_check: true, bug: BuildBug::None }
    }
}

/// The hook's bookkeeping while a scenario runs.
struct Recorder {
    name: String,
    disk: SimDisk,
    /// Per step, whether to fingerprint it (`None`: every step).
    wanted: Option<Vec<bool>>,
    steps: Vec<StepRecord>,
    txgs: BTreeMap<u64, TxgRecord>,
    store: ManifestStore,
    model_manifests: ModelManifests,
    cfg: RecordConfig,
    failure: Option<ExploreError>,
}

impl Recorder {
    fn fail(&mut self, reason: String) {
        self.failure = Some(ExploreError::Recording { name: self.name.clone(), reason });
    }

    /// After each step: note where its events end and what it committed, and fingerprint
    /// it if wanted (a newly committed txg always; the pool must then be clean).
    fn step(&mut self, spa: &mut Spa, model: &Model, step: &str) {
        if self.failure.is_some() {
            return;
        }
        let index = self.steps.len();
        self.apply_bug(spa, index);
        let stats = self.disk.stats();
        // With faults off, every (non-empty) write, flush and destage is one event.
        let events = stats.writes + stats.flushes + stats.destages;
        let events_end = usize::try_from(events).expect("invariant: event count fits usize");
        let events_start = self.steps.last().map_or(0, |p| p.events_end);
        let synced = spa.last_synced_txg();
        let last = self.txgs.last_key_value().map(|(&t, _)| t);
        let committed = (last != Some(synced)).then_some(synced);
        if committed.is_some() {
            if let Some(t) = last.filter(|&t| synced > t + 1) {
                // A receive commits several txgs (its start, its end); what it received
                // becomes visible only at its end, so every earlier one must look as the
                // pool did before it (receive atomicity). Other steps commit one txg.
                if step != "recv" {
                    self.fail(format!("step {step} committed txgs {t}+1..={synced}"));
                    return;
                }
                let before = self.txgs[&t].clone();
                for mid in t + 1..synced {
                    let record =
                        TxgRecord { step: step.to_owned(), step_index: index, ..before.clone() };
                    self.txgs.insert(mid, record);
                }
            }
            if spa.is_dirty() || spa.syncing_txg().is_some() {
                self.fail(format!("step {step} committed txg {synced} but left changes"));
                return;
            }
        }
        let wanted = committed.is_some()
            || self.wanted.as_ref().is_none_or(|w| w.get(index).copied().unwrap_or(true));
        let print = if wanted {
            let Some(print) = self.print(spa, model, index, step) else { return };
            Some(print)
        } else {
            None
        };
        if let (Some(txg), Some(print)) = (committed, &print) {
            let record =
                TxgRecord { step: step.to_owned(), step_index: index, print: print.clone() };
            self.txgs.insert(txg, record);
        }
        self.steps.push(StepRecord {
            name: step.to_owned(),
            kind: StepKind::of(step),
            events_start,
            events_end,
            committed,
            lost: false,
            print,
        });
    }

    /// The reference fingerprint of step `index`: the model's, once the engine's own
    /// fingerprint of the pool is seen to equal it (`RecordConfig::cross_check`). `None`
    /// (the failure noted) when either cannot be made or they differ.
    fn print(
        &mut self,
        spa: &mut Spa,
        model: &Model,
        index: usize,
        step: &str,
    ) -> Option<Fingerprint> {
        let reference = model_fingerprint(spa, model, &mut self.store, &mut self.model_manifests);
        let reference = match reference {
            Ok(print) => print,
            Err(difference) => {
                let name = self.name.clone();
                let step = step.to_owned();
                self.failure = Some(ExploreError::EngineVsModel { name, index, step, difference });
                return None;
            }
        };
        if !self.cfg.cross_check {
            return Some(reference);
        }
        let engine = match fingerprint(spa, &mut self.store, self.cfg.manifest_cache) {
            Ok(print) => print,
            Err(e) => {
                self.fail(format!("step {index} ({step}): {e}"));
                return None;
            }
        };
        if let Some(difference) = first_difference(&self.store, &engine, &reference) {
            let (name, step) = (self.name.clone(), step.to_owned());
            self.failure = Some(ExploreError::EngineVsModel { name, index, step, difference });
            return None;
        }
        Some(reference)
    }

    /// `BuildBug::StrayWrite`: the engine alone changes after step `index`.
    fn apply_bug(&mut self, spa: &mut Spa, index: usize) {
        let BuildBug::StrayWrite { step, obj, offset } = self.cfg.bug else { return };
        if step == index {
            if let Err(e) = spa.write(golden::FS_NAME, obj, offset, BUILD_BUG_STRAY_BYTES) {
                self.fail(format!(
                    "step {index}: the stray write of {:?} failed: {e}",
                    self.cfg.bug
                ));
            }
        }
    }
}

/// Run scenario `name` on a recording disk of `device_bytes` (faults off, a cache that
/// never destages) and fingerprint every committed txg and every step a replay can reach.
///
/// # Errors
/// `UnknownScenario`, `Build`, `Recording`, `EngineVsModel`.
pub fn record_scenario(
    name: &str,
    device_bytes: u64,
    manifest_cache: bool,
) -> Result<ScenarioRecording, ExploreError> {
    record_scenario_with(name, device_bytes, manifest_cache, StepPrints::Reachable)
}

/// `record_scenario`, fingerprinting the steps `prints` selects.
///
/// # Errors
/// `UnknownScenario`, `Build`, `Recording`, `EngineVsModel`.
pub fn record_scenario_with(
    name: &str,
    device_bytes: u64,
    manifest_cache: bool,
    prints: StepPrints,
) -> Result<ScenarioRecording, ExploreError> {
    record_scenario_as(name, device_bytes, &RecordConfig::new(manifest_cache, prints))
}

/// `record_scenario` as `cfg` says.
///
/// # Errors
/// `UnknownScenario`, `Build`, `Recording`, `EngineVsModel` (only with `cfg.cross_check`,
/// or where the engine lacks a snapshot the model has).
pub fn record_scenario_as(
    name: &str,
    device_bytes: u64,
    cfg: &RecordConfig,
) -> Result<ScenarioRecording, ExploreError> {
    let inconsistent = |reason: String| ExploreError::Recording { name: name.to_owned(), reason };
    let planned = match cfg.prints {
        StepPrints::Reachable => Some(step_shapes(name, device_bytes)?),
        StepPrints::Every => None,
    };
    let config = DiskConfig {
        cache_capacity_writes: CACHE_CAPACITY_WRITES_MAX,
        faults: FaultConfig::NONE,
        record_events: true,
    };
    let disk = SimDisk::new(device_bytes, config, 0);
    let mut rec = Recorder {
        name: name.to_owned(),
        disk: disk.clone(),
        wanted: planned.as_ref().map(|shapes| step_plan(shapes).1),
        steps: Vec::new(),
        txgs: BTreeMap::new(),
        store: ManifestStore::default(),
        model_manifests: ModelManifests::default(),
        cfg: *cfg,
        failure: None,
    };
    let built = golden::build_on(name, Box::new(disk.clone()), &mut |spa, model, step| {
        rec.step(spa, model, step);
    });

    match built {
        Ok(sc) => drop(sc),
        Err(golden::GoldenError::UnknownScenario(n)) => {
            return Err(ExploreError::UnknownScenario(n));
        }
        Err(source) => {
            return Err(ExploreError::Build { name: name.to_owned(), device_bytes, source });
        }
    }
    if let Some(failure) = rec.failure {
        return Err(failure);
    }
    let recording = disk.take_recording().ok_or_else(|| inconsistent("not recording".into()))?;
    if disk.cached_writes() != 0 {
        return Err(inconsistent("writes still cached after the final sync".into()));
    }
    assert!(!rec.txgs.is_empty(), "pool creation commits a txg");
    let mut steps = rec.steps;
    let shapes: Vec<(StepKind, bool)> =
        steps.iter().map(|s| (s.kind, s.committed.is_some())).collect();
    if planned.as_ref().is_some_and(|p| *p != shapes) {
        return Err(inconsistent("the steps differ from those of the first build".into()));
    }
    let ends = steps.last().map_or(0, |s| s.events_end);
    if ends != recording.events.len() {
        return Err(inconsistent(format!(
            "steps end at event {ends} of {}",
            recording.events.len()
        )));
    }
    for (step, lost) in steps.iter_mut().zip(step_plan(&shapes).0) {
        step.lost = lost;
    }
    let out = ScenarioRecording {
        name: name.to_owned(),
        device_bytes,
        recording,
        txgs: rec.txgs,
        steps,
        manifests: rec.store,
    };
    Timeline::new(&out, &out.recording.events).map_err(inconsistent)?;
    Ok(out)
}
