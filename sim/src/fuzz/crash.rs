//! Target `crash`: operations on a pool on a recording `SimDisk`, power lost at the input's
//! points with the cached sectors it chooses kept. Input: `CrashInput` (write-cache size;
//! steps: ops, crashes, fsyncs; what the final crash keeps). Must hold: the pool imports and
//! equals the model as of the last committed txg or the one being synced, plus the intent-log
//! replay the import reports, which reaches every fsynced op; conformance after every op,
//! integrity after every commit.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use engine::vdev::BlockDevice;
use engine::{MemoryDevice, Spa, SpaConfig};
use oracle::model::Model;
use oracle::op::Op;
use oracle::{conformance, integrity};

use crate::disk::{DiskConfig, Replayer, SimDisk};
use crate::intent::LogTracker;

use super::{ops_cfg, FuzzObj, FuzzOp, FuzzTarget, CRASH_DEVICE_BYTES, CRASH_DISK_SEED};
use super::{FUZZ_CRASHES_MAX, FUZZ_OPS_MAX, OPS_POOL};

// ---------------------------------------------------------------------------------------
// Crashes: operations on a SimDisk, power lost at chosen moments with chosen cached sectors.
// ---------------------------------------------------------------------------------------

/// Which cached sectors survive a crash (`ordinal` = position of the write in the cache).
#[derive(Arbitrary, Clone, Debug)]
enum Keep {
    All,
    Nothing,
    InOrder(u8),
    Pattern(u64),
    PerWrite(Vec<u8>),
}

impl Keep {
    fn keeps(&self, ordinal: usize, sector: usize) -> bool {
        match self {
            Self::All => true,
            Self::Nothing => false,
            Self::InOrder(n) => ordinal < usize::from(*n),
            Self::Pattern(bits) => (bits >> ((ordinal * 7 + sector) % 64)) & 1 == 1,
            Self::PerWrite(v) if v.is_empty() => true,
            Self::PerWrite(v) => match v[ordinal % v.len()] {
                0 => false,
                u8::MAX => true,
                torn => sector < usize::from(torn),
            },
        }
    }
}

#[derive(Arbitrary, Debug)]
enum CrashStep {
    Op(FuzzOp),
    Crash {
        mid_sync_steps: u8,
        keep: Keep,
    },
    /// An fsync: every change to the filesystem so far must survive the next crash.
    Fsync {
        fs: FuzzTarget,
        obj: FuzzObj,
    },
}

#[derive(Arbitrary, Debug)]
struct CrashInput {
    cache_writes: u8,
    steps: Vec<CrashStep>,
    last: Keep,
}

/// A crash run: engine on a recording SimDisk, the model, and the model as of the last
/// committed txg (run.rs's `Sim`, with crash choices from the input instead of a seed).
struct CrashSim {
    spa: Spa,
    disk: SimDisk,
    disk_cfg: DiskConfig,
    model: Model,
    durable: Model,
    synced: u64,
    crashes: usize,
    /// Operations of uncommitted txgs the intent logs may hold.
    log: LogTracker,
}

impl CrashSim {
    fn start(cache_writes: u8) -> Self {
        let disk_cfg = DiskConfig {
            cache_capacity_writes: cache_writes.into(),
            record_events: true,
            ..DiskConfig::default()
        };
        let disk = SimDisk::new(CRASH_DEVICE_BYTES, disk_cfg, CRASH_DISK_SEED);
        let spa = Spa::create(Box::new(disk.clone()), OPS_POOL, ops_cfg())
            .expect("create the crash pool");
        let model = Model::new(OPS_POOL);
        let synced = spa.last_synced_txg();
        let log = LogTracker::default();
        Self { spa, disk, disk_cfg, durable: model.clone(), model, synced, crashes: 0, log }
    }

    fn op(&mut self, i: usize, op: &Op) {
        let open = self.spa.open_txg();
        match op.apply_checked(&mut self.spa, &mut self.model) {
            Ok(true) => self.log.note(i, op, &self.model, open),
            Ok(false) => {}
            Err(d) => panic!("crash: op #{i} {op:?}: {d}"),
        }
        if let Err(d) = conformance::check(&mut self.spa, &self.model) {
            panic!("crash: after op #{i} {op:?}: {d}");
        }
        self.note_sync();
    }

    /// A newly committed txg with nothing dirty: the model as of now is durable.
    fn note_sync(&mut self) {
        let now = self.spa.last_synced_txg();
        if now != self.synced && self.spa.syncing_txg().is_none() && !self.spa.is_dirty() {
            self.synced = now;
            self.durable = self.model.clone();
            self.log.committed(now);
            if let Err(e) = integrity::check(&mut self.spa) {
                panic!("crash: integrity after txg {now}: {e}");
            }
        }
    }

    /// The image if power failed now, keeping the cached sectors `keep` chooses.
    fn crash_image(&self, keep: &Keep) -> Vec<u8> {
        let rec = self.disk.take_recording().expect("invariant: the disk records");
        if rec.events.is_empty() {
            return rec.base_image;
        }
        let mut replay = Replayer::new(rec.base_image, &rec.events);
        replay.advance_to(rec.events.len() - 1);
        let ordinal: BTreeMap<usize, usize> =
            replay.cached_writes().iter().enumerate().map(|(j, &e)| (e, j)).collect();
        replay.image(&|event, sector| keep.keeps(ordinal[&event], sector))
    }

    /// Crash (after `mid_steps` phases of a sync of the open txg), import, and find the
    /// model the pool equals: the last committed txg's, or the one being synced, each plus
    /// the intent-log replay the import reports, which must reach every fsynced op.
    fn crash(&mut self, mid_steps: u8, keep: &Keep) {
        let mut candidates = vec![self.durable.clone()];
        if mid_steps > 0 {
            // The disk injects no fault here, so nothing explains an error: it is a finding.
            let quiesced = self.spa.txg_quiesce();
            let quiesced = quiesced.unwrap_or_else(|e| panic!("crash: quiesce failed: {e}"));
            if quiesced.is_some() {
                candidates.push(self.model.clone());
                for _ in 0..mid_steps {
                    if let Err(e) = self.spa.sync_step() {
                        panic!("crash: sync step failed on a disk without faults: {e}");
                    }
                }
            }
        } else if self.spa.is_dirty() || self.spa.syncing_txg().is_some() {
            candidates.push(self.model.clone());
        }
        let placeholder = Spa::create(
            Box::new(MemoryDevice::new(engine::limits::SPA_MINDEVSIZE)),
            "placeholder",
            SpaConfig::default(),
        )
        .expect("placeholder pool");
        drop(std::mem::replace(&mut self.spa, placeholder).into_device());
        let image = self.crash_image(keep);
        // A fresh disk holding the image (written and flushed: `from_image` would scan every
        // byte, slow under coverage instrumentation).
        self.disk = SimDisk::new(image.len() as u64, self.disk_cfg, CRASH_DISK_SEED);
        let mut dev = self.disk.clone();
        dev.write(0, &image).expect("invariant: the image fits its disk");
        dev.flush().expect("invariant: faults are off");
        // A fresh guid seed per import, as a host's random source gives (`SpaConfig`).
        let cfg = SpaConfig {
            guid_seed: crate::run::mix(ops_cfg().guid_seed ^ self.crashes as u64),
            ..ops_cfg()
        };
        self.spa = Spa::import(Box::new(self.disk.clone()), cfg, None)
            .unwrap_or_else(|e| panic!("crash: import after crash {}: {e}", self.crashes));
        let report = self.spa.import_report().clone();
        let mut errors = Vec::new();
        for c in candidates.iter().rev() {
            let r = match self.log.replay(c, report.loaded_txg, &report.replayed) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let state = r.model.unwrap_or_else(|| c.clone());
            match conformance::check_imported(&mut self.spa, &state) {
                Ok(()) => {
                    assert!(
                        r.lost.is_empty(),
                        "crash: durability violation: fsynced data lost ({}): {}",
                        r.replayed.join(", "),
                        r.lost.join("; ")
                    );
                    self.durable = state.clone();
                    self.model = state;
                    self.synced = self.spa.last_synced_txg();
                    self.log.clear();
                    if let Err(e) = integrity::check(&mut self.spa) {
                        panic!("crash: integrity after import: {e}");
                    }
                    return;
                }
                Err(d) => errors.push(d.to_string()),
            }
        }
        panic!(
            "crash: durability violation: the pool matches no txg in [last committed, last \
             started]: {}",
            errors.join(" | ")
        );
    }
}

/// Target `crash`: operations (at most `FUZZ_OPS_MAX`) on a pool on a recording SimDisk with
/// a write cache of the input's size; at the input's crash points (at most
/// `FUZZ_CRASHES_MAX`, optionally in the middle of a txg sync) power fails, keeping the
/// cached sectors the input chooses (whole writes in order, torn writes, arbitrary subsets).
/// Fsync steps commit intent logs. The pool must import and equal the model as of the last
/// committed txg or the one being synced, plus the intent-log replay import reports, which
/// must reach every op an fsync covered (design.md property 2, `intent::LogTracker`);
/// conformance after every op, integrity after every commit.
pub fn crash(data: &[u8]) {
    let Ok(input) = CrashInput::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let mut sim = CrashSim::start(input.cache_writes);
    for (i, step) in input.steps.iter().take(FUZZ_OPS_MAX).enumerate() {
        match step {
            CrashStep::Op(op) => sim.op(i, &op.to_op()),
            CrashStep::Crash { mid_sync_steps, keep } if sim.crashes < FUZZ_CRASHES_MAX => {
                sim.crashes += 1;
                sim.crash(mid_sync_steps % 8, keep);
            }
            CrashStep::Crash { .. } => {}
            CrashStep::Fsync { fs, obj } => {
                sim.op(i, &Op::Fsync { fs: fs.to_op(), obj: obj.to_op() });
            }
        }
    }
    sim.spa.txg_sync().unwrap_or_else(|e| panic!("crash: final sync: {e}"));
    sim.note_sync();
    sim.crash(0, &input.last);
}
