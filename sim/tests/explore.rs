//! Tests of crash-state exploration (sim::explore): the unmodified disk passes on small
//! scenarios, and the exploration fails when it should (issue 4, "Proof that it catches
//! bugs"): a disk that drops the flush before each uberblock write, and a disk whose flushes
//! persist nothing. With the intent log (issue 6): `zil-replay` passes although its crash
//! states replay fsynced operations and commit a txg of their own, and a disk that drops the
//! flush ending an fsync's log commit is caught losing fsynced data. Every broken disk is
//! made by rewriting a correct recording's event log (`apply_bug`), so the engine runs
//! unchanged. Issue 10: the reference is the model, so an engine that goes wrong while the
//! scenario is built is reported at record time, and without that check its crash states
//! fail against the model's fingerprints (a stray write the model never saw, `BuildBug`).
//! Sample sizes are cut to keep debug runs short.

use sim::disk::{DiskEvent, FaultEvent};
use sim::explore::{
    apply_bug, explore, record_scenario, record_scenario_as, record_scenario_with, BuildBug,
    DiskBug, ExploreConfig, ExploreError, ExploreReport, RecordConfig, ScenarioRecording, StepKind,
    StepPrints, Timeline, ViolationKind, EXPLORE_DEVICE_BYTES_MIN,
};

/// Exploration sized for debug builds: every subset up to 4 cached writes, 8 beyond.
fn small(seed: u64) -> ExploreConfig {
    ExploreConfig { subsets_all_max: 4, sample: 8, torn_variants: 2, ..ExploreConfig::new(seed) }
}

fn recorded(name: &str) -> ScenarioRecording {
    record_scenario(name, EXPLORE_DEVICE_BYTES_MIN, true).expect("scenario records")
}

fn run(rec: &ScenarioRecording, bug: DiskBug, cfg: &ExploreConfig) -> ExploreReport {
    let events = apply_bug(&rec.recording.events, bug, rec.device_bytes);
    explore(rec, &events, cfg).expect("recording is consistent")
}

fn lying_flushes(events: &[DiskEvent]) -> usize {
    events.iter().filter(|e| **e == DiskEvent::Fault(FaultEvent::LyingFlush)).count()
}

#[test]
fn explore_basic_and_wiki_find_no_violation() {
    for name in ["basic", "wiki"] {
        let rec = recorded(name);
        let report = run(&rec, DiskBug::None, &small(1));
        assert_eq!(report.violations, 0, "{report}");
        assert!(report.states > report.crash_points, "{report}");
        assert_eq!(report.crash_points as usize, rec.recording.events.len(), "writes + flushes");
        let imported: Vec<u64> = report.imported.keys().copied().collect();
        assert_eq!(imported, report.txgs, "{name}: every committed txg is reached by a crash");
        assert!(report.no_pool_yet > 0, "{name}: crashes before the first commit");
    }
}

/// Import verifies the trees it loads and falls back to the previous uberblock, so where a
/// txg writes metadata only (`basic`: its data blocks are embedded) the dropped flush shows
/// as a rewind past an uberblock that verifies; where it writes data blocks (`wiki`'s
/// directory ZAPs), a txg imports with a lost block and integrity fails too.
#[test]
fn explore_catches_a_flush_dropped_before_the_uberblock() {
    for (name, kind) in [("basic", ViolationKind::Rewound), ("wiki", ViolationKind::Integrity)] {
        let rec = recorded(name);
        let bug = DiskBug::DropFlushBeforeUberblock;
        let events = apply_bug(&rec.recording.events, bug, rec.device_bytes);
        assert_eq!(lying_flushes(&events), rec.txgs.len(), "{name}: one flush dropped per txg");
        let report = explore(&rec, &events, &small(1)).expect("consistent");
        assert!(report.violations > 0, "{name}: a dropped flush went unnoticed: {report}");
        assert!(report.kinds.contains_key(&kind), "{name}: no {kind:?} violation: {report}");
        let v = &report.first[0];
        assert!(v.imported_txg.is_some(), "{v}");
        // Before the first commit only the integrity walk can see it: it verifies every
        // copy, and the txg import took has a ditto copy that never reached the disk
        // (import reads the other one).
        assert!(v.lower.is_some() || v.kinds == [ViolationKind::Integrity], "{v}");
    }
}

#[test]
fn explore_catches_a_lying_flush() {
    let rec = recorded("basic");
    let events = apply_bug(&rec.recording.events, DiskBug::LyingFlush, rec.device_bytes);
    let flushes = rec.recording.events.iter().filter(|e| **e == DiskEvent::Flush).count();
    assert_eq!(lying_flushes(&events), flushes, "every flush dropped");
    let report = explore(&rec, &events, &small(1)).expect("consistent");
    assert!(report.violations > 0, "a lying flush went unnoticed: {report}");
    let lost = report.kinds.get(&ViolationKind::ImportFailed).copied().unwrap_or(0);
    assert!(lost > 0, "committed txgs must be reported lost: {report}");
    // Only committed txgs count, except a torn ditto copy under the uberblock import took,
    // which the integrity walk finds before the first commit (see the test above).
    let committed_or_torn =
        |v: &sim::explore::Violation| v.lower.is_some() || v.kinds == [ViolationKind::Integrity];
    assert!(report.first.iter().all(committed_or_torn), "{report}");
}

#[test]
fn explore_manifest_cache_changes_nothing_but_the_work() {
    let rec = record_scenario("basic", EXPLORE_DEVICE_BYTES_MIN, false).expect("records");
    let cfg = small(3);
    let uncached = run(&rec, DiskBug::None, &ExploreConfig { manifest_cache: false, ..cfg });
    let cached = run(&rec, DiskBug::None, &cfg);
    assert!(uncached.manifests_computed > cached.manifests_computed);
    assert_eq!(
        ExploreReport { manifests_computed: 0, ..uncached },
        ExploreReport { manifests_computed: 0, ..cached }
    );
}

#[test]
fn explore_is_deterministic_per_seed() {
    let rec = recorded("empty");
    let cfg = ExploreConfig { subsets_all_max: 2, sample: 6, torn_variants: 4, ..small(9) };
    assert_eq!(run(&rec, DiskBug::None, &cfg), run(&rec, DiskBug::None, &cfg));
}

#[test]
fn timeline_commits_a_txg_at_the_flush_after_its_uberblocks() {
    let rec = recorded("empty");
    let events = &rec.recording.events;
    let tl = Timeline::new(&rec, events).expect("consistent");
    let mut committed = Vec::new();
    for (k, event) in events.iter().enumerate() {
        let (lower, upper) = tl.bounds(k);
        assert!(lower.is_none_or(|l| l <= upper), "event {k}: {lower:?} > {upper}");
        let before = if k == 0 { None } else { tl.bounds(k - 1).0 };
        if lower != before {
            assert_eq!(*event, DiskEvent::Flush, "event {k}: a commit happens at a flush");
            committed.push(lower.expect("commits only move forward"));
        }
    }
    assert_eq!(committed, rec.txgs.keys().copied().collect::<Vec<_>>());
    let (last_lower, last_upper) = tl.bounds(events.len() - 1);
    assert_eq!(last_lower, Some(last_upper), "nothing in flight at the end");
}

/// Event indices of the flushes a disk with `bug` drops (they become `LyingFlush` events).
fn dropped_flushes(rec: &ScenarioRecording, bug: DiskBug) -> Vec<usize> {
    let events = apply_bug(&rec.recording.events, bug, rec.device_bytes);
    let lying = DiskEvent::Fault(FaultEvent::LyingFlush);
    (0..events.len()).filter(|&i| events[i] == lying).collect()
}

/// The first flush of every fsync step: where its log commit becomes durable.
fn fsync_flushes(rec: &ScenarioRecording) -> Vec<usize> {
    let events = &rec.recording.events;
    let fsyncs = rec.steps.iter().filter(|s| s.kind == StepKind::Fsync);
    fsyncs
        .filter_map(|s| (s.events_start..s.events_end).find(|&i| events[i] == DiskEvent::Flush))
        .collect()
}

#[test]
fn explore_zil_replay_finds_no_violation() {
    let rec = recorded("zil-replay");
    let report = run(&rec, DiskBug::None, &small(1));
    assert_eq!(report.violations, 0, "{report}");
    assert!(report.replayed_states > 0, "crash states replay the intent log: {report}");
    // The scenario's own crash is part of the recording: its replay commits a txg, and
    // crash points after it import that txg (a new chain of commits).
    let import = rec.steps.iter().position(|s| s.kind == StepKind::Import).expect("a crash");
    let replay_txg = rec.steps[import].committed.expect("the replay commits a txg");
    assert!(report.imported.contains_key(&replay_txg), "{report}");
    assert!(rec.steps[import - 1].lost, "the change never fsynced is lost by the crash");
    // Crash points between the fsync's flush and the replay commit are judged by step.
    let tl = Timeline::new(&rec, &rec.recording.events).expect("consistent");
    let fsynced = (0..rec.recording.events.len()).filter(|&k| {
        tl.step_bounds_at(k).replay_window() && tl.step_bounds_at(k).fsynced.is_some()
    });
    assert!(fsynced.count() > 0, "no crash point after a returned fsync");
}

/// Only steps a replay can reach are fingerprinted by default; fingerprinting every step
/// (dirty heads read in full) judges every state the same way.
#[test]
fn explore_zil_replay_every_step_fingerprinted_judges_the_same() {
    let every =
        record_scenario_with("zil-replay", EXPLORE_DEVICE_BYTES_MIN, true, StepPrints::Every)
            .expect("records");
    let reachable = recorded("zil-replay");
    assert!(every.steps.iter().all(|s| s.print.is_some()));
    assert!(reachable.steps.iter().any(|s| s.print.is_none()), "the lost step is not printed");
    let cfg = small(4);
    let a = run(&every, DiskBug::None, &cfg);
    let b = run(&reachable, DiskBug::None, &cfg);
    assert_eq!(a.violations, 0, "{a}");
    assert_eq!(
        ExploreReport { manifests_computed: 0, ..a },
        ExploreReport { manifests_computed: 0, ..b }
    );
}

/// Issue 6, "a test shows that removing the flush after a log write is caught": a disk that
/// acknowledges the flush ending fsync's log commit and persists nothing. A crash after the
/// fsync returned, losing the log block, imports the last commit without the fsynced changes.
#[test]
fn explore_catches_a_dropped_log_commit_flush() {
    let rec = recorded("zil-replay");
    let bug = DiskBug::DropLogCommitFlush;
    let dropped = dropped_flushes(&rec, bug);
    assert!(!dropped.is_empty());
    assert_eq!(dropped, fsync_flushes(&rec), "exactly the flushes of the fsync steps");
    let report = run(&rec, bug, &small(1));
    let lost = report.kinds.get(&ViolationKind::FsyncLost).copied().unwrap_or(0);
    assert!(lost > 0, "fsynced data lost unnoticed: {report}");
    assert_eq!(report.kinds.keys().copied().collect::<Vec<_>>(), [ViolationKind::FsyncLost]);
    for v in &report.first {
        assert!(v.event >= dropped[0], "only after the dropped flush: {v}");
        assert!(v.steps.fsynced.is_some(), "the fsync had returned: {v}");
        assert_eq!(v.imported_txg, v.lower, "the last commit, without the log: {v}");
    }
}

/// A txg sync flushes next to its uberblock writes and pool creation after its labels, so
/// the log-commit bug leaves scenarios without an fsync as recorded.
#[test]
fn dropped_log_commit_flush_spares_txg_flushes() {
    for name in ["basic", "wiki", "empty"] {
        let rec = recorded(name);
        assert!(fsync_flushes(&rec).is_empty());
        assert_eq!(
            dropped_flushes(&rec, DiskBug::DropLogCommitFlush),
            Vec::<usize>::new(),
            "{name}"
        );
    }
}

/// Issue 6: "the lying-flush profile must be reported as losing fsynced data".
#[test]
fn explore_lying_flush_loses_fsynced_data() {
    let rec = recorded("zil-replay");
    let report = run(&rec, DiskBug::LyingFlush, &small(1));
    assert!(report.kinds.get(&ViolationKind::FsyncLost).is_some_and(|&n| n > 0), "{report}");
}

#[test]
fn timeline_counts_an_fsync_from_its_flush() {
    let rec = recorded("zil-replay");
    let events = &rec.recording.events;
    let tl = Timeline::new(&rec, events).expect("consistent");
    let flush = fsync_flushes(&rec);
    assert_eq!(flush.len(), 1, "zil-replay fsyncs once");
    let fsync = rec.steps.iter().position(|s| s.kind == StepKind::Fsync).expect("an fsync");
    let mut current = 0;
    for k in 0..events.len() {
        let b = tl.step_bounds_at(k);
        assert!(b.current >= current && b.committed <= b.current, "event {k}: {b:?}");
        current = b.current;
        let step = &rec.steps[b.current];
        assert!((step.events_start..step.events_end).contains(&k), "event {k}: {b:?}");
        assert_eq!(b.fsynced, (k >= flush[0]).then_some(fsync), "event {k}");
        assert_eq!(b.logged, (b.current >= fsync).then_some(fsync), "event {k}");
    }
}

/// `basic`'s step that writes "123\n" into object 2 (the step before `@before`) and a stray
/// write of the engine alone right after it.
fn basic_stray_write() -> (usize, BuildBug) {
    let rec = recorded("basic");
    let snap = rec.steps.iter().position(|s| s.name == "snapshot").expect("@before");
    assert_eq!(rec.steps[snap - 1].name, "write");
    (snap - 1, BuildBug::StrayWrite { step: snap - 1, obj: 2, offset: 0 })
}

/// Issue 10: the engine's own fingerprint of every printed step must equal the model's; a
/// state the engine computed wrong while building is reported with its step and the first
/// difference, not taken as the reference.
#[test]
fn recording_reports_an_engine_that_differs_from_the_model() {
    let (step, bug) = basic_stray_write();
    let cfg = RecordConfig { bug, ..RecordConfig::new(true, StepPrints::Every) };
    let err = record_scenario_as("basic", EXPLORE_DEVICE_BYTES_MIN, &cfg).expect_err("caught");
    let ExploreError::EngineVsModel { index, step: name, difference, .. } = &err else {
        panic!("not an engine/model difference: {err}");
    };
    assert_eq!((*index, name.as_str()), (step, "write"), "{err}");
    assert!(difference.starts_with("pool/fs: manifest line \"obj=2 "), "{err}");
    // With the default prints the first printed step after it (the snapshot) reports it.
    let cfg = RecordConfig { bug, ..RecordConfig::new(true, StepPrints::Reachable) };
    let err = record_scenario_as("basic", EXPLORE_DEVICE_BYTES_MIN, &cfg).expect_err("caught");
    assert!(matches!(err, ExploreError::EngineVsModel { index, .. } if index == step + 1), "{err}");
}

/// Issue 10: crash states are judged against the model's manifests. Without the record-time
/// check, the recording of an engine that wrote a stray block holds the model's manifest of
/// `@before` (not the engine's), and every crash state that imports `@before` is a mismatch
/// (taking the engine's fingerprints as the reference, as explore once did, found none).
#[test]
fn crash_states_are_judged_against_the_model() {
    let (_, bug) = basic_stray_write();
    let cfg =
        RecordConfig { bug, cross_check: false, ..RecordConfig::new(true, StepPrints::Reachable) };
    let rec = record_scenario_as("basic", EXPLORE_DEVICE_BYTES_MIN, &cfg).expect("records");
    let model = golden::build("basic").expect("builds").model;
    let want = oracle::manifest::manifest_of_model(&model, "pool/fs@before").expect("@before");
    let last = rec.txgs.values().next_back().expect("a commit");
    let fs = last.print.datasets.iter().find(|d| d.name == "pool/fs").expect("pool/fs");
    let before = fs.snapshots.first().expect("@before");
    assert_eq!(before.name, "pool/fs@before");
    let body = want.split_once('\n').expect("a header line").1;
    assert_eq!(rec.manifests.text(before.manifest), body, "the reference is the model's");
    let report = run(&rec, DiskBug::None, &small(1));
    assert!(report.violations > 0, "{report}");
    assert_eq!(report.kinds.keys().copied().collect::<Vec<_>>(), [ViolationKind::Mismatch]);
    let v = &report.first[0];
    assert!(v.what.contains("pool/fs@before: manifest line \"obj=2 "), "{v}");
    // The same recording without the bug passes: the model and the engine agree.
    let clean = run(&recorded("basic"), DiskBug::None, &small(1));
    assert_eq!(clean.violations, 0, "{clean}");
}
