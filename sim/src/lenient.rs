//! Conformance under injected damage: wrong bytes are violations, read errors detections.
//! Under `faults` metadata (object lists, dnodes, bonus buffers) is ditto-protected, so an
//! error there is a violation too; under `unrestricted` only wrong data is. Uses the strict
//! `oracle::conformance::check_objset` first and walks an objset block by block only when
//! that stopped on a read error.
//! Used by the run loop and the backup pool (`backup.rs`).

use engine::{DmuError, Spa};
use oracle::conformance::{check_objset, CONFORMANCE_CHUNK_BYTES};
use oracle::conformance::{CONFORMANCE_DENSE_BYTES_MAX, CONFORMANCE_HOLE_SAMPLES};
use oracle::model::{Model, ModelObject, MODEL_MAX_OFFSET};
use oracle::op::first_difference;

/// Check every head (and snapshot, if asked) against `model`; returns the detections.
pub fn check(
    spa: &mut Spa,
    model: &Model,
    snapshots: bool,
    metadata_errors_ok: bool,
) -> Result<u64, String> {
    let (engine_fs, model_fs) = (spa.datasets(), model.datasets());
    if engine_fs != model_fs {
        return Err(format!("datasets: engine {engine_fs:?}, model {model_fs:?}"));
    }
    let mut detected = 0;
    for fs in &model_fs {
        let snaps = spa.snapshots(fs).map_err(|e| format!("snapshots({fs}): {e}"))?;
        let engine_snaps: Vec<String> = snaps.into_iter().map(|s| s.name).collect();
        let model_snaps = model.snapshots(fs).expect("invariant: listed dataset");
        if engine_snaps != model_snaps {
            return Err(format!(
                "snapshots of {fs}: engine {engine_snaps:?}, model {model_snaps:?}"
            ));
        }
        let names = model_snaps.iter().filter(|_| snapshots).chain(std::iter::once(fs));
        for name in names {
            detected += objset(spa, model, name, metadata_errors_ok)?;
        }
    }
    Ok(detected)
}

fn objset(spa: &mut Spa, model: &Model, name: &str, meta_ok: bool) -> Result<u64, String> {
    let Err(d) = check_objset(spa, model, name) else { return Ok(0) };
    let io = d.what.contains("engine error") && d.what.ends_with("(Io)");
    let traverse = d.what.starts_with("traverse ");
    if !(io || (traverse && meta_ok)) {
        return Err(d.to_string());
    }
    walk(spa, model, name, meta_ok)
}

/// An engine read error on metadata: a detection if allowed, else a violation.
fn metadata(what: &str, e: &DmuError, meta_ok: bool) -> Result<u64, String> {
    match e {
        DmuError::Zio(_) if meta_ok => Ok(1),
        DmuError::Zio(_) => Err(format!("{what}: metadata read error under bounded faults: {e}")),
        _ => Err(format!("{what}: engine error {e}")),
    }
}

fn walk(spa: &mut Spa, model: &Model, name: &str, meta_ok: bool) -> Result<u64, String> {
    let model_objs = model.objects(name).expect("invariant: listed dataset");
    let engine_objs = match spa.objects(name) {
        Ok(o) => o,
        Err(e) => return metadata(&format!("objects({name})"), &e, meta_ok),
    };
    if engine_objs != model_objs {
        return Err(format!("objects of {name}: engine {engine_objs:?}, model {model_objs:?}"));
    }
    let mut detected = 0;
    for &obj in &model_objs {
        let ob = model.object(name, obj).expect("invariant: listed object");
        let what = format!("{name} obj {obj}");
        match spa.object_info(name, obj) {
            Ok(info) if oracle::ModelInfo::of_engine(&info) == ob.info() => {}
            Ok(info) => {
                return Err(format!("object_info {what}: engine {info:?}, model {:?}", ob.info()))
            }
            Err(e) => detected += metadata(&what, &e, meta_ok)?,
        }
        match spa.bonus(name, obj) {
            Ok(b) if b == (ob.bonustype, ob.bonus.clone()) => {}
            Ok(b) => {
                return Err(format!(
                    "bonus {what}: engine {b:?}, model {:?}",
                    (ob.bonustype, &ob.bonus)
                ))
            }
            Err(e) => detected += metadata(&what, &e, meta_ok)?,
        }
        for (offset, len) in ranges(ob) {
            detected += range(spa, name, obj, ob, offset, len)?;
        }
    }
    Ok(detected)
}

/// The byte ranges compared: the whole object plus a block in small objects; in large
/// ones the model's blocks, evenly spaced samples, the last block and the one past it.
fn ranges(ob: &ModelObject) -> Vec<(u64, u64)> {
    let bs = u64::from(ob.blksz);
    let size = (ob.maxblkid + 1).saturating_mul(bs);
    if size <= CONFORMANCE_DENSE_BYTES_MAX {
        let mut out: Vec<(u64, u64)> = (0..size)
            .step_by(usize::try_from(CONFORMANCE_CHUNK_BYTES).expect("small"))
            .map(|at| (at, CONFORMANCE_CHUNK_BYTES.min(size - at)))
            .collect();
        out.push((size, bs));
        return out;
    }
    let mut ids: std::collections::BTreeSet<u64> = ob.blocks.keys().copied().collect();
    let step = (ob.maxblkid / CONFORMANCE_HOLE_SAMPLES).max(1);
    ids.extend((0..=CONFORMANCE_HOLE_SAMPLES).map(|i| (i * step).min(ob.maxblkid)));
    ids.extend([ob.maxblkid, ob.maxblkid + 1]);
    ids.into_iter()
        .filter(|b| (b + 1).saturating_mul(bs) <= MODEL_MAX_OFFSET)
        .map(|b| (b * bs, bs))
        .collect()
}

/// Compare one range; on a read error, block by block. Returns the detections.
fn range(
    spa: &mut Spa,
    name: &str,
    obj: u64,
    ob: &ModelObject,
    offset: u64,
    len: u64,
) -> Result<u64, String> {
    let bs = u64::from(ob.blksz);
    match spa.read(name, obj, offset, len) {
        Ok(got) => compare(name, obj, ob, offset, len, &got).map(|()| 0),
        Err(DmuError::Zio(_)) if len > bs => {
            let mut detected = 0;
            let mut at = offset;
            while at < offset + len {
                let n = (bs - at % bs).min(offset + len - at);
                detected += range(spa, name, obj, ob, at, n)?;
                at += n;
            }
            Ok(detected)
        }
        Err(DmuError::Zio(_)) => Ok(1),
        Err(e) => Err(format!("{name} obj {obj} [{offset:#x}+{len:#x}): engine error {e}")),
    }
}

fn compare(
    name: &str,
    obj: u64,
    ob: &ModelObject,
    offset: u64,
    len: u64,
    got: &[u8],
) -> Result<(), String> {
    let want = ob.read_bytes(offset, usize::try_from(len).expect("bounded range"));
    let Some(at) = first_difference(got, &want) else { return Ok(()) };
    Err(format!(
        "WRONG DATA (property 7): {name} obj {obj} at offset {:#x}: engine {:?}, \
         model {:?} (lengths {} and {})",
        offset + at as u64,
        got.get(at),
        want.get(at),
        got.len(),
        want.len()
    ))
}
