//! Simulated operations per second of the main job's run loop (sim/src/run.rs under madsim),
//! per profile, on one core: `cargo bench -p sim --bench run`. Criterion times a fixed batch
//! of seeds (throughput in elements = operations applied); a plain summary line per profile
//! follows with seeds/s, ops/s, crashes and detections over a longer pass. Single-threaded,
//! like one `--jobs 1` shard; the wall clock here only measures, it never feeds a run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sim::fault::Profile;
use sim::run::{run_seed, SimConfig};

/// Seeds per timed batch.
const BATCH_SEEDS: u64 = 4;
/// Seeds of the summary pass.
const SUMMARY_SEEDS: u64 = 40;
/// Profiles timed (lying-flush stops at its first violation, so its rate means little).
const PROFILES: [Profile; 4] =
    [Profile::None, Profile::Crash, Profile::Faults, Profile::Unrestricted];

fn batch(profile: Profile, seeds: std::ops::Range<u64>) -> (u64, u64, u64, u64) {
    let cfg = SimConfig { profile, ..SimConfig::default() };
    let (mut ops, mut crashes, mut detections, mut failing) = (0, 0, 0, 0);
    for seed in seeds {
        let r = run_seed(seed, &cfg, false);
        ops += r.ops;
        crashes += r.crashes;
        detections += r.detections;
        failing += u64::from(r.failure.is_some());
    }
    (ops, crashes, detections, failing)
}

fn bench_run(c: &mut Criterion) {
    let mut group = c.benchmark_group("run");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for profile in PROFILES {
        let started = Instant::now();
        let (ops, crashes, detections, failing) = batch(profile, 1000..1000 + SUMMARY_SEEDS);
        let secs = started.elapsed().as_secs_f64();
        let (batch_ops, ..) = batch(profile, 0..BATCH_SEEDS);
        group.throughput(Throughput::Elements(batch_ops));
        group.bench_function(profile.name(), |b| {
            b.iter(|| black_box(batch(profile, 0..BATCH_SEEDS)));
        });
        println!(
            "run/{profile}: {SUMMARY_SEEDS} seeds in {secs:.2} s = {:.1} seeds/s, {:.0} \
             simulated ops/s on one core ({ops} ops, {crashes} crashes, {detections} \
             detections, {failing} failing seeds)",
            SUMMARY_SEEDS as f64 / secs,
            ops as f64 / secs
        );
    }
    group.finish();
}

criterion_group!(benches, bench_run);
criterion_main!(benches);
