//! Target `import`: a small pool image with several txgs of history is damaged as the input
//! says (bytes, sectors, live blocks, uberblocks, optionally re-sealed, label headers, the
//! device size) and imported, optionally rewound. Input: `ImportInput`. Must hold: no panic;
//! the import fails cleanly or every answer is the data of the imported txg (of some txg, if
//! an uberblock was forged) or an error; optionally, data written, synced and re-imported
//! after it reads back as written (or fails to read).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use engine::dmu::traverse::{traverse_objset, Visit};
use engine::limits::VDEV_LABEL_HEADER_SIZE;
use engine::limits::{UBERBLOCK_RING_SLOTS, UBERBLOCK_SLOT_SIZE, VDEV_LABELS, VDEV_LABEL_SIZE};
use engine::vdev::label::{label_offset, seal, uberblock_offset};
use engine::zio::blkptr::Dva;
use engine::{DmuError, MemoryDevice, ObjectSpec, Spa, SpaError, VdevError};
use oracle::model::{Model, ModelInfo};
use oracle::op::{pattern, ObjRef, Op, Pos, Target};

use super::{device_image, ops_cfg, FUZZ_POOL, IMPORT_DAMAGES_MAX, IMPORT_DEVICE_BYTES};
use super::{SECTOR, SECTOR_BYTES};

// ---------------------------------------------------------------------------------------
// Import of damaged images.
// ---------------------------------------------------------------------------------------

/// The import harness's pool: its image and the model of every txg it committed.
struct ImportBase {
    image: Vec<u8>,
    /// Txg -> the states it may hold (before or after the op that committed it).
    history: BTreeMap<u64, Vec<Model>>,
    /// Copies of the blocks of the newest txg (trees and MOS), for targeted damage.
    blocks: Vec<Dva>,
    newest_txg: u64,
}

fn import_base() -> &'static ImportBase {
    static BASE: OnceLock<ImportBase> = OnceLock::new();
    BASE.get_or_init(build_import_base)
}

/// A few txgs of history: two filesystems, objects of several block sizes with data and
/// bonus buffers, snapshots, a punched range and a freed object.
fn import_ops() -> Vec<Op> {
    let spec = ObjectSpec::new;
    let w = |fs, obj, at, len, seed| Op::Write {
        fs: Target::Head(fs),
        obj: ObjRef::Existing(obj),
        offset: Pos::Abs(at),
        len,
        seed,
    };
    vec![
        Op::DatasetCreate { parent: Target::Head(0), name: 0 },
        Op::ObjectAlloc { fs: Target::Head(1), spec: spec(19, 512, 0, 0) },
        w(1, 0, 0, 3000, 1),
        Op::ObjectAlloc { fs: Target::Head(1), spec: spec(19, 4096, 44, 64) },
        Op::SetBonus {
            fs: Target::Head(1),
            obj: ObjRef::Existing(1),
            bonustype: 44,
            len: 64,
            seed: 2,
        },
        w(1, 1, 8192, 10_000, 3),
        Op::Sync,
        Op::Snapshot { fs: Target::Head(1), name: 0 },
        w(1, 0, 1000, 100, 4),
        Op::ObjectAlloc { fs: Target::Head(0), spec: spec(19, 1024, 0, 0) },
        w(0, 0, 0, 5000, 5),
        Op::Sync,
        Op::FreeRange {
            fs: Target::Head(1),
            obj: ObjRef::Existing(1),
            offset: Pos::Abs(8192),
            len: 4096,
        },
        Op::Snapshot { fs: Target::Head(1), name: 1 },
        w(1, 1, 0, 2000, 6),
        Op::Sync,
        Op::ObjectFree { fs: Target::Head(1), obj: ObjRef::Existing(0) },
        w(0, 0, 512, 700, 7),
        Op::Sync,
    ]
}

fn build_import_base() -> ImportBase {
    let dev = Box::new(MemoryDevice::new(IMPORT_DEVICE_BYTES));
    let mut spa = Spa::create(dev, FUZZ_POOL, ops_cfg()).expect("create the import pool");
    let mut model = Model::new(FUZZ_POOL);
    let mut history: BTreeMap<u64, Vec<Model>> = BTreeMap::new();
    history.insert(spa.last_synced_txg(), vec![model.clone()]);
    for op in import_ops() {
        let (before, was) = (model.clone(), spa.last_synced_txg());
        op.apply(&mut spa, &mut model).unwrap_or_else(|d| panic!("import base: {d}"));
        for txg in was + 1..=spa.last_synced_txg() {
            history.entry(txg).or_default().extend([before.clone(), model.clone()]);
        }
    }
    assert!(!spa.is_dirty(), "the import base ends synced");
    let (trees, mos) = spa.pool_trees();
    let mut blocks: BTreeSet<Dva> = mos.iter().flat_map(|bp| bp.dvas().copied()).collect();
    for root in trees.iter().flat_map(|t| t.snapshots.iter().map(|s| s.2).chain([t.head])) {
        blocks.extend(root.dvas().copied());
        traverse_objset(spa.zio_mut(), &root, 0, &mut |_, v| {
            if let Visit::Block { bp, .. } = v {
                blocks.extend(bp.dvas().copied());
            }
        })
        .expect("the import base traverses");
    }
    let newest_txg = spa.last_synced_txg();
    let image = device_image(spa.export().expect("export the import base").as_mut());
    ImportBase { image, history, blocks: blocks.into_iter().collect(), newest_txg }
}

/// One kind of damage to a pool image.
#[derive(Arbitrary, Clone, Debug)]
enum Damage {
    Flip { at: u32, mask: u8 },
    Bytes { at: u32, bytes: Vec<u8> },
    ZeroSector { sector: u16 },
    CopySector { from: u16, to: u16 },
    Block { index: u16, at: u16, mask: u8 },
    ZeroBlock { index: u16 },
    Uberblock { back_label: bool, back: u8, at: u16, mask: u8, reseal: bool },
    CopyUberblock { from_back: u8, to_back: u8, reseal: bool },
    ZeroLabelHeader { back_label: bool },
    Resize { sectors: i16 },
}

impl Damage {
    /// Apply to `image`; true if an uberblock was forged (re-sealed after a change).
    fn apply(&self, image: &mut Vec<u8>, base: &ImportBase) -> bool {
        let len = image.len();
        let size = len as u64;
        let sectors = len / SECTOR_BYTES;
        let slot = |back_label: bool, back: u8| -> Option<usize> {
            if size < VDEV_LABELS * VDEV_LABEL_SIZE {
                return None;
            }
            let txg = base.newest_txg.saturating_sub(u64::from(back) % UBERBLOCK_RING_SLOTS);
            let at = uberblock_offset(u64::from(back_label), size, txg);
            usize::try_from(at).ok().filter(|&a| a + UBERBLOCK_SLOT_SIZE as usize <= len)
        };
        match self {
            Self::Flip { at, mask } => image[*at as usize % len] ^= mask,
            Self::Bytes { at, bytes } => {
                let at = *at as usize % len;
                let n = bytes.len().min(64).min(len - at);
                image[at..at + n].copy_from_slice(&bytes[..n]);
            }
            Self::ZeroSector { sector } => {
                let s = usize::from(*sector) % sectors * SECTOR_BYTES;
                image[s..s + SECTOR_BYTES].fill(0);
            }
            Self::CopySector { from, to } => {
                let (f, t) = (usize::from(*from) % sectors, usize::from(*to) % sectors);
                image.copy_within(f * SECTOR_BYTES..(f + 1) * SECTOR_BYTES, t * SECTOR_BYTES);
            }
            Self::Block { index, at, mask } => {
                let d = base.blocks[usize::from(*index) % base.blocks.len()];
                let at = d.offset + u64::from(*at) % d.asize;
                if let Some(b) = usize::try_from(at).ok().and_then(|a| image.get_mut(a)) {
                    *b ^= mask;
                }
            }
            Self::ZeroBlock { index } => {
                let d = base.blocks[usize::from(*index) % base.blocks.len()];
                let (s, e) = (d.offset as usize, (d.offset + d.asize) as usize);
                if e <= len {
                    image[s..e].fill(0);
                }
            }
            other => return other.apply_label(image, &slot),
        }
        false
    }

    fn apply_label(&self, image: &mut Vec<u8>, slot: &dyn Fn(bool, u8) -> Option<usize>) -> bool {
        let slot_bytes = UBERBLOCK_SLOT_SIZE as usize;
        let reseal_at = |image: &mut Vec<u8>, at: usize| {
            if at + slot_bytes <= image.len() {
                seal(&mut image[at..at + slot_bytes], at as u64);
            }
        };
        match self {
            Self::Uberblock { back_label, back, at, mask, reseal } => {
                let Some(s) = slot(*back_label, *back) else { return false };
                image[s + usize::from(*at) % slot_bytes] ^= mask;
                if *reseal {
                    reseal_at(image, s);
                }
                *reseal
            }
            Self::CopyUberblock { from_back, to_back, reseal } => {
                let (Some(f), Some(t)) = (slot(false, *from_back), slot(false, *to_back)) else {
                    return false;
                };
                image.copy_within(f..f + slot_bytes, t);
                if *reseal {
                    reseal_at(image, t);
                }
                *reseal
            }
            Self::ZeroLabelHeader { back_label } => {
                let size = image.len() as u64;
                if size >= VDEV_LABELS * VDEV_LABEL_SIZE {
                    let at = label_offset(u64::from(*back_label), size) as usize;
                    image[at..at + VDEV_LABEL_HEADER_SIZE as usize].fill(0);
                }
                false
            }
            Self::Resize { sectors } => {
                let len = image.len() as i64 + i64::from(*sectors) * SECTOR as i64;
                image.resize(usize::try_from(len.max(SECTOR as i64)).expect("positive"), 0);
                false
            }
            _ => unreachable!("handled by apply"),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct ImportInput {
    damages: Vec<Damage>,
    rewind: Option<u8>,
    write_after: bool,
}

/// Compare what the engine returns with `model`, allowing errors (damage) but no wrong
/// answer: the same datasets and snapshots, and every object listing, attribute, bonus and
/// block that reads must equal the model's.
fn lenient_check(spa: &mut Spa, model: &Model) -> Result<(), String> {
    let (got, want) = (spa.datasets(), model.datasets());
    if got != want {
        return Err(format!("datasets: engine {got:?}, model {want:?}"));
    }
    for fs in &want {
        let snaps = spa.snapshots(fs).map_err(|e| format!("snapshots({fs}): {e}"))?;
        let snaps: Vec<String> = snaps.into_iter().map(|s| s.name).collect();
        let model_snaps = model.snapshots(fs).expect("invariant: listed dataset");
        if snaps != model_snaps {
            return Err(format!("snapshots of {fs}: engine {snaps:?}, model {model_snaps:?}"));
        }
        for name in snaps.iter().chain([fs]) {
            lenient_objset(spa, model, name)?;
        }
    }
    Ok(())
}

fn lenient_objset(spa: &mut Spa, model: &Model, name: &str) -> Result<(), String> {
    let objs = match spa.objects(name) {
        Ok(objs) => objs,
        Err(e) => return damage_only(name, "objects", &e),
    };
    let want = model.objects(name).expect("invariant: listed dataset");
    if objs != want {
        return Err(format!("objects of {name}: engine {objs:?}, model {want:?}"));
    }
    for obj in want {
        let ob = model.object(name, obj).expect("invariant: listed object");
        match spa.object_info(name, obj) {
            Ok(info) if ModelInfo::of_engine(&info) != ob.info() => {
                return Err(format!("{name} obj {obj}: engine {info:?}, model {:?}", ob.info()));
            }
            Ok(_) => {}
            Err(e) => damage_only(name, "object_info", &e)?,
        }
        match spa.bonus(name, obj) {
            Ok(bonus) if bonus != (ob.bonustype, ob.bonus.clone()) => {
                return Err(format!("{name} obj {obj}: bonus {bonus:?} is not the model's"));
            }
            Ok(_) => {}
            Err(e) => damage_only(name, "bonus", &e)?,
        }
        let bs = u64::from(ob.blksz);
        for blkid in 0..=ob.maxblkid + 1 {
            match spa.read(name, obj, blkid * bs, bs) {
                Ok(got) if got != ob.read_bytes(blkid * bs, ob.blksz as usize) => {
                    return Err(format!("{name} obj {obj} block {blkid}: wrong data"));
                }
                Ok(_) => {}
                Err(e) => damage_only(name, "read", &e)?,
            }
        }
    }
    Ok(())
}

/// An error the damage explains: a block that does not read or verify (`DmuError::Zio`).
/// Any other answer to a call the model says succeeds (no such object, an invalid
/// argument, a suspended pool on a read) is not damage: it is reported.
fn damage_only(name: &str, call: &str, e: &engine::DmuError) -> Result<(), String> {
    match e {
        engine::DmuError::Zio(_) => Ok(()),
        other => Err(format!("{name}: {call} failed with {other}, which no damage explains")),
    }
}

/// After an import of a damaged image: sync, write, sync, export and import again; the new
/// data reads back (or fails to read), never differently. A step may fail only as damage
/// explains: a block that does not read back (`Zio`), or, when an uberblock was forged (its
/// space maps may claim anything), no space. Any other failure is a bug.
fn write_after_import(mut spa: Spa, forged: bool) {
    let sync_ok = |r: Result<(), SpaError>, step: &str| match r {
        Ok(()) => true,
        Err(SpaError::Zio(_)) => false,
        Err(SpaError::Suspended(VdevError::NoSpace { .. })) if forged => false,
        Err(e) => panic!(
            "import: {step} after a damaged import failed with {e}, which no damage explains"
        ),
    };
    if !sync_ok(spa.txg_sync().map(drop), "the first sync") {
        return;
    }
    let target = spa.datasets().into_iter().find_map(|fs| {
        let obj = spa.objects(&fs).ok()?.into_iter().next()?;
        Some((fs, obj))
    });
    let Some((fs, obj)) = target else { return };
    let data = pattern(0x77, 100, 1500);
    match spa.write(&fs, obj, 100, &data) {
        Ok(()) => {}
        Err(DmuError::Zio(_)) => return,
        Err(DmuError::NoSpace) if forged => return,
        Err(e) => panic!(
            "import: a write after a damaged import failed with {e}, which no damage explains"
        ),
    }
    if !sync_ok(spa.txg_sync().map(drop), "the sync of a write") {
        return;
    }
    let dev = match spa.export() {
        Ok(dev) => dev,
        Err(e) => panic!("import: export after a good sync failed with {e}"),
    };
    let mut spa = Spa::import(dev, ops_cfg(), None)
        .unwrap_or_else(|e| panic!("import: re-import after a good sync failed: {e}"));
    if let Ok(got) = spa.read(&fs, obj, 100, data.len() as u64) {
        assert!(got == data, "import: data written after a damaged import reads back wrong");
    }
}

/// Target `import`: a valid small pool image (`IMPORT_DEVICE_BYTES`, several txgs of
/// history) gets arbitrary damage: bytes, sectors, live blocks, uberblocks (optionally
/// re-sealed, i.e. forged with a valid checksum), label headers, the device size; and an
/// optional rewind. Import must fail cleanly or give a pool whose every answer is the data
/// it held at the imported txg (at some txg, if an uberblock was forged) or an error; then,
/// optionally, a write, sync and re-import must work. Never panics.
pub fn import(data: &[u8]) {
    let Ok(input) = ImportInput::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let base = import_base();
    let mut image = base.image.clone();
    let mut forged = false;
    for d in input.damages.iter().take(IMPORT_DAMAGES_MAX) {
        forged |= d.apply(&mut image, base);
    }
    let rewind = input.rewind.map(|b| base.newest_txg.saturating_sub(u64::from(b % 16)));
    let dev = Box::new(MemoryDevice::from_image(image));
    let Ok(mut spa) = Spa::import(dev, ops_cfg(), rewind) else { return };
    let txg = spa.last_synced_txg();
    let candidates: Vec<&Model> = if forged {
        base.history.values().flatten().collect()
    } else {
        let Some(states) = base.history.get(&txg) else {
            panic!("import: imported txg {txg}, which the pool never committed");
        };
        states.iter().collect()
    };
    let mut errors = Vec::new();
    if !candidates.iter().any(|m| lenient_check(&mut spa, m).map_err(|e| errors.push(e)).is_ok()) {
        panic!("import: txg {txg} returns data the pool never held: {}", errors.join(" | "));
    }
    if input.write_after {
        write_after_import(spa, forged);
    }
}
