//! The pool (spa): creation, import, export, txg sync and the public API of the engine.
//! OpenZFS: spa.c, spa_misc.c, dsl_pool.c (sync), dsl_synctask.c. A `Spa` owns the device
//! (through zio), the datasets (dsl) and the txg state. The host drives time (`set_time`)
//! and syncing (`txg_sync`, or `txg_quiesce` + `sync_step`); writes past the dirty limit
//! sync inline. A write or flush failure during sync suspends the pool: no later uberblock
//! is written, every call fails with `Suspended`, and re-import recovers the last committed
//! txg. See sync.rs for the crash argument of each phase.

mod api;
mod load;
pub mod metaslab;
pub(crate) mod sync;
pub mod uberblock;

use std::collections::BTreeMap;

use crate::dsl::DslPool;
use crate::error::SpaError;
use crate::limits::{
    SPA_MAXDEVSIZE, SPA_MINDEVSIZE, SPA_SLOP_MIN_BYTES, SPA_SLOP_SHIFT, TXG_INITIAL,
    VDEV_LABEL_SIZE,
};
use crate::txg::{SyncPhase, TxgState};
use crate::vdev::label::{label_init, LabelConfig};
use crate::vdev::{BlockDevice, VdevError};
use crate::zio::blkptr::BlkPtr;
use crate::zio::Zio;
use metaslab::Metaslab;

pub use api::{DatasetTrees, SnapshotInfo, SpaceStats};
pub use sync::SyncTask;

/// Default dirty-data limit per txg before a write syncs inline.
pub const DIRTY_BYTES_MAX_DEFAULT: u64 = 256 << 20;
/// Default txg timeout in host seconds.
pub const TXG_TIMEOUT_SECS_DEFAULT: u64 = 5;
/// Times a failed device write or flush is retried before the pool suspends.
pub const ZIO_MAX_RETRIES: u32 = 3;

/// Host-supplied settings: everything nondeterministic comes in here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaConfig {
    /// Seed of the guid generator: the host's random source, so it must differ between
    /// opens of the same pool. The engine mixes in the loaded txg, but two imports of one
    /// txg (a rewind, a crash before the first sync) given one seed make the same guids:
    /// the new intent-log chain then reuses the old chain's guid and allocation, and the
    /// old chain's blocks still on disk pass as the new chain's (zil.rs `load`).
    pub guid_seed: u64,
    /// Host time at open, seconds since the epoch.
    pub now_secs: u64,
    /// Dirty bytes in the open txg that force an inline sync.
    pub dirty_bytes_max: u64,
    /// Seconds after which `sync_wanted` asks for a sync of dirty data.
    pub txg_timeout_secs: u64,
}

impl Default for SpaConfig {
    fn default() -> Self {
        Self {
            guid_seed: 0x5eed,
            now_secs: 1_700_000_000,
            dirty_bytes_max: DIRTY_BYTES_MAX_DEFAULT,
            txg_timeout_secs: TXG_TIMEOUT_SECS_DEFAULT,
        }
    }
}

/// A syncing txg in progress.
#[derive(Debug)]
pub(crate) struct SyncJob {
    pub txg: u64,
    pub phase: SyncPhase,
    pub tasks: Vec<SyncTask>,
    pub ub_root: Option<(BlkPtr, u64)>,
}

/// An imported (or created) pool.
pub struct Spa {
    pub(crate) zio: Zio,
    pub(crate) label: LabelConfig,
    pub(crate) dsl: DslPool,
    pub(crate) txg: TxgState,
    pub(crate) job: Option<SyncJob>,
    /// Sync tasks waiting for the open txg.
    pub(crate) tasks: Vec<SyncTask>,
    /// Blocks of the MOS on disk (chunks then root).
    pub(crate) mos_blocks: Vec<BlkPtr>,
    pub(crate) dirty: BTreeMap<u64, u64>,
    pub(crate) cfg: SpaConfig,
    pub(crate) now_secs: u64,
    pub(crate) last_sync_secs: u64,
    pub(crate) guid_state: u64,
    pub(crate) suspended: Option<VdevError>,
    /// Force the next sync even with nothing dirty (after a rewind).
    pub(crate) force_sync: bool,
    /// Replaying intent logs at import: changes are not logged again.
    pub(crate) replaying: bool,
    /// What the last import found: the txg it loaded and the operations it replayed.
    pub(crate) import_report: ImportReport,
}

/// What an import did: the committed txg it loaded (before any replay) and, per
/// filesystem, how many logged operations it replayed on top.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The uberblock txg loaded.
    pub loaded_txg: u64,
    /// Operations replayed from each filesystem's intent log.
    pub replayed: std::collections::BTreeMap<String, usize>,
    /// Newer uberblocks passed over, with the reason their trees did not verify.
    pub rejected: Vec<(u64, String)>,
    /// Filesystems whose replay stopped at an operation that failed (a damaged block it had
    /// to read), with the error: their later logged operations are lost, and said so here.
    pub replay_errors: std::collections::BTreeMap<String, String>,
    /// Logged operations not replayed because the import rewound past newer txgs (their
    /// logs may lack changes that only those txgs held), per filesystem.
    pub log_discarded: std::collections::BTreeMap<String, usize>,
}

impl std::fmt::Debug for Spa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spa")
            .field("name", &self.label.name)
            .field("txg", &self.txg)
            .finish_non_exhaustive()
    }
}

/// splitmix64: the guid generator (deterministic from the host's seed).
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Spa {
    /// Create a pool named `name` on `dev` (its contents are overwritten), with an empty
    /// root dataset of the same name, and sync it.
    ///
    /// # Errors
    /// `SpaError::Create` for a bad name or device size; `Suspended` on a device error.
    pub fn create(
        mut dev: Box<dyn BlockDevice>,
        name: &str,
        cfg: SpaConfig,
    ) -> Result<Self, SpaError> {
        crate::dsl::name::check_pool(name).map_err(|e| SpaError::Create(e.to_string()))?;
        let size = dev.size_bytes();
        if !(SPA_MINDEVSIZE..=SPA_MAXDEVSIZE).contains(&size) {
            return Err(SpaError::Create(format!(
                "device of {size} bytes is outside {SPA_MINDEVSIZE}..={SPA_MAXDEVSIZE}"
            )));
        }
        let mut guid_state = cfg.guid_seed;
        let label = LabelConfig {
            name: name.to_owned(),
            pool_guid: splitmix64(&mut guid_state),
            device_size: size,
        };
        label_init(dev.as_mut(), &label).map_err(SpaError::Suspended)?;
        let ms = Metaslab::new(VDEV_LABEL_SIZE, size - VDEV_LABEL_SIZE);
        let mut spa = Self {
            zio: Zio::new(dev, ms),
            label,
            dsl: DslPool { next_id: 1, ..DslPool::default() },
            txg: TxgState { open: TXG_INITIAL, syncing: None, synced: TXG_INITIAL - 1 },
            job: None,
            tasks: Vec::new(),
            mos_blocks: Vec::new(),
            dirty: BTreeMap::new(),
            cfg,
            now_secs: cfg.now_secs,
            last_sync_secs: cfg.now_secs,
            guid_state,
            suspended: None,
            force_sync: false,
            replaying: false,
            import_report: ImportReport::default(),
        };
        spa.dataset_create(name, crate::dsl::DatasetProps::default())
            .map_err(|e| SpaError::Create(e.to_string()))?;
        Ok(spa)
    }

    /// Sync everything and give the device back.
    ///
    /// # Errors
    /// `Suspended` if the pool is suspended or the final sync fails.
    pub fn export(mut self) -> Result<Box<dyn BlockDevice>, SpaError> {
        self.txg_sync()?;
        Ok(self.zio.dev)
    }

    /// Give the device back without syncing (a crash, or abandoning a suspended pool).
    #[must_use]
    pub fn into_device(self) -> Box<dyn BlockDevice> {
        self.zio.dev
    }

    /// Pool name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.label.name
    }

    /// Pool guid.
    #[must_use]
    pub fn pool_guid(&self) -> u64 {
        self.label.pool_guid
    }

    /// Set the host time (seconds); used for snapshot times and the txg timer.
    pub fn set_time(&mut self, now_secs: u64) {
        self.now_secs = now_secs;
    }

    /// The open txg.
    #[must_use]
    pub fn open_txg(&self) -> u64 {
        self.txg.open
    }

    /// The txg being synced, if any.
    #[must_use]
    pub fn syncing_txg(&self) -> Option<u64> {
        self.txg.syncing
    }

    /// The newest committed txg.
    #[must_use]
    pub fn last_synced_txg(&self) -> u64 {
        self.txg.synced
    }

    /// What the import that opened this pool found (empty for a created pool).
    #[must_use]
    pub fn import_report(&self) -> &ImportReport {
        &self.import_report
    }

    /// True once a sync failure suspended the pool.
    #[must_use]
    pub fn is_suspended(&self) -> bool {
        self.suspended.is_some()
    }

    /// True if any change has not reached a committed txg yet.
    #[must_use]
    pub fn is_dirty(&self) -> bool {
        self.job.is_some()
            || !self.tasks.is_empty()
            || self.dsl.datasets.values().any(|d| {
                d.head.is_dirty()
                    || d.head.zil.as_ref().is_some_and(|z| z.last_logged_txg() > self.txg.synced)
            })
    }

    /// Dirty bytes of every unsynced txg.
    #[must_use]
    pub fn dirty_bytes(&self) -> u64 {
        self.dirty.values().sum()
    }

    /// True when the open txg should be synced: dirty limit or timer.
    #[must_use]
    pub fn sync_wanted(&self) -> bool {
        let open = self.dirty.get(&self.txg.open).copied().unwrap_or(0);
        open >= self.cfg.dirty_bytes_max
            || (open > 0
                && self.now_secs.saturating_sub(self.last_sync_secs) >= self.cfg.txg_timeout_secs)
    }

    /// Bytes kept back from user writes so syncing never runs out of space.
    #[must_use]
    pub fn slop_bytes(&self) -> u64 {
        (self.zio.ms.capacity() >> SPA_SLOP_SHIFT).max(SPA_SLOP_MIN_BYTES)
    }

    /// A fresh intent log for a head: a new chain guid and a preallocated first block.
    pub(crate) fn new_zil(&mut self) -> Result<crate::zil::Zilog, SpaError> {
        let guid = self.next_guid();
        let first = self
            .zio
            .ms
            .alloc(crate::zil::ZIL_BLOCK_SIZE)
            .ok_or(SpaError::Suspended(VdevError::NoSpace { offset: 0 }))?;
        Ok(crate::zil::Zilog::new(guid, first))
    }

    pub(crate) fn next_guid(&mut self) -> u64 {
        loop {
            let g = splitmix64(&mut self.guid_state);
            if g != 0 {
                return g;
            }
        }
    }

    /// Bytes of the device the pool lives on (what it was created or imported with).
    #[must_use]
    pub fn device_bytes(&self) -> u64 {
        self.zio.dev.size_bytes()
    }

    /// Direct access to block I/O, for checkers and tests (`oracle::integrity`).
    pub fn zio_mut(&mut self) -> &mut Zio {
        &mut self.zio
    }
}
