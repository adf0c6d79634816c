//! The run loop (sim/src/run.rs) checked from outside: short seeded runs per profile, the
//! lying-flush profile must be caught, damage is an error and never data, the trace hash is
//! a function of the seed, the trace shows txg N+1 taking writes while N syncs, and shards
//! cover every seed once. Kept short for debug builds (few seeds, fewer ops).

use std::collections::BTreeSet;

use engine::{DmuError, ObjectSpec, Spa, SpaConfig};
use oracle::op::pattern;
use sim::disk::{DiskConfig, SimDisk};
use sim::fault::Profile;
use sim::main_job::{run_job, shard_seeds, JobConfig};
use sim::run::{run_seed, SeedReport, SimConfig};
use sim::sched::Executor;

/// Operations per seed in these tests (the default is 120).
const TEST_OPS: usize = 60;

fn cfg(profile: Profile) -> SimConfig {
    SimConfig { profile, ops_per_seed: TEST_OPS, ..SimConfig::default() }
}

fn run(seed: u64, profile: Profile) -> SeedReport {
    run_seed(seed, &cfg(profile), false)
}

fn assert_passes(seeds: std::ops::Range<u64>, profile: Profile) -> Vec<SeedReport> {
    seeds
        .map(|seed| {
            let r = run(seed, profile);
            assert_eq!(r.failure, None, "zsim replay --seed {seed} --profile {profile}");
            assert_eq!(r.ops, TEST_OPS as u64, "seed {seed}: every op ran");
            r
        })
        .collect()
}

#[test]
fn the_workspace_builds_with_madsim() {
    // .cargo/config.toml sets --cfg madsim; a RUSTFLAGS variable would silently drop it.
    assert_eq!(Executor::DEFAULT, Executor::Madsim, "built without --cfg madsim");
}

#[test]
fn none_profile_passes() {
    let reports = assert_passes(0..3, Profile::None);
    assert!(reports.iter().all(|r| r.crashes == 0 && r.faults == 0));
}

#[test]
fn crash_profile_passes_and_crashes_mid_sync() {
    let reports = assert_passes(0..4, Profile::Crash);
    let crashes: u64 = reports.iter().map(|r| r.crashes).sum();
    assert!(crashes >= 4, "{crashes} crashes in 4 seeds");
    let mid: u64 = (0..12).map(|s| run(s, Profile::Crash).crashes_mid_sync).sum();
    assert!(mid > 0, "no crash ever hit a txg in the middle of its sync");
}

#[test]
fn faults_profile_passes_and_detects() {
    let reports = assert_passes(0..3, Profile::Faults);
    assert!(reports.iter().map(|r| r.faults).sum::<u64>() > 0, "no fault injected");
    assert!(reports.iter().map(|r| r.detections).sum::<u64>() > 0, "no fault detected");
}

#[test]
fn unrestricted_profile_passes_and_detects() {
    let reports = assert_passes(0..3, Profile::Unrestricted);
    assert!(reports.iter().map(|r| r.detections).sum::<u64>() > 0, "no fault detected");
}

#[test]
fn lying_flush_is_reported_as_a_durability_violation() {
    // A lying flush shows only if a crash lands before the lost writes destage, so a short
    // run may miss it: most seeds must catch it, and the profile as a whole must.
    let failures: Vec<String> =
        (0..6).filter_map(|s| run(s, Profile::LyingFlush).failure).collect();
    assert!(
        failures.len() >= 4,
        "a disk whose flush persists nothing went unnoticed: {failures:?}"
    );
    let durability = failures
        .iter()
        .filter(|f| f.contains("durability violation") || f.contains("import after crash"));
    assert!(durability.count() >= 1, "{failures:?}");
}

#[test]
fn lying_flush_is_reported_as_losing_fsynced_data() {
    // Seeds 25, 26 and 118 of the profile (60 ops) crash while fsynced ops sit only in log
    // blocks the lying flush never made durable (most seeds lose a committed txg first).
    let lost: Vec<String> = [25, 26, 118]
        .into_iter()
        .filter_map(|s| run(s, Profile::LyingFlush).failure)
        .filter(|f| f.contains("fsynced data lost"))
        .collect();
    assert!(lost.len() >= 2, "a lying flush under fsync went unnoticed: {lost:?}");
}

#[test]
fn crash_workloads_fsync_and_replay_the_intent_log() {
    // The crash check must see fsynced ops replayed past the last commit, or it proves
    // nothing about the intent log.
    let cfg = cfg(Profile::Crash);
    assert!(cfg.gen.fsync, "zsim run workloads must fsync");
    let replayed = (0..40)
        .map(|s| sim::run::run_seed(s, &cfg, true))
        .inspect(|r| assert!(r.failure.is_none(), "seed {}: {:?}", r.seed, r.failure))
        .filter(|r| r.trace.iter().any(|l| l.contains("intent-log ops replayed")))
        .count();
    assert!(replayed >= 3, "only {replayed} of 40 seeds replayed a log after a crash");
}

/// A pool on a SimDisk holding one synced 8 KiB object and a snapshot of it.
fn pool_with_snapshot() -> (Spa, SimDisk, u64) {
    let disk = SimDisk::new(16 << 20, DiskConfig::default(), 5);
    let mut spa =
        Spa::create(Box::new(disk.clone()), "tank", SpaConfig::default()).expect("create");
    let spec = ObjectSpec { ot: 19, blksz: 8192, indblkshift: 0, bonustype: 0, bonuslen: 0 };
    let obj = spa.object_alloc("tank", &spec).expect("alloc");
    spa.write("tank", obj, 0, &pattern(5, 0, 8192)).expect("write");
    spa.snapshot("tank@a").expect("snapshot");
    (spa, disk, obj)
}

#[test]
fn corrupted_block_is_an_error_never_data() {
    let (mut spa, disk, obj) = pool_with_snapshot();
    let (trees, _) = spa.pool_trees();
    let root = trees.iter().find(|t| t.name == "tank").expect("tank").head;
    let mut at = None;
    let visit = &mut |_: &mut engine::zio::Zio, v: &engine::dmu::traverse::Visit<'_>| {
        if let engine::dmu::traverse::Visit::Block { object, level: 0, bp, .. } = v {
            if *object == obj && !bp.is_hole() {
                at = Some(bp.dva[0].offset);
            }
        }
    };
    engine::dmu::traverse::traverse_objset(spa.zio_mut(), &root, 0, visit).expect("walk");
    // Flip a byte of the data block's last sector, behind the engine's back.
    disk.corrupt_sector(at.expect("data block on disk") + 8192 - 512);
    for name in ["tank", "tank@a"] {
        for (offset, len) in [(0, 8192), (8000, 100), (0, 1)] {
            let r = spa.read(name, obj, offset, len);
            assert!(
                matches!(r, Err(DmuError::Zio(_))),
                "{name} [{offset}+{len}) of a damaged block: {:?}",
                r.map(|v| v.len())
            );
        }
    }
}

#[test]
fn same_seed_same_trace_hash_and_different_seeds_differ() {
    let c = cfg(Profile::Crash);
    let a = run_seed(7, &c, false);
    assert!(!a.trace_hash.is_empty());
    assert_eq!(run_seed(7, &c, false).trace_hash, a.trace_hash, "seed 7 is not deterministic");
    let verbose = run_seed(7, &c, true);
    assert_eq!(verbose.trace_hash, a.trace_hash, "replay and run disagree on seed 7");
    assert!(!verbose.trace.is_empty());
    let hashes: BTreeSet<String> = (7..12).map(|s| run_seed(s, &c, false).trace_hash).collect();
    assert_eq!(hashes.len(), 5, "two seeds gave one trace");
}

#[test]
fn trace_records_ops_going_into_the_next_txg_while_one_syncs() {
    let c = cfg(Profile::None);
    let mut found = None;
    for seed in 0..6 {
        let r = run_seed(seed, &c, true);
        assert_eq!(r.failure, None);
        let line = r.trace.iter().find(|l| {
            let open = field(l, " open ");
            let syncing = field(l, " syncing ");
            matches!((open, syncing), (Some(o), Some(s)) if o == s + 1)
        });
        if let Some(line) = line {
            assert!(r.ops_while_syncing > 0, "{line}");
            found = Some(line.clone());
            break;
        }
    }
    assert!(found.is_some(), "no op ran in txg N+1 while N was syncing");
}

/// The number after `key` in a trace line.
fn field(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split(' ').next()?.parse().ok()
}

#[test]
fn fallback_executor_runs_seeds_deterministically() {
    let c = SimConfig { executor: Executor::Fallback, ..cfg(Profile::Crash) };
    let a = run_seed(3, &c, false);
    assert_eq!(a.failure, None);
    assert_eq!(run_seed(3, &c, false).trace_hash, a.trace_hash);
}

fn job(seeds: u64, shard: (u64, u64), pct: u64) -> JobConfig {
    JobConfig {
        start: 100,
        seeds,
        jobs: 2,
        shard,
        determinism_pct: pct,
        fail_fast: false,
        sim: cfg(Profile::Crash),
    }
}

#[test]
fn shards_cover_every_seed_exactly_once() {
    for n in 1..=5 {
        let mut all = Vec::new();
        for i in 0..n {
            all.extend(shard_seeds(&job(37, (i, n), 0)).iter());
        }
        all.sort_unstable();
        assert_eq!(all, (100..137).collect::<Vec<u64>>(), "{n} shards");
    }
}

#[test]
fn main_job_reruns_seeds_and_finds_them_deterministic() {
    let summary = run_job(&job(3, (0, 1), 100), &|_| {});
    assert_eq!(summary.seeds, 3);
    assert_eq!(summary.determinism_checked, 3);
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
}

/// Seeds (120 ops, the default) that the space checks once failed, each now passing: the
/// engine refused space wrongly or suspended (`none` 295: a receive and sparse writes left
/// out the metadata they dirty), the oracle missed damage that cut an intent-log chain
/// (`faults` 153), or the space bound was too low (`crash`: a re-created object keeps its
/// tree's height; a failed receive still dirtied its records; a crash state is checked
/// without the space bound, which is blind after an import).
#[test]
fn space_pressure_seeds_pass() {
    let seeds = [
        (295, Profile::None),
        (153, Profile::Faults),
        (2857, Profile::Crash),
        (6036, Profile::Crash),
        (7456, Profile::Crash),
        (9194, Profile::Crash),
    ];
    for (seed, profile) in seeds {
        let cfg = SimConfig { profile, ..SimConfig::default() };
        let r = run_seed(seed, &cfg, false);
        assert_eq!(r.failure, None, "zsim replay --seed {seed} --profile {profile}");
    }
}

/// Unrestricted seeds that the integrity walk (`integrity::check_unbudgeted`) once failed:
/// 2 (the whole uberblock ring read as one: one bad sector hid every slot), 155 (the MOS
/// lost in both copies), 198 (a rewind past the deferral window: the older tree's blocks
/// rightly overwritten), 406 (the same txg imported twice with one guid seed: the new
/// intent-log chain took the old chain's guid and place, and its stale blocks passed).
#[test]
fn unrestricted_seeds_pass_the_integrity_walk() {
    for seed in [2, 155, 198, 406] {
        let cfg = SimConfig { profile: Profile::Unrestricted, ..SimConfig::default() };
        let r = run_seed(seed, &cfg, false);
        assert_eq!(r.failure, None, "zsim replay --seed {seed} --profile unrestricted");
        assert!(r.checks > 0, "seed {seed}: nothing checked");
    }
}
