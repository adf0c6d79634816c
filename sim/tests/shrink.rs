//! `zsim shrink` (sim/src/shrink.rs) checked from outside: lying-flush seeds that lose fsynced
//! data shrink to a handful of operations that still fail the same way, because each op keeps
//! its key and with it its think time, the crash after it and that crash's disk choices
//! (sim/src/schedule.rs, issue 10); and the regression test `zsim shrink` prints, pasted as
//! is, compiles and fails as it claims. A shrink runs the seed a few dozen times: a few
//! seconds in a debug build.

use sim::fault::Profile;
use sim::run::{run_ops, SimConfig};
use sim::shrink::{as_regression_test, failure_kind, shrink};

/// Operations the seeds below generate.
const GENERATED_OPS: usize = 60;
/// Most operations a shrunk lying-flush failure may keep.
const SHRUNK_OPS_MAX: usize = 10;
/// Most runs such a shrink may take (about a second in a release build).
const SHRINK_RUNS_BOUND: usize = 200;
/// Lying-flush seeds (60 ops) that fail with "fsynced data lost"
/// (`zsim run --seeds 400 --ops 60 --profile lying-flush --json`).
const LOST_FSYNC_SEEDS: [u64; 2] = [25, 26];

fn lying_flush() -> SimConfig {
    SimConfig { profile: Profile::LyingFlush, ops_per_seed: GENERATED_OPS, ..SimConfig::default() }
}

#[test]
fn lying_flush_seeds_shrink_to_a_few_ops_that_lose_fsynced_data() {
    let cfg = lying_flush();
    for seed in LOST_FSYNC_SEEDS {
        let s = shrink(seed, &cfg).expect("the seed fails");
        assert_eq!(s.ops_generated, GENERATED_OPS);
        assert!(s.ops.len() <= SHRUNK_OPS_MAX, "seed {seed}: {} ops left", s.ops.len());
        assert!(s.runs <= SHRINK_RUNS_BOUND, "seed {seed}: {} runs", s.runs);
        assert_eq!(failure_kind(&s.failure), "fsynced data lost", "seed {seed}");
        assert!(s.ops.windows(2).all(|w| w[0].0 < w[1].0), "keys out of order");
        // The shrunk list fails again, the same way, as the printed test will run it.
        let again = run_ops(seed, &s.ops, &cfg, false).failure;
        assert_eq!(again.as_deref(), Some(s.failure.as_str()), "seed {seed}");
        let printed = as_regression_test(seed, &cfg, &s.ops, &s.failure);
        assert!(printed.contains(&format!("ops_per_seed: {GENERATED_OPS},")), "{printed}");
        assert!(printed.contains(&format!("run_ops({seed}, &ops, &cfg, false)")), "{printed}");
    }
}

#[test]
fn printed_regression_is_the_one_pasted_below() {
    let cfg = lying_flush();
    let s = shrink(25, &cfg).expect("seed 25 fails");
    let printed = as_regression_test(25, &cfg, &s.ops, &s.failure);
    assert!(include_str!("shrink.rs").contains(&printed), "zsim shrink now prints:\n{printed}");
}

// What `zsim shrink --seed 25 --ops 60 --profile lying-flush` printed, pasted as is; only the
// two attributes above it are added: a lying flush loses fsynced data by design, so the test
// fails as it claims, and rustfmt must keep it byte for byte (the test above compares).
#[should_panic(expected = "fsynced data lost")]
#[rustfmt::skip]
/// Regression: seed 25, profile lying-flush, 2 ops kept of 60.
/// Failed with: durability violation after crash: fsynced data lost: the pool equals [last committed txg 4], but tank: 0 of the 1 logged ops through op #38 (whose fsync had returned) were replayed
#[test]
fn seed_25_lying_flush_regression() {
    #[allow(unused_imports)]
    use oracle::op::{ObjRef::*, Op::*, Pos::*, Target::*};
    #[allow(unused_imports)]
    use engine::ObjectSpec;
    // (key, op): the key is the op's index in the generated list; the op's think
    // time and the crash after it follow the key.
    let ops = [
        (38, ObjectAlloc { fs: Head(0), spec: ObjectSpec { ot: 19, blksz: 65536, indblkshift: 0, bonustype: 0, bonuslen: 0 } }),
        (53, Fsync { fs: Head(17), obj: Existing(0) }),
    ];
    let cfg = sim::run::SimConfig {
        profile: "lying-flush".parse().expect("profile"),
        ops_per_seed: 60,
        ..Default::default()
    };
    let report = sim::run::run_ops(25, &ops, &cfg, false);
    assert_eq!(report.failure, None);
}
