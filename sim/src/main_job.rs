//! The main job: many seeds in parallel (one OS thread per job, never inside a run), a
//! progress bar, a summary, and one reproducer line per failure. `zsim run` calls it.
//! Seeds are split across machines with `--shard I/N` (seed s belongs to shard s % N); a
//! share of seeds runs twice and must give the same trace hash (property 6).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

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
    /// Stop taking new seeds once one has failed (`--fail-fast`): the summary then covers
    /// the seeds run so far (seeds already running finish). For gates such as the mutation
    /// score's simulator pass, where one failure is the whole answer.
    pub fail_fast: bool,
    /// The simulation knobs.
    pub sim: SimConfig,
}

/// Most seeds one `zsim run` takes (`--seeds`): seeds are iterated lazily, so the limit is
/// about run time (about 10^9 seeds is years of a core), not memory.
pub const SEEDS_MAX: u64 = 1_000_000_000;

/// Most seeds, in percent, that may end where no model is known (`SeedReport::unmodelled`)
/// before a run fails for checking too little.
pub const UNMODELLED_SHARE_MAX_PCT: u64 = 1;

/// Failures listed one by one in a summary; past this only `failures_unlisted` grows, so a
/// run in which every seed fails still has a bounded summary.
pub const FAILURES_LISTED_MAX: usize = 10_000;

/// One failing seed, with what it takes to reproduce it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// Its trace hash (a followed reproducer prints the same).
    pub trace_hash: String,
    /// The first violation.
    pub failure: String,
    /// The command that reruns it (`reproducer`).
    pub reproducer: String,
}

/// Totals of a job. Every counter is a sum over seeds, so the totals do not depend on the
/// order in which threads finish.
#[derive(Clone, Debug, Default, serde::Serialize)]
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
    /// Faults the simulated disk injected (damaged sectors, failed I/Os, torn writes...).
    pub faults_injected: u64,
    /// Errors the engine returned because of injected damage (a read that failed its
    /// checksum, a write the disk refused). One damaged block read many times counts many
    /// times, so this is usually larger than `faults_injected`.
    pub damage_errors: u64,
    /// Fsyncs that returned.
    pub fsyncs: u64,
    /// Imports that replayed intent-log operations.
    pub log_replays: u64,
    /// Intent-log operations replayed.
    pub ops_replayed: u64,
    /// Oracle checks made (conformance, integrity, durability).
    pub checks: u64,
    /// Streams sent by send/receive operations.
    pub streams_sent: u64,
    /// Streams received, each checked against the model and re-sent.
    pub streams_received: u64,
    /// Streams refused as the model said they must be.
    pub streams_refused: u64,
    /// Damaged streams (cut or flipped) refused.
    pub damaged_refused: u64,
    /// Operations and receives refused for space, each allowed by the model's space bound.
    pub space_refused: u64,
    /// Power cuts of the backup pool.
    pub backup_crashes: u64,
    /// Crash states inside a receive into the backup pool, checked.
    pub backup_crash_states: u64,
    /// Pools lost to unrestricted damage (detected) and created anew.
    pub pools_recreated: u64,
    /// Seeds that ended early where no model of the pool is known (only detection held).
    pub unmodelled: u64,
    /// Seeds re-run for determinism.
    pub determinism_checked: u64,
    /// Failing seeds in seed order, at most `FAILURES_LISTED_MAX`.
    pub failures: Vec<Failure>,
    /// Failing seeds past `FAILURES_LISTED_MAX`, not listed.
    pub failures_unlisted: u64,
}

impl Summary {
    fn add(&mut self, r: &SeedReport, sim: &SimConfig) {
        self.seeds += 1;
        self.ops += r.ops;
        self.ops_while_syncing += r.ops_while_syncing;
        self.crashes += r.crashes;
        self.crashes_mid_sync += r.crashes_mid_sync;
        self.txgs += r.txgs;
        self.recoveries += r.recoveries;
        self.faults_injected += r.faults;
        self.damage_errors += r.detections;
        self.fsyncs += r.fsyncs;
        self.log_replays += r.log_replays;
        self.ops_replayed += r.ops_replayed;
        self.checks += r.checks;
        self.streams_sent += r.streams_sent;
        self.streams_received += r.streams_received;
        self.streams_refused += r.streams_refused;
        self.damaged_refused += r.damaged_refused;
        self.space_refused += r.space_refused;
        self.backup_crashes += r.backup_crashes;
        self.backup_crash_states += r.backup_crash_states;
        self.pools_recreated += r.pools_recreated;
        self.unmodelled += u64::from(r.unmodelled);
        if let Some(f) = &r.failure {
            self.failures.push(Failure {
                seed: r.seed,
                trace_hash: r.trace_hash.clone(),
                failure: f.clone(),
                reproducer: reproducer(r.seed, sim),
            });
            // Keep the lowest seeds: the listed set does not depend on thread timing.
            if self.failures.len() > FAILURES_LISTED_MAX {
                self.failures.sort_by_key(|f| f.seed);
                self.failures.pop();
                self.failures_unlisted += 1;
            }
        }
    }

    /// Failing seeds, listed or not.
    #[must_use]
    pub fn failing(&self) -> u64 {
        self.failures.len() as u64 + self.failures_unlisted
    }

    /// More seeds than `UNMODELLED_SHARE_MAX_PCT` ended unmodelled: the run checked too
    /// little to pass.
    #[must_use]
    pub fn too_many_unmodelled(&self) -> bool {
        self.unmodelled * 100 > self.seeds * UNMODELLED_SHARE_MAX_PCT
    }

    /// Clean: no failing seed and not too many unmodelled ones.
    #[must_use]
    pub fn clean(&self) -> bool {
        self.failing() == 0 && !self.too_many_unmodelled()
    }
}

/// The seeds of one shard: `start..start+seeds` filtered by `seed % n == i`, computed on
/// demand (never materialized).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSeeds {
    first: u64,
    count: u64,
    step: u64,
}

impl ShardSeeds {
    /// How many seeds.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True if the shard holds no seed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `k`-th seed, if `k < len()`.
    #[must_use]
    pub fn get(&self, k: u64) -> Option<u64> {
        (k < self.count).then(|| self.first + k * self.step)
    }
}

impl ShardSeeds {
    /// The seeds, in order.
    pub fn iter(self) -> impl Iterator<Item = u64> {
        (0..self.count).map(move |k| self.first + k * self.step)
    }
}

/// The seeds of this shard.
#[must_use]
pub fn shard_seeds(cfg: &JobConfig) -> ShardSeeds {
    let (i, n) = cfg.shard;
    assert!(n >= 1 && i < n, "bad shard {i}/{n}");
    let end = cfg.start.saturating_add(cfg.seeds);
    // The first seed >= start with seed % n == i.
    let first = cfg.start + (i + n - cfg.start % n) % n;
    let count = if first >= end { 0 } else { (end - first).div_ceil(n) };
    ShardSeeds { first, count, step: n }
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
/// Memory stays flat in the number of seeds: reports are summed as they arrive.
#[must_use]
pub fn run_job(cfg: &JobConfig, tick: &(dyn Fn(&SeedReport) + Sync)) -> Summary {
    let seeds = shard_seeds(cfg);
    let next = AtomicU64::new(0);
    let det = AtomicU64::new(0);
    let summary = Mutex::new(Summary::default());
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..cfg.jobs.max(1) {
            scope.spawn(|| {
                while let Some(seed) = seeds.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = one(seed, cfg, &det);
                    if cfg.fail_fast && r.failure.is_some() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    tick(&r);
                    summary.lock().expect("no poisoned lock").add(&r, &cfg.sim);
                }
            });
        }
    });
    let mut s = summary.into_inner().expect("no poisoned lock");
    s.failures.sort_by_key(|f| f.seed);
    s.determinism_checked = det.load(Ordering::Relaxed);
    s
}

/// The one-line reproducer of a failing seed: every option that changes the run.
#[must_use]
pub fn reproducer(seed: u64, sim: &SimConfig) -> String {
    format!("zsim replay --seed {seed} --profile {} --ops {}", sim.profile, sim.ops_per_seed)
}
