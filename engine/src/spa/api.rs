//! The engine's public operations: datasets, snapshots and objects, by name.
//! OpenZFS: the ioctl-facing parts of dsl_dataset.c, dsl_destroy.c, dmu.c. Each DSL change is
//! a check (here, fallible, changes nothing) plus a sync task (sync.rs, cannot fail except by
//! suspension), synced before the call returns. Object changes land in the open txg. Names:
//! `pool/fs` is a head (read-write), `pool/fs@snap` a snapshot (read-only).

use crate::dmu::object::ObjectSpec;
use crate::dmu::{ObjectInfo, Objset};
use crate::dsl::dataset::{DatasetProps, DslDataset};
use crate::dsl::name::{check_fs, parent, split_snapshot};
use crate::error::{DmuError, DslError, SpaError};
use crate::limits::{DSL_MAX_SNAPSHOTS, SPA_MAX_DATASETS};
use crate::spa::sync::SyncTask;
use crate::spa::Spa;
use crate::zil::{CommitError, CommitStats, ItxKind, LoggedOp};
use crate::zio::Zio;

fn spec_tuple(s: &ObjectSpec) -> (u8, u32, u8, u8, u16) {
    (s.ot, s.blksz, s.indblkshift, s.bonustype, u16::try_from(s.bonuslen).expect("checked: <= 320"))
}

/// A snapshot as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Full name `pool/fs@snap`.
    pub name: String,
    /// Guid.
    pub guid: u64,
    /// Txg whose state it holds.
    pub creation_txg: u64,
    /// Creation time, seconds.
    pub creation_time: u64,
    /// Guid of the previous snapshot of the same dataset (0 if first).
    pub prev_guid: u64,
}

/// Space accounting of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaceStats {
    /// Allocatable bytes.
    pub capacity: u64,
    /// Bytes referenced by some tree (all copies).
    pub allocated: u64,
    /// Bytes freed but not yet reusable.
    pub deferred: u64,
    /// Bytes free now.
    pub free: u64,
}

fn dsl_from_spa(e: SpaError) -> DslError {
    match e {
        SpaError::Zio(z) => DslError::Zio(z),
        _ => DslError::Suspended,
    }
}

fn dmu_from_spa(e: SpaError) -> DmuError {
    match e {
        SpaError::Zio(z) => DmuError::Zio(z),
        _ => DmuError::Suspended,
    }
}

/// A resolved dataset name: a head or one snapshot of it.
enum Target {
    Head(u64),
    Snap(u64, u64),
}

impl Spa {
    fn live_dsl(&self) -> Result<(), DslError> {
        if self.suspended.is_some() {
            return Err(DslError::Suspended);
        }
        Ok(())
    }

    fn fs_id(&self, name: &str) -> Result<u64, DslError> {
        check_fs(self.name(), name)?;
        match self.dsl.id_of(name) {
            Some(id) if !self.dsl.datasets[&id].temporary => Ok(id),
            _ => Err(DslError::NoSuchDataset(name.to_owned())),
        }
    }

    /// Create filesystem `name` (its parent must exist).
    ///
    /// # Errors
    /// `InvalidName`, `Exists`, `NoSuchDataset` (parent), `Limit`, `Suspended`.
    pub fn dataset_create(&mut self, name: &str, props: DatasetProps) -> Result<(), DslError> {
        self.live_dsl()?;
        check_fs(self.name(), name)?;
        if self.dsl.id_of(name).is_some() {
            return Err(DslError::Exists(name.to_owned()));
        }
        if let Some(p) = parent(name) {
            self.fs_id(p)?;
        }
        if self.dsl.datasets.len() >= SPA_MAX_DATASETS {
            return Err(DslError::Limit("datasets per pool"));
        }
        let guid = self.next_guid();
        self.run_sync_task(SyncTask::Create { name: name.to_owned(), props, guid })
            .map_err(dsl_from_spa)
    }

    /// Destroy filesystem `name` and all its snapshots (it must have no children).
    ///
    /// # Errors
    /// `NoSuchDataset`, `Busy` (the pool root or a dataset with children), `Suspended`.
    pub fn dataset_destroy(&mut self, name: &str) -> Result<(), DslError> {
        self.live_dsl()?;
        let id = self.fs_id(name)?;
        if name == self.name() || self.dsl.has_children(name) {
            return Err(DslError::Busy(name.to_owned()));
        }
        self.finish_syncing().map_err(dsl_from_spa)?;
        self.txg_sync().map_err(dsl_from_spa)?;
        self.run_sync_task(SyncTask::Destroy { id }).map_err(dsl_from_spa)
    }

    /// Snapshot `pool/fs@snap`: everything written before the call is in it.
    ///
    /// # Errors
    /// `InvalidName`, `NoSuchDataset`, `Exists`, `Limit`, `Suspended`.
    pub fn snapshot(&mut self, name: &str) -> Result<(), DslError> {
        self.live_dsl()?;
        let (fs, snap) = split_snapshot(self.name(), name)?;
        let id = self.fs_id(fs)?;
        let ds = &self.dsl.datasets[&id];
        if ds.snapshot(snap).is_some() {
            return Err(DslError::Exists(name.to_owned()));
        }
        if ds.snapshots.len() >= DSL_MAX_SNAPSHOTS {
            return Err(DslError::Limit("snapshots per dataset"));
        }
        let guid = self.next_guid();
        let time = self.now_secs;
        self.run_sync_task(SyncTask::Snapshot { id, snap: snap.to_owned(), guid, time })
            .map_err(dsl_from_spa)
    }

    /// Destroy snapshot `pool/fs@snap`, freeing exactly the blocks nothing else references.
    ///
    /// # Errors
    /// `InvalidName`, `NoSuchDataset`, `Suspended`.
    pub fn snapshot_destroy(&mut self, name: &str) -> Result<(), DslError> {
        self.live_dsl()?;
        let (fs, snap) = split_snapshot(self.name(), name)?;
        let id = self.fs_id(fs)?;
        if self.dsl.datasets[&id].snapshot(snap).is_none() {
            return Err(DslError::NoSuchDataset(name.to_owned()));
        }
        self.txg_sync().map_err(dsl_from_spa)?;
        self.run_sync_task(SyncTask::SnapshotDestroy { id, snap: snap.to_owned() })
            .map_err(dsl_from_spa)
    }

    /// Roll filesystem `fs` back to its newest snapshot, discarding later changes.
    ///
    /// # Errors
    /// `NoSuchDataset`, `NoSnapshot`, `Suspended`.
    pub fn rollback(&mut self, fs: &str) -> Result<(), DslError> {
        self.live_dsl()?;
        let id = self.fs_id(fs)?;
        if self.dsl.datasets[&id].snapshots.is_empty() {
            return Err(DslError::NoSnapshot(fs.to_owned()));
        }
        self.txg_sync().map_err(dsl_from_spa)?;
        self.run_sync_task(SyncTask::Rollback { id }).map_err(dsl_from_spa)
    }

    /// Every filesystem, by name.
    #[must_use]
    pub fn datasets(&self) -> Vec<String> {
        self.dsl
            .names
            .iter()
            .filter(|(_, id)| !self.dsl.datasets[id].temporary)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Properties of filesystem `fs`.
    ///
    /// # Errors
    /// `NoSuchDataset`, `InvalidName`.
    pub fn dataset_props(&self, fs: &str) -> Result<DatasetProps, DslError> {
        Ok(self.dsl.datasets[&self.fs_id(fs)?].props)
    }

    /// Snapshots of `fs`, oldest first.
    ///
    /// # Errors
    /// `NoSuchDataset`, `InvalidName`.
    pub fn snapshots(&self, fs: &str) -> Result<Vec<SnapshotInfo>, DslError> {
        let ds = &self.dsl.datasets[&self.fs_id(fs)?];
        let mut prev = 0;
        Ok(ds
            .snapshots
            .iter()
            .map(|s| {
                let info = SnapshotInfo {
                    name: format!("{fs}@{}", s.name),
                    guid: s.guid,
                    creation_txg: s.creation_txg,
                    creation_time: s.creation_time,
                    prev_guid: prev,
                };
                prev = s.guid;
                info
            })
            .collect())
    }

    /// Space accounting.
    #[must_use]
    pub fn space(&self) -> SpaceStats {
        let ms = &self.zio.ms;
        SpaceStats {
            capacity: ms.capacity(),
            allocated: ms.allocated_bytes(),
            deferred: ms.deferred_bytes(),
            free: ms.free_bytes(),
        }
    }

    fn resolve(&self, name: &str) -> Result<Target, DmuError> {
        let nope = || DmuError::NoSuchDataset(name.to_owned());
        if name.contains('@') {
            let (fs, snap) = split_snapshot(self.name(), name).map_err(|_| nope())?;
            let id = self.fs_id(fs).map_err(|_| nope())?;
            let s = self.dsl.datasets[&id].snapshot(snap).ok_or_else(nope)?;
            Ok(Target::Snap(id, s.creation_txg))
        } else {
            Ok(Target::Head(self.fs_id(name).map_err(|_| nope())?))
        }
    }

    /// The objset `name` names, with zio; snapshots are opened (and cached) on first use.
    pub(crate) fn objset(&mut self, name: &str) -> Result<(&mut Zio, &mut Objset), DmuError> {
        if self.suspended.is_some() {
            return Err(DmuError::Suspended);
        }
        match self.resolve(name)? {
            Target::Head(id) => {
                Ok((&mut self.zio, &mut self.dsl.datasets.get_mut(&id).expect("resolved").head))
            }
            Target::Snap(id, txg) => {
                let ds: &mut DslDataset = self.dsl.datasets.get_mut(&id).expect("resolved");
                if !ds.snap_views.contains_key(&txg) {
                    let root =
                        ds.snapshots.iter().find(|s| s.creation_txg == txg).expect("resolved").root;
                    let os = Objset::open(&mut self.zio, &root, true)?;
                    ds.snap_views.insert(txg, os);
                }
                Ok((&mut self.zio, ds.snap_views.get_mut(&txg).expect("just inserted")))
            }
        }
    }

    fn head(&mut self, name: &str) -> Result<(&mut Zio, &mut Objset, u64), DmuError> {
        if name.contains('@') {
            return Err(DmuError::ReadOnly(name.to_owned()));
        }
        let txg = self.txg.open;
        let (zio, os) = self.objset(name)?;
        Ok((zio, os, txg))
    }

    /// Refuse a change that could not be synced with the space left (ENOSPC). Freed space
    /// waits out its defer period; when that would make room, sync txgs until it is released
    /// and check again (OpenZFS's ERESTART-and-wait in dmu_tx_assign).
    pub(crate) fn space_check(&mut self, more: u64) -> Result<(), DmuError> {
        for _ in 0..=crate::limits::TXG_DEFER_SIZE {
            let pending = self.dirty_bytes() + more;
            let need = pending + pending / 4 + self.slop_bytes();
            if need <= self.zio.ms.free_bytes() {
                return Ok(());
            }
            if need > self.zio.ms.free_bytes() + self.zio.ms.deferred_bytes() || self.job.is_some()
            {
                break;
            }
            self.force_sync = true;
            self.txg_sync().map_err(dmu_from_spa)?;
        }
        Err(DmuError::NoSpace)
    }

    fn account(&mut self, bytes: u64) -> Result<(), DmuError> {
        *self.dirty.entry(self.txg.open).or_default() += bytes;
        if self.dirty[&self.txg.open] >= self.cfg.dirty_bytes_max {
            self.txg_sync().map_err(dmu_from_spa)?;
        }
        Ok(())
    }

    /// Allocate an object in filesystem `fs`; returns the lowest free object number.
    ///
    /// # Errors
    /// Invalid spec fields, `NoSpace`, `ReadOnly`, `NoSuchDataset`.
    pub fn object_alloc(&mut self, fs: &str, spec: &ObjectSpec) -> Result<u64, DmuError> {
        let attrs = spec.to_attrs(false)?;
        self.space_check(4096)?;
        let (zio, os, txg) = self.head(fs)?;
        let obj = os.object_alloc(zio, txg, attrs)?;
        self.log_itx(fs, ItxKind::Create { object: obj, spec: spec_tuple(spec) });
        self.account(512)?;
        Ok(obj)
    }

    /// Allocate object number `object` in `fs` (it must be free).
    ///
    /// # Errors
    /// `ObjectExists`, invalid spec, `NoSpace`, `ReadOnly`, `NoSuchDataset`.
    pub fn object_claim(
        &mut self,
        fs: &str,
        object: u64,
        spec: &ObjectSpec,
    ) -> Result<(), DmuError> {
        let attrs = spec.to_attrs(false)?;
        self.space_check(4096)?;
        let (zio, os, txg) = self.head(fs)?;
        os.object_claim(zio, txg, object, attrs)?;
        self.log_itx(fs, ItxKind::Create { object, spec: spec_tuple(spec) });
        self.account(512)
    }

    /// Re-create existing object `object` with a new spec, discarding its contents.
    ///
    /// # Errors
    /// `NoSuchObject`, invalid spec, `ReadOnly`, `NoSuchDataset`.
    pub fn object_reclaim(
        &mut self,
        fs: &str,
        object: u64,
        spec: &ObjectSpec,
    ) -> Result<(), DmuError> {
        let attrs = spec.to_attrs(false)?;
        let (zio, os, txg) = self.head(fs)?;
        os.object_reclaim(zio, txg, object, attrs)?;
        self.log_itx(fs, ItxKind::Reclaim { object, spec: spec_tuple(spec) });
        self.account(512)
    }

    /// Free object `object` of `fs`.
    ///
    /// # Errors
    /// `NoSuchObject`, `ReadOnly`, `NoSuchDataset`.
    pub fn object_free(&mut self, fs: &str, object: u64) -> Result<(), DmuError> {
        let (zio, os, txg) = self.head(fs)?;
        os.object_free(zio, txg, object)?;
        self.log_itx(fs, ItxKind::Remove { object });
        self.account(512)
    }

    /// Write `data` at `offset` of `object` in `fs`.
    ///
    /// # Errors
    /// `OffsetOverflow`, `NoSuchObject`, `NoSpace`, `ReadOnly`, `NoSuchDataset`, `Zio`.
    pub fn write(
        &mut self,
        fs: &str,
        object: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<(), DmuError> {
        let more = {
            let (zio, os, _) = self.head(fs)?;
            os.write_cost(zio, object, offset, data.len() as u64)?
        };
        self.space_check(more)?;
        let replaying = self.replaying;
        let (zio, os, txg) = self.head(fs)?;
        let dirtied = os.write(zio, txg, object, offset, data)?;
        if !data.is_empty() && !replaying {
            let itx = Self::write_itx(os.hold(zio, object)?, txg, object, offset, data);
            self.log_itx(fs, itx);
        }
        self.account(dirtied)
    }

    /// Free `len` bytes at `offset` (`u64::MAX` = truncate at `offset`).
    ///
    /// # Errors
    /// `OffsetOverflow`, `NoSuchObject`, `ReadOnly`, `NoSuchDataset`, `Zio`.
    pub fn free_range(
        &mut self,
        fs: &str,
        object: u64,
        offset: u64,
        len: u64,
    ) -> Result<(), DmuError> {
        let (zio, os, txg) = self.head(fs)?;
        os.free_range(zio, txg, object, offset, len)?;
        self.log_itx(fs, ItxKind::FreeRange { object, offset, len });
        self.account(512)
    }

    /// Replace the bonus buffer of `object`.
    ///
    /// # Errors
    /// `BonusTooLong`, `InvalidType`, `NoSuchObject`, `ReadOnly`, `NoSuchDataset`.
    pub fn set_bonus(
        &mut self,
        fs: &str,
        object: u64,
        bonustype: u8,
        bonus: &[u8],
    ) -> Result<(), DmuError> {
        let (zio, os, txg) = self.head(fs)?;
        os.set_bonus(zio, txg, object, bonustype, bonus)?;
        self.log_itx(fs, ItxKind::SetBonus { object, bonustype, data: bonus.to_vec() });
        self.account(512)
    }

    /// The log record of a write just applied in `txg`: whole aligned blocks share the
    /// dirty buffers; anything else is copied (WR_COPIED).
    fn write_itx(
        dn: &mut crate::dbuf::Dnode,
        txg: u64,
        object: u64,
        offset: u64,
        data: &[u8],
    ) -> ItxKind {
        let bs = u64::from(dn.attrs().blksz);
        let len = data.len() as u64;
        if offset.is_multiple_of(bs) && len.is_multiple_of(bs) {
            let first = offset / bs;
            let rec = dn.dirty.iter().rev().find(|r| r.txg == txg);
            let blocks: Option<Vec<_>> = rec
                .map(|r| (first..first + len / bs).map(|b| r.blocks.get(&b).cloned()).collect())
                .and_then(|v: Vec<_>| v.into_iter().collect());
            if let Some(blocks) = blocks {
                return ItxKind::WriteBlocks { object, first_blkid: first, blocks };
            }
        }
        ItxKind::Write {
            object,
            offset,
            data: std::sync::Arc::new(data.to_vec()),
            blksz: u32::try_from(bs).expect("<= 128K"),
        }
    }

    /// Queue an intent-log record for a change just made to head `fs` in the open txg.
    fn log_itx(&mut self, fs: &str, kind: ItxKind) {
        if self.replaying {
            return;
        }
        let txg = self.txg.open;
        if let Ok((_, os)) = self.objset(fs) {
            if let Some(z) = os.zil.as_mut() {
                z.log(txg, kind);
            }
        }
    }

    /// Make every change made so far to filesystem `fs` durable through its intent log,
    /// without waiting for a txg sync (`fsync` of `object`: like ZFS's zil_commit for the
    /// whole dataset, it commits the changes of every object, in order). Returns the disk
    /// commands it took.
    ///
    /// # Errors
    /// `NoSuchDataset`, `NoSuchObject`, `ReadOnly`, `NoSpace`, `Zio` (a log write or flush
    /// failed: nothing new is known durable; the changes will still reach disk with their
    /// txg).
    pub fn fsync(&mut self, fs: &str, object: u64) -> Result<CommitStats, DmuError> {
        let checksum =
            self.dataset_props(fs).map_err(|_| DmuError::NoSuchDataset(fs.to_owned()))?.checksum;
        let synced = self.txg.synced;
        let (zio, os, _) = self.head(fs)?;
        os.hold(zio, object)?;
        if os.zil.as_ref().is_some_and(|z| z.header_txg.is_none_or(|t| t > synced)) {
            // A new chain's header must be committed before its first commit counts.
            self.force_sync = true;
            self.txg_sync().map_err(|_| DmuError::Suspended)?;
        }
        let (zio, os, _) = self.head(fs)?;
        let Some(z) = os.zil.as_mut() else { return Ok(CommitStats::default()) };
        let mut tries = 0;
        loop {
            match z.commit(zio, checksum) {
                Ok(stats) => {
                    // Bound the log: past the limit a txg sync makes it all obsolete.
                    if z.log_bytes() > self.zil_bytes_max() {
                        self.txg_sync().map_err(|_| DmuError::Suspended)?;
                    }
                    return Ok(stats);
                }
                Err(CommitError::NoSpace) => return Err(DmuError::NoSpace),
                Err(CommitError::Io(e)) if tries >= crate::spa::ZIO_MAX_RETRIES => {
                    return Err(DmuError::Zio(crate::error::ZioError::Io(e)));
                }
                Err(CommitError::Io(_)) => tries += 1,
            }
        }
    }

    /// Log bytes one dataset may hold before an fsync forces a txg sync (ZFS bounds its log
    /// by the txg timeout and zil_max_log_data; here: 1/16 of the pool, at most 64 MiB).
    fn zil_bytes_max(&self) -> u64 {
        (self.zio.ms.capacity() / 16).min(64 << 20)
    }

    /// A synchronous write: `write` then `fsync`.
    ///
    /// # Errors
    /// As `write` and `fsync`.
    pub fn write_sync(
        &mut self,
        fs: &str,
        object: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<CommitStats, DmuError> {
        self.write(fs, object, offset, data)?;
        self.fsync(fs, object)
    }

    /// Apply one replayed intent-log operation. An error (a block the operation must read is
    /// damaged, no space) changes nothing; the caller stops replaying that filesystem there,
    /// as OpenZFS stops at a record it cannot replay (zil_replay_error).
    ///
    /// # Errors
    /// The operation's error.
    pub(crate) fn replay_op(&mut self, fs: &str, op: &LoggedOp) -> Result<(), DmuError> {
        let spec = |s: (u8, u32, u8, u8, u16)| ObjectSpec {
            ot: s.0,
            blksz: s.1,
            indblkshift: s.2,
            bonustype: s.3,
            bonuslen: usize::from(s.4),
        };
        match &op.kind {
            ItxKind::Write { object, offset, data, .. } => self.write(fs, *object, *offset, data),
            ItxKind::WriteBlocks { object, first_blkid, blocks } => {
                blocks.iter().enumerate().try_for_each(|(i, b)| {
                    self.write(fs, *object, (first_blkid + i as u64) * b.len() as u64, b)
                })
            }
            ItxKind::FreeRange { object, offset, len } => {
                self.free_range(fs, *object, *offset, *len)
            }
            ItxKind::Create { object, spec: s } => self.object_claim(fs, *object, &spec(*s)),
            ItxKind::Reclaim { object, spec: s } => self.object_reclaim(fs, *object, &spec(*s)),
            ItxKind::Remove { object } => self.object_free(fs, *object),
            ItxKind::SetBonus { object, bonustype, data } => {
                self.set_bonus(fs, *object, *bonustype, data)
            }
        }
    }

    /// Read `len` bytes at `offset` of `object` in a head or snapshot.
    ///
    /// # Errors
    /// `OffsetOverflow`, `NoSuchObject`, `NoSuchDataset`, `Zio` (never wrong data).
    pub fn read(
        &mut self,
        name: &str,
        object: u64,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, DmuError> {
        let (zio, os) = self.objset(name)?;
        os.read(zio, object, offset, len)
    }

    /// Read `buf.len()` bytes at `offset` of `object` into a caller's buffer (no allocation:
    /// the `pread` of this API).
    ///
    /// # Errors
    /// As `read`.
    pub fn read_into(
        &mut self,
        name: &str,
        object: u64,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), DmuError> {
        let (zio, os) = self.objset(name)?;
        os.read_into(zio, object, offset, buf)
    }

    /// Bonus type and buffer of `object`.
    ///
    /// # Errors
    /// `NoSuchObject`, `NoSuchDataset`, `Zio`.
    pub fn bonus(&mut self, name: &str, object: u64) -> Result<(u8, Vec<u8>), DmuError> {
        let (zio, os) = self.objset(name)?;
        os.bonus(zio, object)
    }

    /// Information about `object`.
    ///
    /// # Errors
    /// `NoSuchObject`, `NoSuchDataset`, `Zio`.
    pub fn object_info(&mut self, name: &str, object: u64) -> Result<ObjectInfo, DmuError> {
        let (zio, os) = self.objset(name)?;
        os.object_info(zio, object)
    }

    /// The ids of the blocks of `object` that hold data (written in an open txg or on disk
    /// and not freed since), ascending: what reads of the object do not return as holes.
    ///
    /// # Errors
    /// `NoSuchDataset`, `NoSuchObject`, `InvalidObject`, `Zio`.
    pub fn data_blocks(&mut self, name: &str, object: u64) -> Result<Vec<u64>, DmuError> {
        let (zio, os) = self.objset(name)?;
        os.data_blocks(zio, object)
    }

    /// The next allocated object after `after` (0 to start).
    ///
    /// # Errors
    /// `NoSuchDataset`, `Zio`.
    pub fn next_object(&mut self, name: &str, after: u64) -> Result<Option<u64>, DmuError> {
        let (zio, os) = self.objset(name)?;
        Ok(os.next_object(zio, after)?)
    }

    /// Every allocated object of a head or snapshot, ascending.
    ///
    /// # Errors
    /// `NoSuchDataset`, `Zio`.
    pub fn objects(&mut self, name: &str) -> Result<Vec<u64>, DmuError> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(o) = self.next_object(name, at)? {
            out.push(o);
            at = o;
        }
        Ok(out)
    }
}

/// The synced trees of one dataset, for checkers (`oracle::integrity`).
#[derive(Clone, Debug)]
pub struct DatasetTrees {
    /// Full name.
    pub name: String,
    /// Snapshots oldest first: (short name, creation txg, objset block).
    pub snapshots: Vec<(String, u64, crate::zio::blkptr::BlkPtr)>,
    /// The head's synced objset block.
    pub head: crate::zio::blkptr::BlkPtr,
    /// Txg before which blocks of the first snapshot are not this dataset's (0 normally).
    pub origin_txg: u64,
    /// Extents the head's intent log holds (log blocks, the preallocated next block,
    /// blocks written in place): allocated but not part of any tree.
    pub zil: Vec<crate::zio::blkptr::Dva>,
}

impl Spa {
    /// The synced trees of every dataset (temporary ones included) and the MOS blocks.
    /// Meaningful when no txg is syncing.
    #[must_use]
    pub fn pool_trees(&self) -> (Vec<DatasetTrees>, Vec<crate::zio::blkptr::BlkPtr>) {
        let ds = self
            .dsl
            .datasets
            .values()
            .map(|d| DatasetTrees {
                name: d.name.clone(),
                snapshots: d
                    .snapshots
                    .iter()
                    .map(|s| (s.name.clone(), s.creation_txg, s.root))
                    .collect(),
                head: d.head.root,
                origin_txg: d.origin_txg,
                zil: d.head.zil.as_ref().map(crate::zil::Zilog::extents).unwrap_or_default(),
            })
            .collect();
        (ds, self.mos_blocks.clone())
    }
}
