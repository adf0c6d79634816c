//! One seeded simulation: a random operation list run against the engine on the simulated
//! disk and against the reference model, with crashes at seeded moments followed by import
//! and the durability check (design.md property 2), conformance after every op (1), pool
//! integrity after every sync (5), and detection under faults (7). FoundationDB's simulator
//! and TigerBeetle's VOPR in spirit. Called by `zsim run/replay/shrink` and sim's tests.
//! Everything derives from one u64 seed, split once at start into sub-seeds in a fixed order
//! (ops, disk, crash schedule), so a new draw in one never shifts the others.

use engine::{Spa, SpaConfig};
use oracle::conformance;
use oracle::integrity;
use oracle::model::Model;
use oracle::op::{random_ops, GenConfig, Op};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::disk::{DiskConfig, SimDisk};
use crate::fault::{FaultConfig, Profile};
use crate::trace::Trace;

/// Pool name used by every simulation.
pub const SIM_POOL: &str = "tank";
/// Default operations per seed.
pub const OPS_PER_SEED_DEFAULT: usize = 120;
/// Default simulated disk size.
pub const SIM_DEVICE_BYTES_DEFAULT: u64 = 16 << 20;
/// Chance (per million) of a crash before each operation, in crashing profiles.
pub const CRASH_RATE_PPM: u32 = 40_000;
/// Most sync phases run before a mid-sync crash.
const MID_SYNC_STEPS_MAX: u32 = 7;

/// Knobs of a simulation run.
#[derive(Clone, Copy, Debug)]
pub struct SimConfig {
    /// Disk faults and crash behaviour.
    pub profile: Profile,
    /// Operations per seed.
    pub ops_per_seed: usize,
    /// Simulated disk size.
    pub device_bytes: u64,
    /// Workload generator knobs.
    pub gen: GenConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            profile: Profile::Crash,
            ops_per_seed: OPS_PER_SEED_DEFAULT,
            device_bytes: SIM_DEVICE_BYTES_DEFAULT,
            gen: GenConfig { write_len_max: 64 << 10, ..GenConfig::default() },
        }
    }
}

/// What one seed did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Operations applied.
    pub ops: u64,
    /// Conformance, integrity and durability checks made.
    pub checks: u64,
    /// Crashes simulated.
    pub crashes: u64,
    /// Faults the disk injected.
    pub faults: u64,
    /// Errors the engine reported for injected damage (detections, property 7).
    pub detections: u64,
    /// Hash of the readable trace.
    pub trace_hash: String,
    /// The first violation, if any.
    pub failure: Option<String>,
    /// The readable trace (verbose runs only).
    pub trace: Vec<String>,
}

/// A fixed 64-bit mix (splitmix64 finalizer): seed-derived decisions that must not consume
/// any generator, such as which seeds are re-run for the determinism check.
#[must_use]
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The sub-seeds of a run, drawn in a fixed order.
struct Seeds {
    ops: u64,
    disk: u64,
    crash: u64,
}

fn split(seed: u64) -> Seeds {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Seeds { ops: rng.random(), disk: rng.random(), crash: rng.random() }
}

/// The operation list of `seed` under `cfg`.
#[must_use]
pub fn ops_for(seed: u64, cfg: &SimConfig) -> Vec<Op> {
    random_ops(split(seed).ops, cfg.ops_per_seed, &cfg.gen)
}

/// State of a running simulation.
struct Sim {
    spa: Spa,
    disk: SimDisk,
    model: Model,
    /// The model as of the last committed txg.
    durable: Model,
    synced: u64,
    crash_rng: ChaCha8Rng,
    report: SeedReport,
    trace: Trace,
    profile: Profile,
    spa_cfg: SpaConfig,
}

/// Run `seed` with its own operation list.
#[must_use]
pub fn run_seed(seed: u64, cfg: &SimConfig, verbose: bool) -> SeedReport {
    run_ops(seed, &ops_for(seed, cfg), cfg, verbose)
}

/// Run an explicit operation list with the disk and crash schedule of `seed` (shrinking).
#[must_use]
pub fn run_ops(seed: u64, ops: &[Op], cfg: &SimConfig, verbose: bool) -> SeedReport {
    let seeds = split(seed);
    let mut sim = match Sim::start(seed, &seeds, cfg, verbose) {
        Ok(s) => s,
        Err(msg) => return SeedReport { seed, failure: Some(msg), ..SeedReport::default() },
    };
    for (i, op) in ops.iter().enumerate() {
        if let Err(msg) = sim.step(i, op) {
            sim.report.failure = Some(format!("op #{i} {op:?}: {msg}"));
            break;
        }
    }
    if sim.report.failure.is_none() {
        if let Err(msg) = sim.finish() {
            sim.report.failure = Some(format!("final check: {msg}"));
        }
    }
    sim.report.faults = sim.disk.counters().total();
    sim.report.trace_hash = sim.trace.hash();
    sim.report.trace = sim.trace.lines().to_vec();
    sim.report
}

impl Sim {
    fn start(seed: u64, seeds: &Seeds, cfg: &SimConfig, verbose: bool) -> Result<Self, String> {
        let disk_cfg = DiskConfig { faults: FaultConfig::NONE, ..DiskConfig::default() };
        let disk = SimDisk::new(cfg.device_bytes, disk_cfg, seeds.disk);
        let spa_cfg = SpaConfig { guid_seed: seed, ..SpaConfig::default() };
        let spa = Spa::create(Box::new(disk.clone()), SIM_POOL, spa_cfg)
            .map_err(|e| format!("create: {e}"))?;
        disk.set_faults(cfg.profile.fault_config());
        let model = Model::new(SIM_POOL);
        let synced = spa.last_synced_txg();
        Ok(Self {
            spa,
            disk,
            durable: model.clone(),
            model,
            synced,
            crash_rng: ChaCha8Rng::seed_from_u64(seeds.crash),
            report: SeedReport { seed, ..SeedReport::default() },
            trace: Trace::new(verbose),
            profile: cfg.profile,
            spa_cfg,
        })
    }

    fn step(&mut self, i: usize, op: &Op) -> Result<(), String> {
        if self.profile.crashes() && self.crash_rng.random_range(0..1_000_000u32) < CRASH_RATE_PPM {
            let mid = self.crash_rng.random_range(0..=MID_SYNC_STEPS_MAX);
            self.crash(mid)?;
        }
        self.report.ops += 1;
        let outcome = op.apply(&mut self.spa, &mut self.model);
        self.trace.op(i, op, &outcome, self.spa.last_synced_txg());
        if let Err(d) = outcome {
            return self.after_error(&d.to_string());
        }
        conformance::check(&mut self.spa, &self.model).map_err(|d| d.to_string())?;
        self.report.checks += 1;
        self.note_sync()
    }

    /// The engine failed an op: under faults that is detection, and a suspended pool is
    /// recovered like a crash; anything else (wrong data, wrong error) is a violation.
    fn after_error(&mut self, msg: &str) -> Result<(), String> {
        let faulty =
            matches!(self.profile, Profile::Faults | Profile::Unrestricted | Profile::LyingFlush);
        let detected = msg.contains("Err(Io)")
            || msg.contains("Err(Suspended)")
            || msg.contains("suspended")
            || msg.contains("checksum error")
            || msg.contains("I/O error");
        if !(faulty && detected) {
            return Err(msg.to_owned());
        }
        self.report.detections += 1;
        self.trace.note(&format!("detected: {msg}"));
        self.crash(0)
    }

    /// Record a newly committed txg: the model as of now is durable.
    fn note_sync(&mut self) -> Result<(), String> {
        let now = self.spa.last_synced_txg();
        if now != self.synced && self.spa.syncing_txg().is_none() && !self.spa.is_dirty() {
            self.synced = now;
            self.durable = self.model.clone();
            if self.profile == Profile::None || self.profile == Profile::Crash {
                integrity::check(&mut self.spa).map_err(|e| format!("integrity: {e}"))?;
                self.report.checks += 1;
            }
        }
        Ok(())
    }

    /// Crash, optionally after running `mid_steps` phases of a sync of the open txg, then
    /// import and check the pool equals the model as of some txg in
    /// [last committed, last started].
    fn crash(&mut self, mid_steps: u32) -> Result<(), String> {
        self.report.crashes += 1;
        let mut candidates = vec![self.durable.clone()];
        if mid_steps > 0 && !self.spa.is_suspended() {
            if let Ok(Some(_)) = self.spa.txg_quiesce() {
                candidates.push(self.model.clone());
                for _ in 0..mid_steps {
                    if self.spa.sync_step().is_err() {
                        break;
                    }
                }
            }
        } else if self.spa.is_dirty() || self.spa.syncing_txg().is_some() {
            candidates.push(self.model.clone());
        }
        let placeholder = Spa::create(
            Box::new(engine::MemoryDevice::new(engine::limits::SPA_MINDEVSIZE)),
            "placeholder",
            SpaConfig::default(),
        )
        .map_err(|e| e.to_string())?;
        drop(std::mem::replace(&mut self.spa, placeholder).into_device());
        let image = self.disk.crash();
        self.trace
            .note(&format!("crash after {mid_steps} sync phases; image {} bytes", image.len()));
        let quiet = self.disk.faults();
        self.disk.set_faults(FaultConfig { ..quiet });
        self.spa = Spa::import(Box::new(self.disk.clone()), self.spa_cfg, None)
            .map_err(|e| format!("import after crash: {e}"))?;
        self.report.checks += 1;
        let mut errors = Vec::new();
        for c in candidates.iter().rev() {
            match conformance::check(&mut self.spa, c) {
                Ok(()) => {
                    self.model = c.clone();
                    self.durable = c.clone();
                    self.synced = self.spa.last_synced_txg();
                    self.trace.note(&format!("recovered txg {}", self.synced));
                    return Ok(());
                }
                Err(d) => errors.push(d.to_string()),
            }
        }
        Err(format!("durability violation after crash: the pool matches no txg in [last committed, last started]: {}", errors.join(" | ")))
    }

    fn finish(&mut self) -> Result<(), String> {
        if self.spa.is_suspended() {
            return Ok(());
        }
        self.spa.txg_sync().map_err(|e| format!("final sync: {e}"))?;
        self.note_sync()?;
        if self.profile.crashes() {
            self.crash(0)?;
        }
        Ok(())
    }
}
