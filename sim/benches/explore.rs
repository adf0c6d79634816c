//! Crash states checked per second (issue 4: aim >= 1,000/s for a 16 MiB pool on one core).
//! Records a golden scenario once on a 16 MiB recording disk, then times whole explorations
//! of its event log (each state: build the crash device, import, integrity check, fingerprint).
//! `cargo bench -p sim --bench explore`; criterion prints the rate as `thrpt` (elements =
//! states), and a plain summary line per scenario follows. Single-threaded, like one shard.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sim::explore::{explore, record_scenario, ExploreConfig, EXPLORE_DEVICE_BYTES_MIN};

/// Scenarios timed: a small one with the default exploration, and the largest metadata
/// set of the catalog with a lighter one.
const CASES: [(&str, usize, usize); 2] = [("basic", 10, 64), ("many-objects", 4, 16)];

fn bench_explore(c: &mut Criterion) {
    let mut group = c.benchmark_group("explore");
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    for (name, subsets_all_max, sample) in CASES {
        let rec = record_scenario(name, EXPLORE_DEVICE_BYTES_MIN, true).expect("records");
        let cfg = ExploreConfig { subsets_all_max, sample, ..ExploreConfig::new(0) };
        let events = &rec.recording.events;
        let started = Instant::now();
        let report = explore(&rec, events, &cfg).expect("consistent");
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(report.violations, 0, "{report}");
        group.throughput(Throughput::Elements(report.states));
        group.bench_function(name, |b| {
            b.iter(|| black_box(explore(&rec, events, &cfg).expect("consistent")));
        });
        println!(
            "explore {name} (16 MiB): {} states in {secs:.2} s = {:.0} crash states/s",
            report.states,
            report.states as f64 / secs
        );
    }
    group.finish();
}

criterion_group!(benches, bench_explore);
criterion_main!(benches);
