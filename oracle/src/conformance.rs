//! Property 1, conformance: what the engine returns (head and every snapshot) equals the
//! model. OpenZFS counterpart: ztest's ztest_verify_* data checks. Called after every op by
//! `run_checked` (here), sim and fuzz; uses the public `Spa` API and only reads the pool.
//! Objects up to `CONFORMANCE_DENSE_BYTES_MAX` are read entirely. Larger (sparse) objects
//! are compared on every block either side holds: each block the model wrote, each block
//! the engine lists as holding data (`Spa::data_blocks`: its unsynced records and its
//! synced tree), the first and last, `CONFORMANCE_HOLE_SAMPLES` evenly spaced ids and the
//! block past the end; every other block is a hole on both sides. Exception (engine's
//! word): which blocks of a large object the engine holds comes from its own listing, since
//! reading 2^46 block ids is not possible; the zdb walk (integrity) checks every synced
//! block from raw bytes independently.

use std::collections::BTreeSet;

use engine::Spa;

use crate::integrity;
use crate::model::{kind_of_dmu, Model, ModelInfo, ModelObject, MODEL_MAX_OFFSET};
use crate::op::{first_difference, Divergence, Op};

/// Objects up to this many bytes ((maxblkid + 1) * blksz) are compared entirely.
pub const CONFORMANCE_DENSE_BYTES_MAX: u64 = 4 << 20;
/// Bytes per read when comparing an object entirely.
pub const CONFORMANCE_CHUNK_BYTES: u64 = 1 << 20;
/// Block ids sampled (besides first, last, and listed ones) in a large object.
pub const CONFORMANCE_HOLE_SAMPLES: u64 = 16;

const _: () = assert!(CONFORMANCE_DENSE_BYTES_MAX.is_multiple_of(CONFORMANCE_CHUNK_BYTES));

fn dmu_err(what: &str, e: &engine::DmuError) -> Divergence {
    Divergence::new(format!("{what}: engine error {e} ({:?})", kind_of_dmu(e)))
}

/// Check the whole pool against the model: dataset and snapshot names, then every object
/// of every head and snapshot (attributes, bonus, contents).
///
/// # Errors
/// The first `Divergence` found.
pub fn check(spa: &mut Spa, model: &Model) -> Result<(), Divergence> {
    check_pool(spa, model, true)
}

/// As `check`, but only the heads' objects (snapshot names are still compared). `run_checked`
/// uses this after reads and fsyncs, and the full `check` after every op that can change
/// a head (an in-memory change must never show through a snapshot that shares its blocks).
///
/// # Errors
/// The first `Divergence` found.
pub fn check_heads(spa: &mut Spa, model: &Model) -> Result<(), Divergence> {
    check_pool(spa, model, false)
}

/// As `check`, for a pool just imported from a crash state (or against a model of an
/// earlier state): everything but the space bound, which is blind after an import (replayed
/// and claimed log blocks are outside the model's history: `space::SpaceHistory::imported`).
///
/// # Errors
/// The first `Divergence` found.
pub fn check_imported(spa: &mut Spa, model: &Model) -> Result<(), Divergence> {
    check_trees(spa, model, true)
}

fn check_pool(spa: &mut Spa, model: &Model, snapshots: bool) -> Result<(), Divergence> {
    check_space(spa, model)?;
    check_trees(spa, model, snapshots)
}

fn check_trees(spa: &mut Spa, model: &Model, snapshots: bool) -> Result<(), Divergence> {
    let (engine_fs, model_fs) = (spa.datasets(), model.datasets());
    if engine_fs != model_fs {
        return Err(Divergence::new(format!("datasets: engine {engine_fs:?}, model {model_fs:?}")));
    }
    for fs in &model_fs {
        let snaps =
            spa.snapshots(fs).map_err(|e| Divergence::new(format!("snapshots({fs}): {e}")))?;
        let engine_snaps: Vec<String> = snaps.into_iter().map(|s| s.name).collect();
        let model_snaps = model.snapshots(fs).expect("invariant: listed dataset");
        if engine_snaps != model_snaps {
            return Err(Divergence::new(format!(
                "snapshots of {fs}: engine {engine_snaps:?}, model {model_snaps:?}"
            )));
        }
        if snapshots {
            for snap in &model_snaps {
                check_objset(spa, model, snap)?;
            }
        }
        check_objset(spa, model, fs)?;
    }
    Ok(())
}

/// The engine holds no more space than the model's bound allows (`oracle::space`): more
/// allocated or deferred bytes are a leak or a free that never happened; more dirty bytes
/// an accounting that would refuse changes wrongly.
///
/// # Errors
/// A `Divergence` with both figures.
pub fn check_space(spa: &Spa, model: &Model) -> Result<(), Divergence> {
    let Some((held, dirty)) = model.space_bounds() else { return Ok(()) };
    let s = spa.space();
    if s.allocated + s.deferred > held {
        return Err(Divergence::new(format!(
            "space: the engine holds {} bytes allocated and {} deferred, more than the {held} \
             the model's bound allows",
            s.allocated, s.deferred
        )));
    }
    if spa.dirty_bytes() > dirty {
        return Err(Divergence::new(format!(
            "space: the engine counts {} dirty bytes, more than the {dirty} the model charged \
             since the last full sync",
            spa.dirty_bytes()
        )));
    }
    Ok(())
}

/// Check one head or snapshot.
///
/// # Errors
/// The first `Divergence` found.
pub fn check_objset(spa: &mut Spa, model: &Model, name: &str) -> Result<(), Divergence> {
    let engine_objs = spa.objects(name).map_err(|e| dmu_err(&format!("objects({name})"), &e))?;
    let model_objs = model.objects(name).expect("invariant: listed dataset");
    if engine_objs != model_objs {
        return Err(Divergence::new(format!(
            "objects of {name}: engine {engine_objs:?}, model {model_objs:?}"
        )));
    }
    for &obj in &model_objs {
        let ob = model.object(name, obj).expect("invariant: listed object");
        let info =
            spa.object_info(name, obj).map_err(|e| dmu_err(&format!("{name} obj {obj}"), &e))?;
        if ModelInfo::of_engine(&info) != ob.info() {
            return Err(Divergence::new(format!(
                "object_info {name} obj {obj}: engine {info:?}, model {:?}",
                ob.info()
            )));
        }
        let bonus =
            spa.bonus(name, obj).map_err(|e| dmu_err(&format!("bonus {name} {obj}"), &e))?;
        if bonus != (ob.bonustype, ob.bonus.clone()) {
            return Err(Divergence::new(format!(
                "bonus {name} obj {obj}: engine {bonus:?}, model {:?}",
                (ob.bonustype, &ob.bonus)
            )));
        }
        if object_bytes(ob) <= CONFORMANCE_DENSE_BYTES_MAX {
            check_dense(spa, name, obj, ob)?;
        } else {
            let engine_blocks = spa
                .data_blocks(name, obj)
                .map_err(|e| dmu_err(&format!("data blocks of {name} obj {obj}"), &e))?;
            check_sparse(spa, name, obj, ob, &engine_blocks)?;
        }
    }
    Ok(())
}

fn object_bytes(ob: &ModelObject) -> u64 {
    (ob.maxblkid + 1).saturating_mul(u64::from(ob.blksz))
}

fn compare_range(
    spa: &mut Spa,
    name: &str,
    obj: u64,
    ob: &ModelObject,
    offset: u64,
    len: u64,
) -> Result<(), Divergence> {
    let what = format!("{name} obj {obj} [{offset:#x}+{len:#x})");
    let got = spa.read(name, obj, offset, len).map_err(|e| dmu_err(&what, &e))?;
    let want = ob.read_bytes(offset, usize::try_from(len).expect("bounded chunk"));
    match first_difference(&got, &want) {
        None => Ok(()),
        Some(at) => Err(Divergence::new(format!(
            "contents of {name} obj {obj} differ at offset {:#x}: engine {:?}, model {:?}",
            offset + at as u64,
            got.get(at),
            want.get(at)
        ))),
    }
}

/// Compare every byte of the object, plus one block past its end.
fn check_dense(spa: &mut Spa, name: &str, obj: u64, ob: &ModelObject) -> Result<(), Divergence> {
    let size = object_bytes(ob);
    assert!(size <= CONFORMANCE_DENSE_BYTES_MAX, "{size}");
    let mut at = 0;
    while at < size {
        let len = CONFORMANCE_CHUNK_BYTES.min(size - at);
        compare_range(spa, name, obj, ob, at, len)?;
        at += len;
    }
    compare_range(spa, name, obj, ob, size, u64::from(ob.blksz))
}

/// Compare every block either side holds, the first and last, evenly spaced samples, and
/// the block past the end.
fn check_sparse(
    spa: &mut Spa,
    name: &str,
    obj: u64,
    ob: &ModelObject,
    engine_blocks: &[u64],
) -> Result<(), Divergence> {
    let bs = u64::from(ob.blksz);
    let mut ids: BTreeSet<u64> = ob.blocks.keys().copied().collect();
    ids.extend(engine_blocks);
    let step = (ob.maxblkid / CONFORMANCE_HOLE_SAMPLES).max(1);
    ids.extend((0..=CONFORMANCE_HOLE_SAMPLES).map(|i| (i * step).min(ob.maxblkid)));
    ids.insert(ob.maxblkid);
    ids.insert(ob.maxblkid + 1);
    for blkid in ids.into_iter().filter(|b| (b + 1).saturating_mul(bs) <= MODEL_MAX_OFFSET) {
        compare_range(spa, name, obj, ob, blkid * bs, bs)?;
    }
    Ok(())
}

/// Where a checked run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFailure {
    /// Index of the op after which the check failed.
    pub index: usize,
    /// That op.
    pub op: Op,
    /// What differed.
    pub divergence: Divergence,
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "after op #{} {:?}: {}", self.index, self.op, self.divergence)
    }
}

/// Apply `ops` in order to engine and model, checking conformance after every op (every
/// snapshot too, except after reads and fsyncs) and, after every op that syncs (sync, sync
/// steps, export/import, dataset, snapshot and send/receive ops), when no txg is left
/// syncing, pool integrity.
///
/// # Errors
/// The first failure, with the index of the op.
pub fn run_checked(spa: &mut Spa, model: &mut Model, ops: &[Op]) -> Result<(), RunFailure> {
    for (index, op) in ops.iter().enumerate() {
        let fail = |divergence| RunFailure { index, op: op.clone(), divergence };
        op.apply(spa, model).map_err(fail)?;
        if !op.changes_snapshots_or_heads() {
            check_heads(spa, model).map_err(fail)?;
            continue;
        }
        check(spa, model).map_err(fail)?;
        if !op.syncs() {
            continue;
        }
        if spa.syncing_txg().is_none() {
            let r = integrity::check(spa);
            r.map_err(|e| fail(Divergence::new(format!("integrity: {e}"))))?;
        }
    }
    Ok(())
}
