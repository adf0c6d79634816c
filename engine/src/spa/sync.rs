//! Syncing one txg, phase by phase (see txg.rs), and the DSL sync tasks applied in it.
//! OpenZFS: spa_sync(), dsl_pool_sync(), vdev_config_sync(), dsl_synctask.c.
//! Crash argument, per phase boundary: after Datasets/Tasks/Mos nothing new is reachable
//! (the old uberblock names only old blocks, none of which were freed for reuse: frees wait
//! TXG_DEFER_SIZE txgs); after FlushBlocks every new block is durable but unreferenced;
//! a torn Uberblock write fails its embedded checksum, so import takes the previous one;
//! after FlushUberblock the txg is committed. A write or flush error at any point suspends
//! the pool before the uberblock is written, so committed data is never lost.

use crate::dmu::objset::DMU_OST_ZFS;
use crate::dmu::ot::DMU_OT_OBJECT_DIRECTORY;
use crate::dmu::Objset;
use crate::dnode::sync::{SyncError, TreeCtx};
use crate::dsl::dataset::{DatasetProps, DslDataset, DslSnapshot};
use crate::dsl::destroy::{free_owned, free_snapshot};
use crate::dsl::pool::MosPhys;
use crate::error::SpaError;
use crate::limits::{SPA_MAXBLOCKSIZE, VDEV_LABELS};
use crate::spa::uberblock::UberblockPhys;
use crate::spa::{Spa, SyncJob, ZIO_MAX_RETRIES};
use crate::txg::{SyncPhase, SyncStep};
use crate::vdev::label::uberblock_offset;
use crate::vdev::VdevError;
use crate::zio::blkptr::{BlkPtr, BP_BYTES};
use crate::zio::checksum::ChecksumType;
use crate::zio::compress::Compress;
use crate::zio::{WriteProps, ZioWriteError};

/// A DSL change applied in syncing context, after the datasets of its txg are written.
#[derive(Debug)]
pub enum SyncTask {
    /// Create a dataset.
    Create {
        /// Full name.
        name: String,
        /// Properties.
        props: DatasetProps,
        /// Guid.
        guid: u64,
    },
    /// Destroy a dataset and all its snapshots.
    Destroy {
        /// Dataset id.
        id: u64,
    },
    /// Snapshot the head.
    Snapshot {
        /// Dataset id.
        id: u64,
        /// Short snapshot name.
        snap: String,
        /// Snapshot guid.
        guid: u64,
        /// Creation time (seconds).
        time: u64,
    },
    /// Destroy one snapshot.
    SnapshotDestroy {
        /// Dataset id.
        id: u64,
        /// Short snapshot name.
        snap: String,
    },
    /// Roll the head back to the newest snapshot.
    Rollback {
        /// Dataset id.
        id: u64,
    },
    /// Finish a receive: the temporary dataset `recv` replaces the head of `target` (or
    /// becomes a new dataset named `new_name`) and is snapshotted with the stream's guid.
    RecvEnd {
        /// Temporary dataset holding the received state.
        recv: u64,
        /// Existing target, if any.
        target: Option<u64>,
        /// Name for a new dataset (full receive).
        new_name: String,
        /// Snapshot to create.
        snap: String,
        /// Stream toguid.
        guid: u64,
        /// Stream creation time.
        time: u64,
        /// `-F`: destroy the target's snapshots after this txg first.
        force_from_txg: Option<u64>,
    },
    /// Drop a temporary dataset (failed receive), freeing what it owns.
    Discard {
        /// Temporary dataset id.
        id: u64,
    },
}

fn suspend_err(e: SyncError) -> SpaError {
    match e {
        SyncError::Read(z) => SpaError::Zio(z),
        SyncError::Write(ZioWriteError::Io(v)) => SpaError::Suspended(v),
        SyncError::Write(ZioWriteError::NoSpace) => {
            SpaError::Suspended(VdevError::NoSpace { offset: 0 })
        }
    }
}

impl Spa {
    fn check_live(&self) -> Result<(), SpaError> {
        match &self.suspended {
            Some(e) => Err(SpaError::Suspended(e.clone())),
            None => Ok(()),
        }
    }

    /// True if the open txg has anything to sync.
    fn open_is_dirty(&self) -> bool {
        let open = self.txg.open;
        self.force_sync
            || !self.tasks.is_empty()
            || self.dsl.datasets.values().any(|d| {
                d.head.is_dirty_in(open)
                    || d.head.zil.as_ref().is_some_and(|z| z.last_logged_txg() == open)
            })
    }

    /// Start syncing the open txg if it is dirty and no txg is syncing.
    ///
    /// # Errors
    /// `Suspended`.
    pub fn txg_quiesce(&mut self) -> Result<Option<u64>, SpaError> {
        self.check_live()?;
        if self.job.is_some() || !self.open_is_dirty() {
            return Ok(None);
        }
        let txg = self.txg.quiesce();
        self.force_sync = false;
        let tasks = std::mem::take(&mut self.tasks);
        self.job = Some(SyncJob { txg, phase: SyncPhase::Datasets, tasks, ub_root: None });
        Ok(Some(txg))
    }

    /// Run the next phase of the syncing txg.
    ///
    /// # Errors
    /// `Suspended` (and the pool stays suspended) on any write or flush failure.
    pub fn sync_step(&mut self) -> Result<SyncStep, SpaError> {
        self.check_live()?;
        let Some(job) = self.job.as_ref() else { return Ok(SyncStep::Idle) };
        let (txg, phase) = (job.txg, job.phase);
        let result = match phase {
            SyncPhase::Datasets => self.sync_datasets(txg),
            SyncPhase::Tasks => self.sync_tasks(txg),
            SyncPhase::Mos => self.sync_mos(txg),
            SyncPhase::FlushBlocks | SyncPhase::FlushUberblock => self.flush_retry(),
            SyncPhase::Uberblock => self.write_uberblock(txg),
        };
        if let Err(e) = result {
            if let SpaError::Suspended(v) = &e {
                self.suspended = Some(v.clone());
            } else {
                self.suspended = Some(VdevError::Io { offset: 0 });
            }
            return Err(e);
        }
        let job = self.job.as_mut().expect("invariant: job present");
        match phase.next() {
            Some(next) => {
                job.phase = next;
                Ok(SyncStep::Progress(phase))
            }
            None => {
                self.job = None;
                for d in self.dsl.datasets.values_mut() {
                    if let Some(z) = d.head.zil.as_mut() {
                        z.clean(txg);
                    }
                }
                self.txg.sync_done(txg);
                self.zio.ms.sync_done(txg);
                self.dirty.remove(&txg);
                self.last_sync_secs = self.now_secs;
                Ok(SyncStep::Done(txg))
            }
        }
    }

    /// Finish the syncing txg (if any), then sync the open txg if dirty. Returns the
    /// newest committed txg.
    ///
    /// # Errors
    /// `Suspended`.
    pub fn txg_sync(&mut self) -> Result<u64, SpaError> {
        self.finish_syncing()?;
        if self.txg_quiesce()?.is_some() {
            self.finish_syncing()?;
        }
        Ok(self.txg.synced)
    }

    pub(crate) fn finish_syncing(&mut self) -> Result<(), SpaError> {
        while !matches!(self.sync_step()?, SyncStep::Idle | SyncStep::Done(_)) {}
        Ok(())
    }

    /// Queue a sync task for the open txg and sync it (after any syncing txg).
    pub(crate) fn run_sync_task(&mut self, task: SyncTask) -> Result<(), SpaError> {
        self.finish_syncing()?;
        self.tasks.push(task);
        self.txg_sync().map(|_| ())
    }

    fn tree_ctx(&mut self, id: u64, txg: u64) -> (TreeCtx<'_>, &mut Objset) {
        let ds = self.dsl.datasets.get_mut(&id).expect("invariant: dataset exists");
        let ctx = TreeCtx {
            zio: &mut self.zio,
            txg,
            prev_snap_txg: ds.prev_snap_txg(),
            checksum: ds.props.checksum,
            compress: ds.props.compress,
        };
        (ctx, &mut ds.head)
    }

    fn sync_datasets(&mut self, txg: u64) -> Result<(), SpaError> {
        let ids: Vec<u64> = self
            .dsl
            .datasets
            .iter()
            .filter(|(_, d)| {
                d.head.is_dirty_in(txg) || d.head.zil.as_ref().is_some_and(|z| z.dirty)
            })
            .map(|(&i, _)| i)
            .collect();
        for id in ids {
            let (mut ctx, head) = self.tree_ctx(id, txg);
            head.sync(&mut ctx).map_err(suspend_err)?;
        }
        Ok(())
    }

    fn sync_tasks(&mut self, txg: u64) -> Result<(), SpaError> {
        let tasks = std::mem::take(&mut self.job.as_mut().expect("invariant: job").tasks);
        for task in tasks {
            self.apply_task(task, txg)?;
        }
        Ok(())
    }

    /// Write the head objset of `id` if it has never been written (new datasets).
    fn ensure_root(&mut self, id: u64, txg: u64) -> Result<(), SpaError> {
        let (mut ctx, head) = self.tree_ctx(id, txg);
        head.sync(&mut ctx).map_err(suspend_err)?;
        Ok(())
    }

    fn apply_task(&mut self, task: SyncTask, txg: u64) -> Result<(), SpaError> {
        match task {
            SyncTask::Create { name, props, guid } => {
                let id = self.dsl.next_id;
                self.dsl.next_id += 1;
                self.dsl.insert(new_dataset(id, name, props, guid, txg, false));
                let zil = self.new_zil()?;
                self.dsl.datasets.get_mut(&id).expect("invariant: inserted").head.zil = Some(zil);
                self.ensure_root(id, txg)?;
            }
            SyncTask::Destroy { id } => {
                let mut ds = self.dsl.remove(id);
                if let Some(z) = ds.head.zil.take() {
                    z.discard(&mut self.zio, txg);
                }
                let mut prev = ds.origin_txg;
                for s in &ds.snapshots {
                    free_owned(&mut self.zio, &s.root, prev, txg)?;
                    prev = s.creation_txg;
                }
                free_owned(&mut self.zio, &ds.head.root, prev, txg)?;
            }
            SyncTask::Snapshot { id, snap, guid, time } => {
                self.ensure_root(id, txg)?;
                let ds = self.dsl.datasets.get_mut(&id).expect("invariant: checked");
                ds.snapshots.push(DslSnapshot {
                    name: snap,
                    guid,
                    creation_txg: txg,
                    creation_time: time,
                    root: ds.head.root,
                });
            }
            SyncTask::SnapshotDestroy { id, snap } => self.snapshot_destroy_sync(id, &snap, txg)?,
            SyncTask::Rollback { id } => {
                let ds = self.dsl.datasets.get(&id).expect("invariant: checked");
                let snap = ds.snapshots.last().expect("invariant: checked").clone();
                let head_root = ds.head.root;
                free_owned(&mut self.zio, &head_root, snap.creation_txg, txg)?;
                let mut head = Objset::open(&mut self.zio, &snap.root, false)?;
                head.zil = Some(self.new_zil()?);
                let ds = self.dsl.datasets.get_mut(&id).expect("invariant");
                if let Some(z) = std::mem::replace(&mut ds.head, head).zil {
                    z.discard(&mut self.zio, txg);
                }
                self.ensure_root(id, txg)?;
            }
            SyncTask::RecvEnd { recv, target, new_name, snap, guid, time, force_from_txg } => {
                if let (Some(t), Some(from)) = (target, force_from_txg) {
                    self.destroy_snapshots_after(t, from, txg)?;
                }
                self.recv_end_sync(recv, target, new_name, snap, guid, time, txg)?;
            }
            SyncTask::Discard { id } => {
                let ds = self.dsl.remove(id);
                assert!(ds.temporary, "discarding a persistent dataset");
                free_owned(&mut self.zio, &ds.head.root, ds.origin_txg, txg)?;
            }
        }
        Ok(())
    }

    fn destroy_snapshots_after(
        &mut self,
        id: u64,
        from_txg: u64,
        txg: u64,
    ) -> Result<(), SpaError> {
        loop {
            let ds = self.dsl.datasets.get(&id).expect("invariant: target exists");
            match ds.snapshots.last() {
                Some(s) if s.creation_txg > from_txg => {
                    let name = s.name.clone();
                    self.snapshot_destroy_sync(id, &name, txg)?;
                }
                _ => return Ok(()),
            }
        }
    }

    fn snapshot_destroy_sync(&mut self, id: u64, snap: &str, txg: u64) -> Result<(), SpaError> {
        let ds = self.dsl.datasets.get(&id).expect("invariant: checked");
        let i = ds.snapshot_index(snap).expect("invariant: checked");
        let prev = if i == 0 { ds.origin_txg } else { ds.snapshots[i - 1].creation_txg };
        let next = ds.snapshots.get(i + 1).map_or(ds.head.root, |s| s.root);
        let root = ds.snapshots[i].root;
        free_snapshot(&mut self.zio, &root, prev, &next, txg)?;
        let ds = self.dsl.datasets.get_mut(&id).expect("invariant");
        let removed = ds.snapshots.remove(i);
        ds.snap_views.remove(&removed.creation_txg);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn recv_end_sync(
        &mut self,
        recv: u64,
        target: Option<u64>,
        new_name: String,
        snap: String,
        guid: u64,
        time: u64,
        txg: u64,
    ) -> Result<(), SpaError> {
        let zil = self.new_zil()?;
        self.dsl.datasets.get_mut(&recv).expect("invariant: recv exists").head.zil = Some(zil);
        self.ensure_root(recv, txg)?;
        let mut r = self.dsl.remove(recv);
        assert!(r.temporary, "receive dataset must be temporary");
        let id = match target {
            Some(t) => {
                let ds = self.dsl.datasets.get(&t).expect("invariant: target exists");
                let old_head = ds.head.root;
                let prev = ds.prev_snap_txg();
                free_owned(&mut self.zio, &old_head, prev, txg)?;
                let ds = self.dsl.datasets.get_mut(&t).expect("invariant");
                let old = std::mem::replace(
                    &mut ds.head,
                    std::mem::replace(&mut r.head, Objset::create(DMU_OST_ZFS)),
                );
                if let Some(z) = old.zil {
                    z.discard(&mut self.zio, txg);
                }
                t
            }
            None => {
                let id = self.dsl.next_id;
                self.dsl.next_id += 1;
                let mut ds = new_dataset(id, new_name, r.props, r.guid, txg, false);
                ds.head = std::mem::replace(&mut r.head, Objset::create(DMU_OST_ZFS));
                self.dsl.insert(ds);
                id
            }
        };
        let ds = self.dsl.datasets.get_mut(&id).expect("invariant");
        ds.snapshots.push(DslSnapshot {
            name: snap,
            guid,
            creation_txg: txg,
            creation_time: time,
            root: ds.head.root,
        });
        Ok(())
    }

    fn sync_mos(&mut self, txg: u64) -> Result<(), SpaError> {
        for bp in std::mem::take(&mut self.mos_blocks) {
            self.zio.free(&bp, txg);
        }
        let mos = MosPhys {
            pool_guid: self.label.pool_guid,
            next_id: self.dsl.next_id,
            datasets: self.dsl.records(),
            defer: self.zio.ms.deferred().clone(),
        };
        let blob = mos.encode();
        let props = WriteProps {
            ot: DMU_OT_OBJECT_DIRECTORY,
            level: 0,
            checksum: ChecksumType::Fletcher4,
            compress: Compress::Lz4,
            copies: 2,
            embed: false,
        };
        let chunk = usize::try_from(SPA_MAXBLOCKSIZE).expect("small");
        let mut root = vec![0u8; 16];
        root[..8].copy_from_slice(&(blob.len() as u64).to_le_bytes());
        for piece in blob.chunks(chunk) {
            let mut padded = piece.to_vec();
            padded.resize(piece.len().next_multiple_of(512), 0);
            let bp = self.write_retry(&padded, &props, txg)?;
            let mut raw = [0u8; BP_BYTES];
            bp.encode(&mut raw);
            root.extend_from_slice(&raw);
            self.mos_blocks.push(bp);
        }
        assert!(root.len() <= chunk, "MOS of {} bytes exceeds one root block", blob.len());
        root.resize(root.len().next_multiple_of(512), 0);
        let rootbp = self.write_retry(&root, &WriteProps { level: 1, ..props }, txg)?;
        self.mos_blocks.push(rootbp);
        self.job.as_mut().expect("invariant: job").ub_root = Some((rootbp, blob.len() as u64));
        Ok(())
    }

    fn write_retry(
        &mut self,
        data: &[u8],
        props: &WriteProps,
        txg: u64,
    ) -> Result<BlkPtr, SpaError> {
        self.zio.write_retrying(data, props, txg, ZIO_MAX_RETRIES).map_err(|e| match e {
            ZioWriteError::Io(e) => SpaError::Suspended(e),
            ZioWriteError::NoSpace => SpaError::Suspended(VdevError::NoSpace { offset: 0 }),
        })
    }

    fn flush_retry(&mut self) -> Result<(), SpaError> {
        let mut last = None;
        for _ in 0..=ZIO_MAX_RETRIES {
            match self.zio.dev.flush() {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(SpaError::Suspended(last.expect("invariant: a failure was seen")))
    }

    fn write_uberblock(&mut self, txg: u64) -> Result<(), SpaError> {
        let (rootbp, mos_len) =
            self.job.as_ref().and_then(|j| j.ub_root).expect("invariant: MOS written");
        let ub = UberblockPhys {
            txg,
            pool_guid: self.label.pool_guid,
            timestamp: self.now_secs,
            rootbp,
            mos_len,
        };
        let size = self.zio.dev.size_bytes();
        for l in 0..VDEV_LABELS {
            let at = uberblock_offset(l, size, txg);
            let raw = ub.encode(at);
            let mut tries = 0;
            while let Err(e) = self.zio.dev.write(at, &raw) {
                tries += 1;
                if tries > ZIO_MAX_RETRIES {
                    return Err(SpaError::Suspended(e));
                }
            }
        }
        Ok(())
    }
}

/// A fresh dataset with an empty head.
pub(crate) fn new_dataset(
    id: u64,
    name: String,
    props: DatasetProps,
    guid: u64,
    txg: u64,
    temporary: bool,
) -> DslDataset {
    DslDataset {
        id,
        name,
        guid,
        creation_txg: txg,
        props,
        head: Objset::create(DMU_OST_ZFS),
        snapshots: Vec::new(),
        temporary,
        origin_txg: 0,
        snap_views: std::collections::BTreeMap::new(),
    }
}
