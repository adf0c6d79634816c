//! The reference model: a pool as plain BTreeMaps, with the same API shape as `engine::Spa`.
//! OpenZFS counterpart: none (ztest keeps no model); the semantics are dmu.c / dnode.c's.
//! Used by op.rs (applied beside the engine), conformance.rs and manifest.rs; takes only the
//! engine's argument and error types (ObjectSpec, ObjectInfo, DmuError, DslError). No txgs,
//! no disk: a snapshot is a clone of the head. Invariants: every object's blocks lie at or
//! below its maxblkid and are exactly blksz long; absent blocks read as zeros; a failed call
//! changes nothing; argument checks come in the engine's order, so error kinds compare.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use engine::{DmuError, DslError, ObjectInfo, ObjectSpec};

use crate::space::{FsView, SpaceFit, SpaceHistory, SpaceNeed, SPACE_CHANGE_CHARGE};

mod recv;

pub use recv::{as_received, RecvMaxblkids, RecvRefusal};

/// Largest offset + length a read or write may reach: the engine's `DMU_MAX_OFFSET`, 2^62
/// (the brief said 2^63; engine/src/limits.rs names 2^62 and that is the contract).
pub const MODEL_MAX_OFFSET: u64 = 1 << 62;
/// Object numbers are below this (DN_MAX_OBJECT).
pub const MODEL_MAX_OBJECT: u64 = 1 << 48;
/// `free_range` length meaning "to the end": a truncation (DMU_OBJECT_END).
pub const MODEL_OBJECT_END: u64 = u64::MAX;
/// Largest bonus length at allocation (DN_MAX_BONUSLEN of a 512-byte dnode).
pub const MODEL_MAX_BONUSLEN: usize = 320;
/// Bytes shared by block pointers and bonus in a dnode (512 - 64 core bytes).
pub const MODEL_DNODE_TAIL_BYTES: usize = 448;
/// Bytes of one block pointer.
pub const MODEL_BLKPTR_BYTES: usize = 128;
/// Smallest and largest data block sizes.
pub const MODEL_BLKSZ_MIN: u32 = 512;
/// Largest data block size (128 KiB).
pub const MODEL_BLKSZ_MAX: u32 = 128 << 10;
/// Longest dataset or snapshot name.
pub const MODEL_NAME_LEN_MAX: usize = 255;
/// Filesystems per pool and snapshots per filesystem (the engine's named limits).
pub const MODEL_DATASETS_MAX: usize = 4096;
/// Snapshots per filesystem.
pub const MODEL_SNAPSHOTS_MAX: usize = 4096;
const INDBLKSHIFT_DEFAULT: u8 = 14;
const INDBLKSHIFT_RANGE: std::ops::RangeInclusive<u8> = 12..=17;

const _: () = assert!(MODEL_DNODE_TAIL_BYTES == MODEL_MAX_BONUSLEN + MODEL_BLKPTR_BYTES);
const _: () = assert!(MODEL_BLKSZ_MIN.is_power_of_two() && MODEL_BLKSZ_MAX.is_power_of_two());

/// The kind of an error, the same for model and engine so outcomes compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrKind {
    /// Dataset or snapshot missing (ENOENT).
    NoSuchDataset,
    /// Object missing (ENOENT).
    NoSuchObject,
    /// Object number taken (EEXIST).
    ObjectExists,
    /// Object 0 or >= 2^48.
    InvalidObject,
    /// Block size not a power of two in 512..=128 KiB.
    InvalidBlockSize,
    /// Indirect block shift outside 12..=17.
    InvalidIndBlkShift,
    /// Object or bonus type invalid.
    InvalidType,
    /// Bonus longer than the dnode holds.
    BonusTooLong,
    /// offset + length past the limit (EFBIG).
    OffsetOverflow,
    /// Snapshots are read-only (EROFS).
    ReadOnly,
    /// Out of space (the model never says this; the engine may).
    NoSpace,
    /// A block could not be read (the model never says this).
    Io,
    /// The pool is suspended (the model never says this).
    Suspended,
    /// Malformed dataset or snapshot name.
    InvalidName,
    /// Dataset or snapshot exists (EEXIST).
    Exists,
    /// Rollback without a snapshot.
    NoSnapshot,
    /// Pool root, or a dataset with children (EBUSY).
    Busy,
    /// A named count limit.
    Limit,
}

/// Errors of the model: the error kinds themselves.
pub type ModelError = ErrKind;

/// The kind of an engine DMU error.
#[must_use]
pub fn kind_of_dmu(e: &DmuError) -> ErrKind {
    match e {
        DmuError::NoSuchDataset(_) => ErrKind::NoSuchDataset,
        DmuError::NoSuchObject { .. } => ErrKind::NoSuchObject,
        DmuError::ObjectExists { .. } => ErrKind::ObjectExists,
        DmuError::InvalidObject { .. } => ErrKind::InvalidObject,
        DmuError::InvalidBlockSize { .. } => ErrKind::InvalidBlockSize,
        DmuError::InvalidIndBlkShift { .. } => ErrKind::InvalidIndBlkShift,
        DmuError::InvalidType { .. } => ErrKind::InvalidType,
        DmuError::BonusTooLong { .. } => ErrKind::BonusTooLong,
        DmuError::OffsetOverflow { .. } => ErrKind::OffsetOverflow,
        DmuError::ReadOnly(_) => ErrKind::ReadOnly,
        DmuError::NoSpace => ErrKind::NoSpace,
        DmuError::Zio(_) => ErrKind::Io,
        DmuError::Suspended => ErrKind::Suspended,
    }
}

/// The kind of an engine DSL error.
#[must_use]
pub fn kind_of_dsl(e: &DslError) -> ErrKind {
    match e {
        DslError::InvalidName(_) => ErrKind::InvalidName,
        DslError::NoSuchDataset(_) => ErrKind::NoSuchDataset,
        DslError::Exists(_) => ErrKind::Exists,
        DslError::NoSnapshot(_) => ErrKind::NoSnapshot,
        DslError::Busy(_) => ErrKind::Busy,
        DslError::Limit(_) => ErrKind::Limit,
        DslError::NoSpace => ErrKind::NoSpace,
        DslError::Zio(_) => ErrKind::Io,
        DslError::Suspended => ErrKind::Suspended,
    }
}

/// What `object_info` reports, minus the engine's tree shape (nlevels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// Object type.
    pub ot: u8,
    /// Data block size.
    pub blksz: u32,
    /// log2 of the indirect block size.
    pub indblkshift: u8,
    /// Bonus type.
    pub bonustype: u8,
    /// Bonus length.
    pub bonuslen: u16,
    /// Highest block id.
    pub maxblkid: u64,
    /// Block pointers in the dnode.
    pub nblkptr: u8,
}

impl ModelInfo {
    /// The comparable part of the engine's `ObjectInfo`.
    #[must_use]
    pub fn of_engine(i: &ObjectInfo) -> Self {
        let ObjectInfo { ot, blksz, indblkshift, bonustype, bonuslen, maxblkid, nblkptr, .. } = *i;
        Self { ot, blksz, indblkshift, bonustype, bonuslen, maxblkid, nblkptr }
    }
}

/// One object: its attributes and its non-hole blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelObject {
    /// Object type (never 0).
    pub ot: u8,
    /// Data block size.
    pub blksz: u32,
    /// log2 of the indirect block size.
    pub indblkshift: u8,
    /// Bonus type.
    pub bonustype: u8,
    /// Bonus buffer (its length is bonuslen).
    pub bonus: Vec<u8>,
    /// Block pointers, fixed at allocation by the bonus length.
    pub nblkptr: u8,
    /// Highest block id (raised by writes, lowered only by truncation).
    pub maxblkid: u64,
    /// Written blocks by blkid, each `blksz` bytes; absent = zeros. A block a snapshot shares
    /// with its head is one `Arc` (`space` counts distinct blocks by it); a change to a block
    /// makes a new one, as the engine's copy-on-write does.
    pub blocks: BTreeMap<u64, Arc<Vec<u8>>>,
}

impl ModelObject {
    fn new(spec: &ObjectSpec) -> Self {
        let ibs = if spec.indblkshift == 0 { INDBLKSHIFT_DEFAULT } else { spec.indblkshift };
        Self {
            ot: spec.ot,
            blksz: spec.blksz,
            indblkshift: ibs,
            bonustype: spec.bonustype,
            bonus: vec![0; spec.bonuslen],
            nblkptr: nblkptr_for(spec.bonuslen),
            maxblkid: 0,
            blocks: BTreeMap::new(),
        }
    }

    /// The comparable attributes.
    #[must_use]
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            ot: self.ot,
            blksz: self.blksz,
            indblkshift: self.indblkshift,
            bonustype: self.bonustype,
            bonuslen: u16::try_from(self.bonus.len()).expect("invariant: <= 320"),
            maxblkid: self.maxblkid,
            nblkptr: self.nblkptr,
        }
    }

    /// Bytes `[offset, offset + len)` (caller checked the range).
    #[must_use]
    pub fn read_bytes(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        let (bs, end) = (u64::from(self.blksz), offset + len as u64);
        if len == 0 {
            return out;
        }
        for (&blkid, data) in self.blocks.range(offset / bs..=(end - 1) / bs) {
            let (from, to) = (offset.max(blkid * bs), end.min((blkid + 1) * bs));
            let src = &data[idx(from - blkid * bs)..idx(to - blkid * bs)];
            out[idx(from - offset)..idx(to - offset)].copy_from_slice(src);
        }
        out
    }

    /// Zero `[from, to)` within the object: whole blocks become holes, partial ones zeros.
    fn zero_range(&mut self, from: u64, to: u64) {
        assert!(from < to, "empty zero range {from}..{to}");
        let bs = u64::from(self.blksz);
        let ids: Vec<u64> = self.blocks.range(from / bs..=(to - 1) / bs).map(|(&k, _)| k).collect();
        for blkid in ids {
            let (b0, b1) = (blkid * bs, (blkid + 1) * bs);
            if from <= b0 && b1 <= to {
                self.blocks.remove(&blkid);
            } else {
                let mut block = self.blocks[&blkid].to_vec();
                block[idx(from.max(b0) - b0)..idx(to.min(b1) - b0)].fill(0);
                self.blocks.insert(blkid, Arc::new(block));
            }
        }
    }
}

/// Block pointers of a dnode whose bonus is `bonuslen` bytes (at most 3).
fn nblkptr_for(bonuslen: usize) -> u8 {
    let n = 1 + (MODEL_MAX_BONUSLEN - bonuslen.min(MODEL_MAX_BONUSLEN)) / MODEL_BLKPTR_BYTES;
    u8::try_from(n.min(3)).expect("invariant: <= 3")
}

fn idx(n: u64) -> usize {
    usize::try_from(n).expect("invariant: in-memory index")
}

/// An object set: allocated objects by number (never 0).
pub type ModelObjset = BTreeMap<u64, ModelObject>;

/// A snapshot: its short name, contents, and identity (ZFS's snapshot guid: kept by a
/// receive, new for every snapshot taken).
#[derive(Clone, Debug)]
struct ModelSnap {
    name: String,
    objset: ModelObjset,
    serial: u64,
    /// The head had changed since the snapshot before this one when this one was taken
    /// (`ModelDataset::touched` then, or a receive): if this one, the newest, is destroyed,
    /// the head stands against the previous one with that history.
    head_touched_before: bool,
}

#[derive(Clone, Debug, Default)]
struct ModelDataset {
    head: ModelObjset,
    snapshots: Vec<ModelSnap>,
    /// Made by a receive: its objects hold what a stream carries (`as_received`), so maxblkid
    /// is compared as the stream can carry it (`Model::is_received`).
    received: bool,
    /// Data blocks are lz4-compressed, so blocks of zeros are stored as holes (the engine's
    /// `Compress::Lz4`): what a send of it carries (`as_received`).
    compress: bool,
    /// A change succeeded on the head since its newest snapshot (or the receive or rollback
    /// that set it): see `Model::head_state`.
    touched: bool,
}

/// How a filesystem's head stands against its newest snapshot, for a receive's
/// "modified since most recent snapshot" check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadState {
    /// Nothing was done to the head since: a receive must see it unmodified.
    Clean,
    /// Its contents differ from the newest snapshot (or there is none): modified.
    Modified,
    /// Calls succeeded that left the contents as they were (a write of the same bytes, a
    /// free of a hole), or an import replayed the intent log: ZFS counts the head as
    /// modified when such a call dirtied a dnode (the meta-dnode changes) and not otherwise,
    /// which depends on the engine's buffering, so either answer of a receive is accepted
    /// and followed. (An fsync or a rollback leaves the head clean.)
    Unknown,
}

/// The reference pool.
#[derive(Clone, Debug)]
pub struct Model {
    pool: String,
    datasets: BTreeMap<String, ModelDataset>,
    /// The space bound's history (`space`): what the engine may hold for these states.
    space: SpaceHistory,
}

/// Source of snapshot identities: one counter for the whole process, so that no two
/// snapshots ever share one (a state rewound after a crash, a pool created anew, another
/// model's pool). Identities are only compared, never shown, so their values do not make a
/// run depend on other runs.
static SNAPSHOT_SERIALS: AtomicU64 = AtomicU64::new(1);

fn component_ok(c: &str) -> bool {
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
    !c.is_empty() && c != "." && c != ".." && c.bytes().all(ok)
}

fn check_object(object: u64) -> Result<(), ErrKind> {
    if object == 0 || object >= MODEL_MAX_OBJECT {
        return Err(ErrKind::InvalidObject);
    }
    Ok(())
}

fn check_range(offset: u64, len: u64) -> Result<u64, ErrKind> {
    offset.checked_add(len).filter(|&e| e <= MODEL_MAX_OFFSET).ok_or(ErrKind::OffsetOverflow)
}

const fn ot_valid(ot: u8) -> bool {
    if ot & 0x80 != 0 {
        (ot & 0x1f) < 10
    } else {
        ot > 0 && ot < 54
    }
}

const fn bonustype_valid(ot: u8) -> bool {
    ot == 0 || ot_valid(ot)
}

/// Validate an allocation spec in the engine's order (ObjectSpec::to_attrs).
fn check_spec(s: &ObjectSpec) -> Result<(), ErrKind> {
    if !ot_valid(s.ot) || !bonustype_valid(s.bonustype) {
        return Err(ErrKind::InvalidType);
    }
    if !s.blksz.is_power_of_two() || !(MODEL_BLKSZ_MIN..=MODEL_BLKSZ_MAX).contains(&s.blksz) {
        return Err(ErrKind::InvalidBlockSize);
    }
    let ibs = if s.indblkshift == 0 { INDBLKSHIFT_DEFAULT } else { s.indblkshift };
    if !INDBLKSHIFT_RANGE.contains(&ibs) {
        return Err(ErrKind::InvalidIndBlkShift);
    }
    if s.bonuslen > MODEL_MAX_BONUSLEN {
        return Err(ErrKind::BonusTooLong);
    }
    Ok(())
}

fn hold(os: &ModelObjset, object: u64) -> Result<&ModelObject, ErrKind> {
    os.get(&object).ok_or(ErrKind::NoSuchObject)
}

fn hold_mut(os: &mut ModelObjset, object: u64) -> Result<&mut ModelObject, ErrKind> {
    os.get_mut(&object).ok_or(ErrKind::NoSuchObject)
}

impl Model {
    /// A pool named `pool` with its empty root filesystem.
    #[must_use]
    pub fn new(pool: &str) -> Self {
        assert!(component_ok(pool), "bad pool name {pool:?}");
        let mut datasets = BTreeMap::new();
        datasets.insert(pool.to_owned(), ModelDataset::default());
        let mut m = Self { pool: pool.to_owned(), datasets, space: SpaceHistory::default() };
        m.observe_space();
        m
    }

    /// Pool name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.pool
    }

    fn check_fs(&self, name: &str) -> Result<(), ErrKind> {
        let mut parts = name.split('/');
        let ok = name.len() <= MODEL_NAME_LEN_MAX
            && !name.contains('@')
            && parts.next() == Some(self.pool.as_str())
            && parts.all(component_ok);
        if ok {
            Ok(())
        } else {
            Err(ErrKind::InvalidName)
        }
    }

    fn split_snapshot<'a>(&self, name: &'a str) -> Result<(&'a str, &'a str), ErrKind> {
        let (fs, snap) = name.split_once('@').ok_or(ErrKind::InvalidName)?;
        if name.len() > MODEL_NAME_LEN_MAX || !component_ok(snap) {
            return Err(ErrKind::InvalidName);
        }
        self.check_fs(fs)?;
        Ok((fs, snap))
    }

    fn fs(&self, name: &str) -> Result<&ModelDataset, ErrKind> {
        self.check_fs(name)?;
        self.datasets.get(name).ok_or(ErrKind::NoSuchDataset)
    }

    fn fs_mut(&mut self, name: &str) -> Result<&mut ModelDataset, ErrKind> {
        self.check_fs(name)?;
        self.datasets.get_mut(name).ok_or(ErrKind::NoSuchDataset)
    }

    /// The head of filesystem `name` (intent-log checks keep it after each logged op).
    #[must_use]
    pub fn head(&self, name: &str) -> Option<&ModelObjset> {
        self.datasets.get(name).map(|d| &d.head)
    }

    /// Replace the head of filesystem `name` (a crash check building "committed state plus
    /// a replayed prefix"); false if there is no such filesystem.
    pub fn set_head(&mut self, name: &str, head: ModelObjset) -> bool {
        match self.datasets.get_mut(name) {
            Some(d) => {
                d.head = head;
                self.observe_space();
                true
            }
            None => false,
        }
    }

    /// Create filesystem `name`; its parent must exist.
    ///
    /// # Errors
    /// `InvalidName`, `Exists`, `NoSuchDataset` (parent), `Limit`.
    pub fn dataset_create(&mut self, name: &str) -> Result<(), ModelError> {
        self.check_fs(name)?;
        if self.datasets.contains_key(name) {
            return Err(ErrKind::Exists);
        }
        if let Some((parent, _)) = name.rsplit_once('/') {
            self.fs(parent)?;
        }
        if self.datasets.len() >= MODEL_DATASETS_MAX {
            return Err(ErrKind::Limit);
        }
        self.datasets.insert(name.to_owned(), ModelDataset::default());
        self.synced_fully();
        Ok(())
    }

    /// Destroy filesystem `name` and its snapshots (not the root, not with children).
    ///
    /// # Errors
    /// `InvalidName`, `NoSuchDataset`, `Busy`.
    pub fn dataset_destroy(&mut self, name: &str) -> Result<(), ModelError> {
        self.fs(name)?;
        let prefix = format!("{name}/");
        if name == self.pool || self.datasets.keys().any(|k| k.starts_with(&prefix)) {
            return Err(ErrKind::Busy);
        }
        self.datasets.remove(name);
        self.synced_fully();
        Ok(())
    }

    /// Snapshot `pool/fs@snap`: a copy of the head.
    ///
    /// # Errors
    /// `InvalidName`, `NoSuchDataset`, `Exists`, `Limit`.
    pub fn snapshot(&mut self, name: &str) -> Result<(), ModelError> {
        let (fs, snap) = self.split_snapshot(name)?;
        let ds = self.fs_mut(fs)?;
        if ds.snapshots.iter().any(|s| s.name == snap) {
            return Err(ErrKind::Exists);
        }
        if ds.snapshots.len() >= MODEL_SNAPSHOTS_MAX {
            return Err(ErrKind::Limit);
        }
        let objset = ds.head.clone();
        let serial = SNAPSHOT_SERIALS.fetch_add(1, Ordering::Relaxed);
        let ds = self.datasets.get_mut(fs).expect("checked above");
        let head_touched_before = ds.touched;
        ds.snapshots.push(ModelSnap { name: snap.to_owned(), objset, serial, head_touched_before });
        ds.touched = false;
        self.synced_fully();
        Ok(())
    }

    /// Destroy snapshot `pool/fs@snap`.
    ///
    /// # Errors
    /// `InvalidName`, `NoSuchDataset`.
    pub fn snapshot_destroy(&mut self, name: &str) -> Result<(), ModelError> {
        let (fs, snap) = self.split_snapshot(name)?;
        let ds = self.fs_mut(fs)?;
        let at = ds.snapshots.iter().position(|s| s.name == snap).ok_or(ErrKind::NoSuchDataset)?;
        let newest = at + 1 == ds.snapshots.len();
        let gone = ds.snapshots.remove(at);
        if newest {
            // The head now stands against the previous snapshot: whatever changed it before
            // the destroyed one was taken still counts (dsl_dataset_modified_since_snap).
            ds.touched |= gone.head_touched_before;
        }
        self.synced_fully();
        Ok(())
    }

    /// Roll `fs` back to its newest snapshot.
    ///
    /// # Errors
    /// `InvalidName`, `NoSuchDataset`, `NoSnapshot`.
    pub fn rollback(&mut self, fs: &str) -> Result<(), ModelError> {
        let ds = self.fs_mut(fs)?;
        let newest = ds.snapshots.last().ok_or(ErrKind::NoSnapshot)?.objset.clone();
        ds.head = newest;
        // A rolled-back head is unmodified: dsl_dataset_modified_since_snap compares
        // meta-dnodes, and a rollback rewrites only the intent-log header.
        ds.touched = false;
        self.synced_fully();
        Ok(())
    }

    /// Every filesystem, sorted by name.
    #[must_use]
    pub fn datasets(&self) -> Vec<String> {
        self.datasets.keys().cloned().collect()
    }

    /// Full names of the snapshots of `fs`, oldest first.
    ///
    /// # Errors
    /// `InvalidName`, `NoSuchDataset`.
    pub fn snapshots(&self, fs: &str) -> Result<Vec<String>, ModelError> {
        Ok(self.fs(fs)?.snapshots.iter().map(|s| format!("{fs}@{}", s.name)).collect())
    }

    /// The objset a DMU read names (head or snapshot); any bad name is `NoSuchDataset`.
    fn view(&self, name: &str) -> Result<&ModelObjset, ErrKind> {
        let nope = |_| ErrKind::NoSuchDataset;
        if !name.contains('@') {
            return Ok(&self.fs(name).map_err(nope)?.head);
        }
        let (fs, snap) = self.split_snapshot(name).map_err(nope)?;
        let ds = self.fs(fs).map_err(nope)?;
        let found = ds.snapshots.iter().find(|s| s.name == snap);
        found.map(|s| &s.objset).ok_or(ErrKind::NoSuchDataset)
    }

    /// The head a DMU change names: any `@` is `ReadOnly`, before the name is looked up.
    fn head_mut(&mut self, name: &str) -> Result<&mut ModelObjset, ErrKind> {
        if name.contains('@') {
            return Err(ErrKind::ReadOnly);
        }
        Ok(&mut self.fs_mut(name).map_err(|_| ErrKind::NoSuchDataset)?.head)
    }

    /// Allocate the lowest free object number >= 1.
    ///
    /// # Errors
    /// Spec errors, `ReadOnly`, `NoSuchDataset`, `InvalidObject`.
    pub fn object_alloc(&mut self, fs: &str, spec: &ObjectSpec) -> Result<u64, ModelError> {
        check_spec(spec)?;
        let os = self.head_mut(fs)?;
        let mut object = 1;
        for &o in os.keys() {
            if o != object {
                break;
            }
            object += 1;
        }
        check_object(object)?;
        os.insert(object, ModelObject::new(spec));
        self.touch(fs);
        Ok(object)
    }

    /// Allocate object number `object`, which must be free.
    ///
    /// # Errors
    /// Spec errors, `ReadOnly`, `NoSuchDataset`, `InvalidObject`, `ObjectExists`.
    pub fn object_claim(
        &mut self,
        fs: &str,
        object: u64,
        spec: &ObjectSpec,
    ) -> Result<(), ModelError> {
        check_spec(spec)?;
        let os = self.head_mut(fs)?;
        check_object(object)?;
        if os.contains_key(&object) {
            return Err(ErrKind::ObjectExists);
        }
        os.insert(object, ModelObject::new(spec));
        self.touch(fs);
        Ok(())
    }

    /// Re-create allocated object `object` with a new spec, contents discarded.
    ///
    /// # Errors
    /// Spec errors, `ReadOnly`, `NoSuchDataset`, `InvalidObject`, `NoSuchObject`.
    pub fn object_reclaim(
        &mut self,
        fs: &str,
        object: u64,
        spec: &ObjectSpec,
    ) -> Result<(), ModelError> {
        check_spec(spec)?;
        let os = self.head_mut(fs)?;
        check_object(object)?;
        *hold_mut(os, object)? = ModelObject::new(spec);
        self.touch(fs);
        Ok(())
    }

    /// Free object `object`.
    ///
    /// # Errors
    /// `ReadOnly`, `NoSuchDataset`, `InvalidObject`, `NoSuchObject`.
    pub fn object_free(&mut self, fs: &str, object: u64) -> Result<(), ModelError> {
        let os = self.head_mut(fs)?;
        check_object(object)?;
        hold(os, object)?;
        os.remove(&object);
        self.touch(fs);
        Ok(())
    }

    /// Write `data` at `offset`; every touched block becomes present; maxblkid grows.
    ///
    /// # Errors
    /// `ReadOnly`, `NoSuchDataset`, `InvalidObject`, `OffsetOverflow`, `NoSuchObject`.
    pub fn write(
        &mut self,
        fs: &str,
        object: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<(), ModelError> {
        let charge = self.write_need(fs, object, offset, data.len() as u64).dirty;
        let os = self.head_mut(fs)?;
        check_object(object)?;
        let end = check_range(offset, data.len() as u64)?;
        let ob = hold_mut(os, object)?;
        let bs = u64::from(ob.blksz);
        if data.is_empty() {
            self.touch(fs);
            return Ok(());
        }
        for blkid in offset / bs..=(end - 1) / bs {
            let (from, to) = (offset.max(blkid * bs), end.min((blkid + 1) * bs));
            // A new block every time, as copy-on-write writes one (`space` sees the old freed).
            let mut block = ob.blocks.get(&blkid).map_or_else(|| vec![0; idx(bs)], |b| b.to_vec());
            let src = &data[idx(from - offset)..idx(to - offset)];
            block[idx(from - blkid * bs)..idx(to - blkid * bs)].copy_from_slice(src);
            ob.blocks.insert(blkid, Arc::new(block));
            ob.maxblkid = ob.maxblkid.max(blkid);
        }
        self.space.charge(charge, data.len() as u64);
        self.touch(fs);
        Ok(())
    }

    /// Read `len` bytes at `offset` of a head or snapshot (holes and past-EOF are zeros).
    ///
    /// # Errors
    /// `NoSuchDataset`, `InvalidObject`, `OffsetOverflow`, `NoSuchObject`.
    pub fn read(
        &self,
        name: &str,
        object: u64,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, ModelError> {
        let os = self.view(name)?;
        check_object(object)?;
        check_range(offset, len)?;
        let obj = hold(os, object)?;
        if len > engine::limits::DMU_MAX_ACCESS {
            return Err(ErrKind::OffsetOverflow);
        }
        Ok(obj.read_bytes(offset, idx(len)))
    }

    /// Free `len` bytes at `offset` (`MODEL_OBJECT_END` = truncate), as dnode_free_range:
    /// no-op past maxblkid; the range (clipped to the object) reads as zeros afterwards,
    /// whole blocks become holes; truncation sets maxblkid = ceil(offset / blksz) - 1.
    ///
    /// # Errors
    /// `ReadOnly`, `NoSuchDataset`, `InvalidObject`, `OffsetOverflow`, `NoSuchObject`.
    pub fn free_range(
        &mut self,
        fs: &str,
        object: u64,
        offset: u64,
        len: u64,
    ) -> Result<(), ModelError> {
        let os = self.head_mut(fs)?;
        check_object(object)?;
        let trunc = len == MODEL_OBJECT_END;
        let end = if trunc {
            u64::MAX
        } else {
            offset.checked_add(len).ok_or(ErrKind::OffsetOverflow)?
        };
        let ob = hold_mut(os, object)?;
        let bs = u64::from(ob.blksz);
        if len == 0 || offset / bs > ob.maxblkid {
            self.touch(fs);
            return Ok(());
        }
        ob.zero_range(offset, end.min((ob.maxblkid + 1) * bs));
        if trunc {
            ob.maxblkid = offset.div_ceil(bs).saturating_sub(1);
        }
        assert!(ob.blocks.keys().next_back().is_none_or(|&b| b <= ob.maxblkid), "block past end");
        self.touch(fs);
        Ok(())
    }

    /// Replace the bonus buffer; it must fit 448 - 128 * nblkptr bytes.
    ///
    /// # Errors
    /// `ReadOnly`, `NoSuchDataset`, `InvalidObject`, `InvalidType`, `NoSuchObject`,
    /// `BonusTooLong`.
    pub fn set_bonus(
        &mut self,
        fs: &str,
        object: u64,
        bonustype: u8,
        bonus: &[u8],
    ) -> Result<(), ModelError> {
        let os = self.head_mut(fs)?;
        check_object(object)?;
        if !bonustype_valid(bonustype) {
            return Err(ErrKind::InvalidType);
        }
        let ob = hold_mut(os, object)?;
        if bonus.len() > MODEL_DNODE_TAIL_BYTES - MODEL_BLKPTR_BYTES * usize::from(ob.nblkptr) {
            return Err(ErrKind::BonusTooLong);
        }
        ob.bonustype = bonustype;
        ob.bonus = bonus.to_vec();
        self.touch(fs);
        Ok(())
    }

    /// `fsync`: durability only, so the model just checks the arguments as the engine does
    /// (the name must be an existing filesystem, else `NoSuchDataset`; no number check).
    ///
    /// # Errors
    /// `NoSuchDataset`, `NoSuchObject`.
    pub fn fsync(&mut self, fs: &str, object: u64) -> Result<(), ModelError> {
        let ds = self.fs(fs).map_err(|_| ErrKind::NoSuchDataset)?;
        hold(&ds.head, object)?;
        // An fsync writes the intent log only: the head stays as it was (the meta-dnode
        // comparison of dsl_dataset_modified_since_snap does not see the log header).
        self.space.commit();
        self.observe_space();
        Ok(())
    }

    /// Bonus type and buffer.
    ///
    /// # Errors
    /// `NoSuchDataset`, `InvalidObject`, `NoSuchObject`.
    pub fn bonus(&self, name: &str, object: u64) -> Result<(u8, Vec<u8>), ModelError> {
        let os = self.view(name)?;
        check_object(object)?;
        let ob = hold(os, object)?;
        Ok((ob.bonustype, ob.bonus.clone()))
    }

    /// Object attributes (no object-number check: object 0 is simply `NoSuchObject`).
    ///
    /// # Errors
    /// `NoSuchDataset`, `NoSuchObject`.
    pub fn object_info(&self, name: &str, object: u64) -> Result<ModelInfo, ModelError> {
        Ok(hold(self.view(name)?, object)?.info())
    }

    /// The object itself, for checkers.
    ///
    /// # Errors
    /// `NoSuchDataset`, `NoSuchObject`.
    pub fn object(&self, name: &str, object: u64) -> Result<&ModelObject, ModelError> {
        hold(self.view(name)?, object)
    }

    /// Every allocated object of a head or snapshot, ascending.
    ///
    /// # Errors
    /// `NoSuchDataset`.
    pub fn objects(&self, name: &str) -> Result<Vec<u64>, ModelError> {
        Ok(self.view(name)?.keys().copied().collect())
    }

    /// An import or a crash recovery may have replayed intent-log records into every head,
    /// and a replayed record that rewrites a block with the bytes it held still counts as
    /// a modification in ZFS (new block pointers in the meta-dnode); which records were
    /// replayed is not the model's to know, so a receive accepts either answer per head.
    /// It also leaves the space bound blind for a while (`SpaceHistory::imported`).
    pub fn touch_all(&mut self) {
        for ds in self.datasets.values_mut() {
            ds.touched = true;
        }
        self.space.imported();
    }

    /// A change of `fs` succeeded.
    fn touch(&mut self, fs: &str) {
        let ds = self.datasets.get_mut(fs).expect("invariant: touched after a success");
        ds.touched = true;
        self.space.charge(SPACE_CHANGE_CHARGE, 0);
        self.observe_space();
    }

    /// Take the current state into the space bound's history.
    fn observe_space(&mut self) {
        let views = self.datasets.iter().map(|(fs, ds)| FsView {
            fs,
            head: &ds.head,
            snaps: ds.snapshots.iter().map(|s| (s.serial, &s.objset)).collect(),
        });
        self.space.observe(views);
    }

    /// The engine synced every txg (a sync, or a DSL change, each a sync task).
    pub fn synced_fully(&mut self) {
        self.observe_space();
        self.space.full_sync();
    }

    /// The space bound's limits for the states seen: the most the engine may hold allocated
    /// or deferred, and the most it may have dirty (`None` while blind after an import).
    #[must_use]
    pub fn space_bounds(&self) -> Option<(u64, u64)> {
        self.space.bounds()
    }

    /// What a write of `len` bytes at `offset` of `object` in `fs` needs from the space
    /// bound (`SpaceHistory::write_charge`; the most any write of `len` bytes can need when
    /// the object or range is not valid: such a write is refused for that first).
    #[must_use]
    pub fn write_need(&self, fs: &str, object: u64, offset: u64, len: u64) -> SpaceNeed {
        let ob = self.datasets.get(fs).and_then(|d| d.head.get(&object));
        let dirty = match (ob, offset.checked_add(len)) {
            (_, _) if len == 0 => 0,
            (Some(ob), Some(end)) if end <= MODEL_MAX_OFFSET => {
                let bs = u64::from(ob.blksz);
                self.space.write_charge(object, ob, offset / bs, (end - 1) / bs)
            }
            _ => len + 2 * u64::from(MODEL_BLKSZ_MAX) + crate::space::SPACE_CHANGE_METADATA,
        };
        SpaceNeed { dirty, live: 0 }
    }

    /// Charge `dirty` bytes to the space bound (a receive's records, whatever its outcome).
    pub fn space_charge(&mut self, dirty: u64) {
        self.space.charge(dirty, 0);
    }

    /// Dirty bytes unknown until the next full sync (a damaged stream received): no refusal
    /// for space is judged until then.
    pub fn space_unknown_dirty(&mut self) {
        self.space.charge(crate::space::SPACE_DIRTY_UNKNOWN, 0);
    }

    /// What receiving `objset` into this pool needs from the space bound.
    #[must_use]
    pub fn recv_need(&self, objset: &ModelObjset) -> SpaceNeed {
        self.space.recv_need(objset)
    }

    /// When the engine refuses a change needing `need` for space, on a pool whose device is
    /// `device_bytes` long: `None` if the space bound allows it, else the figures that make
    /// the refusal a violation.
    #[must_use]
    pub fn space_violation(&self, device_bytes: u64, need: SpaceNeed) -> Option<SpaceFit> {
        self.space.judge(device_bytes, need)
    }

    /// Filesystem `fs` was created with lz4 compression (`DatasetProps::compress`): it
    /// stores blocks of zeros as holes, which only a send of it shows (`as_received`).
    ///
    /// # Errors
    /// `InvalidName`, `NoSuchDataset`.
    pub fn set_compress(&mut self, fs: &str, compress: bool) -> Result<(), ModelError> {
        self.fs_mut(fs)?.compress = compress;
        Ok(())
    }

    /// True if filesystem `fs` stores blocks of zeros as holes (lz4 compression).
    #[must_use]
    pub fn compresses(&self, fs: &str) -> bool {
        self.datasets.get(fs).is_some_and(|d| d.compress)
    }

    /// True if filesystem `fs` was made by a receive (its objects hold what a stream
    /// carries: compare maxblkid as `as_received` gives it).
    #[must_use]
    pub fn is_received(&self, fs: &str) -> bool {
        self.datasets.get(fs).is_some_and(|d| d.received)
    }

    /// The identity of snapshot `pool/fs@snap` (ZFS's guid), if it exists.
    #[must_use]
    pub fn snapshot_serial(&self, name: &str) -> Option<u64> {
        let (fs, snap) = name.split_once('@')?;
        let ds = self.datasets.get(fs)?;
        ds.snapshots.iter().find(|s| s.name == snap).map(|s| s.serial)
    }

    /// The contents of a head or snapshot.
    ///
    /// # Errors
    /// `NoSuchDataset`.
    pub fn objset(&self, name: &str) -> Result<&ModelObjset, ModelError> {
        self.view(name)
    }

    /// How the head of `fs` stands against its newest snapshot.
    #[must_use]
    pub fn head_state(&self, fs: &str) -> HeadState {
        let Some(ds) = self.datasets.get(fs) else { return HeadState::Modified };
        match ds.snapshots.last() {
            None => HeadState::Modified,
            Some(s) if s.objset != ds.head => HeadState::Modified,
            Some(_) if ds.touched => HeadState::Unknown,
            Some(_) => HeadState::Clean,
        }
    }
}
