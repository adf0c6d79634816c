//! Transaction groups: open, quiescing, syncing. OpenZFS: txg.c. Changes are assigned to
//! the open txg; `quiesce` closes it (no transaction holds exist in this single-threaded
//! engine, so quiescing is immediate) and hands it to syncing, while a new txg opens, so
//! writes into N+1 proceed while N syncs. Syncing runs in phases (`SyncPhase`) that the host
//! advances one `sync_step` at a time, letting a simulator interleave client work and crash
//! between any two phases. Per-txg state lives in the records of each dnode (dbuf.rs).

/// Phases of syncing one txg, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SyncPhase {
    /// Write every dirty dataset's blocks, dnodes and objset block.
    Datasets,
    /// Apply DSL sync tasks (create, destroy, snapshot, rollback, receive end).
    Tasks,
    /// Write the MOS (pool directory and deferred-free lists).
    Mos,
    /// Flush the device: every block of the txg is durable.
    FlushBlocks,
    /// Write the uberblock to both labels.
    Uberblock,
    /// Flush the device: the uberblock is durable; the txg is committed.
    FlushUberblock,
}

impl SyncPhase {
    /// The phase after this one (None after the last).
    #[must_use]
    pub const fn next(self) -> Option<Self> {
        match self {
            Self::Datasets => Some(Self::Tasks),
            Self::Tasks => Some(Self::Mos),
            Self::Mos => Some(Self::FlushBlocks),
            Self::FlushBlocks => Some(Self::Uberblock),
            Self::Uberblock => Some(Self::FlushUberblock),
            Self::FlushUberblock => None,
        }
    }
}

/// What one `sync_step` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncStep {
    /// No txg is syncing.
    Idle,
    /// The syncing txg finished this phase.
    Progress(SyncPhase),
    /// The txg committed.
    Done(u64),
}

/// Txg numbers of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxgState {
    /// The txg that takes new changes.
    pub open: u64,
    /// The txg being synced, if any.
    pub syncing: Option<u64>,
    /// The newest committed txg.
    pub synced: u64,
}

impl TxgState {
    /// Close the open txg and start syncing it.
    pub fn quiesce(&mut self) -> u64 {
        assert!(self.syncing.is_none(), "txg {:?} still syncing", self.syncing);
        assert!(self.open > self.synced, "open {} <= synced {}", self.open, self.synced);
        let txg = self.open;
        self.syncing = Some(txg);
        self.open += 1;
        txg
    }

    /// The syncing txg committed.
    pub fn sync_done(&mut self, txg: u64) {
        assert_eq!(self.syncing, Some(txg), "sync_done for a txg that is not syncing");
        assert!(txg > self.synced, "txg {txg} <= synced {}", self.synced);
        self.synced = txg;
        self.syncing = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txg_states_advance() {
        let mut t = TxgState { open: 5, syncing: None, synced: 4 };
        assert_eq!(t.quiesce(), 5);
        assert_eq!(t.open, 6);
        t.sync_done(5);
        assert_eq!(t.synced, 5);
        assert_eq!(SyncPhase::Datasets.next(), Some(SyncPhase::Tasks));
        assert_eq!(SyncPhase::FlushUberblock.next(), None);
    }

    #[test]
    #[should_panic(expected = "still syncing")]
    fn cannot_quiesce_twice() {
        let mut t = TxgState { open: 5, syncing: None, synced: 4 };
        t.quiesce();
        t.quiesce();
    }
}
