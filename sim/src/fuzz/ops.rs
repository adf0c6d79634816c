//! Target `ops`: an arbitrary operation list run against the engine and the model, then a
//! send and receive of the newest snapshots. Input: `OpsInput` (send options, at most
//! `FUZZ_OPS_MAX` operations). Must hold: conformance after every op, integrity after every
//! sync, and the received copies (full, then incremental) equal the snapshots sent.

use arbitrary::{Arbitrary, Unstructured};
use engine::dmu::send::SendOptions;
use engine::stream::ByteOrder;
use engine::{MemoryDevice, Spa};
use oracle::conformance;
use oracle::model::Model;
use oracle::op::Op;

use super::{compare_objsets, ops_cfg, send_recv, FuzzOp, FUZZ_OPS_MAX, OPS_COPY_FS};
use super::{OPS_DEVICE_BYTES, OPS_POOL};

// ---------------------------------------------------------------------------------------
// Operations against engine and model.
// ---------------------------------------------------------------------------------------

/// Send options a round trip uses.
#[derive(Arbitrary, Clone, Copy, Debug)]
struct SendChoice {
    big_endian: bool,
    embed: bool,
    compressed: bool,
}

impl SendChoice {
    fn options(self) -> SendOptions {
        let byte_order = if self.big_endian { ByteOrder::Big } else { ByteOrder::Little };
        SendOptions { embed: self.embed, compressed: self.compressed, byte_order }
    }
}

#[derive(Arbitrary, Debug)]
struct OpsInput {
    send: SendChoice,
    ops: Vec<FuzzOp>,
}

/// Target `ops`: an arbitrary operation list (at most `FUZZ_OPS_MAX`) runs against the engine
/// and the model with `oracle::run_checked` (conformance after every op, integrity after
/// every sync); then the newest snapshot (and the one before, incrementally) is sent with
/// arbitrary options, received into a new filesystem and compared.
pub fn ops(data: &[u8]) {
    let Ok(input) = OpsInput::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let ops: Vec<Op> = input.ops.iter().take(FUZZ_OPS_MAX).map(|o| o.to_op()).collect();
    let dev = Box::new(MemoryDevice::new(OPS_DEVICE_BYTES));
    let mut spa = Spa::create(dev, OPS_POOL, ops_cfg()).expect("create the ops pool");
    let mut model = Model::new(OPS_POOL);
    if let Err(f) = conformance::run_checked(&mut spa, &mut model, &ops) {
        panic!("ops: {f}");
    }
    spa.txg_sync().unwrap_or_else(|e| panic!("ops: final sync: {e}"));
    ops_round_trip(&mut spa, &model, input.send);
}

fn ops_round_trip(spa: &mut Spa, model: &Model, send: SendChoice) {
    let snaps = model
        .datasets()
        .into_iter()
        .filter_map(|fs| model.snapshots(&fs).ok())
        .find(|s| !s.is_empty());
    let Some(snaps) = snaps else { return };
    let opts = send.options();
    let to = &snaps[snaps.len() - 1];
    let from = (snaps.len() >= 2).then(|| &snaps[snaps.len() - 2]);
    let first = from.unwrap_or(to);
    // The copies are not in the model: each receive needs room for both.
    let need = |s: &str| model.recv_need(model.objset(s).expect("listed snapshot"));
    let (a, b) = (need(first), need(to));
    let both = oracle::space::SpaceNeed { dirty: a.dirty + b.dirty, live: a.live + b.live };
    let fits = model.space_violation(spa.device_bytes(), both);
    let Some(copy) = send_recv(spa, first, None, OPS_COPY_FS, &opts, fits)
        .unwrap_or_else(|e| panic!("ops: {e}"))
    else {
        return;
    };
    compare_objsets(spa, first, &copy).unwrap_or_else(|e| panic!("ops: full round trip: {e}"));
    let Some(from) = from else { return };
    let got = send_recv(spa, to, Some(from), OPS_COPY_FS, &opts, fits)
        .unwrap_or_else(|e| panic!("ops: {e}"));
    if let Some(copy) = got {
        compare_objsets(spa, to, &copy)
            .unwrap_or_else(|e| panic!("ops: incremental round trip: {e}"));
    }
}
