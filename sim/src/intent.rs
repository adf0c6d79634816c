//! The intent-log side of the crash check (design.md property 2 with fsync, issue 6): which
//! successful operations an intent log may hold, and the state an import's reported replay
//! gives. After a crash the pool must equal the state of the imported txg plus, per
//! filesystem, the first `ImportReport::replayed[fs]` logged operations of later txgs, and
//! that prefix must reach every operation an fsync of the filesystem covered when it
//! returned. Used by the run loop (`run.rs`) and the `crash` fuzz harness (`fuzz/crash.rs`).
//! A filesystem's head changes only through logged operations between two commits (DSL
//! operations sync), so the state after a replayed prefix is the head the model had right
//! after the prefix's last operation: it is kept per operation, not recomputed.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use oracle::model::{Model, ModelObjset};
use oracle::op::Op;

/// A successful operation an intent log may hold (its txg has not committed).
struct LoggedStep {
    /// Index of the operation in its list.
    op: usize,
    /// The filesystem whose log holds it.
    fs: String,
    /// The txg it was made in: a replay takes the operations of txgs after the imported one.
    txg: u64,
    /// The filesystem's head right after it.
    head: Rc<ModelObjset>,
    /// An fsync of `fs` returned after it: it must survive any crash.
    fsynced: bool,
}

/// The operations of uncommitted txgs the intent logs may hold, in order.
#[derive(Default)]
pub struct LogTracker {
    steps: Vec<LoggedStep>,
}

/// A base state with an import's replay applied.
pub struct Replay {
    /// The state (`None`: the base itself, nothing was replayed).
    pub model: Option<Model>,
    /// What was replayed, per filesystem ("tank replayed through op #12").
    pub replayed: Vec<String>,
    /// Fsynced operations the replay left out, per filesystem (a durability violation where
    /// the disk keeps its promises).
    pub lost: Vec<String>,
}

impl LogTracker {
    /// After operation `i` succeeded on engine and model (`model` is the state after it),
    /// made while txg `txg` was open: keep it if an intent log holds it; a returned fsync
    /// makes every kept operation of its filesystem one that must survive.
    pub fn note(&mut self, i: usize, op: &Op, model: &Model, txg: u64) {
        if let Some(fs) = op.fsync_fs(model) {
            for s in self.steps.iter_mut().filter(|s| s.fs == fs) {
                s.fsynced = true;
            }
            return;
        }
        let Some(fs) = op.logged_fs(model) else { return };
        let Some(head) = model.head(&fs) else { return };
        let head = Rc::new(head.clone());
        assert!(self.steps.last().is_none_or(|s| s.txg <= txg), "logged txgs go backwards");
        self.steps.push(LoggedStep { op: i, fs, txg, head, fsynced: false });
    }

    /// Txg `txg` committed: the operations of it and older ones are in the pool.
    pub fn committed(&mut self, txg: u64) {
        self.steps.retain(|s| s.txg > txg);
    }

    /// Everything is committed (export, or an import that replayed and synced).
    pub fn clear(&mut self) {
        self.steps.clear();
    }

    /// `base`, the state as of the imported txg `loaded`, plus the replay import reported
    /// (`replayed`: operations per filesystem).
    ///
    /// # Errors
    /// The import replayed more operations than were made, or into a filesystem the model
    /// does not have.
    pub fn replay(
        &self,
        base: &Model,
        loaded: u64,
        replayed: &BTreeMap<String, usize>,
    ) -> Result<Replay, String> {
        let after = |fs: &str| -> Vec<&LoggedStep> {
            self.steps.iter().filter(|s| s.fs == fs && s.txg > loaded).collect()
        };
        let filesystems: BTreeSet<&str> = self.steps.iter().map(|s| s.fs.as_str()).collect();
        let mut lost = Vec::new();
        for fs in filesystems {
            let steps = after(fs);
            let must = steps.iter().rposition(|s| s.fsynced).map_or(0, |p| p + 1);
            let got = replayed.get(fs).copied().unwrap_or(0);
            if got < must {
                lost.push(format!(
                    "{fs}: {got} of the {must} logged ops through op #{} (whose fsync had \
                     returned) were replayed",
                    steps[must - 1].op
                ));
            }
        }
        let mut model: Option<Model> = None;
        let mut what = Vec::new();
        for (fs, &n) in replayed.iter().filter(|&(_, &n)| n > 0) {
            let steps = after(fs);
            let Some(last) = steps.get(n - 1) else {
                return Err(format!(
                    "import replayed {n} intent-log ops of {fs} after txg {loaded}, but only {} \
                     were made",
                    steps.len()
                ));
            };
            let m = model.get_or_insert_with(|| base.clone());
            if !m.set_head(fs, (*last.head).clone()) {
                return Err(format!("import replayed intent-log ops into {fs}, which is gone"));
            }
            what.push(format!("{fs} replayed through op #{}", last.op));
        }
        Ok(Replay { model, replayed: what, lost })
    }
}
