//! The single operation vocabulary: every engine call as an `Op`, applied to the engine and
//! the model side by side with outcomes compared, plus a seeded generator of op lists.
//! OpenZFS counterpart: ztest.c's ztest_info[] table of operations and their weights.
//! Used by oracle's tests, sim's workloads and fuzz harnesses; calls `engine::Spa` and
//! `model::Model` only. Ops name datasets, objects and offsets by index into (or relative to)
//! what exists at apply time, so any sublist of a list stays meaningful (shrinking). Data
//! bytes derive from the op's fields. Invariant: an op the engine refuses for space (ENOSPC)
//! is not applied to the model, and otherwise both sides see the same call.

use std::fmt;

use engine::{DmuError, DslError, MemoryDevice, ObjectSpec, Spa, SpaConfig};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::{kind_of_dmu, kind_of_dsl, ErrKind, Model, MODEL_MAX_OBJECT};
use crate::model::{MODEL_MAX_OFFSET, MODEL_OBJECT_END};
use crate::space::{SpaceFit, SpaceNeed, SPACE_CHANGE_METADATA};

/// Largest read an op makes: the engine allocates the whole length before looking further.
pub const OP_READ_LEN_MAX: u64 = 1 << 20;
/// Largest write payload an op makes.
pub const OP_WRITE_LEN_MAX: u64 = 256 << 10;
/// Sparse offsets start here (1 GiB).
pub const OP_SPARSE_OFFSET_MIN: u64 = 1 << 30;
/// Device size of the placeholder pool held while the real one is exported.
const PLACEHOLDER_DEV_BYTES: u64 = engine::limits::SPA_MINDEVSIZE;

/// A dataset an op names, resolved against the model when applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The i-th filesystem (modulo their number).
    Head(usize),
    /// The i-th snapshot over all filesystems (a missing snapshot if there is none).
    Snap(usize),
    /// The i-th malformed or missing name of `bad_names`.
    Bad(usize),
    /// The newest snapshot of the i-th filesystem (a missing snapshot if it has none): what
    /// a backup sends next.
    Newest(usize),
}

/// An object an op names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjRef {
    /// The i-th allocated object of the dataset (object 1 if it has none).
    Existing(usize),
    /// This exact number (0, free, or out of range).
    Raw(u64),
}

/// A byte offset in an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pos {
    /// This exact offset.
    Abs(u64),
    /// `per_mille` thousandths of the object's current size ((maxblkid + 1) * blksz, 0 if
    /// the object does not exist), rounded down to a block if `align`, plus `delta`.
    Rel {
        /// Position as a fraction of the size; above 1000 is past the end.
        per_mille: u16,
        /// Round down to a block boundary before adding `delta`.
        align: bool,
        /// Bytes added (saturating at 0).
        delta: i32,
    },
    /// The start of the object's i-th written block (modulo their number; 0 if none), plus
    /// `delta`: lands frees and reads on data rather than on holes.
    Data {
        /// Which written block.
        index: u16,
        /// Bytes added (saturating at 0).
        delta: i32,
    },
}

/// Resolve a position within object `obj` of dataset `name`.
#[must_use]
pub fn resolve_pos(model: &Model, name: &str, obj: u64, pos: Pos) -> u64 {
    match pos {
        Pos::Abs(offset) => offset,
        Pos::Rel { per_mille, align, delta } => {
            let (size, bs) = model.object(name, obj).map_or((0, 1), |ob| {
                let bs = u64::from(ob.blksz);
                ((ob.maxblkid + 1).saturating_mul(bs), bs)
            });
            let at = u128::from(size) * u128::from(per_mille) / 1000;
            let at = u64::try_from(at).unwrap_or(u64::MAX);
            let at = if align { at - at % bs } else { at };
            at.saturating_add_signed(i64::from(delta))
        }
        Pos::Data { index, delta } => {
            let at = model.object(name, obj).ok().and_then(|ob| {
                let n = ob.blocks.len();
                let blkid = ob.blocks.keys().nth(usize::from(index) % n.max(1))?;
                Some(blkid * u64::from(ob.blksz))
            });
            at.unwrap_or(0).saturating_add_signed(i64::from(delta))
        }
    }
}

/// One engine operation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // fields are the engine call's arguments
pub enum Op {
    /// `write` of `pattern(seed, offset, len)`.
    Write { fs: Target, obj: ObjRef, offset: Pos, len: u64, seed: u8 },
    /// `read`, compared byte for byte.
    Read { ds: Target, obj: ObjRef, offset: Pos, len: u64 },
    /// `free_range` with a finite length.
    FreeRange { fs: Target, obj: ObjRef, offset: Pos, len: u64 },
    /// `free_range(offset, u64::MAX)`.
    Truncate { fs: Target, obj: ObjRef, offset: Pos },
    /// `object_alloc`, compared by the number returned.
    ObjectAlloc { fs: Target, spec: ObjectSpec },
    /// `object_claim`.
    ObjectClaim { fs: Target, obj: ObjRef, spec: ObjectSpec },
    /// `object_reclaim`.
    ObjectReclaim { fs: Target, obj: ObjRef, spec: ObjectSpec },
    /// `object_free`.
    ObjectFree { fs: Target, obj: ObjRef },
    /// `fsync` (intent-log commit of every change to `fs`; contents unchanged).
    Fsync { fs: Target, obj: ObjRef },
    /// `set_bonus` with `pattern(seed, 0, len)`.
    SetBonus { fs: Target, obj: ObjRef, bonustype: u8, len: usize, seed: u8 },
    /// `snapshot` of `fs@s<name>`.
    Snapshot { fs: Target, name: u8 },
    /// `snapshot_destroy`.
    SnapshotDestroy { snap: Target },
    /// `rollback` to the newest snapshot.
    Rollback { fs: Target },
    /// `dataset_create` of `parent/d<name>`.
    DatasetCreate { parent: Target, name: u8 },
    /// `dataset_destroy`.
    DatasetDestroy { fs: Target },
    /// `txg_sync`.
    Sync,
    /// `txg_quiesce` (start syncing the open txg if idle), then `steps` calls of
    /// `sync_step`: later ops run while a txg is half synced.
    SyncStep { steps: u8 },
    /// `export` then `import` of the same device.
    ExportImport,
    /// `send` of a snapshot, received into another filesystem (`replica::send_recv`): the
    /// same pool's `pool/r-<source>` here, a second pool's where the runner has one and
    /// `SEND_FLAG_REMOTE` is set.
    SendRecv {
        /// The snapshot sent (`Target::Newest` or `Target::Snap`; a head or a bad name is
        /// a missing snapshot).
        snap: Target,
        /// 0: full; `SEND_FROM_TARGET_NEWEST`; k: the k-th older snapshot of its dataset.
        from: u8,
        /// `replica::SEND_FLAG_*`.
        flags: u8,
        /// 0, or where and how the first stream is damaged (`SendRecvArgs::damage`).
        damage: u16,
    },
}

/// Engine and model disagree (or the engine failed where it must not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// What differed, with both sides.
    pub what: String,
}

impl Divergence {
    /// A divergence described by `what`.
    #[must_use]
    pub fn new(what: impl Into<String>) -> Self {
        Self { what: what.into() }
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "divergence: {}", self.what)
    }
}

impl std::error::Error for Divergence {}

/// Deterministic bytes for position `offset..offset+len` under `seed` (0 = all zeros).
/// Each byte depends on its absolute position, so misplaced data never looks right.
#[must_use]
pub fn pattern(seed: u8, offset: u64, len: usize) -> Vec<u8> {
    if seed == 0 {
        return vec![0; len];
    }
    let salt = u64::from(seed) << 56 | u64::from(seed);
    (0..len as u64)
        .map(|i| ((offset.wrapping_add(i) ^ salt).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
        .collect()
}

/// Malformed or missing dataset names for pool `pool` (error paths).
#[must_use]
pub fn bad_names(pool: &str) -> Vec<String> {
    let forms = ["/nope", "@nope", "/nope@s0", "//x", "/a b", "/x@y@z", "/%recv", "@"];
    let mut names: Vec<String> = forms.iter().map(|f| format!("{pool}{f}")).collect();
    names.extend([String::new(), "other/x".to_owned(), format!("{pool}/{}", "n".repeat(300))]);
    names
}

/// Resolve a target to a name, against the model's current datasets.
#[must_use]
pub fn resolve(model: &Model, t: &Target) -> String {
    let heads = model.datasets();
    assert!(!heads.is_empty(), "the root dataset always exists");
    match t {
        Target::Head(i) => heads[i % heads.len()].clone(),
        Target::Snap(i) => {
            let snaps: Vec<String> =
                heads.iter().flat_map(|h| model.snapshots(h).expect("listed head")).collect();
            if snaps.is_empty() {
                format!("{}@missing", model.name())
            } else {
                snaps[i % snaps.len()].clone()
            }
        }
        Target::Bad(i) => {
            let bad = bad_names(model.name());
            bad[i % bad.len()].clone()
        }
        Target::Newest(i) => {
            let fs = &heads[i % heads.len()];
            let snaps = model.snapshots(fs).expect("listed head");
            snaps.last().cloned().unwrap_or_else(|| format!("{fs}@missing"))
        }
    }
}

/// Resolve an object reference within dataset `name`.
#[must_use]
pub fn resolve_obj(model: &Model, name: &str, o: &ObjRef) -> u64 {
    match o {
        ObjRef::Raw(n) => *n,
        ObjRef::Existing(i) => {
            let objs = model.objects(name).unwrap_or_default();
            if objs.is_empty() {
                1
            } else {
                objs[i % objs.len()]
            }
        }
    }
}

fn dmu<T>(r: Result<T, DmuError>) -> Result<T, ErrKind> {
    r.map_err(|e| kind_of_dmu(&e))
}

fn dsl(r: Result<(), DslError>) -> Result<(), ErrKind> {
    r.map_err(|e| kind_of_dsl(&e))
}

/// Compare outcomes; the model runs only if the engine did not refuse for space (a refused
/// call changes nothing). A refusal for space is a violation when the model's space bound
/// says the change fits (`fits`, judged before the call: `Model::space_violation`).
/// The `Outcome` when both agree.
fn compare<T: PartialEq + fmt::Debug>(
    what: &str,
    fits: Option<SpaceFit>,
    engine: Result<T, ErrKind>,
    model: impl FnOnce() -> Result<T, ErrKind>,
) -> Result<Outcome, Divergence> {
    if engine == Err(ErrKind::NoSpace) {
        return match fits {
            Some(f) => Err(Divergence::new(format!("{what}: {f}"))),
            None => Ok(Outcome::NoSpace),
        };
    }
    let model = model();
    if engine == model {
        return Ok(if engine.is_ok() { Outcome::Applied } else { Outcome::Refused });
    }
    Err(Divergence::new(format!("{what}: engine {engine:?}, model {model:?}")))
}

/// How an op ended when the engine and the model agreed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Both applied it.
    Applied,
    /// Both refused it alike.
    Refused,
    /// The engine refused it for space, as the model's space bound allows; nothing changed.
    NoSpace,
}

/// The first offset at which two byte strings differ (or the shorter length).
#[must_use]
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len())))
}

fn compare_read(
    what: &str,
    engine: Result<Vec<u8>, ErrKind>,
    model: Result<Vec<u8>, ErrKind>,
) -> Result<Outcome, Divergence> {
    match (&engine, &model) {
        (Ok(e), Ok(m)) => match first_difference(e, m) {
            None => Ok(Outcome::Applied),
            Some(at) => Err(Divergence::new(format!(
                "{what}: data differs at +{at}: engine {:?}, model {:?} (lengths {} vs {})",
                e.get(at),
                m.get(at),
                e.len(),
                m.len()
            ))),
        },
        (Err(ErrKind::NoSpace), _) => {
            Err(Divergence::new(format!("{what}: a read was refused for space (ENOSPC)")))
        }
        _ if engine.as_ref().err() == model.as_ref().err() => Ok(Outcome::Refused),
        _ => Err(Divergence::new(format!(
            "{what}: engine {:?}, model {:?}",
            engine.map(|v| v.len()),
            model.map(|v| v.len())
        ))),
    }
}

/// Start syncing the open txg if none is syncing, then run `steps` sync phases.
///
/// # Errors
/// A `Divergence` naming the failed step.
pub fn sync_steps(spa: &mut Spa, steps: u8) -> Result<(), Divergence> {
    let fail = |e: engine::SpaError| Divergence::new(format!("sync step: {e}"));
    spa.txg_quiesce().map_err(fail)?;
    for _ in 0..steps {
        spa.sync_step().map_err(fail)?;
    }
    Ok(())
}

/// Export the pool and import it again from the same device.
///
/// # Errors
/// A `Divergence` naming the export or import failure.
pub fn export_import(spa: &mut Spa) -> Result<(), Divergence> {
    let dev = Box::new(MemoryDevice::new(PLACEHOLDER_DEV_BYTES));
    let placeholder = Spa::create(dev, "placeholder", SpaConfig::default())
        .map_err(|e| Divergence::new(format!("placeholder pool: {e}")))?;
    let old = std::mem::replace(spa, placeholder);
    let dev = old.export().map_err(|e| Divergence::new(format!("export failed: {e}")))?;
    *spa = Spa::import(dev, SpaConfig::default(), None)
        .map_err(|e| Divergence::new(format!("import failed: {e}")))?;
    Ok(())
}

impl Op {
    /// Run this op on the engine and on the model and compare the outcomes.
    ///
    /// # Errors
    /// A `Divergence` when results or error kinds differ, or sync/export/import fails.
    pub fn apply(&self, spa: &mut Spa, model: &mut Model) -> Result<(), Divergence> {
        self.apply_checked(spa, model).map(|_| ())
    }

    /// True for ops that sync the pool (so snapshot contents may have changed, or everything
    /// was re-read from disk): sync, sync steps, export/import and the DSL ops.
    #[must_use]
    pub fn syncs(&self) -> bool {
        matches!(
            self,
            Self::Sync
                | Self::SyncStep { .. }
                | Self::ExportImport
                | Self::Snapshot { .. }
                | Self::SnapshotDestroy { .. }
                | Self::Rollback { .. }
                | Self::DatasetCreate { .. }
                | Self::DatasetDestroy { .. }
                | Self::SendRecv { .. }
        )
    }

    /// True for every op that can change what a snapshot shares with its head, or what the
    /// pool holds at all: everything but reads and fsyncs (and ops refused by their
    /// arguments, which the caller cannot tell apart here). Snapshots are compared after
    /// these, so an in-memory change that leaks into a snapshot's view is seen at once.
    #[must_use]
    pub fn changes_snapshots_or_heads(&self) -> bool {
        !matches!(self, Self::Read { .. } | Self::Fsync { .. })
    }

    /// The filesystem whose intent log records this op once it succeeds (the engine logs
    /// object create/claim/reclaim/free, set_bonus, non-empty writes and frees), resolved
    /// against `model` as `apply` resolves it. `None` for ops the log never holds.
    #[must_use]
    pub fn logged_fs(&self, model: &Model) -> Option<String> {
        match self {
            Self::Write { fs, len, .. } if *len > 0 => Some(resolve(model, fs)),
            Self::FreeRange { fs, .. }
            | Self::Truncate { fs, .. }
            | Self::ObjectAlloc { fs, .. }
            | Self::ObjectClaim { fs, .. }
            | Self::ObjectReclaim { fs, .. }
            | Self::ObjectFree { fs, .. }
            | Self::SetBonus { fs, .. } => Some(resolve(model, fs)),
            _ => None,
        }
    }

    /// The filesystem an `Fsync` commits the intent log of.
    #[must_use]
    pub fn fsync_fs(&self, model: &Model) -> Option<String> {
        match self {
            Self::Fsync { fs, .. } => Some(resolve(model, fs)),
            _ => None,
        }
    }

    /// `apply`, telling whether the op succeeded (`false`: both refused it alike, or the
    /// engine refused for space; nothing changed).
    ///
    /// # Errors
    /// As `apply`.
    pub fn apply_checked(&self, spa: &mut Spa, model: &mut Model) -> Result<bool, Divergence> {
        self.apply_outcome(spa, model).map(|o| o == Outcome::Applied)
    }

    /// `apply`, telling how the op ended.
    ///
    /// # Errors
    /// As `apply`.
    pub fn apply_outcome(&self, spa: &mut Spa, model: &mut Model) -> Result<Outcome, Divergence> {
        let what = format!("{self:?}");
        let fits = model.space_violation(spa.device_bytes(), self.space_need());
        match self {
            Self::Sync => {
                let r = spa.txg_sync().map_err(|e| Divergence::new(format!("sync: {e}")));
                model.synced_fully();
                r.map(|_| Outcome::Applied)
            }
            Self::SyncStep { steps } => sync_steps(spa, *steps).map(|()| Outcome::Applied),
            Self::ExportImport => {
                model.touch_all();
                export_import(spa).map(|()| Outcome::Applied)
            }
            Self::SendRecv { .. } => {
                let r = self.send_recv(spa, model, crate::replica::Dest::Same, false)?;
                Ok(if r.received > 0 {
                    Outcome::Applied
                } else if r.space_refused > 0 {
                    Outcome::NoSpace
                } else {
                    Outcome::Refused
                })
            }
            Self::Snapshot { .. }
            | Self::SnapshotDestroy { .. }
            | Self::Rollback { .. }
            | Self::DatasetCreate { .. }
            | Self::DatasetDestroy { .. } => self.apply_dsl(&what, fits, spa, model),
            Self::ObjectAlloc { .. }
            | Self::ObjectClaim { .. }
            | Self::ObjectReclaim { .. }
            | Self::ObjectFree { .. }
            | Self::Fsync { .. }
            | Self::SetBonus { .. } => self.apply_object(&what, fits, spa, model),
            _ => self.apply_data(&what, fits, spa, model),
        }
    }

    /// What this op needs from the space bound's point of view: metadata only (a write
    /// adds its blocks once resolved: `Model::write_need`; a receive's need is `replica`'s).
    fn space_need(&self) -> SpaceNeed {
        SpaceNeed { dirty: SPACE_CHANGE_METADATA, live: 0 }
    }

    /// Run an `Op::SendRecv` into `dest` (`replica::send_recv`); any other op is a caller's
    /// bug. `lenient`: disk damage is possible (its errors are detections).
    ///
    /// # Errors
    /// As `replica::send_recv`.
    ///
    /// # Panics
    /// If `self` is not `Op::SendRecv`.
    pub fn send_recv(
        &self,
        spa: &mut Spa,
        model: &mut Model,
        dest: crate::replica::Dest<'_>,
        lenient: bool,
    ) -> Result<crate::replica::SendRecvReport, Divergence> {
        let Self::SendRecv { snap, from, flags, damage } = self else {
            panic!("send_recv called on {self:?}");
        };
        let args = crate::replica::SendRecvArgs {
            snap,
            from: *from,
            flags: *flags,
            damage: *damage,
            lenient,
        };
        crate::replica::send_recv(&args, spa, model, dest)
    }

    fn apply_dsl(
        &self,
        what: &str,
        fits: Option<SpaceFit>,
        spa: &mut Spa,
        model: &mut Model,
    ) -> Result<Outcome, Divergence> {
        match self {
            Self::Snapshot { fs, name } => {
                let n = format!("{}@s{name}", resolve(model, fs));
                compare(what, fits, dsl(spa.snapshot(&n)), || model.snapshot(&n))
            }
            Self::SnapshotDestroy { snap } => {
                let n = resolve(model, snap);
                compare(what, fits, dsl(spa.snapshot_destroy(&n)), || model.snapshot_destroy(&n))
            }
            Self::Rollback { fs } => {
                let n = resolve(model, fs);
                compare(what, fits, dsl(spa.rollback(&n)), || model.rollback(&n))
            }
            Self::DatasetCreate { parent, name } => {
                let n = format!("{}/d{name}", resolve(model, parent));
                let props = engine::DatasetProps::default();
                compare(what, fits, dsl(spa.dataset_create(&n, props)), || model.dataset_create(&n))
            }
            Self::DatasetDestroy { fs } => {
                let n = resolve(model, fs);
                compare(what, fits, dsl(spa.dataset_destroy(&n)), || model.dataset_destroy(&n))
            }
            _ => unreachable!("not a DSL op: {what}"),
        }
    }

    fn apply_object(
        &self,
        what: &str,
        fits: Option<SpaceFit>,
        spa: &mut Spa,
        model: &mut Model,
    ) -> Result<Outcome, Divergence> {
        match self {
            Self::ObjectAlloc { fs, spec } => {
                let n = resolve(model, fs);
                compare(what, fits, dmu(spa.object_alloc(&n, spec)), || {
                    model.object_alloc(&n, spec)
                })
            }
            Self::ObjectClaim { fs, obj, spec } => {
                let n = resolve(model, fs);
                let o = resolve_obj(model, &n, obj);
                let e = dmu(spa.object_claim(&n, o, spec));
                compare(what, fits, e, || model.object_claim(&n, o, spec))
            }
            Self::ObjectReclaim { fs, obj, spec } => {
                let n = resolve(model, fs);
                let o = resolve_obj(model, &n, obj);
                let e = dmu(spa.object_reclaim(&n, o, spec));
                compare(what, fits, e, || model.object_reclaim(&n, o, spec))
            }
            Self::ObjectFree { fs, obj } => {
                let n = resolve(model, fs);
                let o = resolve_obj(model, &n, obj);
                compare(what, fits, dmu(spa.object_free(&n, o)), || model.object_free(&n, o))
            }
            Self::Fsync { fs, obj } => {
                let n = resolve(model, fs);
                let o = resolve_obj(model, &n, obj);
                compare(what, fits, dmu(spa.fsync(&n, o).map(|_| ())), || model.fsync(&n, o))
            }
            Self::SetBonus { fs, obj, bonustype, len, seed } => {
                let n = resolve(model, fs);
                let o = resolve_obj(model, &n, obj);
                let b = pattern(*seed, 0, *len);
                let e = dmu(spa.set_bonus(&n, o, *bonustype, &b));
                compare(what, fits, e, || model.set_bonus(&n, o, *bonustype, &b))
            }
            _ => unreachable!("not an object op: {what}"),
        }
    }

    fn apply_data(
        &self,
        what: &str,
        fits: Option<SpaceFit>,
        spa: &mut Spa,
        model: &mut Model,
    ) -> Result<Outcome, Divergence> {
        match self {
            Self::Write { fs, obj, offset, len, seed } => {
                assert!(*len <= OP_WRITE_LEN_MAX, "write of {len} bytes");
                let n = resolve(model, fs);
                let o = resolve_obj(model, &n, obj);
                let offset = resolve_pos(model, &n, o, *offset);
                let data = pattern(*seed, offset, usize::try_from(*len).expect("small"));
                let need = model.write_need(&n, o, offset, *len);
                let fits = model.space_violation(spa.device_bytes(), need);
                let e = dmu(spa.write(&n, o, offset, &data));
                compare(what, fits, e, || model.write(&n, o, offset, &data))
            }
            Self::Read { ds, obj, offset, len } => {
                assert!(*len <= OP_READ_LEN_MAX, "read of {len} bytes");
                let n = resolve(model, ds);
                let o = resolve_obj(model, &n, obj);
                let offset = resolve_pos(model, &n, o, *offset);
                let e = dmu(spa.read(&n, o, offset, *len));
                compare_read(what, e, model.read(&n, o, offset, *len))
            }
            Self::FreeRange { fs, obj, offset, len } => {
                assert_ne!(*len, MODEL_OBJECT_END, "use Truncate");
                let n = resolve(model, fs);
                let o = resolve_obj(model, &n, obj);
                let offset = resolve_pos(model, &n, o, *offset);
                let e = dmu(spa.free_range(&n, o, offset, *len));
                compare(what, fits, e, || model.free_range(&n, o, offset, *len))
            }
            Self::Truncate { fs, obj, offset } => {
                let n = resolve(model, fs);
                let o = resolve_obj(model, &n, obj);
                let offset = resolve_pos(model, &n, o, *offset);
                let e = dmu(spa.free_range(&n, o, offset, MODEL_OBJECT_END));
                compare(what, fits, e, || model.free_range(&n, o, offset, MODEL_OBJECT_END))
            }
            _ => unreachable!("not a data op: {what}"),
        }
    }
}

/// Knobs of `random_ops`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenConfig {
    /// Largest write (at most `OP_WRITE_LEN_MAX`).
    pub write_len_max: u64,
    /// Offsets past 1 GiB and near the 2^62 limit.
    pub sparse: bool,
    /// Export/import ops.
    pub export_import: bool,
    /// Fsync ops (intent-log commits): a crash check must then accept fsynced changes past
    /// the last committed txg, as sim's durability check does (`ImportReport::replayed`).
    pub fsync: bool,
    /// Send/receive ops (`Op::SendRecv`).
    pub send_recv: bool,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            write_len_max: OP_WRITE_LEN_MAX,
            sparse: true,
            export_import: true,
            fsync: true,
            send_recv: true,
        }
    }
}

/// Index of `Fsync` in `OP_WEIGHTS`.
const OP_FSYNC: usize = 8;

/// Leading ops of a list in which `ObjectAlloc` is 8 times as likely.
const OP_ALLOC_FAVOURED: usize = 4;
/// Relative weights of the op kinds, in `Op` declaration order.
const OP_WEIGHTS: [u32; 19] = [36, 8, 8, 5, 10, 2, 2, 3, 6, 5, 6, 3, 3, 3, 2, 5, 4, 2, 10];
/// Index of `ExportImport` and `SendRecv` in `OP_WEIGHTS`.
const OP_EXPORT_IMPORT: usize = 17;
const OP_SEND_RECV: usize = 18;

/// `n` ops drawn from `seed`: a weighted mix, sizes 1 B..`write_len_max`, offsets unaligned,
/// block-aligned, sparse and near the limits. Same seed and config, same list.
#[must_use]
pub fn random_ops(seed: u64, n: usize, cfg: &GenConfig) -> Vec<Op> {
    assert!(cfg.write_len_max >= 1 && cfg.write_len_max <= OP_WRITE_LEN_MAX, "{cfg:?}");
    let mut g = OpGen { rng: ChaCha8Rng::seed_from_u64(seed), cfg: *cfg };
    let ops: Vec<Op> = (0..n).map(|i| g.op(i)).collect();
    assert_eq!(ops.len(), n);
    ops
}

struct OpGen {
    rng: ChaCha8Rng,
    cfg: GenConfig,
}

impl OpGen {
    fn pick(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut r = self.rng.random_range(0..total);
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        unreachable!("weights sum to {total}")
    }

    /// Op number `i` of the list: the first few favour allocation, so writes find objects.
    fn op(&mut self, i: usize) -> Op {
        let mut weights = OP_WEIGHTS;
        if !self.cfg.fsync {
            weights[OP_FSYNC] = 0;
        }
        if !self.cfg.export_import {
            weights[OP_EXPORT_IMPORT] = 0;
        }
        if !self.cfg.send_recv {
            weights[OP_SEND_RECV] = 0;
        }
        if i < OP_ALLOC_FAVOURED {
            weights[4] *= 8;
        }
        let fs = self.target(85, 10);
        let obj = self.obj();
        match self.pick(&weights) {
            0 => {
                let len = self.len(self.cfg.write_len_max);
                Op::Write { fs, obj, offset: self.pos(len, 30), len, seed: self.rng.random() }
            }
            1 => {
                let len = self.len(OP_WRITE_LEN_MAX);
                Op::Read { ds: self.target(60, 35), obj, offset: self.pos(len, 60), len }
            }
            2 => {
                let len = self.free_len();
                Op::FreeRange { fs, obj, offset: self.pos(len.min(1 << 20), 70), len }
            }
            3 => Op::Truncate { fs, obj, offset: self.pos(0, 70) },
            4 => Op::ObjectAlloc { fs, spec: self.spec() },
            5 => Op::ObjectClaim { fs, obj: self.raw_obj(), spec: self.spec() },
            6 => Op::ObjectReclaim { fs, obj, spec: self.spec() },
            7 => Op::ObjectFree { fs, obj },
            8 => Op::Fsync { fs, obj },
            9 => self.set_bonus(fs, obj),
            10 => Op::Snapshot { fs, name: self.rng.random_range(0..6) },
            11 => Op::SnapshotDestroy { snap: self.target(5, 90) },
            12 => Op::Rollback { fs },
            13 => Op::DatasetCreate { parent: fs, name: self.rng.random_range(0..4) },
            14 => Op::DatasetDestroy { fs },
            15 => Op::Sync,
            16 => Op::SyncStep { steps: self.rng.random_range(1..=6) },
            OP_EXPORT_IMPORT => Op::ExportImport,
            _ => self.send_recv(),
        }
    }

    /// Mostly the usual backup step (incremental from what the target has), some full
    /// sends, older sources and chains, seeded stream options, and a few damaged streams.
    fn send_recv(&mut self) -> Op {
        use crate::replica::{SEND_FLAG_CHAIN, SEND_FLAG_FORCE, SEND_FLAG_REMOTE};
        use crate::replica::{SEND_FLAG_REPLACE, SEND_FROM_TARGET_NEWEST};
        let snap = match self.target(55, 40) {
            Target::Head(i) => Target::Newest(i),
            other => other,
        };
        let from = match self.rng.random_range(0..100) {
            0..30 => 0,
            30..75 => SEND_FROM_TARGET_NEWEST,
            _ => self.rng.random_range(1..=3),
        };
        let mut flags = self.rng.random_range(0..8u8); // embed, compressed, big endian
        for (bit, pct) in [
            (SEND_FLAG_FORCE, 20),
            (SEND_FLAG_CHAIN, 25),
            (SEND_FLAG_REPLACE, 40),
            (SEND_FLAG_REMOTE, 60),
        ] {
            if self.rng.random_range(0..100) < pct {
                flags |= bit;
            }
        }
        let damage =
            if self.rng.random_range(0..100) < 12 { self.rng.random::<u16>() | 1 } else { 0 };
        Op::SendRecv { snap, from, flags: crate::replica::without_known_bugs(flags), damage }
    }

    /// Head with `head_pct`, snapshot with `snap_pct`, else a bad name.
    fn target(&mut self, head_pct: u32, snap_pct: u32) -> Target {
        let i = if self.rng.random_bool(0.5) { 0 } else { self.rng.random_range(0..64) };
        match self.rng.random_range(0..100) {
            r if r < head_pct => Target::Head(i),
            r if r < head_pct + snap_pct => Target::Snap(i),
            _ => Target::Bad(i),
        }
    }

    fn obj(&mut self) -> ObjRef {
        if self.rng.random_range(0..100) < 88 {
            let i = if self.rng.random_bool(0.6) { 0 } else { self.rng.random_range(0..64) };
            ObjRef::Existing(i)
        } else {
            self.raw_obj()
        }
    }

    /// Numbers for claim and error paths; kept small except the invalid ones, because a
    /// snapshot's object listing scans every dnode slot up to the highest object.
    fn raw_obj(&mut self) -> ObjRef {
        ObjRef::Raw(match self.pick(&[1, 20, 4, 1, 1]) {
            0 => 0,
            1 => self.rng.random_range(1..48),
            2 => self.rng.random_range(48..2048),
            3 => MODEL_MAX_OBJECT,
            _ => u64::MAX,
        })
    }

    /// 1 byte to `max`, log-uniform.
    fn len(&mut self, max: u64) -> u64 {
        let top = max.ilog2();
        let shift = self.rng.random_range(0..=top);
        self.rng.random_range(1..=(1u64 << shift).min(max))
    }

    fn free_len(&mut self) -> u64 {
        match self.pick(&[6, 3, 1, 1]) {
            0 => self.len(256 << 10),
            1 => self.rng.random_range(1..64) * 512,
            2 => 0,
            _ => u64::MAX - 1,
        }
    }

    /// Relative to the object's size or data with `rel_pct`, else absolute.
    fn pos(&mut self, len: u64, rel_pct: u32) -> Pos {
        let delta = match self.pick(&[4, 2, 1]) {
            0 => 0,
            1 => self.rng.random_range(-2..=2),
            _ => self.rng.random_range(-20_000..=20_000),
        };
        let r = self.rng.random_range(0..100);
        if r < rel_pct / 2 {
            Pos::Rel { per_mille: self.rng.random_range(0..=1100), align: self.rng.random(), delta }
        } else if r < rel_pct {
            Pos::Data { index: self.rng.random(), delta }
        } else {
            Pos::Abs(self.offset(len))
        }
    }

    /// Dense (where most data lives), wider, block-aligned, sparse, near the 2^62 limit,
    /// next to block boundaries, and overflowing.
    fn offset(&mut self, len: u64) -> u64 {
        let sparse = u32::from(self.cfg.sparse);
        match self.pick(&[35, 15, 16, 10 * sparse, 3 * sparse, 8, 3]) {
            0 => self.rng.random_range(0..64 << 10),
            1 => self.rng.random_range(0..4 << 20),
            2 => {
                let bs = 512u64 << self.rng.random_range(0..=8);
                bs * self.rng.random_range(0..64)
            }
            3 => OP_SPARSE_OFFSET_MIN + self.rng.random_range(0..64u64 << 30),
            4 => (MODEL_MAX_OFFSET - len).saturating_add(self.rng.random_range(0..=2)) - 1,
            5 => {
                let bs = 512u64 << self.rng.random_range(0..=8);
                let k = self.rng.random_range(1..32);
                (bs * k).saturating_add_signed(self.rng.random_range(-2..=2))
            }
            _ => u64::MAX - self.rng.random_range(0..=len),
        }
    }

    /// A valid spec 85% of the time, else one with a single bad field.
    fn spec(&mut self) -> ObjectSpec {
        let ot = [19, 19, 19, 25, 26, 21, 0x89][self.pick(&[20, 5, 5, 3, 3, 2, 1])];
        let blksz = 512u32 << self.rng.random_range(0..=8);
        let indblkshift = [0, 12, 17, 13][self.pick(&[30, 3, 2, 2])];
        let bonustype = [0, 26, 44][self.pick(&[10, 10, 2])];
        let bonuslen = [0, 32, 64, 65, 192, 320][self.pick(&[6, 6, 2, 2, 2, 2])];
        let mut spec = ObjectSpec { ot, blksz, indblkshift, bonustype, bonuslen };
        match self.pick(&[85, 3, 3, 3, 3, 3]) {
            0 => {}
            1 => spec.ot = [0, 54, 0x8a, 0x9f][self.rng.random_range(0..4)],
            2 => spec.blksz = [0, 1000, 256 << 10, 1536][self.rng.random_range(0..4)],
            3 => spec.indblkshift = [11, 18][self.rng.random_range(0..2)],
            4 => spec.bonustype = [54, 60][self.rng.random_range(0..2)],
            _ => spec.bonuslen = 321,
        }
        spec
    }

    fn set_bonus(&mut self, fs: Target, obj: ObjRef) -> Op {
        let bonustype = [0, 26, 44, 0x80, 60][self.pick(&[5, 10, 2, 1, 1])];
        let len = match self.pick(&[6, 3, 2]) {
            0 => self.rng.random_range(0..=64),
            1 => self.rng.random_range(0..=320),
            _ => self.rng.random_range(321..=400),
        };
        Op::SetBonus { fs, obj, bonustype, len, seed: self.rng.random() }
    }
}
