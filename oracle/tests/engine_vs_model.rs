//! Property 1 and 5 as quickcheck properties: random op lists (writes, frees, truncations,
//! object alloc/claim/reclaim/free, bonus, snapshots, rollback, datasets, sync,
//! export/import) run on the engine and the model with conformance checked after every op
//! and pool integrity after every sync. Failing lists shrink by dropping ops: ops resolve
//! against the model at apply time, so every sublist stays meaningful.

use engine::spa::DIRTY_BYTES_MAX_DEFAULT;
use engine::{MemoryDevice, Spa, SpaConfig};
use oracle::{random_ops, run_checked, GenConfig, Model, Op, RunFailure};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

/// Device of the pools under test.
const DEV_BYTES: u64 = 64 << 20;
/// Ops per case in the default run.
const OPS_MAX: usize = 60;
/// Cases in the default run.
const CASES: u64 = 64;
/// Seed of quickcheck's generator (the op lists themselves come from `random_ops`).
const QC_SEED: u64 = 0x04ac_1e5e_ed00;

/// Dirty-data limit of a third of the pools: writes then sync inline, mid-op.
const DIRTY_BYTES_SMALL: u64 = 192 << 10;

/// A list of ops and the pool's dirty limit; `Arbitrary` draws a seed and a length,
/// shrinking drops ops.
#[derive(Clone, Debug)]
struct Ops(Vec<Op>, u64);

/// Write sizes scale with the generator size: the default run (size 60) keeps writes small
/// so debug builds stay fast; the heavy run (size 200) reaches 256 KiB.
fn gen_config(g: &mut Gen) -> GenConfig {
    let big = g.size() > OPS_MAX && *g.choose(&[false, true]).expect("non-empty");
    let small = *g.choose(&[true, true, false]).expect("non-empty");
    let write_len_max = match (big, small) {
        (true, _) => 256 << 10,
        (false, true) => 16 << 10,
        (false, false) => 64 << 10,
    };
    GenConfig { write_len_max, fsync: true, ..GenConfig::default() }
}

impl Arbitrary for Ops {
    fn arbitrary(g: &mut Gen) -> Self {
        let seed = u64::arbitrary(g);
        let n = usize::arbitrary(g) % (g.size().min(OPS_MAX) + 1);
        let cfg = gen_config(g);
        let dirty = *g
            .choose(&[DIRTY_BYTES_SMALL, DIRTY_BYTES_MAX_DEFAULT, DIRTY_BYTES_MAX_DEFAULT])
            .expect("non-empty");
        Self(random_ops(seed, n, &cfg), dirty)
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let (ops, dirty) = (self.0.clone(), self.1);
        let n = ops.len();
        let mut out = Vec::new();
        let mut chunk = n / 2;
        while chunk > 0 {
            for start in (0..n).step_by(chunk) {
                let mut v = ops.clone();
                v.drain(start..(start + chunk).min(n));
                out.push(Self(v, dirty));
            }
            chunk /= 2;
        }
        Box::new(out.into_iter())
    }
}

fn fresh(dirty_bytes_max: u64) -> (Spa, Model) {
    let dev = Box::new(MemoryDevice::new(DEV_BYTES));
    let cfg = SpaConfig { dirty_bytes_max, ..SpaConfig::default() };
    let spa = Spa::create(dev, "tank", cfg).expect("create pool");
    (spa, Model::new("tank"))
}

fn run(ops: &[Op], dirty_bytes_max: u64) -> Result<(), RunFailure> {
    let (mut spa, mut model) = fresh(dirty_bytes_max);
    run_checked(&mut spa, &mut model, ops)?;
    let fail = |divergence| RunFailure { index: ops.len(), op: Op::ExportImport, divergence };
    Op::ExportImport.apply(&mut spa, &mut model).map_err(fail)?;
    oracle::conformance::check(&mut spa, &model).map_err(fail)
}

fn prop(ops: Ops) -> TestResult {
    match run(&ops.0, ops.1) {
        Ok(()) => TestResult::passed(),
        Err(f) => TestResult::error(format!("{f}\nops: {:#?}", ops.0)),
    }
}

#[test]
fn engine_conforms_to_model_on_random_ops() {
    QuickCheck::new()
        .rng(Gen::from_size_and_seed(OPS_MAX, QC_SEED))
        .tests(CASES)
        .max_tests(CASES)
        .quickcheck(prop as fn(Ops) -> TestResult);
}

#[test]
#[ignore = "heavy: 1000 cases of up to 200 ops; run with --ignored"]
fn engine_conforms_to_model_on_random_ops_heavy() {
    QuickCheck::new()
        .rng(Gen::from_size_and_seed(200, QC_SEED ^ 0xdead_beef))
        .tests(1000)
        .max_tests(1000)
        .quickcheck(prop as fn(Ops) -> TestResult);
}

/// A fixed list touching every op kind, so the default run covers each deterministically.
#[test]
fn every_op_kind_once() {
    use oracle::{ObjRef::*, Pos, Target::*};
    let spec = engine::ObjectSpec::new(19, 4096, 26, 32);
    let ops = vec![
        Op::ObjectAlloc { fs: Head(0), spec: spec.clone() },
        Op::Write { fs: Head(0), obj: Existing(0), offset: Pos::Abs(100), len: 9000, seed: 3 },
        Op::SetBonus { fs: Head(0), obj: Existing(0), bonustype: 44, len: 64, seed: 5 },
        Op::Snapshot { fs: Head(0), name: 1 },
        Op::FreeRange { fs: Head(0), obj: Existing(0), offset: Pos::Abs(50), len: 5000 },
        Op::Read { ds: Snap(0), obj: Existing(0), offset: Pos::Abs(0), len: 12288 },
        Op::Truncate { fs: Head(0), obj: Existing(0), offset: Pos::Abs(4097) },
        Op::Fsync { fs: Head(0), obj: Existing(0) },
        Op::SyncStep { steps: 3 },
        Op::Write { fs: Head(0), obj: Existing(0), offset: Pos::Abs(8192), len: 100, seed: 4 },
        Op::Sync,
        Op::ObjectClaim { fs: Head(0), obj: Raw(40), spec: spec.clone() },
        Op::ObjectReclaim {
            fs: Head(0),
            obj: Existing(1),
            spec: engine::ObjectSpec::new(19, 512, 0, 320),
        },
        Op::DatasetCreate { parent: Head(0), name: 1 },
        Op::Write { fs: Head(1), obj: Raw(1), offset: Pos::Abs(0), len: 1, seed: 1 },
        Op::ObjectAlloc { fs: Head(1), spec },
        Op::Write {
            fs: Head(1),
            obj: Existing(0),
            offset: Pos::Abs((1 << 30) + 1),
            len: 70_000,
            seed: 9,
        },
        Op::ExportImport,
        Op::Rollback { fs: Head(0) },
        Op::ObjectFree { fs: Head(0), obj: Existing(0) },
        Op::SnapshotDestroy { snap: Snap(0) },
        Op::DatasetDestroy { fs: Head(1) },
        Op::Sync,
    ];
    if let Err(f) = run(&ops, DIRTY_BYTES_SMALL) {
        panic!("{f}");
    }
}

/// A call's result, rendered, or its error kind.
type Outcome = Result<String, oracle::ErrKind>;

fn engine_outcome<T: std::fmt::Debug>(r: Result<T, engine::DmuError>) -> Outcome {
    r.map(|v| format!("{v:?}")).map_err(|e| oracle::kind_of_dmu(&e))
}

fn model_outcome<T: std::fmt::Debug>(r: Result<T, oracle::ErrKind>) -> Outcome {
    r.map(|v| format!("{v:?}"))
}

/// A pool and model with object 1 (4 KiB blocks, "data" at 0) and snapshot `tank@s`.
fn edge_pool() -> (Spa, Model, engine::ObjectSpec) {
    let (mut spa, mut m) = fresh(DIRTY_BYTES_MAX_DEFAULT);
    let spec = engine::ObjectSpec::new(19, 4096, 26, 32);
    assert_eq!(spa.object_alloc("tank", &spec).ok(), m.object_alloc("tank", &spec).ok());
    spa.write("tank", 1, 0, b"data").expect("write");
    m.write("tank", 1, 0, b"data").expect("write");
    spa.snapshot("tank@s").expect("snap");
    m.snapshot("tank@s").expect("snap");
    (spa, m, spec)
}

/// Lookups and reads: error kinds and their precedence on edge arguments.
#[test]
fn edge_lookups_match_model() {
    use oracle::ModelInfo;
    let (mut spa, m, _) = edge_pool();
    let (lim, max) = (oracle::model::MODEL_MAX_OFFSET, u64::MAX);
    let mut calls = 0;
    for (ds, obj) in [("tank", 0), ("tank", 1 << 48), ("tank@s", 0), ("nope", 1), ("tank@x", 1)] {
        let e = engine_outcome(spa.object_info(ds, obj).map(|i| ModelInfo::of_engine(&i)));
        assert_eq!(e, model_outcome(m.object_info(ds, obj)), "object_info({ds}, {obj})");
        let e = engine_outcome(spa.bonus(ds, obj));
        assert_eq!(e, model_outcome(m.bonus(ds, obj)), "bonus({ds}, {obj})");
        calls += 2;
    }
    let reads = [(0, 0, 1), (1, lim, 0), (1, lim, 1), (1, max, 0), (99, 0, 0), (1, lim - 1, 1)];
    for (obj, off, len) in reads {
        let e = engine_outcome(spa.read("tank", obj, off, len));
        assert_eq!(e, model_outcome(m.read("tank", obj, off, len)), "read({obj}, {off}, {len})");
        calls += 1;
    }
    assert_eq!(calls, 16);
}

/// Object changes: error kinds and their precedence on edge arguments.
#[test]
fn edge_changes_match_model() {
    let (mut spa, mut m, spec) = edge_pool();
    let bad = engine::ObjectSpec { indblkshift: 11, ..spec.clone() };
    let (lim, max) = (oracle::model::MODEL_MAX_OFFSET, u64::MAX);
    let writes: [(&str, u64, u64, &[u8]); 6] = [
        ("tank", 1, lim, b""),
        ("tank", 99, 0, b""),
        ("tank", 1, max, b""),
        ("tank@s", 99, 0, b"x"),
        ("tank@zz", 1, 0, b"x"),
        ("nope", 1, max, b"x"),
    ];
    for (ds, obj, off, data) in writes {
        let e = engine_outcome(spa.write(ds, obj, off, data));
        assert_eq!(e, model_outcome(m.write(ds, obj, off, data)), "write({ds}, {obj}, {off})");
    }
    let frees = [(1, max, 1), (1, max, 0), (1, 1 << 63, 1 << 62), (0, max, 1), (99, max, 1)];
    for (obj, off, len) in frees {
        let e = engine_outcome(spa.free_range("tank", obj, off, len));
        let w = model_outcome(m.free_range("tank", obj, off, len));
        assert_eq!(e, w, "free_range({obj}, {off}, {len})");
    }
    let e = engine_outcome(spa.free_range("tank@s", 1, 0, 1));
    assert_eq!(e, model_outcome(m.free_range("tank@s", 1, 0, 1)), "free_range(snapshot)");
    for (obj, bt, len) in [(1, 60, 0), (99, 60, 0), (99, 0, 500), (1, 0, 65), (0, 0, 0)] {
        let b = vec![1; len];
        let e = engine_outcome(spa.set_bonus("tank", obj, bt, &b));
        assert_eq!(e, model_outcome(m.set_bonus("tank", obj, bt, &b)), "set_bonus({obj}, {bt})");
    }
    for (obj, sp) in [(0, &spec), (1 << 48, &spec), (1, &bad), (1, &spec), (0, &bad)] {
        let e = engine_outcome(spa.object_claim("tank", obj, sp));
        assert_eq!(e, model_outcome(m.object_claim("tank", obj, sp)), "claim({obj}, {sp:?})");
        let e = engine_outcome(spa.object_reclaim("tank@s", obj, sp));
        assert_eq!(e, model_outcome(m.object_reclaim("tank@s", obj, sp)), "reclaim({obj})");
    }
    let e = engine_outcome(spa.object_free("tank@s", 1));
    assert_eq!(e, model_outcome(m.object_free("tank@s", 1)), "free(snapshot)");
    let e = engine_outcome(spa.object_free("tank", 0));
    assert_eq!(e, model_outcome(m.object_free("tank", 0)), "free(0)");
    let e = engine_outcome(spa.object_alloc("nope", &bad));
    assert_eq!(e, model_outcome(m.object_alloc("nope", &bad)), "alloc(nope, bad spec)");
    oracle::conformance::check(&mut spa, &m).expect("still equal");
}

/// Dataset and snapshot management: error kinds on bad names and states.
#[test]
fn edge_dsl_calls_match_model() {
    let (mut spa, mut m, _) = edge_pool();
    let kind = |r: Result<(), engine::DslError>| r.map_err(|e| oracle::kind_of_dsl(&e));
    let long = format!("tank@{}", "s".repeat(300));
    let props = engine::DatasetProps::default();
    let snaps = ["tank@s", "tank/nope@s", long.as_str(), "tank", "tank@a@b"];
    for name in snaps {
        assert_eq!(kind(spa.snapshot(name)), m.snapshot(name), "snapshot({name})");
    }
    for name in ["tank@nope", "tank", "x@s"] {
        assert_eq!(kind(spa.snapshot_destroy(name)), m.snapshot_destroy(name), "{name}");
    }
    for name in ["tank@s", "tank/nope", "tank/a b"] {
        assert_eq!(kind(spa.rollback(name)), m.rollback(name), "rollback({name})");
    }
    for name in ["tank", "tank/nope", "x"] {
        assert_eq!(kind(spa.dataset_destroy(name)), m.dataset_destroy(name), "destroy({name})");
    }
    for name in ["tank", "x", "tank/a/b", "tank/%recv"] {
        let e = kind(spa.dataset_create(name, props));
        assert_eq!(e, m.dataset_create(name), "create({name})");
    }
    oracle::conformance::check(&mut spa, &m).expect("still equal");
}

/// ENOSPC: writes into a small pool until the engine refuses; the refused write changes
/// nothing and syncing still succeeds (slop space). (Recovery after freeing: engine_bugs.rs.)
#[test]
fn out_of_space_refuses_cleanly() {
    let (mut spa, mut m, o) = full_pool();
    oracle::conformance::check(&mut spa, &m).expect("refused write changed nothing");
    oracle::integrity::check(&mut spa).expect("healthy when full");
    spa.set_bonus("tank", o, 26, &[1; 8]).expect("a change needing no data space");
    m.set_bonus("tank", o, 26, &[1; 8]).expect("model");
    spa.txg_sync().expect("sync must not run out of space");
    oracle::conformance::check(&mut spa, &m).expect("equal");
    oracle::integrity::check(&mut spa).expect("healthy");
}

/// A pool of 2 MiB allocatable, one object of 128 KiB blocks written until the engine
/// refuses with `NoSpace` (each accepted write synced).
fn full_pool() -> (Spa, Model, u64) {
    use oracle::op::pattern;
    let dev = Box::new(MemoryDevice::new(engine::limits::SPA_MINDEVSIZE + (2 << 20)));
    let mut spa = Spa::create(dev, "tank", SpaConfig::default()).expect("create");
    let mut m = Model::new("tank");
    let spec = engine::ObjectSpec::new(19, 128 << 10, 0, 0);
    let o = spa.object_alloc("tank", &spec).expect("alloc");
    m.object_alloc("tank", &spec).expect("alloc");
    for i in 0..64u64 {
        let data = pattern(5, i << 17, 128 << 10);
        match spa.write("tank", o, i << 17, &data) {
            Ok(()) => m.write("tank", o, i << 17, &data).expect("model write"),
            Err(engine::DmuError::NoSpace) => return (spa, m, o),
            Err(e) => panic!("write {i}: {e}"),
        }
        spa.txg_sync().expect("sync must not run out of space");
    }
    panic!("a 3 MiB pool must refuse 8 MiB of writes");
}
