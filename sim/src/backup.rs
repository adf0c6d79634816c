//! The backup target of a simulation: a second pool (`bk`) on its own simulated disk, with
//! its own volatile write cache, the run's fault profile and its own crashes, that receives
//! the streams of `Op::SendRecv` ops flagged `SEND_FLAG_REMOTE` (`oracle::replica` does the
//! send, the receive and the per-stream checks against the model). Here, after each such
//! op: the whole backup pool against its model (conformance, and integrity where the disk
//! keeps its promises); at seeded ops (choices keyed to the op, `schedule`) a crash state in
//! the middle of the receive (the
//! disk's writes during the receive are recorded and replayed up to a seeded event, with a
//! seeded subset of the cached sectors kept: the pool must import and equal the model from
//! before or from after the receive); and at seeded ops a power cut right after it (a
//! receive that returned is durable: the pool must import and equal the model). Neighbours:
//! run.rs (owns one `Backup` per run), disk.rs, lenient.rs.

use engine::{Spa, SpaConfig};
use oracle::model::Model;
use oracle::op::Op;
use oracle::replica::{Dest, SendRecvReport};
use oracle::{conformance, integrity};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::disk::{image_at, DiskConfig, SimDisk};
use crate::fault::{FaultConfig, Profile};
use crate::run::mix;
use crate::schedule::{key_rng, OpKey, Purpose};

/// Name of the backup pool.
pub const BACKUP_POOL: &str = "bk";
/// Size of the backup pool's disk.
pub const BACKUP_DEVICE_BYTES: u64 = 32 << 20;
/// Share of remote receives followed by a power cut of the backup disk, percent.
pub const BACKUP_CRASH_AFTER_PCT: u32 = 25;
/// Share of remote receives whose recording yields a crash state to check, percent.
pub const BACKUP_MID_RECV_CRASH_PCT: u32 = 30;

const _: () = assert!(BACKUP_CRASH_AFTER_PCT <= 100 && BACKUP_MID_RECV_CRASH_PCT <= 100);

/// Counters of the backup side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// Power cuts of the backup disk (after a receive, or to recover a suspended pool).
    pub crashes: u64,
    /// Crash states in the middle of a receive imported and checked.
    pub mid_recv_states: u64,
    /// Checks of the backup pool (conformance, integrity, imports).
    pub checks: u64,
    /// Errors the backup pool returned because of injected damage.
    pub detections: u64,
    /// Backup pools lost to unrestricted damage and created anew.
    pub recreated: u64,
}

/// The backup pool, its disk and its model.
pub struct Backup {
    spa: Option<Spa>,
    disk: SimDisk,
    model: Model,
    /// Base of the choices keyed to ops.
    key_seed: u64,
    profile: Profile,
    spa_cfg: SpaConfig,
    /// What the backup side did.
    pub report: BackupReport,
}

impl Backup {
    /// A fresh backup pool on its own disk, seeded by `seed`, faulty as `profile` says.
    ///
    /// # Errors
    /// Pool creation failed.
    pub fn new(seed: u64, profile: Profile, spa_cfg: SpaConfig) -> Result<Self, String> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let disk = SimDisk::new(BACKUP_DEVICE_BYTES, DiskConfig::default(), rng.random());
        let spa_cfg = SpaConfig { guid_seed: rng.random(), ..spa_cfg };
        let spa = Spa::create(Box::new(disk.clone()), BACKUP_POOL, spa_cfg)
            .map_err(|e| format!("backup pool: {e}"))?;
        disk.set_faults(profile.fault_config());
        Ok(Self {
            spa: Some(spa),
            disk,
            model: Model::new(BACKUP_POOL),
            key_seed: rng.random(),
            profile,
            spa_cfg,
            report: BackupReport::default(),
        })
    }

    fn lenient(&self) -> bool {
        self.profile != Profile::None && self.profile != Profile::Crash
    }

    /// Run `op` (an `Op::SendRecv`, keyed `key`) from `src`/`model` into this pool, then its
    /// checks. `Ok(None)`: the backup pool is gone (unrestricted profile: detected, not
    /// modelled).
    ///
    /// # Errors
    /// A violation, described.
    pub fn send_recv(
        &mut self,
        op: &Op,
        key: OpKey,
        src: &mut Spa,
        model: &mut Model,
        src_lenient: bool,
    ) -> Result<Option<SendRecvReport>, String> {
        let before = self.model.clone();
        // A full receive that replaces the target destroys it first: a crash between the
        // two finds neither the old nor the new state but the target gone.
        let mut between = before.clone();
        if let Op::SendRecv { snap, .. } = op {
            let to = oracle::op::resolve(model, snap);
            let fs = to.split_once('@').map_or(to.as_str(), |(fs, _)| fs);
            let _ = between.dataset_destroy(&oracle::replica::target_fs(fs, BACKUP_POOL, false));
        }
        let mut rng = key_rng(self.key_seed, key, Purpose::Backup);
        let mid_crash = rng.random_range(0..100) < BACKUP_MID_RECV_CRASH_PCT;
        let crash_after = rng.random_range(0..100) < BACKUP_CRASH_AFTER_PCT;
        let state_seed: u64 = rng.random();
        let crash_seed: u64 = rng.random();
        let base = mid_crash.then(|| self.disk.start_recording());
        let lenient = src_lenient || self.lenient();
        let spa = self.spa.as_mut().expect("invariant: backup pool imported");
        let r = op.send_recv(src, model, Dest::Other(spa, &mut self.model), lenient);
        let recording = base.is_some().then(|| self.disk.take_recording()).flatten();
        let r = r.map_err(|d| format!("backup: {d}"))?;
        if self.spa.as_ref().is_some_and(Spa::is_suspended) {
            self.report.detections += 1;
            if !self.recover(&before, "suspended during a receive", crash_seed)? {
                return Ok(None);
            }
            return Ok(Some(r));
        }
        if let (Some(base), Some(rec)) = (base, recording) {
            if !rec.events.is_empty() && self.profile != Profile::Unrestricted {
                let mut earlier: Vec<&Model> = vec![&before, &between];
                earlier.extend(r.states.iter());
                self.mid_recv_state(&base, &rec.events, state_seed, &earlier)?;
            }
        }
        self.check()?;
        let cut = crash_after && self.profile.crashes();
        if cut && !self.recover(&self.model.clone(), "", crash_seed)? {
            return Ok(None);
        }
        Ok(Some(r))
    }

    /// A crash state inside the receive just made: replay the recorded writes up to a
    /// seeded event, keep a seeded subset of the cached sectors, import, and match.
    fn mid_recv_state(
        &mut self,
        base: &[u8],
        events: &[crate::disk::DiskEvent],
        seed: u64,
        earlier: &[&Model],
    ) -> Result<(), String> {
        let at = usize::try_from(mix(seed) % events.len() as u64).expect("fits");
        let keep =
            |write: usize, sector: usize| mix(seed ^ (write as u64) << 24 ^ sector as u64) & 1 == 0;
        let image = image_at(base, events, at, &keep);
        let disk = SimDisk::from_image(
            image,
            DiskConfig { faults: FaultConfig::NONE, ..DiskConfig::default() },
            seed,
        );
        let mut spa = Spa::import(Box::new(disk), self.spa_cfg, None).map_err(|e| {
            format!("backup crash state at event {at}/{}: import: {e}", events.len())
        })?;
        self.report.mid_recv_states += 1;
        let mut errors = Vec::new();
        let after = [("after the receive", &self.model)];
        let earlier = earlier.iter().map(|m| ("before the receive, or between its steps", *m));
        for (what, m) in after.into_iter().chain(earlier) {
            match check_pool(&mut spa, m, self.profile, true) {
                Ok(d) => {
                    self.report.detections += d;
                    return Ok(());
                }
                Err(e) => errors.push(format!("[{what}] {e}")),
            }
        }
        Err(format!(
            "backup crash state at event {at}/{} of a receive matches neither the model before \
             nor after it: {}",
            events.len(),
            errors.join(" | ")
        ))
    }

    /// Power cut of the backup disk (its choices seeded by `crash_seed`), import, and match
    /// `want` (or the current model). False if the pool is gone (unrestricted: detected).
    fn recover(&mut self, want: &Model, why: &str, crash_seed: u64) -> Result<bool, String> {
        self.report.crashes += 1;
        drop(self.spa.take());
        let _ = self.disk.crash_seeded(crash_seed);
        // A fresh guid seed per import, as a host's random source gives (`SpaConfig`).
        let cfg = SpaConfig { guid_seed: mix(self.spa_cfg.guid_seed ^ crash_seed), ..self.spa_cfg };
        let spa = match Spa::import(Box::new(self.disk.clone()), cfg, None) {
            Ok(spa) => spa,
            Err(_) if self.profile == Profile::Unrestricted => {
                self.report.detections += 1;
                return Ok(self.recreate());
            }
            Err(e) => return Err(format!("backup import after a crash{why}: {e}")),
        };
        self.spa = Some(spa);
        self.report.checks += 1;
        let profile = self.profile;
        let spa = self.spa.as_mut().expect("just imported");
        let mut errors = Vec::new();
        for m in [want.clone(), self.model.clone()] {
            match check_pool(spa, &m, profile, true) {
                Ok(d) => {
                    self.report.detections += d;
                    self.model = m;
                    self.model.touch_all();
                    return Ok(true);
                }
                Err(e) => errors.push(e),
            }
        }
        if self.profile == Profile::Unrestricted {
            self.report.detections += 1;
            return Ok(self.recreate());
        }
        Err(format!(
            "backup durability violation after a crash{why}: the pool matches no allowed \
             state: {}",
            errors.join(" | ")
        ))
    }

    /// Unrestricted damage lost the backup pool (detected): create a new one on the disk
    /// with a new model. False if even that fails.
    fn recreate(&mut self) -> bool {
        drop(self.spa.take());
        self.report.recreated += 1;
        let cfg = SpaConfig {
            guid_seed: mix(self.spa_cfg.guid_seed ^ self.report.recreated),
            ..self.spa_cfg
        };
        let Ok(spa) = Spa::create(Box::new(self.disk.clone()), BACKUP_POOL, cfg) else {
            return false;
        };
        self.spa = Some(spa);
        self.model = Model::new(BACKUP_POOL);
        true
    }

    /// The whole backup pool against its model, and its integrity where the disk keeps its
    /// promises.
    fn check(&mut self) -> Result<(), String> {
        let lenient = self.lenient();
        let spa = self.spa.as_mut().expect("invariant: backup pool imported");
        self.report.checks += 1;
        self.report.detections += check_pool(spa, &self.model, self.profile, false)?;
        if !lenient && spa.syncing_txg().is_none() {
            self.report.checks += 1;
            integrity::check(spa).map_err(|e| format!("backup integrity: {e}"))?;
        }
        Ok(())
    }
}

/// Conformance of `spa` against `model` (strict, or lenient: errors are detections);
/// `imported`: just imported from a crash state (`conformance::check_imported`).
fn check_pool(
    spa: &mut Spa,
    model: &Model,
    profile: Profile,
    imported: bool,
) -> Result<u64, String> {
    if profile != Profile::None && profile != Profile::Crash {
        return crate::lenient::check(spa, model, true, profile == Profile::Unrestricted);
    }
    let r = if imported {
        conformance::check_imported(spa, model)
    } else {
        conformance::check(spa, model)
    };
    r.map(|()| 0).map_err(|d| d.to_string())
}
