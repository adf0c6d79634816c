//! The run's crashes and recoveries: cut power (keyed to the op), re-import, match the pool
//! against the candidate models (committed txgs, the quiesced one, intent-log replays),
//! adopt the one it equals or report the durability violation; re-create a pool lost to
//! unrestricted damage; the checks against a model and the final sync and crash. Part of
//! `run`: methods of its `World`.

use super::*;

impl World {
    /// The pool suspended: re-import it from the same disk (no power loss) and check that
    /// nothing committed was lost.
    pub(super) fn recover(&mut self, extra: Vec<Candidate>, at: Duration) -> Result<(), String> {
        self.report.recoveries += 1;
        drop(self.spa.take());
        self.trace.at(at, "re-import after suspension");
        self.import_and_match(extra, at, "re-import after suspension")
    }

    /// Power loss at `at` (the sync in progress, if any, stops where it is), with the disk
    /// choices of `plan`.
    pub(super) fn crash(&mut self, at: Duration, plan: &CrashPlan) -> Result<(), String> {
        self.report.crashes += 1;
        let spa = self.spa.take().expect("invariant: pool imported");
        let mid = spa.syncing_txg();
        drop(spa);
        if mid.is_some() {
            self.report.crashes_mid_sync += 1;
        }
        self.disk_details();
        let image = self.disk.crash_seeded(plan.disk_seed);
        let cached: usize = image.kept.iter().map(Vec::len).sum();
        let kept = image.kept.iter().flatten().filter(|k| **k).count();
        let during = match (mid, self.sync_phase) {
            (Some(t), Some(p)) => format!("during the sync of txg {t}, after {p:?}"),
            (Some(t), None) => format!("during the sync of txg {t}, before any phase"),
            (None, _) => "between syncs".to_owned(),
        };
        let after = if plan.key == FINAL_CRASH_KEY {
            "after the last op".to_owned()
        } else {
            format!("after op #{}", plan.key)
        };
        let kept = format!("kept {kept} of {cached} cached sectors");
        self.trace.at(at, &format!("crash {after} {during}; {kept}"));
        self.import_and_match(vec![], at, "crash")
    }

    /// Import after a crash or suspension and adopt the first candidate the pool equals:
    /// the syncing txg's quiesce state, the last commit, and `extra`.
    pub(super) fn import_and_match(
        &mut self,
        extra: Vec<Candidate>,
        at: Duration,
        why: &str,
    ) -> Result<(), String> {
        let mut candidates = extra;
        candidates.push(Candidate {
            what: format!("last committed txg {}", self.committed_txg),
            model: Rc::clone(&self.committed),
        });
        if let Some((t, m)) = self.syncing.take() {
            candidates.push(Candidate { what: format!("syncing txg {t} at quiesce"), model: m });
        }
        self.sync_phase = None;
        if let Err(e) = self.import_retrying(at) {
            if self.profile == Profile::Unrestricted {
                self.report.detections += 1;
                return self.recreate(at, &format!("pool lost (detected): import failed: {e}"));
            }
            return Err(format!("import after {why}: {e}"));
        }
        let txg = self.spa().last_synced_txg();
        let report = self.spa().import_report().clone();
        let loaded = report.loaded_txg;
        if !report.replay_errors.is_empty() && !self.lenient() {
            return Err(format!(
                "import after {why}: intent-log replay failed without damage: {:?}",
                report.replay_errors
            ));
        }
        if loaded < self.committed_txg {
            if let Some((_, serial)) = self.history.get(&loaded) {
                let written = self.disk.written_since(*serial);
                self.rewinds.push((loaded, written));
            }
        }
        if let Some((m, _)) = self.history.get(&loaded) {
            let model = Rc::clone(m);
            candidates.push(Candidate { what: format!("committed txg {loaded} (history)"), model });
        }
        let mut errors = Vec::new();
        for c in candidates.iter().rev() {
            let replay = match self.with_replay(c, loaded, &report.replayed) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(format!("[{}] {e}", c.what));
                    continue;
                }
            };
            match self.check_against(&replay.candidate.model, true, true) {
                Ok(()) => return self.adopt_replayed(&replay, txg, at, why),
                Err(e) => errors.push(format!("[{}] {e}", replay.candidate.what)),
            }
        }
        // Damage beyond the budget can remove every copy of the newest uberblocks, so the
        // engine takes an older txg for the newest and replays a log trimmed against a later
        // commit (a state that never existed); no model of that is kept.
        let replay_unknown =
            loaded < self.committed_txg && report.replayed.values().any(|&n| n > 0);
        if self.profile == Profile::Unrestricted
            && (!self.history.contains_key(&loaded) || replay_unknown)
        {
            // Only detection holds here, and no model of the imported state is known.
            return self.recreate(at, &format!("imported txg {loaded} has no known model"));
        }
        Err(format!(
            "durability violation after {why}: the pool (txg {txg}) matches none of the \
             allowed states: {}",
            errors.join(" | ")
        ))
    }

    /// `base` (the state as of the imported txg `loaded`) plus the intent-log replay import
    /// reported (`LogTracker::replay`).
    pub(super) fn with_replay(
        &self,
        base: &Candidate,
        loaded: u64,
        replayed: &BTreeMap<String, usize>,
    ) -> Result<Replayed, String> {
        let r = self.logged.replay(&base.model, loaded, replayed)?;
        let candidate = match r.model {
            None => Candidate { what: base.what.clone(), model: Rc::clone(&base.model) },
            Some(m) => Candidate {
                what: format!("{} + {}", base.what, r.replayed.join(" + ")),
                model: Rc::new(m),
            },
        };
        Ok(Replayed { candidate, lost: r.lost })
    }

    /// Unrestricted damage left no pool, or none whose state any model knows: as an
    /// administrator would, create a new pool on the same disk and go on with a new model,
    /// so the rest of the seed is still checked (`pools_recreated`). If even that fails, the
    /// run ends (`unmodelled`).
    pub(super) fn recreate(&mut self, at: Duration, why: &str) -> Result<(), String> {
        assert_eq!(self.profile, Profile::Unrestricted, "only unrestricted damage loses pools");
        self.report.pools_recreated += 1;
        self.trace.at(at, &format!("{why}: a new pool is created on the disk"));
        drop(self.spa.take());
        let cfg = SpaConfig {
            now_secs: HOST_EPOCH_SECS + at.as_secs(),
            guid_seed: mix(self.spa_cfg.guid_seed ^ self.report.pools_recreated),
            ..self.spa_cfg
        };
        match Spa::create(Box::new(self.disk.clone()), SIM_POOL, cfg) {
            Ok(spa) => {
                self.committed_txg = spa.last_synced_txg();
                self.spa = Some(spa);
            }
            Err(e) => {
                self.trace.at(at, &format!("pool creation failed (detected): {e}: run ends"));
                self.lost = true;
                self.stop = true;
                return Ok(());
            }
        }
        self.model = Model::new(SIM_POOL);
        self.committed = Rc::new(self.model.clone());
        self.syncing = None;
        self.sync_phase = None;
        self.history.clear();
        self.rewinds.clear();
        self.logged.clear();
        self.remember(self.committed_txg, Rc::clone(&self.committed));
        Ok(())
    }

    /// Adopt a matching candidate, unless its replay lost fsynced operations (a durability
    /// violation where the disk keeps its promises; under faults, damage to the single-copy
    /// log can lose them undetected, as in ZFS, and it is only noted).
    pub(super) fn adopt_replayed(
        &mut self,
        r: &Replayed,
        txg: u64,
        at: Duration,
        why: &str,
    ) -> Result<(), String> {
        if !r.lost.is_empty() {
            let lost = r.lost.join("; ");
            if !self.lenient() {
                return Err(format!(
                    "durability violation after {why}: fsynced data lost: the pool equals \
                     [{}], but {lost}",
                    r.candidate.what
                ));
            }
            self.trace.at(at, &format!("fsynced ops lost to disk damage (undetected): {lost}"));
        }
        self.adopt(&r.candidate, txg, at)
    }

    pub(super) fn adopt(&mut self, c: &Candidate, txg: u64, at: Duration) -> Result<(), String> {
        self.trace.at(at, &format!("recovered txg {txg}: equals {}", c.what));
        self.model = (*c.model).clone();
        self.model.touch_all();
        self.committed = Rc::clone(&c.model);
        self.committed_txg = txg;
        self.logged.clear();
        self.history.retain(|&t, _| t <= txg);
        self.remember(txg, Rc::clone(&c.model));
        self.integrity()
    }

    /// Conformance of the pool against `model`: strict in the undamaged profiles, lenient
    /// (errors are detections) under faults. `imported`: the pool was just imported from a
    /// crash state (`conformance::check_imported`).
    pub(super) fn check_against(
        &mut self,
        model: &Model,
        snapshots: bool,
        imported: bool,
    ) -> Result<(), String> {
        let lenient = self.lenient();
        let metadata_errors_ok = self.profile == Profile::Unrestricted;
        let spa = self.spa.as_mut().expect("invariant: pool imported");
        self.report.checks += 1;
        if !lenient {
            let r = if imported {
                conformance::check_imported(spa, model)
            } else if snapshots {
                conformance::check(spa, model)
            } else {
                conformance::check_heads(spa, model)
            };
            return r.map_err(|d| d.to_string());
        }
        let detected = crate::lenient::check(spa, model, snapshots, metadata_errors_ok)?;
        self.report.detections += detected;
        Ok(())
    }

    pub(super) fn check_pool(&mut self, snapshots: bool) -> Result<(), String> {
        if self.stop && self.lost {
            return Ok(());
        }
        let model = std::mem::replace(&mut self.model, Model::new(SIM_POOL));
        let r = self.check_against(&model, snapshots, false);
        self.model = model;
        r
    }

    /// After the last op: commit everything, check the pool, and crash once more (`last`).
    pub(super) fn finish(&mut self, at: Duration, last: &CrashPlan) -> Result<(), String> {
        self.set_clock(at);
        self.trace.at(at, "finish: final sync");
        match self.spa().txg_sync() {
            Ok(_) => self.reconcile(None)?,
            Err(e) => match self.classify_spa(&e) {
                Applied::Suspended(_) => {
                    self.report.detections += 1;
                    self.recover(vec![], at)?;
                }
                _ => return Err(format!("final sync: {e}")),
            },
        }
        if self.lost {
            return Ok(());
        }
        self.check_pool(true)?;
        if self.profile.crashes() {
            self.crash(at, last)?;
        }
        Ok(())
    }
}
