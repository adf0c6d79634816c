//! The run's txg bookkeeping: what each quiesce, sync phase and commit means for the
//! durability check (the model state a txg holds), the sync task's decisions (timer, dirty
//! limits, phase latencies), and reconciling the syncs an op ran inline. Part of `run`:
//! methods of its `World`.

use super::*;

impl World {
    /// Txg `txg` was handed to syncing: the model now is its state.
    pub(super) fn note_quiesce(&mut self, txg: u64, at: Duration, why: &str) {
        assert!(self.syncing.is_none(), "quiesce of {txg} while {:?} syncs", self.syncing);
        assert!(txg > self.committed_txg, "quiesce of {txg} <= committed {}", self.committed_txg);
        self.syncing = Some((txg, Rc::new(self.model.clone())));
        self.sync_phase = None;
        self.trace.at(at, &format!("quiesce txg {txg} ({why})"));
    }

    /// Account for one `sync_step` result.
    pub(super) fn note_step(&mut self, step: SyncStep, at: Duration) -> Result<(), String> {
        self.disk_details();
        match step {
            SyncStep::Idle => self.sync_phase = None,
            SyncStep::Progress(phase) => {
                self.sync_phase = Some(phase);
                let txg = self.syncing.as_ref().map_or(0, |s| s.0);
                self.trace.at(at, &format!("sync txg {txg}: {phase:?} done"));
            }
            SyncStep::Done(txg) => {
                let (t, model) = self
                    .syncing
                    .take()
                    .ok_or_else(|| format!("txg {txg} committed but its quiesce was never seen"))?;
                if t != txg {
                    return Err(format!("txg {txg} committed while txg {t} was syncing"));
                }
                self.trace.at(at, &format!("sync txg {txg}: committed"));
                self.commit(txg, model)?;
            }
        }
        Ok(())
    }

    /// Txg `txg` committed with state `model`.
    pub(super) fn commit(&mut self, txg: u64, model: Rc<Model>) -> Result<(), String> {
        assert!(txg > self.committed_txg, "commit of {txg} <= {}", self.committed_txg);
        self.committed = Rc::clone(&model);
        self.committed_txg = txg;
        self.logged.committed(txg);
        self.sync_phase = None;
        self.report.txgs += 1;
        self.remember(txg, model);
        self.integrity()
    }

    pub(super) fn remember(&mut self, txg: u64, model: Rc<Model>) {
        if self.profile != Profile::Unrestricted {
            return;
        }
        self.history.insert(txg, (model, self.disk.write_serial()));
        while self.history.len() > HISTORY_TXGS_MAX {
            self.history.pop_first();
        }
    }

    pub(super) fn integrity(&mut self) -> Result<(), String> {
        if self.spa().syncing_txg().is_some() {
            return Ok(());
        }
        let damage = || integrity::Damage {
            sectors: self.disk.budget_ledger().damaged_sectors().clone(),
            device_bytes: engine::vdev::BlockDevice::size_bytes(&self.disk),
            rewinds: self.rewinds.clone(),
        };
        match self.profile {
            Profile::Faults => {
                let (damage, mut view) = (damage(), self.disk.quiet_view());
                integrity::check_damaged(self.spa(), &mut view, damage)
            }
            Profile::Unrestricted => {
                let (damage, mut view) = (damage(), self.disk.quiet_view());
                integrity::check_unbudgeted(self.spa(), &mut view, &damage)
            }
            _ => integrity::check(self.spa()),
        }
        .map_err(|e| format!("integrity: {e}"))?;
        self.report.checks += 1;
        Ok(())
    }

    /// After an op: account for the syncs it ran inline (DSL ops, `Sync`, the dirty limit,
    /// a space check waiting for deferred frees before the change: `before` is the model
    /// then, for the ops that make one).
    pub(super) fn reconcile(&mut self, before: Option<&Rc<Model>>) -> Result<(), String> {
        let spa = self.spa.as_ref().expect("invariant: pool imported");
        let (synced, syncing, dirty) = (spa.last_synced_txg(), spa.syncing_txg(), spa.is_dirty());
        if syncing.is_none() {
            self.sync_phase = None;
        }
        if let Some(t) = syncing {
            if self.syncing.as_ref().map(|s| s.0) != Some(t) {
                return Err(format!("txg {t} started syncing inside an op: its state is unknown"));
            }
        }
        if synced == self.committed_txg {
            return Ok(());
        }
        assert!(synced > self.committed_txg, "synced {synced} < {}", self.committed_txg);
        // The txg that was syncing before the op committed inside it.
        let known = self.syncing.take_if(|(t, _)| *t <= synced);
        if let Some((t, m)) = &known {
            self.remember(*t, Rc::clone(m));
        }
        if !dirty {
            self.committed = Rc::new(self.model.clone());
            self.committed_txg = synced;
            // Ops that changed nothing on disk (a zero-length free) leave the open txg clean
            // but are still logged in it.
            self.logged.committed(synced);
            self.report.txgs += 1;
            self.remember(synced, Rc::clone(&self.committed));
            return self.integrity();
        }
        match (known, before) {
            (Some((t, m)), _) if t == synced => self.commit(t, m),
            (_, Some(b)) => self.commit(synced, Rc::clone(b)),
            _ => Err(format!("txg {synced} committed inside an op with changes still dirty")),
        }
    }

    /// Sync task: start syncing if the timer or a dirty limit asks (or continue a sync a
    /// sync-step op started). True when a txg is syncing.
    pub(super) fn sync_start(&mut self, at: Duration) -> Result<bool, String> {
        if self.stop {
            return Ok(false);
        }
        if at > SIM_VIRTUAL_TIME_MAX {
            return Err(format!("virtual time limit {SIM_VIRTUAL_TIME_MAX:?} reached"));
        }
        self.set_clock(at);
        let soft = self.dirty_sync_bytes;
        let spa = self.spa();
        if spa.syncing_txg().is_some() {
            return Ok(true);
        }
        let why = if spa.sync_wanted() {
            "txg timeout or dirty limit"
        } else if spa.dirty_bytes() >= soft {
            "soft dirty limit"
        } else {
            return Ok(false);
        };
        match spa.txg_quiesce() {
            Ok(Some(txg)) => {
                self.note_quiesce(txg, at, why);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(format!("quiesce of a live pool failed: {e}")),
        }
    }

    /// The disk latency of the next sync phase.
    pub(super) fn phase_latency(&self, rng: &mut ChaCha8Rng) -> Duration {
        let next = self.sync_phase.map_or(Some(SyncPhase::Datasets), SyncPhase::next);
        let flush =
            Duration::from_millis(rng.random_range(FLUSH_LATENCY_MS_MIN..=FLUSH_LATENCY_MS_MAX));
        match next {
            Some(SyncPhase::FlushBlocks | SyncPhase::FlushUberblock) => flush,
            Some(SyncPhase::Datasets) => {
                let bytes = self.spa.as_ref().map_or(0, Spa::dirty_bytes);
                sched::SLEEP_MIN + Duration::from_micros(bytes * 1_000_000 / DISK_BYTES_PER_SEC)
            }
            _ => sched::SLEEP_MIN,
        }
    }

    /// Sync task: run one phase. True while the txg is still syncing.
    pub(super) fn sync_one_step(&mut self, at: Duration) -> Result<bool, String> {
        if self.stop {
            return Ok(false);
        }
        self.set_clock(at);
        match self.spa().sync_step() {
            Ok(step) => {
                self.note_step(step, at)?;
                Ok(matches!(step, SyncStep::Progress(_)))
            }
            Err(e) => match self.classify_spa(&e) {
                Applied::Suspended(m) => {
                    self.report.detections += 1;
                    self.trace.at(at, &format!("sync failed, pool suspended (detected): {m}"));
                    self.recover(vec![], at)?;
                    Ok(false)
                }
                _ => Err(format!("sync step failed: {e}")),
            },
        }
    }
}
