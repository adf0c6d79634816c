//! The main job: many seeds in parallel (one OS thread per job, never inside a run), a
//! progress bar, a summary, and one reproducer line per failure. `zsim run` calls it.
//! Seeds are split across machines with `--shard I/N` (seed s belongs to shard s % N); a
//! share of seeds runs twice and must give the same trace hash (property 6).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::fault::Profile;
use crate::run::{run_seed, SeedReport, SimConfig};

/// Default share of seeds run twice for the determinism check, in percent.
pub const DETERMINISM_SHARE_PCT_DEFAULT: u64 = 5;

/// What `zsim run` was asked to do.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// First seed.
    pub start: u64,
    /// Number of seeds (before sharding).
    pub seeds: u64,
    /// Parallel OS threads.
    pub jobs: usize,
    /// This machine's shard (index, count).
    pub shard: (u64, u64),
    /// Share of seeds run twice, percent.
    pub determinism_pct: u64,
    /// The simulation knobs.
    pub sim: SimConfig,
}

/// Totals of a job.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Operations applied.
    pub ops: u64,
    /// Operations applied while a txg was syncing.
    pub ops_while_syncing: u64,
    /// Crashes simulated.
    pub crashes: u64,
    /// Crashes in the middle of a txg sync.
    pub crashes_mid_sync: u64,
    /// Txgs committed.
    pub txgs: u64,
    /// Re-imports after a suspended pool.
    pub recoveries: u64,
    /// Faults injected.
    pub faults: u64,
    /// Detected faults (errors instead of data).
    pub detections: u64,
    /// Fsyncs that returned.
    pub fsyncs: u64,
    /// Imports that replayed intent-log operations.
    pub log_replays: u64,
    /// Intent-log operations replayed.
    pub ops_replayed: u64,
    /// Checks made.
    pub checks: u64,
    /// Seeds re-run for determinism.
    pub determinism_checked: u64,
    /// Failing seeds, with their first violation.
    pub failures: Vec<(u64, String)>,
}

impl Summary {
    fn add(&mut self, r: &SeedReport) {
        self.seeds += 1;
        self.ops += r.ops;
        self.ops_while_syncing += r.ops_while_syncing;
        self.crashes += r.crashes;
        self.crashes_mid_sync += r.crashes_mid_sync;
        self.txgs += r.txgs;
        self.recoveries += r.recoveries;
        self.faults += r.faults;
        self.detections += r.detections;
        self.fsyncs += r.fsyncs;
        self.log_replays += r.log_replays;
        self.ops_replayed += r.ops_replayed;
        self.checks += r.checks;
        if let Some(f) = &r.failure {
            self.failures.push((r.seed, f.clone()));
        }
    }
}

/// The seeds of this shard, in order.
#[must_use]
pub fn shard_seeds(cfg: &JobConfig) -> Vec<u64> {
    let (i, n) = cfg.shard;
    assert!(n >= 1 && i < n, "bad shard {i}/{n}");
    (cfg.start..cfg.start.saturating_add(cfg.seeds)).filter(|s| s % n == i).collect()
}

/// True if `seed` is one of the share re-run for determinism (a fixed hash, not random).
#[must_use]
pub fn rerun_for_determinism(seed: u64, pct: u64) -> bool {
    crate::run::mix(seed) % 100 < pct
}

/// Run one seed (twice if chosen), returning its report.
fn one(seed: u64, cfg: &JobConfig, det: &AtomicU64) -> SeedReport {
    let mut r = run_seed(seed, &cfg.sim, false);
    if rerun_for_determinism(seed, cfg.determinism_pct) {
        det.fetch_add(1, Ordering::Relaxed);
        let again = run_seed(seed, &cfg.sim, false);
        if again.trace_hash != r.trace_hash && r.failure.is_none() {
            r.failure = Some(format!(
                "nondeterminism: trace hash {} then {}",
                r.trace_hash, again.trace_hash
            ));
        }
    }
    r
}

/// Run every seed of the shard on `cfg.jobs` threads; `tick` is called after each seed.
#[must_use]
pub fn run_job(cfg: &JobConfig, tick: &(dyn Fn(&SeedReport) + Sync)) -> Summary {
    let seeds = shard_seeds(cfg);
    let next = AtomicU64::new(0);
    let det = AtomicU64::new(0);
    let reports = Arc::new(Mutex::new(Vec::with_capacity(seeds.len())));
    std::thread::scope(|scope| {
        for _ in 0..cfg.jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(usize::try_from(i).expect("fits")) else { break };
                let r = one(seed, cfg, &det);
                tick(&r);
                reports.lock().expect("no poisoned lock").push(r);
            });
        }
    });
    let mut reports = std::mem::take(&mut *reports.lock().expect("no poisoned lock"));
    reports.sort_by_key(|r| r.seed);
    let mut s = Summary::default();
    for r in &reports {
        s.add(r);
    }
    s.determinism_checked = det.load(Ordering::Relaxed);
    s
}

/// The one-line reproducer of a failing seed.
#[must_use]
pub fn reproducer(seed: u64, profile: Profile) -> String {
    format!("zsim replay --seed {seed} --profile {profile}")
}
