//! One seeded simulation, FoundationDB/VOPR style, on `sched` (madsim): client tasks apply
//! the seed's operations to the engine and the reference model under one lock (so both see
//! one serial order) while a txg sync task, driven by virtual time (txg timeout) and dirty
//! limits, quiesces the open txg and runs its sync one phase at a time with disk latency in
//! between, so txg N syncs while clients write into N+1; power is cut after seeded ops (the
//! `schedule`, keyed to each op), often mid-sync. Checks: conformance after every op (1),
//! durability after every crash or suspension (2), integrity after every commit (5),
//! detection under faults (7). Called by `zsim run/replay/shrink`, main_job and sim's tests;
//! calls engine, oracle, disk, schedule.
//! Durability bound: the model is snapshotted when `txg_quiesce` hands txg N to syncing, so a
//! crash accepts {model at the last commit, model at the quiesce of the syncing txg}, each
//! plus the intent-log replay import reports: per filesystem, a prefix of the successful
//! logged ops of later txgs (the head as the model had it after the prefix's last op) that
//! reaches every op an fsync of that filesystem had covered when it returned (else: fsynced
//! data lost).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use engine::txg::{SyncPhase, SyncStep};
use engine::{ImportError, Spa, SpaConfig, SpaError};
use oracle::conformance;
use oracle::integrity;
use oracle::model::Model;
use oracle::op::{random_ops, Divergence, GenConfig, Op, Outcome, OP_WRITE_LEN_MAX};
use oracle::replica::{Dest, SEND_FLAG_REMOTE};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::backup::Backup;
use crate::disk::{DiskConfig, SimDisk};
use crate::fault::{FaultConfig, Profile};
use crate::intent::LogTracker;
use crate::sched::{self, Executor};
use crate::schedule::{
    keyed, CrashPlan, KeyedOp, OpKey, Timing, DIRTY_SYNC_BYTES_MAX, FINAL_CRASH_KEY,
    MID_SYNC_INTO_US_MAX, MID_SYNC_WAIT_MAX,
};
use crate::trace::{OpContext, Trace};

mod recover;
mod txg;

/// Pool name used by every simulation.
pub const SIM_POOL: &str = "tank";
/// Default operations per seed.
pub const OPS_PER_SEED_DEFAULT: usize = 120;
/// Most operations per seed (`--ops`): the operation list and the model live in memory and
/// every operation is checked against all of it (measured: 5,000 operations take about a
/// minute and 125 MiB resident; this bound stays within a few hundred MiB).
pub const OPS_PER_SEED_MAX: usize = 10_000;
/// Default simulated disk size.
pub const SIM_DEVICE_BYTES_DEFAULT: u64 = 16 << 20;
/// Disk size of the seeds that run under space pressure (`SimConfig::small_pool_pct`): small
/// enough that writes are refused for space, and the model's space bound judges each refusal.
pub const SIM_DEVICE_BYTES_SMALL: u64 = 3 << 20;
/// Share of seeds (percent) on the small disk, drawn from the seed alone.
pub const SMALL_POOL_PCT_DEFAULT: u64 = 25;
/// How often the sync task looks at the txg timer and the dirty limits.
pub const SYNC_TICK: Duration = Duration::from_millis(20);
/// Txg timeout handed to the engine (host seconds; virtual time feeds `set_time`).
pub const TXG_TIMEOUT_SECS_SIM: u64 = 1;
/// Dirty bytes at which a write syncs inline (the engine's hard limit).
pub const DIRTY_BYTES_MAX_SIM: u64 = 4 << 20;
/// Simulated write bandwidth of the disk, for the latency of the write phases.
pub const DISK_BYTES_PER_SEC: u64 = 200 << 20;
/// Latency of a cache flush, drawn in this range (ms).
pub const FLUSH_LATENCY_MS_MIN: u64 = 2;
/// Longest flush latency (ms).
pub const FLUSH_LATENCY_MS_MAX: u64 = 40;
/// How often a client waiting for a pending crash (one that waits for a sync) looks again.
pub const CRASH_PENDING_POLL: Duration = Duration::from_millis(1);
/// Virtual time after which a run is declared stuck.
pub const SIM_VIRTUAL_TIME_MAX: Duration = Duration::from_secs(3600);
/// Committed txgs whose model the unrestricted profile keeps (import may rewind far).
pub const HISTORY_TXGS_MAX: usize = 256;
/// Imports tried after a crash when the intent-log replay cannot be written (faulty profiles).
pub const IMPORT_TRIES_MAX: u32 = 4;
/// Host time (seconds) at virtual time zero.
pub const HOST_EPOCH_SECS: u64 = 1_700_000_000;

const _: () = assert!(DIRTY_SYNC_BYTES_MAX < DIRTY_BYTES_MAX_SIM);
const _: () = assert!(FLUSH_LATENCY_MS_MIN >= 1 && FLUSH_LATENCY_MS_MIN <= FLUSH_LATENCY_MS_MAX);
const _: () = assert!(MID_SYNC_INTO_US_MAX == FLUSH_LATENCY_MS_MAX * 1000);

/// Knobs of a simulation run.
#[derive(Clone, Copy, Debug)]
pub struct SimConfig {
    /// Disk faults and crash behaviour.
    pub profile: Profile,
    /// Operations per seed.
    pub ops_per_seed: usize,
    /// Simulated disk size.
    pub device_bytes: u64,
    /// Share of seeds (percent) that run on `SIM_DEVICE_BYTES_SMALL` instead, drawn from the
    /// seed alone (so a replay or a shrink gets the same disk).
    pub small_pool_pct: u64,
    /// Workload generator knobs.
    pub gen: GenConfig,
    /// The scheduler: madsim (builds with `--cfg madsim`) or sched's fallback.
    pub executor: Executor,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            profile: Profile::Crash,
            ops_per_seed: OPS_PER_SEED_DEFAULT,
            device_bytes: SIM_DEVICE_BYTES_DEFAULT,
            small_pool_pct: SMALL_POOL_PCT_DEFAULT,
            gen: GenConfig { write_len_max: 64 << 10, ..GenConfig::default() },
            executor: Executor::DEFAULT,
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
    /// Operations applied while a txg was syncing (their changes went into the next txg).
    pub ops_while_syncing: u64,
    /// Conformance, integrity and durability checks made.
    pub checks: u64,
    /// Crashes simulated.
    pub crashes: u64,
    /// Crashes that hit a txg in the middle of its sync.
    pub crashes_mid_sync: u64,
    /// Txgs committed.
    pub txgs: u64,
    /// Re-imports after the pool suspended.
    pub recoveries: u64,
    /// Faults the disk injected.
    pub faults: u64,
    /// Errors the engine reported for injected damage (detections, property 7).
    pub detections: u64,
    /// Fsyncs that returned.
    pub fsyncs: u64,
    /// Imports that replayed intent-log operations.
    pub log_replays: u64,
    /// Intent-log operations those imports replayed.
    pub ops_replayed: u64,
    /// Streams sent by `Op::SendRecv` ops.
    pub streams_sent: u64,
    /// Streams received and checked (contents against the model, re-sent records).
    pub streams_received: u64,
    /// Streams refused as the model said (a refused receive must change nothing).
    pub streams_refused: u64,
    /// Damaged streams (cut, or a flipped byte) refused.
    pub damaged_refused: u64,
    /// Operations and receives refused for space, each allowed by the model's space bound.
    pub space_refused: u64,
    /// Power cuts of the backup pool's disk.
    pub backup_crashes: u64,
    /// Crash states in the middle of a receive into the backup pool, checked.
    pub backup_crash_states: u64,
    /// Pools lost to unrestricted damage (or left in a state no model knows), detected, and
    /// created anew so that the run goes on.
    pub pools_recreated: u64,
    /// The run ended early where no model of the pool is known (a lost pool that could not
    /// even be created anew). Only detection held for the rest of the seed.
    pub unmodelled: bool,
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

/// The sub-seeds of a run, drawn once in a fixed order (new ones go last).
struct Seeds {
    ops: u64,
    disk: u64,
    /// Base of the crash choices keyed to ops (`schedule`).
    crash: u64,
    /// madsim's (or the fallback's) scheduling choices.
    sched: u64,
    /// Clients, think times, dirty limit, sync latencies.
    timing: u64,
    /// The backup pool's disk, and the base of its choices keyed to ops.
    backup: u64,
}

fn split(seed: u64) -> Seeds {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Seeds {
        ops: rng.random(),
        disk: rng.random(),
        crash: rng.random(),
        sched: rng.random(),
        timing: rng.random(),
        backup: rng.random(),
    }
}

/// The disk size of `seed` under `cfg`: `SIM_DEVICE_BYTES_SMALL` for `small_pool_pct` percent
/// of seeds, drawn from the seed alone (no generator is consumed).
#[must_use]
pub fn device_bytes_for(seed: u64, cfg: &SimConfig) -> u64 {
    const SALT: u64 = 0x5a11_b001;
    if mix(seed ^ SALT) % 100 < cfg.small_pool_pct {
        SIM_DEVICE_BYTES_SMALL
    } else {
        cfg.device_bytes
    }
}

/// The operation list of `seed` under `cfg`, each op keyed by its index.
#[must_use]
pub fn ops_for(seed: u64, cfg: &SimConfig) -> Vec<KeyedOp> {
    // Seeds on the small disk write up to the largest op size, so that they fill it.
    let gen = if device_bytes_for(seed, cfg) == SIM_DEVICE_BYTES_SMALL {
        GenConfig { write_len_max: OP_WRITE_LEN_MAX, ..cfg.gen }
    } else {
        cfg.gen
    };
    keyed(random_ops(split(seed).ops, cfg.ops_per_seed, &gen))
}

/// Run `seed` with its own operation list.
#[must_use]
pub fn run_seed(seed: u64, cfg: &SimConfig, verbose: bool) -> SeedReport {
    run_ops(seed, &ops_for(seed, cfg), cfg, verbose)
}

/// Run an explicit list of keyed operations (a subsequence of `ops_for(seed, cfg)`, as a
/// shrink makes) with the disk, timing and crash schedule of `seed`: each op keeps the think
/// time and the crash that its key draws (`schedule`), whatever else the list holds; the crash
/// chances follow `cfg.ops_per_seed`, the generated length. A panic (a broken engine
/// invariant) is reported as the seed's failure.
///
/// # Panics
/// If the keys are not strictly increasing.
#[must_use]
pub fn run_ops(seed: u64, ops: &[KeyedOp], cfg: &SimConfig, verbose: bool) -> SeedReport {
    assert!(ops.windows(2).all(|w| w[0].0 < w[1].0), "op keys must increase");
    let seeds = split(seed);
    let ops = ops.to_vec();
    let cfg = *cfg;
    let run = std::panic::AssertUnwindSafe(|| {
        sched::block_on(cfg.executor, seeds.sched, simulate(seed, seeds, ops, cfg, verbose))
    });
    match std::panic::catch_unwind(run) {
        Ok(report) => report,
        Err(panic) => {
            let msg = panic_message(&*panic);
            SeedReport { seed, failure: Some(format!("panic: {msg}")), ..SeedReport::default() }
        }
    }
}

type Shared = Rc<RefCell<World>>;

/// The whole simulation: spawn the tasks, wait for the clients, stop the rest, finish.
async fn simulate(
    seed: u64,
    seeds: Seeds,
    ops: Vec<KeyedOp>,
    cfg: SimConfig,
    verbose: bool,
) -> SeedReport {
    let timing = Rc::new(Timing::draw(seeds.timing, seeds.crash, cfg.ops_per_seed));
    let world = match World::start(seed, &seeds, ops, &cfg, &timing, verbose) {
        Ok(w) => Rc::new(RefCell::new(w)),
        Err(msg) => return SeedReport { seed, failure: Some(msg), ..SeedReport::default() },
    };
    let crashes = cfg.profile.crashes();
    let clients: Vec<_> = (0..timing.think_mean_ms.len())
        .map(|c| sched::spawn(client_task(Rc::clone(&world), c, Rc::clone(&timing), crashes)))
        .collect();
    let sync_rng = ChaCha8Rng::seed_from_u64(timing.sync_seed);
    let syncer = sched::spawn(sync_task(Rc::clone(&world), sync_rng));
    for c in clients {
        c.join().await;
    }
    world.borrow_mut().stop = true;
    syncer.join().await;
    let mut w = world.borrow_mut();
    if w.report.failure.is_none() && !w.lost {
        let last = timing.final_crash();
        if let Err(msg) = guarded(&mut w, |w| w.finish(sched::elapsed(), &last)) {
            w.report.failure = Some(format!("final check: {msg}"));
        }
    }
    w.take_report()
}

/// A client: think, then take the next operation of the list and apply it (under the lock);
/// if the schedule has a crash follow that op, cut the power (`crash_after_op`); then think
/// as long as the op's key says. No client takes an op while a crash is pending, so a crash
/// after op k sees the ops up to k and nothing after them.
async fn client_task(world: Shared, client: usize, timing: Rc<Timing>, crashes: bool) {
    let mut think = Duration::from_millis(timing.first_think_ms[client]);
    loop {
        sched::sleep(think).await;
        while world.borrow().crash_pending {
            sched::sleep(CRASH_PENDING_POLL).await;
        }
        let step = guarded(&mut world.borrow_mut(), |w| w.client_step(client, sched::elapsed()));
        let key = match step {
            Ok(Some(key)) => key,
            Ok(None) => return,
            Err(msg) => return world.borrow_mut().fail(msg),
        };
        if let Some(plan) = crashes.then(|| timing.crash_after(key)).flatten() {
            crash_after_op(&world, &plan).await;
        }
        think = timing.think_after(client, key);
    }
}

/// Power cut after an op: at once, or (mid-sync plans) after waiting, bounded, for a sync to
/// start and cutting a little into it. Other clients hold off meanwhile (`crash_pending`).
async fn crash_after_op(world: &Shared, plan: &CrashPlan) {
    if let Some(into) = plan.mid_sync {
        assert!(into <= Duration::from_micros(MID_SYNC_INTO_US_MAX), "{into:?}");
        world.borrow_mut().crash_pending = true;
        let mut waited = Duration::ZERO;
        while !world.borrow().syncing_now() && waited < MID_SYNC_WAIT_MAX {
            sched::sleep(sched::SLEEP_MIN).await;
            waited += sched::SLEEP_MIN;
        }
        sched::sleep(into).await;
    }
    let mut w = world.borrow_mut();
    w.crash_pending = false;
    if w.stop {
        return;
    }
    if let Err(msg) = guarded(&mut w, |w| w.crash(sched::elapsed(), plan)) {
        w.fail(msg);
    }
}

/// The txg sync thread: every tick, if the txg timer or a dirty limit asks for it, quiesce
/// the open txg and sync it one phase at a time, sleeping each phase's disk latency.
async fn sync_task(world: Shared, mut rng: ChaCha8Rng) {
    loop {
        sched::sleep(SYNC_TICK).await;
        let started = guarded(&mut world.borrow_mut(), |w| w.sync_start(sched::elapsed()));
        match started {
            Ok(true) => {}
            Ok(false) => {
                if world.borrow().stop {
                    return;
                }
                continue;
            }
            Err(msg) => return world.borrow_mut().fail(msg),
        }
        loop {
            let latency = world.borrow().phase_latency(&mut rng);
            sched::sleep(latency).await;
            let stepped = guarded(&mut world.borrow_mut(), |w| w.sync_one_step(sched::elapsed()));
            match stepped {
                Ok(true) => {}
                Ok(false) => break,
                Err(msg) => return world.borrow_mut().fail(msg),
            }
        }
    }
}

/// Run `f` on the world, turning a panic (a broken engine or oracle invariant) into a
/// failure so the trace up to it survives. The run stops after it.
fn guarded<T>(
    world: &mut World,
    f: impl FnOnce(&mut World) -> Result<T, String>,
) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(world))) {
        Ok(r) => r,
        Err(panic) => Err(format!("panic: {}", panic_message(&*panic))),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_owned())
}

/// How the engine answered an operation.
enum Applied {
    /// As the model did; true if the op succeeded (false: both refused it alike).
    Ok(bool),
    /// A read failed (detection): the engine refused and changed nothing.
    ReadError(String),
    /// A write or flush failed during a sync: the pool is suspended.
    Suspended(String),
    /// The pool could not be imported again (unrestricted profile only: detection).
    Lost(String),
    /// Anything else: a violation.
    Violation(String),
}

/// A model the pool may equal after a crash or re-import, and why.
struct Candidate {
    what: String,
    model: Rc<Model>,
}

/// A candidate with the intent-log replay an import reported applied to it.
struct Replayed {
    candidate: Candidate,
    /// Fsynced operations the replay left out, per filesystem.
    lost: Vec<String>,
}

/// Everything a run shares between its tasks, behind one lock (a `RefCell`: the run is one
/// OS thread and no borrow is held across an await).
struct World {
    spa: Option<Spa>,
    disk: SimDisk,
    model: Model,
    /// The model as of the last committed txg, and that txg.
    committed: Rc<Model>,
    committed_txg: u64,
    /// The syncing txg and the model as of its quiesce.
    syncing: Option<(u64, Rc<Model>)>,
    /// The last sync phase finished of the syncing txg.
    sync_phase: Option<SyncPhase>,
    /// Models of committed txgs, with the disk's write serial when each committed
    /// (unrestricted profile only).
    history: BTreeMap<u64, (Rc<Model>, u64)>,
    /// Rewind imports of this pool: (the txg loaded, sectors written after it committed),
    /// for the integrity walk (`integrity::Damage::rewinds`).
    rewinds: Vec<(u64, std::collections::BTreeSet<u64>)>,
    /// Imports so far (each gets its own guid seed).
    imports: u64,
    /// Operations of txgs after the last commit that the intent logs may hold.
    logged: LogTracker,
    /// The workload has fsync ops: keep `logged` (else no log is ever written).
    track_log: bool,
    ops: Vec<KeyedOp>,
    next_op: usize,
    /// A crash after an op waits for a sync: no client takes the next op meanwhile.
    crash_pending: bool,
    trace: Trace,
    report: SeedReport,
    profile: Profile,
    spa_cfg: SpaConfig,
    dirty_sync_bytes: u64,
    /// Tasks stop at their next wake-up.
    stop: bool,
    /// The pool is gone (unrestricted: import failed, detected); the run ends early.
    lost: bool,
    /// The second pool that receives `SEND_FLAG_REMOTE` streams.
    backup: Backup,
    /// The backup pool was lost (unrestricted damage, detected): remote receives stop.
    backup_lost: bool,
}

impl World {
    fn start(
        seed: u64,
        seeds: &Seeds,
        ops: Vec<KeyedOp>,
        cfg: &SimConfig,
        timing: &Timing,
        verbose: bool,
    ) -> Result<Self, String> {
        // Verbose runs record disk events to show faults in the trace (recording draws
        // nothing from the disk's generator, so the run is the same).
        let disk_cfg = DiskConfig {
            faults: FaultConfig::NONE,
            record_events: verbose,
            ..DiskConfig::default()
        };
        let device_bytes = device_bytes_for(seed, cfg);
        let disk = SimDisk::new(device_bytes, disk_cfg, seeds.disk);
        let spa_cfg = SpaConfig {
            guid_seed: seed,
            now_secs: HOST_EPOCH_SECS,
            dirty_bytes_max: DIRTY_BYTES_MAX_SIM,
            txg_timeout_secs: TXG_TIMEOUT_SECS_SIM,
        };
        let spa = Spa::create(Box::new(disk.clone()), SIM_POOL, spa_cfg)
            .map_err(|e| format!("create: {e}"))?;
        // The disk draws its faults (faults, unrestricted profiles) from its own generator in
        // I/O order, not keyed to ops: a shrunk list may see other faults than the full seed.
        // Crashes (all crashing profiles) are keyed (`schedule`, `SimDisk::crash_seeded`).
        disk.set_faults(cfg.profile.fault_config());
        let model = Model::new(SIM_POOL);
        let backup = Backup::new(seeds.backup, cfg.profile, spa_cfg)?;
        let committed_txg = spa.last_synced_txg();
        let track_log = ops.iter().any(|(_, op)| matches!(op, Op::Fsync { .. }));
        let mut trace = Trace::new(verbose);
        trace.note(&format!(
            "seed {seed} profile {} on {:?}, a disk of {device_bytes} B: {} ops, {} clients \
             (think means {:?} ms), soft dirty limit {} B",
            cfg.profile,
            cfg.executor,
            ops.len(),
            timing.think_mean_ms.len(),
            timing.think_mean_ms,
            timing.dirty_sync_bytes
        ));
        Ok(Self {
            spa: Some(spa),
            disk,
            committed: Rc::new(model.clone()),
            model,
            committed_txg,
            syncing: None,
            sync_phase: None,
            history: BTreeMap::new(),
            rewinds: Vec::new(),
            imports: 0,
            logged: LogTracker::default(),
            track_log,
            ops,
            next_op: 0,
            crash_pending: false,
            trace,
            report: SeedReport { seed, ..SeedReport::default() },
            profile: cfg.profile,
            spa_cfg,
            dirty_sync_bytes: timing.dirty_sync_bytes,
            stop: false,
            lost: false,
            backup,
            backup_lost: false,
        })
    }

    /// Verbose runs: move the disk's fault events since the last call into the trace.
    fn disk_details(&mut self) {
        if !self.trace.is_verbose() {
            return;
        }
        let Some(rec) = self.disk.take_recording() else { return };
        for ev in &rec.events {
            if let crate::disk::DiskEvent::Fault(f) = ev {
                self.trace.detail(&format!("disk fault: {f:?}"));
            }
        }
        let _base = self.disk.start_recording();
    }

    /// True while a txg is syncing.
    fn syncing_now(&self) -> bool {
        self.spa.as_ref().is_some_and(|s| s.syncing_txg().is_some())
    }

    fn spa(&mut self) -> &mut Spa {
        self.spa.as_mut().expect("invariant: a pool is imported outside crash and recovery")
    }

    /// Faulty profiles: engine read errors are detections, suspensions are recovered.
    fn lenient(&self) -> bool {
        matches!(self.profile, Profile::Faults | Profile::Unrestricted)
    }

    fn fail(&mut self, msg: String) {
        if self.report.failure.is_none() {
            self.trace.note(&format!("FAIL: {}", msg.replace('\n', " ")));
            self.report.failure = Some(msg);
        }
        self.stop = true;
    }

    fn set_clock(&mut self, at: Duration) {
        if let Some(spa) = self.spa.as_mut() {
            spa.set_time(HOST_EPOCH_SECS + at.as_secs());
        }
    }

    fn take_report(&mut self) -> SeedReport {
        let b = &self.backup.report;
        self.report.backup_crashes = b.crashes;
        self.report.backup_crash_states = b.mid_recv_states;
        self.report.pools_recreated += b.recreated;
        self.report.checks += b.checks;
        self.report.detections += b.detections;
        self.report.unmodelled = self.lost;
        let counters = self.disk.counters();
        self.trace.note(&format!("faults injected: {counters:?}"));
        let mut report = std::mem::take(&mut self.report);
        report.faults = counters.total();
        report.trace_hash = self.trace.hash();
        report.trace = self.trace.lines().to_vec();
        report
    }

    /// Apply the next operation for `client`: its key, or None when the list is exhausted or
    /// the run stopped.
    fn client_step(&mut self, client: usize, at: Duration) -> Result<Option<OpKey>, String> {
        if self.stop || at > SIM_VIRTUAL_TIME_MAX {
            return Ok(None);
        }
        assert!(!self.crash_pending, "an op started while a crash was pending");
        let Some((key, op)) = self.ops.get(self.next_op).cloned() else { return Ok(None) };
        // Ops are named by their key (their index in the generated list) in the trace, the
        // intent-log bookkeeping and failures, so a shrunk list names them as the full one.
        let i = key as usize;
        self.next_op += 1;
        self.set_clock(at);
        let spa = self.spa();
        let ctx = OpContext {
            client,
            at,
            open_txg: spa.open_txg(),
            syncing_txg: spa.syncing_txg(),
            synced_txg: spa.last_synced_txg(),
        };
        if ctx.syncing_txg.is_some() {
            self.report.ops_while_syncing += 1;
        }
        // The model before the op: for recovery under faults, and for the ops whose space
        // check may sync txgs before they change anything (the committed state is then this).
        let presync =
            matches!(op, Op::Write { .. } | Op::ObjectAlloc { .. } | Op::ObjectClaim { .. });
        let before = ((self.lenient() && !matches!(op, Op::Read { .. })) || presync)
            .then(|| Rc::new(self.model.clone()));
        let applied =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.apply(&op, key, at)))
                .unwrap_or_else(|p| Applied::Violation(format!("panic: {}", panic_message(&*p))));
        self.report.ops += 1;
        let outcome = match &applied {
            Applied::Ok(true) => "ok".to_owned(),
            Applied::Ok(false) => "refused (as the model)".to_owned(),
            Applied::ReadError(m) => format!("read error (detected): {m}"),
            Applied::Suspended(m) => format!("pool suspended (detected): {m}"),
            Applied::Lost(m) => format!("pool lost (detected): {m}"),
            Applied::Violation(m) => format!("VIOLATION: {m}"),
        };
        self.trace.op(i, &op, &ctx, &outcome.replace('\n', " "));
        self.disk_details();
        self.after_op(i, &op, applied, before, ctx.open_txg, at)
            .map_err(|m| format!("op #{i} {op:?}: {m}"))?;
        Ok((!self.stop).then_some(key))
    }

    fn after_op(
        &mut self,
        i: usize,
        op: &Op,
        applied: Applied,
        before: Option<Rc<Model>>,
        open_txg: u64,
        at: Duration,
    ) -> Result<(), String> {
        match applied {
            Applied::Ok(succeeded) => {
                if succeeded {
                    // A space check that synced the open txg before the change put the change
                    // (and its log record) in a later txg, still open and dirty.
                    let spa = self.spa();
                    let presynced = spa.last_synced_txg() >= open_txg && spa.is_dirty();
                    let txg = if presynced { spa.open_txg() } else { open_txg };
                    self.note_logged(i, op, txg);
                }
            }
            Applied::ReadError(_) => {
                self.report.detections += 1;
                if let Some(b) = &before {
                    self.model = (**b).clone();
                }
            }
            Applied::Suspended(_) => {
                self.report.detections += 1;
                let mut extra = vec![];
                if let Some(b) = before {
                    extra.push(Candidate { what: format!("model before op #{i}"), model: b });
                }
                let after = Rc::new(self.model.clone());
                extra.push(Candidate { what: format!("model after op #{i}"), model: after });
                return self.recover(extra, at);
            }
            Applied::Lost(m) => {
                self.report.detections += 1;
                return self.recreate(at, &format!("pool lost (detected): {m}"));
            }
            Applied::Violation(m) => return Err(m),
        }
        self.reconcile(before.as_ref())?;
        self.check_pool(op.changes_snapshots_or_heads())
    }

    /// Run `op` on engine and model. Pool-level ops (sync, sync steps, export/import) are
    /// run here so the durability bookkeeping sees every quiesce and commit; the others go
    /// through `Op::apply` and its divergence is classified.
    fn apply(&mut self, op: &Op, key: OpKey, at: Duration) -> Applied {
        match op {
            Op::Sync => match self.spa().txg_sync() {
                Ok(_) => {
                    self.model.synced_fully();
                    Applied::Ok(true)
                }
                Err(e) => self.classify_spa(&e),
            },
            Op::SyncStep { steps } => self.sync_steps(*steps, at),
            Op::ExportImport => self.export_import(at),
            Op::SendRecv { .. } => self.send_recv(op, key),
            _ => {
                let spa = self.spa.as_mut().expect("invariant: pool imported");
                match op.apply_outcome(spa, &mut self.model) {
                    Ok(o) => {
                        self.report.space_refused += u64::from(o == Outcome::NoSpace);
                        Applied::Ok(o == Outcome::Applied)
                    }
                    Err(d) => self.classify(&d),
                }
            }
        }
    }

    /// `Op::SendRecv`: into the backup pool when flagged remote (and it is there), else
    /// into this pool; the counters go to the report. The backup's choices follow `key`.
    fn send_recv(&mut self, op: &Op, key: OpKey) -> Applied {
        let Op::SendRecv { flags, .. } = op else { unreachable!("dispatched on SendRecv") };
        let lenient = self.lenient();
        let spa = self.spa.as_mut().expect("invariant: pool imported");
        let remote = flags & SEND_FLAG_REMOTE != 0;
        let r = if remote && !self.backup_lost {
            match self.backup.send_recv(op, key, spa, &mut self.model, lenient) {
                Ok(Some(r)) => Ok(r),
                Ok(None) => {
                    self.trace.detail("backup pool lost (detected): remote receives stop");
                    self.backup_lost = true;
                    return Applied::Ok(false);
                }
                Err(m) => return Applied::Violation(m),
            }
        } else {
            op.send_recv(spa, &mut self.model, Dest::Same, lenient)
        };
        if self.spa().is_suspended() && self.lenient() {
            return Applied::Suspended(format!("during a send or receive: {r:?}"));
        }
        match r {
            Ok(r) => {
                self.report.streams_sent += r.sent;
                self.report.streams_received += r.received;
                self.report.streams_refused += r.refused;
                self.report.damaged_refused += r.damaged_refused;
                self.report.space_refused += r.space_refused;
                self.report.detections += r.detections;
                Applied::Ok(r.received > 0)
            }
            Err(d) => self.classify(&d),
        }
    }

    fn classify_spa(&mut self, e: &SpaError) -> Applied {
        if self.spa().is_suspended() && self.lenient() {
            return Applied::Suspended(e.to_string());
        }
        Applied::Violation(format!("engine failed: {e}"))
    }

    fn classify(&mut self, d: &Divergence) -> Applied {
        if !self.lenient() {
            return Applied::Violation(d.to_string());
        }
        if self.spa().is_suspended() {
            return Applied::Suspended(d.what.clone());
        }
        if d.what.contains("engine Err(Io)") {
            return Applied::ReadError(d.what.clone());
        }
        Applied::Violation(d.to_string())
    }

    /// `Op::SyncStep`: quiesce (snapshotting the model) and run `steps` sync phases.
    fn sync_steps(&mut self, steps: u8, at: Duration) -> Applied {
        match self.spa().txg_quiesce() {
            Ok(Some(txg)) => self.note_quiesce(txg, at, "sync-step op"),
            Ok(None) => {}
            Err(e) => return self.classify_spa(&e),
        }
        for _ in 0..steps {
            match self.spa().sync_step() {
                Ok(step) => {
                    if let Err(m) = self.note_step(step, at) {
                        return Applied::Violation(m);
                    }
                }
                Err(e) => return self.classify_spa(&e),
            }
        }
        Applied::Ok(true)
    }

    /// `Op::ExportImport`, with this run's pool config on import. A clean export commits
    /// everything, so the import must give the model as of now (under `unrestricted` any
    /// committed txg the pool can still verify).
    fn export_import(&mut self, at: Duration) -> Applied {
        let spa = self.spa.take().expect("invariant: pool imported");
        if let Err(e) = spa.export() {
            // The pool is dropped; `recover` imports it again from the disk.
            if self.lenient() {
                return Applied::Suspended(format!("export: {e}"));
            }
            return Applied::Violation(format!("export failed: {e}"));
        }
        if let Some((t, m)) = self.syncing.take() {
            self.remember(t, m);
        }
        self.model.touch_all();
        self.committed = Rc::new(self.model.clone());
        // The logged ops stay: if damage loses the export's last txg, import loads the one
        // before and replays them (`adopt` drops them once a state is matched).
        match self.import_and_match(vec![], at, "export and import") {
            Ok(()) if self.lost => Applied::Lost("import after export failed".to_owned()),
            Ok(()) => Applied::Ok(true),
            Err(e) => Applied::Violation(e),
        }
    }

    /// After a successful op: keep it if an intent log holds it; a returned fsync makes every
    /// kept op of its filesystem one that must survive a crash.
    /// `txg`: the txg open when the op started (its changes and log record go there; an op
    /// that syncs inline does so after logging).
    fn note_logged(&mut self, i: usize, op: &Op, txg: u64) {
        self.report.fsyncs += u64::from(matches!(op, Op::Fsync { .. }));
        if self.track_log {
            self.logged.note(i, op, &self.model, txg);
        }
    }

    /// `import`; under faults, an import whose intent-log replay could not be written (a
    /// write refused while it synced the replay: the disk still holds the old state and the
    /// log) is detected and tried again, as an administrator would, up to
    /// `IMPORT_TRIES_MAX` times.
    fn import_retrying(&mut self, at: Duration) -> Result<(), String> {
        let mut tries = 1;
        loop {
            match self.import(at) {
                Err(ImportError::Replay(e)) if self.lenient() && tries < IMPORT_TRIES_MAX => {
                    tries += 1;
                    self.report.detections += 1;
                    self.trace.at(at, &format!("import failed (detected), trying again: {e}"));
                }
                r => return r.map_err(|e| e.to_string()),
            }
        }
    }

    fn import(&mut self, at: Duration) -> Result<(), ImportError> {
        assert!(self.spa.is_none(), "import over a live pool");
        // A fresh guid seed per import, as a host's random source gives (`SpaConfig`).
        self.imports += 1;
        let cfg = SpaConfig {
            now_secs: HOST_EPOCH_SECS + at.as_secs(),
            guid_seed: mix(self.spa_cfg.guid_seed ^ self.imports.rotate_left(32)),
            ..self.spa_cfg
        };
        let spa = Spa::import(Box::new(self.disk.clone()), cfg, None)?;
        let report = spa.import_report();
        let ops_replayed: usize = report.replayed.values().sum();
        if ops_replayed > 0 {
            self.report.log_replays += 1;
            self.report.ops_replayed += ops_replayed as u64;
        }
        let replayed = report.replayed.iter().map(|(fs, n)| format!(" {fs}: {n}"));
        let replayed = parenthesized("intent-log ops replayed:", replayed);
        let rejected = report.rejected.iter().map(|(t, e)| format!(" txg {t}: {e};"));
        let rejected = parenthesized("newer txgs rejected:", rejected);
        let failed = report.replay_errors.iter().map(|(fs, e)| format!(" {fs}: {e};"));
        let failed = parenthesized("replay stopped (detected):", failed);
        let discarded = report.log_discarded.iter().map(|(fs, n)| format!(" {fs}: {n}"));
        let failed = failed + &parenthesized("rewound, logged ops discarded:", discarded);
        self.report.detections += report.replay_errors.len() as u64;
        let txg = report.loaded_txg;
        self.trace.at(at, &format!("imported txg {txg}{replayed}{rejected}{failed}"));
        self.spa = Some(spa);
        self.report.checks += 1;
        Ok(())
    }
}

/// `" (what items...)"`, or nothing when there are no items.
fn parenthesized(what: &str, items: impl Iterator<Item = String>) -> String {
    let items: String = items.collect();
    if items.is_empty() {
        String::new()
    } else {
        format!(" ({what}{items})")
    }
}
