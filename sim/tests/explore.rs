//! Tests of crash-state exploration (sim::explore): the unmodified disk passes on small
//! scenarios, and the exploration fails when it should (issue 4, "Proof that it catches
//! bugs"): a disk that drops the flush before each uberblock write, and a disk whose flushes
//! persist nothing. Both broken disks are made by rewriting a correct recording's event log
//! (`apply_bug`), so the engine runs unchanged. Sample sizes are cut to keep debug runs short.

use sim::disk::{DiskEvent, FaultEvent};
use sim::explore::{
    apply_bug, explore, record_scenario, DiskBug, ExploreConfig, ExploreReport, ScenarioRecording,
    Timeline, ViolationKind, EXPLORE_DEVICE_BYTES_MIN,
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
        assert!(v.lower.is_some() && v.imported_txg.is_some(), "{v}");
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
    assert!(report.first.iter().all(|v| v.lower.is_some()), "only committed txgs count");
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
