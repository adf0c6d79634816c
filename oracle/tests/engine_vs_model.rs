//! Property 1 and 5 as quickcheck properties: random op lists (writes, frees, truncations,
//! object alloc/claim/reclaim/free, bonus, snapshots, rollback, datasets, sync,
//! export/import) run on the engine and the model with conformance checked after every op
//! and pool integrity after every sync. Failing lists shrink by dropping ops: ops resolve
//! against the model at apply time, so every sublist stays meaningful.

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

/// A list of ops; `Arbitrary` draws a seed and a length, shrinking drops ops.
#[derive(Clone, Debug)]
struct Ops(Vec<Op>);

fn gen_config(g: &mut Gen) -> GenConfig {
    let small = *g.choose(&[true, true, false]).expect("non-empty");
    GenConfig { write_len_max: if small { 16 << 10 } else { 256 << 10 }, ..GenConfig::default() }
}

impl Arbitrary for Ops {
    fn arbitrary(g: &mut Gen) -> Self {
        let seed = u64::arbitrary(g);
        let n = usize::arbitrary(g) % (g.size().min(OPS_MAX) + 1);
        let cfg = gen_config(g);
        Self(random_ops(seed, n, &cfg))
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let ops = self.0.clone();
        let n = ops.len();
        let mut out = Vec::new();
        let mut chunk = n / 2;
        while chunk > 0 {
            for start in (0..n).step_by(chunk) {
                let mut v = ops.clone();
                v.drain(start..(start + chunk).min(n));
                out.push(Self(v));
            }
            chunk /= 2;
        }
        Box::new(out.into_iter())
    }
}

fn fresh() -> (Spa, Model) {
    let dev = Box::new(MemoryDevice::new(DEV_BYTES));
    let spa = Spa::create(dev, "tank", SpaConfig::default()).expect("create pool");
    (spa, Model::new("tank"))
}

fn run(ops: &[Op]) -> Result<(), RunFailure> {
    let (mut spa, mut model) = fresh();
    run_checked(&mut spa, &mut model, ops)?;
    let fail = |divergence| RunFailure { index: ops.len(), op: Op::ExportImport, divergence };
    Op::ExportImport.apply(&mut spa, &mut model).map_err(fail)?;
    oracle::conformance::check(&mut spa, &model).map_err(fail)
}

fn prop(ops: Ops) -> TestResult {
    match run(&ops.0) {
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
    if let Err(f) = run(&ops) {
        panic!("{f}");
    }
}
