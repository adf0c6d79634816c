//! Fuzz harnesses, one per cargo-fuzz target (each `fuzz/fuzz_targets/*.rs` is one line calling
//! one of them); `sim/tests/fuzz_replay.rs` replays every corpus and artifact file on stable.
//! OpenZFS counterpart: rsend's `send_invalid` and recv tests, ztest's import and crash checks.
//! Calls engine (recv, send, import), oracle (Op, Model, conformance, integrity) and sim::disk.
//! Asserted: no input panics; a failed receive changes no dataset, snapshot, tree root, manifest
//! or allocated byte and overwrites no live block; a received stream reads back as its records
//! say and round-trips; a crash recovers a committed txg; a damaged image imports to data the
//! pool held, or fails. See `recv_bytes`, `recv_structured`, `ops`, `crash`, `import`.
//!
//! Layout: this file holds what several harnesses share (limits, thoroughness, the arbitrary
//! mirrors of `oracle::op`, objset comparison, `send_recv`, `device_image`); `recv_common` the
//! receive harnesses' guarded base pool and checks; `stream_spec` the structured stream input;
//! and one file per target: `recv_bytes`, `recv_structured`, `ops`, `crash`, `import`.

mod crash;
mod import;
mod ops;
mod recv_bytes;
mod recv_common;
mod recv_structured;
mod stream_spec;

pub use crash::crash;
pub use import::import;
pub use ops::ops;
pub use recv_bytes::recv_bytes;
pub use recv_structured::recv_structured;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use arbitrary::Arbitrary;
use engine::dmu::recv::RecvOptions;
use engine::dmu::send::SendOptions;
use engine::dmu::traverse::{traverse_objset, Visit, OBJSET_BLOCK_OBJECT};
use engine::limits::{DMU_MAX_OFFSET, DMU_OBJECT_END, DN_MAX_OBJECT, SPA_MINBLOCKSIZE};
use engine::vdev::BlockDevice;
use engine::zio::blkptr::BlkPtr;
use engine::{ObjectSpec, RecvError, Spa, SpaConfig};
use oracle::op::{ObjRef, Op, Pos, Target};

/// Pool name of the receive and import harnesses.
pub const FUZZ_POOL: &str = "pool";
/// Filesystem full streams are received into (absent from the base pool).
pub const FUZZ_NEW_FS: &str = "pool/new";
/// Filesystem of the structured harness's incrementals, with snapshots @s0 and @s1.
pub const FUZZ_BASE_FS: &str = "pool/base";
/// Filesystem round trips are received into (and destroyed after).
const ROUND_TRIP_FS: &str = "pool/rt";
/// Pool name of the `ops` and `crash` harnesses (as the simulator's).
const OPS_POOL: &str = "tank";
/// Filesystem the `ops` round trip receives into (ops only create `d<n>` children).
const OPS_COPY_FS: &str = "tank/rtcopy";
/// Device of the receive harnesses' pool.
pub const RECV_DEVICE_BYTES: u64 = 16 << 20;
/// Dirty bytes that sync a txg in the middle of a receive, so that temporary blocks reach
/// the disk and a failure must free them.
pub const RECV_DIRTY_BYTES_MAX: u64 = 256 << 10;
/// Records of one structured stream at most.
pub const STRUCTURED_RECORDS_MAX: usize = 48;
/// Logical size of a structured WRITE at most (a block size past it is clamped; past the
/// payload limit, the WRITE is sent as a header that claims it).
pub const STRUCTURED_WRITE_MAX_BYTES: u64 = 1 << 20;
/// Payload bytes of one structured stream at most (later records are dropped).
pub const STRUCTURED_PAYLOAD_MAX_BYTES: usize = 4 << 20;
/// Operations of one `ops` or `crash` input at most.
pub const FUZZ_OPS_MAX: usize = 32;
/// Crashes of one `crash` input at most (the final one not counted).
pub const FUZZ_CRASHES_MAX: usize = 4;
/// Device of the `ops` harness.
pub const OPS_DEVICE_BYTES: u64 = 8 << 20;
/// Device of the `crash` harness (every crash copies and replays it).
pub const CRASH_DEVICE_BYTES: u64 = 4 << 20;
/// Device of the import harness's pool image.
pub const IMPORT_DEVICE_BYTES: u64 = 2 << 20;
/// Damages applied to one image at most.
pub const IMPORT_DAMAGES_MAX: usize = 16;
/// Objects up to this size are compared byte for byte; larger ones at their written blocks.
const COMPARE_DENSE_BYTES_MAX: u64 = 4 << 20;
/// Written blocks compared per large object.
const COMPARE_LISTED_BLOCKS_MAX: usize = 1024;
/// Bytes per read while comparing.
const COMPARE_CHUNK_BYTES: u64 = 1 << 20;
/// The unit of the structured harness's expected contents.
const SECTOR: u64 = SPA_MINBLOCKSIZE;
const SECTOR_BYTES: usize = SECTOR as usize;
/// Guid seed of the base pools (differs from every golden scenario's).
const FUZZ_GUID_SEED: u64 = 0xf022_0005;
/// Host time of the fuzz pools.
const FUZZ_NOW_SECS: u64 = 1_800_000_000;
/// Seed of the disks made from crash images (their own faults are off).
const CRASH_DISK_SEED: u64 = 0xc4a5;

const _: () = assert!(COMPARE_DENSE_BYTES_MAX.is_multiple_of(COMPARE_CHUNK_BYTES));
const _: () = assert!(RECV_DEVICE_BYTES >= 4 * RECV_DIRTY_BYTES_MAX);
const _: () = assert!(IMPORT_DEVICE_BYTES >= engine::limits::SPA_MINDEVSIZE);

/// The `fuzz/` folder of this checkout: corpora, artifacts, and `base/` (the streams the
/// receive harnesses' base pool is built from).
#[must_use]
pub fn fuzz_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz"))
}

fn ops_cfg() -> SpaConfig {
    SpaConfig { guid_seed: FUZZ_GUID_SEED, now_secs: FUZZ_NOW_SECS, ..SpaConfig::default() }
}

// ---------------------------------------------------------------------------------------
// Operations: arbitrary-friendly mirrors of `oracle::op` (oracle has no Arbitrary derives).
// ---------------------------------------------------------------------------------------

/// A dataset an op names (`oracle::op::Target`).
#[derive(Arbitrary, Clone, Copy, Debug)]
enum FuzzTarget {
    Head(u8),
    Snap(u8),
    Bad(u8),
    Newest(u8),
}

impl FuzzTarget {
    fn to_op(self) -> Target {
        match self {
            Self::Head(i) => Target::Head(i.into()),
            Self::Snap(i) => Target::Snap(i.into()),
            Self::Bad(i) => Target::Bad(i.into()),
            Self::Newest(i) => Target::Newest(i.into()),
        }
    }
}

/// An object an op names (`oracle::op::ObjRef`); `Edge` picks 0 or a number near 2^48.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum FuzzObj {
    Existing(u8),
    Raw(u16),
    Edge(u8),
}

impl FuzzObj {
    fn to_op(self) -> ObjRef {
        match self {
            Self::Existing(i) => ObjRef::Existing(i.into()),
            Self::Raw(n) => ObjRef::Raw(n.into()),
            Self::Edge(i) => {
                ObjRef::Raw([0, DN_MAX_OBJECT - 1, DN_MAX_OBJECT, u64::MAX][usize::from(i % 4)])
            }
        }
    }
}

/// A byte offset (`oracle::op::Pos`); `Far` reaches sparse offsets and the 2^62 limit.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum FuzzPos {
    Abs(u32),
    Far(u64),
    Rel { per_mille: u16, align: bool, delta: i16 },
    Data { index: u16, delta: i16 },
}

impl FuzzPos {
    fn to_op(self) -> Pos {
        match self {
            Self::Abs(at) => Pos::Abs(at.into()),
            Self::Far(at) => Pos::Abs(at),
            Self::Rel { per_mille, align, delta } => {
                Pos::Rel { per_mille: per_mille % 1200, align, delta: delta.into() }
            }
            Self::Data { index, delta } => Pos::Data { index, delta: delta.into() },
        }
    }
}

/// An object spec: valid most of the time, every field reaching its invalid values.
#[derive(Arbitrary, Clone, Copy, Debug)]
struct FuzzSpec {
    ot: u8,
    blksz: u8,
    indblkshift: u8,
    bonustype: u8,
    bonuslen: u16,
}

impl FuzzSpec {
    fn to_spec(self) -> ObjectSpec {
        let ot = [19, 19, 19, 25, 26, 21, 0x89, 0, 54, 0x9f][usize::from(self.ot % 10)];
        let blksz = match self.blksz {
            0..=239 => 512u32 << (self.blksz % 9),
            b => [0, 1000, 256 << 10, 1536, 3 << 9][usize::from(b % 5)],
        };
        let indblkshift = [0, 0, 0, 12, 17, 13, 11, 18][usize::from(self.indblkshift % 8)];
        let bonustype = [0, 26, 44, 0, 26, 54, 60][usize::from(self.bonustype % 7)];
        let bonuslen = usize::from(self.bonuslen % 400);
        ObjectSpec { ot, blksz, indblkshift, bonustype, bonuslen }
    }
}

/// One engine operation (`oracle::op::Op`), sizes bounded as the oracle requires.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum FuzzOp {
    Write { fs: FuzzTarget, obj: FuzzObj, offset: FuzzPos, len: u16, seed: u8 },
    BigWrite { fs: FuzzTarget, obj: FuzzObj, offset: FuzzPos, len_kib: u8, seed: u8 },
    Read { ds: FuzzTarget, obj: FuzzObj, offset: FuzzPos, len: u32 },
    FreeRange { fs: FuzzTarget, obj: FuzzObj, offset: FuzzPos, len: u64 },
    Truncate { fs: FuzzTarget, obj: FuzzObj, offset: FuzzPos },
    ObjectAlloc { fs: FuzzTarget, spec: FuzzSpec },
    ObjectClaim { fs: FuzzTarget, obj: FuzzObj, spec: FuzzSpec },
    ObjectReclaim { fs: FuzzTarget, obj: FuzzObj, spec: FuzzSpec },
    ObjectFree { fs: FuzzTarget, obj: FuzzObj },
    SetBonus { fs: FuzzTarget, obj: FuzzObj, bonustype: u8, len: u16, seed: u8 },
    Snapshot { fs: FuzzTarget, name: u8 },
    SnapshotDestroy { snap: FuzzTarget },
    Rollback { fs: FuzzTarget },
    DatasetCreate { parent: FuzzTarget, name: u8 },
    DatasetDestroy { fs: FuzzTarget },
    Sync,
    ExportImport,
    SendRecv { snap: FuzzTarget, from: u8, flags: u8, damage: u16 },
}

impl FuzzOp {
    fn to_op(self) -> Op {
        use oracle::op::{OP_READ_LEN_MAX, OP_WRITE_LEN_MAX};
        let op = match self {
            Self::Write { fs, obj, offset, len, seed } => Op::Write {
                fs: fs.to_op(),
                obj: obj.to_op(),
                offset: offset.to_op(),
                len: u64::from(len) + 1,
                seed,
            },
            Self::BigWrite { fs, obj, offset, len_kib, seed } => Op::Write {
                fs: fs.to_op(),
                obj: obj.to_op(),
                offset: offset.to_op(),
                len: ((u64::from(len_kib) + 1) << 10).min(OP_WRITE_LEN_MAX),
                seed,
            },
            Self::Read { ds, obj, offset, len } => Op::Read {
                ds: ds.to_op(),
                obj: obj.to_op(),
                offset: offset.to_op(),
                len: u64::from(len) % (OP_READ_LEN_MAX + 1),
            },
            Self::FreeRange { fs, obj, offset, len } => Op::FreeRange {
                fs: fs.to_op(),
                obj: obj.to_op(),
                offset: offset.to_op(),
                len: len.min(DMU_OBJECT_END - 1),
            },
            Self::Truncate { fs, obj, offset } => {
                Op::Truncate { fs: fs.to_op(), obj: obj.to_op(), offset: offset.to_op() }
            }
            other => other.to_op_dsl(),
        };
        assert!(!matches!(op, Op::Write { len: 0, .. }), "zero-length write");
        op
    }

    fn to_op_dsl(self) -> Op {
        match self {
            Self::ObjectAlloc { fs, spec } => {
                Op::ObjectAlloc { fs: fs.to_op(), spec: spec.to_spec() }
            }
            Self::ObjectClaim { fs, obj, spec } => {
                Op::ObjectClaim { fs: fs.to_op(), obj: obj.to_op(), spec: spec.to_spec() }
            }
            Self::ObjectReclaim { fs, obj, spec } => {
                Op::ObjectReclaim { fs: fs.to_op(), obj: obj.to_op(), spec: spec.to_spec() }
            }
            Self::ObjectFree { fs, obj } => Op::ObjectFree { fs: fs.to_op(), obj: obj.to_op() },
            Self::SetBonus { fs, obj, bonustype, len, seed } => Op::SetBonus {
                fs: fs.to_op(),
                obj: obj.to_op(),
                bonustype: [0, 26, 44, 0x80, 60][usize::from(bonustype % 5)],
                len: usize::from(len % 401),
                seed,
            },
            Self::Snapshot { fs, name } => Op::Snapshot { fs: fs.to_op(), name: name % 8 },
            Self::SnapshotDestroy { snap } => Op::SnapshotDestroy { snap: snap.to_op() },
            Self::Rollback { fs } => Op::Rollback { fs: fs.to_op() },
            Self::SendRecv { snap, from, flags, damage } => Op::SendRecv {
                snap: snap.to_op(),
                from,
                flags: oracle::replica::without_known_bugs(flags),
                damage,
            },
            Self::DatasetCreate { parent, name } => {
                Op::DatasetCreate { parent: parent.to_op(), name: name % 4 }
            }
            Self::DatasetDestroy { fs } => Op::DatasetDestroy { fs: fs.to_op() },
            Self::Sync => Op::Sync,
            Self::ExportImport => Op::ExportImport,
            data => unreachable!("not a DSL or object op: {data:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Comparing objsets of the engine (round trips) without hashing huge sparse objects.
// ---------------------------------------------------------------------------------------

/// The synced root of a head or snapshot.
fn objset_root(spa: &Spa, name: &str) -> Option<BlkPtr> {
    let (trees, _) = spa.pool_trees();
    match name.split_once('@') {
        None => trees.iter().find(|t| t.name == name).map(|t| t.head),
        Some((fs, snap)) => trees
            .iter()
            .find(|t| t.name == fs)
            .and_then(|t| t.snapshots.iter().find(|s| s.0 == snap).map(|s| s.2)),
    }
}

/// Object -> the level-0 block ids holding data.
type WrittenBlocks = BTreeMap<u64, BTreeSet<u64>>;

/// The blocks holding data of every object in the synced tree of `name`.
fn written_blocks(spa: &mut Spa, name: &str) -> Result<WrittenBlocks, String> {
    let root = objset_root(spa, name).ok_or_else(|| format!("no synced tree for {name}"))?;
    let mut out = WrittenBlocks::new();
    traverse_objset(spa.zio_mut(), &root, 0, &mut |_, v| {
        if let Visit::Block { object, level: 0, blkid, bp, .. } = v {
            if *object != 0 && *object != OBJSET_BLOCK_OBJECT && !bp.is_hole() {
                out.entry(*object).or_default().insert(*blkid);
            }
        }
    })
    .map_err(|e| format!("traverse {name}: {e}"))?;
    Ok(out)
}

/// Byte ranges to compare of an object: all of it if small, else its written blocks (of
/// either side), its first block and the block at the end.
fn compare_ranges(size: u64, blksz: u64, listed: &BTreeSet<u64>) -> Vec<(u64, u64)> {
    assert!(blksz >= SECTOR, "block size {blksz}");
    if size <= COMPARE_DENSE_BYTES_MAX {
        let chunks = size.div_ceil(COMPARE_CHUNK_BYTES);
        return (0..chunks)
            .map(|i| {
                (i * COMPARE_CHUNK_BYTES, COMPARE_CHUNK_BYTES.min(size - i * COMPARE_CHUNK_BYTES))
            })
            .collect();
    }
    let mut ids: BTreeSet<u64> = listed.iter().copied().take(COMPARE_LISTED_BLOCKS_MAX).collect();
    ids.insert(0);
    ids.insert(size / blksz - 1);
    ids.into_iter()
        .filter(|b| (b + 1).saturating_mul(blksz) <= DMU_MAX_OFFSET)
        .map(|b| (b * blksz, blksz))
        .collect()
}

/// Two heads or snapshots of the engine hold the same objects, attributes (but maxblkid:
/// trailing holes need not survive a send), bonus buffers and contents.
fn compare_objsets(spa: &mut Spa, a: &str, b: &str) -> Result<(), String> {
    let objs_a = spa.objects(a).map_err(|e| format!("objects({a}): {e}"))?;
    let objs_b = spa.objects(b).map_err(|e| format!("objects({b}): {e}"))?;
    if objs_a != objs_b {
        return Err(format!("objects: {a} {objs_a:?}, {b} {objs_b:?}"));
    }
    let mut listed: Option<(WrittenBlocks, WrittenBlocks)> = None;
    for obj in objs_a {
        let ia = spa.object_info(a, obj).map_err(|e| format!("{a} obj {obj}: {e}"))?;
        let ib = spa.object_info(b, obj).map_err(|e| format!("{b} obj {obj}: {e}"))?;
        let attrs = |i: &engine::ObjectInfo| (i.ot, i.blksz, i.bonustype, i.bonuslen);
        if attrs(&ia) != attrs(&ib) {
            return Err(format!("obj {obj}: {a} {ia:?}, {b} {ib:?}"));
        }
        let bonus_a = spa.bonus(a, obj).map_err(|e| format!("bonus {a} {obj}: {e}"))?;
        let bonus_b = spa.bonus(b, obj).map_err(|e| format!("bonus {b} {obj}: {e}"))?;
        if bonus_a != bonus_b {
            return Err(format!("bonus of obj {obj}: {a} {bonus_a:?}, {b} {bonus_b:?}"));
        }
        let bs = u64::from(ia.blksz);
        let size = (ia.maxblkid.max(ib.maxblkid) + 1).saturating_mul(bs);
        if size > COMPARE_DENSE_BYTES_MAX && listed.is_none() {
            listed = Some((written_blocks(spa, a)?, written_blocks(spa, b)?));
        }
        let mut ids = BTreeSet::new();
        if let Some((la, lb)) = &listed {
            ids.extend(
                la.get(&obj).into_iter().flatten().chain(lb.get(&obj).into_iter().flatten()),
            );
        }
        for (at, len) in compare_ranges(size, bs, &ids) {
            let da = spa.read(a, obj, at, len).map_err(|e| format!("read {a} {obj}: {e}"))?;
            let db = spa.read(b, obj, at, len).map_err(|e| format!("read {b} {obj}: {e}"))?;
            if let Some(i) = oracle::op::first_difference(&da, &db) {
                return Err(format!("obj {obj} differs at {:#x}: {a} vs {b}", at + i as u64));
            }
        }
    }
    Ok(())
}

/// Send `snap` (from `from` if given) and receive it into `dst`; `Ok(None)` if the pool is
/// out of space for it and `fits` (the model's space bound, when there is a model) does not
/// say it must fit.
fn send_recv(
    spa: &mut Spa,
    snap: &str,
    from: Option<&str>,
    dst: &str,
    opts: &SendOptions,
    fits: Option<oracle::space::SpaceFit>,
) -> Result<Option<String>, String> {
    let mut stream = Vec::new();
    spa.send(snap, from, opts, &mut stream).map_err(|e| format!("send {snap}: {e}"))?;
    match spa.recv(dst, &mut &stream[..], &RecvOptions::default()) {
        Ok(out) => Ok(Some(out.snapshot)),
        Err(RecvError::NoSpace) => match fits {
            Some(f) => Err(format!("receiving its own send of {snap} into {dst}: {f}")),
            None => Ok(None),
        },
        Err(e) => Err(format!("receiving its own send of {snap} ({opts:?}) into {dst}: {e}")),
    }
}

/// Every byte of a device, through the trait (the engine hands devices back boxed).
fn device_image(dev: &mut dyn BlockDevice) -> Vec<u8> {
    let len = usize::try_from(dev.size_bytes()).expect("invariant: device fits in memory");
    let mut image = vec![0; len];
    dev.read(0, &mut image).expect("invariant: a RAM device reads");
    image
}
