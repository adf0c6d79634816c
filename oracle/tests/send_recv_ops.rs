//! `Op::SendRecv` against seeded send bugs: histories written by hand so that each send
//! bug of zfs-send-stream.md §6 shows in a received snapshot (a freed object kept, a hole
//! not punched, a block not resent), checked by `run_checked` exactly as every workload is.

use engine::{MemoryDevice, ObjectSpec, Spa, SpaConfig};
use oracle::op::{ObjRef, Op, Pos, Target};
use oracle::replica::SEND_FROM_TARGET_NEWEST;
use oracle::{run_checked, Model};

fn fresh() -> (Spa, Model) {
    let dev = Box::new(MemoryDevice::new(64 << 20));
    (Spa::create(dev, "tank", SpaConfig::default()).expect("create"), Model::new("tank"))
}

fn alloc() -> Op {
    Op::ObjectAlloc { fs: Target::Head(0), spec: ObjectSpec::new(19, 4096, 0, 0) }
}

fn write(obj: usize, offset: u64, len: u64, seed: u8) -> Op {
    Op::Write {
        fs: Target::Head(0),
        obj: ObjRef::Existing(obj),
        offset: Pos::Abs(offset),
        len,
        seed,
    }
}

/// Snapshot `i` of `tank` (`Target::Snap` counts every snapshot of every filesystem, and
/// tank's come first) into `tank/r-tank`: in full, or from what the target holds newest.
fn backup(i: usize, full: bool) -> Op {
    let from = if full { 0 } else { SEND_FROM_TARGET_NEWEST };
    Op::SendRecv { snap: Target::Snap(i), from, flags: 0, damage: 0 }
}

#[test]
fn freed_objects_punched_blocks_and_rewrites_reach_the_replica() {
    let (mut spa, mut model) = fresh();
    let mut ops = vec![alloc(), alloc(), alloc(), alloc()];
    for obj in 0..4 {
        ops.push(write(obj, 0, 3 * 4096, 10 + obj as u8));
    }
    ops.push(Op::Snapshot { fs: Target::Head(0), name: 0 });
    ops.push(backup(0, true));
    ops.push(Op::ObjectFree { fs: Target::Head(0), obj: ObjRef::Existing(1) });
    ops.push(Op::FreeRange {
        fs: Target::Head(0),
        obj: ObjRef::Existing(0),
        offset: Pos::Abs(4096),
        len: 4096,
    });
    ops.push(write(2, 8192, 100, 99));
    ops.push(Op::Snapshot { fs: Target::Head(0), name: 1 });
    ops.push(backup(1, false));
    run_checked(&mut spa, &mut model, &ops).expect("the replica equals the model");
    let snaps = model.snapshots("tank/r-tank").expect("received");
    assert_eq!(snaps, ["tank/r-tank@s0", "tank/r-tank@s1"], "both receives happened");
}
