//! Fuzz harnesses, one per cargo-fuzz target (each `fuzz/fuzz_targets/*.rs` is one line calling
//! one of them); `sim/tests/fuzz_replay.rs` replays every corpus and artifact file on stable.
//! OpenZFS counterpart: rsend's `send_invalid` and recv tests, ztest's import and crash checks.
//! Calls engine (recv, send, import), oracle (Op, Model, conformance, integrity) and sim::disk.
//! Asserted: no input panics; a failed receive changes no dataset, snapshot, tree root, manifest
//! or allocated byte and overwrites no live block; a received stream reads back as its records
//! say and round-trips; a crash recovers a committed txg; a damaged image imports to data the
//! pool held, or fails. See `recv_bytes`, `recv_structured`, `ops`, `crash`, `import`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use engine::dmu::recv::{RecvOptions, RecvOutcome};
use engine::dmu::send::SendOptions;
use engine::dmu::traverse::{traverse_objset, Visit, OBJSET_BLOCK_OBJECT};
use engine::limits::VDEV_LABEL_HEADER_SIZE;
use engine::limits::{DMU_MAX_OFFSET, DMU_OBJECT_END, DN_MAX_OBJECT, SPA_MINBLOCKSIZE};
use engine::limits::{UBERBLOCK_RING_SLOTS, UBERBLOCK_SLOT_SIZE, VDEV_LABELS, VDEV_LABEL_SIZE};
use engine::stream::record::{
    decode_header_in, dmu_versioninfo, roundup8_u32, DrrBegin, DrrEnd, DrrFree, DrrFreeObjects,
    DrrObject, DrrObjectRange, DrrRedact, DrrSpill, DrrWrite, DrrWriteByref, DrrWriteEmbedded,
    DMU_BACKUP_FEATURE_COMPRESSED, DMU_BACKUP_FEATURE_EMBED_DATA, DMU_BACKUP_FEATURE_LARGE_BLOCKS,
    DMU_BACKUP_FEATURE_LZ4, DMU_BACKUP_FEATURE_MASK, DMU_COMPOUNDSTREAM, DMU_SUBSTREAM,
    DRR_CHECKSUM_OFFSET, DRR_FLAG_CLONE, DRR_HEADER_SIZE, DRR_PAYLOAD_MAX_BYTES,
    DRR_SPILL_UNMODIFIED, DRR_TONAME_MAX_LEN,
};
use engine::stream::{byteswap_in_place, ot_byteswap_kind, ot_is_valid, rechecksum};
use engine::stream::{encode_header, StreamWriter};
use engine::stream::{ByteOrder, Record};
use engine::vdev::label::{label_offset, seal, uberblock_offset};
use engine::vdev::{check_range, BlockDevice, VdevError};
use engine::zio::blkptr::{BlkPtr, Dva};
use engine::zio::checksum::Fletcher4;
use engine::zio::compress::lz4_compress;
use engine::{DatasetProps, MemoryDevice, ObjectSpec, RecvError, SnapshotInfo, Spa, SpaConfig};
use oracle::manifest::manifest;
use oracle::model::{Model, ModelInfo};
use oracle::op::{pattern, ObjRef, Op, Pos, Target};
use oracle::{conformance, integrity};

use crate::disk::{DiskConfig, Replayer, SimDisk};
use crate::intent::LogTracker;

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
/// One in this many failed receives that got past BEGIN also compares the target's manifests
/// (reading the target costs as much as the receive; tree roots are compared always).
const MANIFEST_SAMPLE: u64 = 4;
/// Guid seed of the base pools (differs from every golden scenario's).
const FUZZ_GUID_SEED: u64 = 0xf022_0005;
/// Host time of the fuzz pools.
const FUZZ_NOW_SECS: u64 = 1_800_000_000;
/// Seed of the disks made from crash images (their own faults are off).
const CRASH_DISK_SEED: u64 = 0xc4a5;

const _: () = assert!(COMPARE_DENSE_BYTES_MAX.is_multiple_of(COMPARE_CHUNK_BYTES));
const _: () = assert!(RECV_DEVICE_BYTES >= 4 * RECV_DIRTY_BYTES_MAX);
const _: () = assert!(IMPORT_DEVICE_BYTES >= engine::limits::SPA_MINDEVSIZE);

static THOROUGH: AtomicBool = AtomicBool::new(false);

/// Replay mode (the replay test turns it on; fuzzing leaves it off for speed): after every
/// failed receive, compare the manifests of every snapshot and head (else only the target's,
/// after one in `MANIFEST_SAMPLE` receives that got past BEGIN; tree roots and space are
/// compared always); after a success in `recv_bytes`, also walk the pool and round-trip.
pub fn set_thorough(on: bool) {
    THOROUGH.store(on, Ordering::Relaxed);
}

fn thorough() -> bool {
    THOROUGH.load(Ordering::Relaxed)
}

/// The `fuzz/` folder of this checkout: corpora, artifacts, and `base/` (the streams the
/// receive harnesses' base pool is built from).
#[must_use]
pub fn fuzz_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz"))
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
}

impl FuzzTarget {
    fn to_op(self) -> Target {
        match self {
            Self::Head(i) => Target::Head(i.into()),
            Self::Snap(i) => Target::Snap(i.into()),
            Self::Bad(i) => Target::Bad(i.into()),
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
/// out of space for it.
fn send_recv(
    spa: &mut Spa,
    snap: &str,
    from: Option<&str>,
    dst: &str,
    opts: &SendOptions,
) -> Result<Option<String>, String> {
    let mut stream = Vec::new();
    spa.send(snap, from, opts, &mut stream).map_err(|e| format!("send {snap}: {e}"))?;
    match spa.recv(dst, &mut &stream[..], &RecvOptions::default()) {
        Ok(out) => Ok(Some(out.snapshot)),
        Err(RecvError::NoSpace) => Ok(None),
        Err(e) => Err(format!("receiving its own send of {snap} ({opts:?}) into {dst}: {e}")),
    }
}

// ---------------------------------------------------------------------------------------
// The receive harnesses' pool: built once, imported per thread, guarded while receiving.
// ---------------------------------------------------------------------------------------

/// Sorted, disjoint `(offset, len)` extents of the blocks the base pool's datasets reference.
type Extents = Arc<[(u64, u64)]>;

/// Bytes per page of the write log a reset restores.
const GUARD_PAGE_BYTES: usize = 4096;
const _: () = assert!(GUARD_PAGE_BYTES.is_multiple_of(SECTOR_BYTES));

/// The bytes of a guarded device and which pages were written since the last reset.
struct GuardImage {
    bytes: Vec<u8>,
    dirty: Vec<bool>,
}

impl GuardImage {
    fn new(bytes: Vec<u8>) -> Self {
        assert!(bytes.len().is_multiple_of(GUARD_PAGE_BYTES), "image of {} bytes", bytes.len());
        let dirty = vec![false; bytes.len() / GUARD_PAGE_BYTES];
        Self { bytes, dirty }
    }

    /// Copy every written page back from `base`.
    fn reset(&mut self, base: &[u8]) {
        assert_eq!(base.len(), self.bytes.len(), "reset from another image");
        for (page, dirty) in self.dirty.iter_mut().enumerate().filter(|(_, d)| **d) {
            let span = page * GUARD_PAGE_BYTES..(page + 1) * GUARD_PAGE_BYTES;
            self.bytes[span.clone()].copy_from_slice(&base[span]);
            *dirty = false;
        }
    }
}

/// A RAM device (an image shared with the harness, which resets it page by page) that
/// panics when a write lands on a block of the base pool while armed: a receive in progress
/// (or failed) must never overwrite live data.
struct GuardDevice {
    image: Arc<std::sync::Mutex<GuardImage>>,
    size: u64,
    live: Extents,
    armed: Arc<AtomicBool>,
}

impl GuardDevice {
    fn overlap(&self, offset: u64, len: u64) -> Option<(u64, u64)> {
        let i = self.live.partition_point(|&(o, l)| o + l <= offset);
        self.live.get(i).copied().filter(|&(o, _)| o < offset + len)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GuardImage> {
        self.image.lock().expect("invariant: image lock never poisoned")
    }
}

fn span(offset: u64, len: usize) -> std::ops::Range<usize> {
    let start = usize::try_from(offset).expect("invariant: checked offset fits usize");
    start..start + len
}

impl BlockDevice for GuardDevice {
    fn size_bytes(&self) -> u64 {
        self.size
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VdevError> {
        check_range(offset, buf.len() as u64, self.size)?;
        buf.copy_from_slice(&self.lock().bytes[span(offset, buf.len())]);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VdevError> {
        check_range(offset, data.len() as u64, self.size)?;
        if self.armed.load(Ordering::Relaxed) {
            if let Some(block) = self.overlap(offset, data.len() as u64) {
                panic!(
                    "receive wrote [{offset:#x}, +{:#x}) over live block {block:#x?} of the base",
                    data.len()
                );
            }
        }
        let range = span(offset, data.len());
        let mut image = self.lock();
        let pages = range.start / GUARD_PAGE_BYTES..range.end.div_ceil(GUARD_PAGE_BYTES);
        image.dirty[pages].fill(true);
        image.bytes[range].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), VdevError> {
        Ok(())
    }
}

/// Every byte of a device, through the trait (the engine hands devices back boxed).
fn device_image(dev: &mut dyn BlockDevice) -> Vec<u8> {
    let len = usize::try_from(dev.size_bytes()).expect("invariant: device fits in memory");
    let mut image = vec![0; len];
    dev.read(0, &mut image).expect("invariant: a RAM device reads");
    image
}

/// One tree of `Spa::pool_trees`, comparable.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TreeState {
    name: String,
    snapshots: Vec<(String, u64, BlkPtr)>,
    head: BlkPtr,
    origin_txg: u64,
}

/// What a failed receive must leave as it was (cheap to take: no data is read).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PoolState {
    datasets: Vec<String>,
    snapshots: Vec<SnapshotInfo>,
    /// Every dataset's synced trees, temporary ones included: equal roots mean equal data
    /// as long as no live block was overwritten (which `GuardDevice` forbids).
    trees: Vec<TreeState>,
    /// Allocated bytes minus the MOS (whose deferred-free lists legitimately grow when a
    /// failed receive frees its temporary blocks).
    dataset_bytes: u64,
    capacity: u64,
}

fn pool_state(spa: &Spa) -> PoolState {
    assert!(spa.syncing_txg().is_none(), "pool state taken while syncing");
    let datasets = spa.datasets();
    let snapshots = datasets
        .iter()
        .flat_map(|fs| spa.snapshots(fs).expect("invariant: listed dataset"))
        .collect();
    let (trees, mos) = spa.pool_trees();
    let mut trees: Vec<TreeState> = trees
        .into_iter()
        .map(|t| TreeState {
            name: t.name,
            snapshots: t.snapshots,
            head: t.head,
            origin_txg: t.origin_txg,
        })
        .collect();
    trees.sort_by(|a, b| a.name.cmp(&b.name));
    let space = spa.space();
    let mos_bytes: u64 = mos.iter().map(BlkPtr::asize_total).sum();
    assert!(mos_bytes <= space.allocated, "MOS {mos_bytes} > allocated {}", space.allocated);
    let dataset_bytes = space.allocated - mos_bytes;
    PoolState { datasets, snapshots, trees, dataset_bytes, capacity: space.capacity }
}

fn state_diff(was: &PoolState, now: &PoolState) -> String {
    let mut out = Vec::new();
    if was.datasets != now.datasets {
        out.push(format!("datasets {:?} -> {:?}", was.datasets, now.datasets));
    }
    if was.snapshots != now.snapshots {
        out.push(format!("snapshots {:#?} -> {:#?}", was.snapshots, now.snapshots));
    }
    for t in now.trees.iter().filter(|t| !was.trees.contains(t)) {
        out.push(format!("tree now {t:?}"));
    }
    for t in was.trees.iter().filter(|t| !now.trees.contains(t)) {
        out.push(format!("tree was {t:?}"));
    }
    if was.dataset_bytes != now.dataset_bytes || was.capacity != now.capacity {
        out.push(format!(
            "dataset bytes {} -> {}, capacity {} -> {}",
            was.dataset_bytes, now.dataset_bytes, was.capacity, now.capacity
        ));
    }
    out.join("\n")
}

/// The filesystem part of a snapshot name.
fn fs_of(name: &str) -> &str {
    name.split_once('@').map_or(name, |(fs, _)| fs)
}

/// Every snapshot and head of `fs` (or of every dataset), oldest first.
fn objset_names(state: &PoolState, fs: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for d in state.datasets.iter().filter(|d| fs.is_none_or(|f| f == *d)) {
        out.extend(state.snapshots.iter().filter(|s| fs_of(&s.name) == d).map(|s| s.name.clone()));
        out.push(d.clone());
    }
    out
}

/// An object of the structured base as its snapshot holds it.
#[derive(Clone, Debug)]
struct BaseObject {
    ot: u8,
    blksz: u32,
    bonustype: u8,
    bonus: Vec<u8>,
    data: SectorMap,
}

/// The base pool of `recv_bytes` and `recv_structured`, built once per process.
struct RecvBase {
    image: Vec<u8>,
    live: Extents,
    state: PoolState,
    /// Manifest of every snapshot and head.
    manifests: BTreeMap<String, String>,
    /// Snapshot guid -> its filesystem (where an incremental from it goes).
    guids: BTreeMap<u64, String>,
    /// `FUZZ_BASE_FS`'s snapshots: object -> contents.
    objsets: BTreeMap<String, BTreeMap<u64, BaseObject>>,
}

fn recv_cfg() -> SpaConfig {
    SpaConfig {
        guid_seed: FUZZ_GUID_SEED,
        now_secs: FUZZ_NOW_SECS,
        dirty_bytes_max: RECV_DIRTY_BYTES_MAX,
        ..SpaConfig::default()
    }
}

/// Which receive harness a base pool serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BaseKind {
    /// `recv_bytes`: one filesystem per `fuzz/base` stream.
    Streams,
    /// `recv_structured`: `FUZZ_BASE_FS` only (small, so that checks after a success are fast).
    Structured,
}

fn recv_base(kind: BaseKind) -> &'static RecvBase {
    static BASES: [OnceLock<RecvBase>; 2] = [OnceLock::new(), OnceLock::new()];
    BASES[kind as usize]
        .get_or_init(|| build_recv_base(kind).unwrap_or_else(|e| panic!("fuzz base pool: {e}")))
}

/// `FUZZ_BASE_FS`: objects of several block sizes with data, holes and bonus buffers in @s0;
/// @s1 rewrites, punches, frees one object and claims another (second dnode block too).
fn build_structured_base(spa: &mut Spa) -> Result<(), String> {
    let fs = FUZZ_BASE_FS;
    spa.dataset_create(fs, DatasetProps::default()).map_err(|e| e.to_string())?;
    let specs = [
        (1, ObjectSpec::new(21, 512, 0, 0)),
        (2, ObjectSpec::new(19, 512, 44, 64)),
        (3, ObjectSpec::new(19, 4096, 0, 0)),
        (4, ObjectSpec::new(19, 128 << 10, 26, 320)),
        (33, ObjectSpec::new(20, 16 << 10, 0, 8)),
    ];
    let e = |e: engine::DmuError| e.to_string();
    for (obj, spec) in &specs {
        spa.object_claim(fs, *obj, spec).map_err(e)?;
        spa.write(fs, *obj, u64::from(spec.blksz), &pattern(*obj as u8, 0, 700)).map_err(e)?;
    }
    spa.write(fs, 1, 0, &pattern(1, 0, 512)).map_err(e)?;
    spa.write(fs, 3, 5 * 4096 + 100, &pattern(3, 0, 100)).map_err(e)?;
    spa.set_bonus(fs, 2, 44, &pattern(7, 0, 64)).map_err(e)?;
    spa.snapshot("pool/base@s0").map_err(|e| e.to_string())?;
    spa.write(fs, 2, 300, &pattern(8, 300, 2000)).map_err(e)?;
    spa.free_range(fs, 3, 4096, 4096).map_err(e)?;
    spa.object_free(fs, 4).map_err(e)?;
    spa.object_claim(fs, 5, &ObjectSpec::new(19, 1024, 0, 16)).map_err(e)?;
    spa.write(fs, 5, 0, &pattern(5, 0, 3000)).map_err(e)?;
    spa.set_bonus(fs, 33, 0, &[]).map_err(e)?;
    spa.snapshot("pool/base@s1").map_err(|e| e.to_string())
}

/// `fuzz/base/<fs>.<n>.zstream`, in name order: received into `pool/<fs>` at build time.
fn base_streams() -> Result<Vec<(String, Vec<u8>)>, String> {
    let dir = fuzz_dir().join("base");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "zstream"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let stem = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let fs = stem.split('.').next().unwrap_or_default();
        let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        out.push((format!("{FUZZ_POOL}/{fs}"), bytes));
    }
    Ok(out)
}

/// Extents of every block any dataset tree of `spa` references (MOS excluded: it is
/// rewritten every txg and its old blocks are legitimately reused).
fn live_extents(spa: &mut Spa) -> Result<Extents, String> {
    let (trees, _) = spa.pool_trees();
    let mut set: BTreeSet<(u64, u64)> = BTreeSet::new();
    for t in &trees {
        for root in t.snapshots.iter().map(|s| s.2).chain([t.head]) {
            set.extend(root.dvas().map(|d| (d.offset, d.asize)));
            traverse_objset(spa.zio_mut(), &root, 0, &mut |_, v| {
                if let Visit::Block { bp, .. } = v {
                    set.extend(bp.dvas().map(|d| (d.offset, d.asize)));
                }
            })
            .map_err(|e| format!("traverse {}: {e}", t.name))?;
        }
    }
    let live: Vec<(u64, u64)> = set.into_iter().collect();
    for w in live.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "live blocks overlap: {w:x?}");
    }
    Ok(Arc::from(live))
}

fn base_objects(spa: &mut Spa, snap: &str) -> Result<BTreeMap<u64, BaseObject>, String> {
    let mut out = BTreeMap::new();
    for obj in spa.objects(snap).map_err(|e| e.to_string())? {
        let info = spa.object_info(snap, obj).map_err(|e| e.to_string())?;
        let (bonustype, bonus) = spa.bonus(snap, obj).map_err(|e| e.to_string())?;
        let size = (info.maxblkid + 1) * u64::from(info.blksz);
        let bytes = spa.read(snap, obj, 0, size).map_err(|e| e.to_string())?;
        let mut data = SectorMap::new();
        map_write(&mut data, 0, &bytes);
        let (ot, blksz) = (info.ot, info.blksz);
        out.insert(obj, BaseObject { ot, blksz, bonustype, bonus, data });
    }
    Ok(out)
}

fn build_recv_base(kind: BaseKind) -> Result<RecvBase, String> {
    let dev = Box::new(MemoryDevice::new(RECV_DEVICE_BYTES));
    let mut spa = Spa::create(dev, FUZZ_POOL, recv_cfg()).map_err(|e| e.to_string())?;
    match kind {
        BaseKind::Structured => build_structured_base(&mut spa)?,
        BaseKind::Streams => {
            for (fs, stream) in base_streams()? {
                let opts = RecvOptions::default();
                spa.recv(&fs, &mut &stream[..], &opts).map_err(|e| format!("base {fs}: {e}"))?;
            }
        }
    }
    let (image, mut spa) = settle(spa)?;
    let live = live_extents(&mut spa)?;
    let state = pool_state(&spa);
    let mut manifests = BTreeMap::new();
    for name in objset_names(&state, None) {
        manifests.insert(name.clone(), manifest(&mut spa, &name).map_err(|e| e.to_string())?);
    }
    let guids = state.snapshots.iter().map(|s| (s.guid, fs_of(&s.name).to_owned())).collect();
    let mut objsets = BTreeMap::new();
    if kind == BaseKind::Structured {
        for snap in ["pool/base@s0", "pool/base@s1"] {
            objsets.insert(snap.to_owned(), base_objects(&mut spa, snap)?);
        }
    }
    Ok(RecvBase { image, live, state, manifests, guids, objsets })
}

/// Sync whatever an import left pending (it may leave work for the first sync, such as
/// rewriting every head with its intent-log header, without `is_dirty` saying so), by creating
/// and destroying a scratch filesystem: afterwards, a sync only writes what changed.
fn settle_after_import(spa: &mut Spa) -> Result<(), String> {
    let scratch = format!("{FUZZ_POOL}/settle");
    spa.dataset_create(&scratch, DatasetProps::default()).map_err(|e| e.to_string())?;
    spa.dataset_destroy(&scratch).map_err(|e| e.to_string())?;
    spa.txg_sync().map_err(|e| e.to_string())?;
    Ok(())
}

/// The image every thread's pool starts from (`spa` exported), and that pool as imported
/// from it and settled.
fn settle(spa: Spa) -> Result<(Vec<u8>, Spa), String> {
    let image = device_image(spa.export().map_err(|e| e.to_string())?.as_mut());
    let dev = Box::new(MemoryDevice::from_image(image.clone()));
    let mut spa = Spa::import(dev, recv_cfg(), None).map_err(|e| e.to_string())?;
    settle_after_import(&mut spa)?;
    Ok((image, spa))
}

/// The receive harnesses' pool of this thread, on a guarded copy of the base image.
struct RecvPool {
    /// None only while being reset.
    spa: Option<Spa>,
    image: Arc<std::sync::Mutex<GuardImage>>,
    armed: Arc<AtomicBool>,
}

impl RecvPool {
    fn fresh(base: &RecvBase) -> Self {
        let image = Arc::new(std::sync::Mutex::new(GuardImage::new(base.image.clone())));
        let mut pool = Self { spa: None, image, armed: Arc::new(AtomicBool::new(false)) };
        pool.import(base);
        pool
    }

    fn import(&mut self, base: &RecvBase) {
        assert!(self.spa.is_none(), "import over a live pool");
        let dev = GuardDevice {
            image: Arc::clone(&self.image),
            size: base.image.len() as u64,
            live: Arc::clone(&base.live),
            armed: Arc::clone(&self.armed),
        };
        let mut spa = Spa::import(Box::new(dev), recv_cfg(), None)
            .unwrap_or_else(|e| panic!("invariant: the base image imports: {e}"));
        settle_after_import(&mut spa).unwrap_or_else(|e| panic!("invariant: settles: {e}"));
        self.spa = Some(spa);
    }

    /// Back to the base image (only the pages written since are copied), imported afresh:
    /// every input after a successful receive starts from the same pool.
    fn reset(&mut self, base: &RecvBase) {
        drop(self.spa.take().map(Spa::into_device));
        self.image.lock().expect("invariant: image lock never poisoned").reset(&base.image);
        self.import(base);
    }

    fn spa(&mut self) -> &mut Spa {
        self.spa.as_mut().expect("invariant: the pool is imported")
    }
}

thread_local! {
    static RECV_POOLS: RefCell<[Option<RecvPool>; 2]> = const { RefCell::new([None, None]) };
}

/// Run `f` on this thread's receive pool (a panic leaves none behind: the next call
/// imports the base afresh).
fn with_recv_pool(kind: BaseKind, f: impl FnOnce(&mut RecvPool, &RecvBase)) {
    let base = recv_base(kind);
    let taken = RECV_POOLS.with(|cell| cell.borrow_mut()[kind as usize].take());
    let mut pool = taken.unwrap_or_else(|| RecvPool::fresh(base));
    f(&mut pool, base);
    RECV_POOLS.with(|cell| cell.borrow_mut()[kind as usize] = Some(pool));
}

/// One receive the harness makes and what it knows about it.
struct RecvCase<'a> {
    fs: &'a str,
    fromguid: u64,
    opts: RecvOptions,
    /// What the records say the received snapshot holds (structured streams).
    expect: Option<&'a Planned>,
    /// After a success, also walk the pool (`integrity::check`) and round-trip the snapshot.
    full_checks: bool,
}

/// Receive `stream` as `case` says, then check: a failure changed nothing; a success reads
/// back, touched nothing else, matches `case.expect` (and with `full_checks` passes the
/// integrity walk and round-trips). After a success the pool is brought back to the base.
fn receive_checked(
    pool: &mut RecvPool,
    base: &RecvBase,
    case: &RecvCase<'_>,
    stream: &[u8],
) -> Result<RecvOutcome, RecvError> {
    let spa = pool.spa();
    let synced = spa.last_synced_txg();
    pool.armed.store(true, Ordering::Relaxed);
    let r = pool.spa().recv(case.fs, &mut &stream[..], &case.opts);
    pool.armed.store(false, Ordering::Relaxed);
    match &r {
        Err(e) => {
            let deep = synced != pool.spa().last_synced_txg();
            check_unchanged(pool.spa(), base, case.fs, e, deep, sample(stream));
        }
        Ok(out) => {
            check_received(pool.spa(), base, case, out);
            restore(pool, base, case);
        }
    }
    r
}

/// After a failed receive: the pool state (tree roots, snapshots, space) equals the base's;
/// and, if the receive got past BEGIN and `sampled` (or `set_thorough`), the manifests of the
/// target's snapshots and head (every dataset's, when thorough) equal the base's. The roots
/// and `GuardDevice` already imply equal data on disk; the manifests also cover in-memory
/// state a receive could corrupt (cached dnodes and buffers of the target).
fn check_unchanged(
    spa: &mut Spa,
    base: &RecvBase,
    fs: &str,
    err: &RecvError,
    deep: bool,
    sampled: bool,
) {
    assert!(!spa.is_suspended(), "failed receive into {fs} ({err}) suspended the pool");
    spa.txg_sync().unwrap_or_else(|e| panic!("sync after a failed receive into {fs}: {e}"));
    let now = pool_state(spa);
    if now != base.state {
        panic!(
            "failed receive into {fs} ({err}) changed the pool:\n{}",
            state_diff(&base.state, &now)
        );
    }
    if !(deep && sampled || thorough()) {
        return;
    }
    spa.zio_mut().cache_clear();
    let only = if thorough() { None } else { Some(fs) };
    for name in objset_names(&base.state, only) {
        let got = manifest(spa, &name).unwrap_or_else(|e| panic!("manifest of {name}: {e}"));
        assert!(
            got == base.manifests[&name],
            "failed receive into {fs} ({err}) changed {name}:\nwas\n{}\nnow\n{got}",
            base.manifests[&name]
        );
    }
}

/// One in `MANIFEST_SAMPLE` inputs, chosen by a hash of the input (so that a replay of the
/// same input decides the same way).
fn sample(stream: &[u8]) -> bool {
    let head = &stream[..stream.len().min(64)];
    let hash = head
        .iter()
        .fold(stream.len() as u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    hash % MANIFEST_SAMPLE == 0
}

/// Every object of `name` reads back: attributes, bonus, all of a small object's contents
/// and every written block of a large one (each block verifies its checksum on the way).
fn read_back(spa: &mut Spa, name: &str) -> Result<(), String> {
    spa.zio_mut().cache_clear();
    let mut listed = None;
    for obj in spa.objects(name).map_err(|e| format!("objects({name}): {e}"))? {
        let info = spa.object_info(name, obj).map_err(|e| format!("{name} obj {obj}: {e}"))?;
        let (_, bonus) = spa.bonus(name, obj).map_err(|e| format!("bonus {name} {obj}: {e}"))?;
        if bonus.len() != usize::from(info.bonuslen) {
            return Err(format!("{name} obj {obj}: bonus of {} bytes, info {info:?}", bonus.len()));
        }
        let bs = u64::from(info.blksz);
        let size = (info.maxblkid + 1).saturating_mul(bs);
        if size > COMPARE_DENSE_BYTES_MAX && listed.is_none() {
            listed = Some(written_blocks(spa, name)?);
        }
        let ids = listed.as_ref().and_then(|l| l.get(&obj)).cloned().unwrap_or_default();
        for (at, len) in compare_ranges(size, bs, &ids) {
            spa.read(name, obj, at, len).map_err(|e| format!("read {name} obj {obj}: {e}"))?;
        }
    }
    Ok(())
}

fn check_received(spa: &mut Spa, base: &RecvBase, case: &RecvCase<'_>, out: &RecvOutcome) {
    let what = format!("receive into {} ({})", case.fs, out.snapshot);
    assert!(!spa.is_suspended(), "{what} suspended the pool");
    spa.txg_sync().unwrap_or_else(|e| panic!("{what}: sync: {e}"));
    check_others_untouched(spa, base, case, out);
    read_back(spa, &out.snapshot).unwrap_or_else(|e| panic!("{what}: {e}"));
    if let Some(plan) = case.expect {
        plan.verify(spa, base, &out.snapshot).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    if !case.full_checks {
        return;
    }
    if let Err(e) = integrity::check(spa) {
        panic!("{what}: integrity: {e}");
    }
    let opts = SendOptions::default();
    match send_recv(spa, &out.snapshot, None, ROUND_TRIP_FS, &opts) {
        Ok(Some(copy)) => {
            compare_objsets(spa, &out.snapshot, &copy)
                .unwrap_or_else(|e| panic!("{what}: round trip: {e}"));
            spa.dataset_destroy(ROUND_TRIP_FS).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        Ok(None) => {}
        Err(e) => panic!("{what}: round trip: {e}"),
    }
}

/// Only the target changed, and only by the new snapshot (after the source snapshot when
/// forced: later ones are destroyed); no temporary dataset is left.
fn check_others_untouched(spa: &Spa, base: &RecvBase, case: &RecvCase<'_>, out: &RecvOutcome) {
    let now = pool_state(spa);
    let what = format!("receive into {} ({})", case.fs, out.snapshot);
    let others = |s: &PoolState| -> Vec<TreeState> {
        s.trees.iter().filter(|t| t.name != case.fs).cloned().collect()
    };
    let (was_others, now_others) = (others(&base.state), others(&now));
    if was_others != now_others {
        let changed: Vec<String> = now_others
            .iter()
            .filter(|t| !was_others.contains(t))
            .map(|t| format!("{t:?}"))
            .collect();
        let gone: Vec<String> = was_others
            .iter()
            .filter(|t| !now_others.contains(t))
            .map(|t| format!("{t:?}"))
            .collect();
        let names = |v: &[TreeState]| v.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        panic!(
            "{what} changed other datasets:\nnow {changed:#?}\nwas {gone:#?}\n{:?}\n{:?}",
            names(&now_others),
            names(&was_others)
        );
    }
    let snaps_of = |s: &PoolState| -> Vec<SnapshotInfo> {
        s.snapshots.iter().filter(|i| fs_of(&i.name) == case.fs).cloned().collect()
    };
    let (was, got) = (snaps_of(&base.state), snaps_of(&now));
    let kept = if case.fromguid == 0 {
        0
    } else {
        let from = was.iter().position(|s| s.guid == case.fromguid);
        from.unwrap_or_else(|| panic!("{what}: received from an unknown snapshot")) + 1
    };
    assert_eq!(got.len(), kept + 1, "{what}: snapshots were {was:?}, now {got:?}");
    assert_eq!(got[..kept], was[..kept], "{what}: older snapshots changed");
    assert_eq!(got[kept].name, out.snapshot, "{what}: newest snapshot");
}

/// Bring the pool back to the base after a success: a new filesystem is destroyed (if that
/// gives the base state exactly), anything else means a reset to the base image.
fn restore(pool: &mut RecvPool, base: &RecvBase, case: &RecvCase<'_>) {
    let spa = pool.spa();
    let fresh = !base.state.datasets.iter().any(|d| d == case.fs);
    if fresh
        && spa.dataset_destroy(case.fs).is_ok()
        && spa.txg_sync().is_ok()
        && pool_state(spa) == base.state
    {
        return;
    }
    pool.reset(base);
}

/// The BEGIN record at the start of `data`, if any (either byte order).
fn peek_begin(data: &[u8]) -> Option<DrrBegin> {
    let hdr: &[u8; DRR_HEADER_SIZE] = data.get(..DRR_HEADER_SIZE)?.try_into().ok()?;
    let order = ByteOrder::from_magic(hdr)?;
    match decode_header_in(hdr, order)?.record {
        Record::Begin { drr, .. } => Some(drr),
        _ => None,
    }
}

/// Where `recv_bytes` receives a stream: an incremental into the dataset holding its source
/// snapshot, a full stream into the dataset its toname names if that exists (EEXIST), else
/// into `FUZZ_NEW_FS`.
fn route(base: &RecvBase, begin: Option<&DrrBegin>) -> String {
    let Some(begin) = begin else { return FUZZ_NEW_FS.to_owned() };
    if begin.fromguid != 0 {
        return base.guids.get(&begin.fromguid).cloned().unwrap_or_else(|| FUZZ_NEW_FS.to_owned());
    }
    let toname = begin.toname_str();
    let fs = fs_of(&toname);
    if base.state.datasets.iter().any(|d| d == fs) {
        fs.to_owned()
    } else {
        FUZZ_NEW_FS.to_owned()
    }
}

/// Target `recv_bytes`: `data` is received as a stream into a pool holding one filesystem
/// with snapshots per `fuzz/base` stream (real OpenZFS fixtures and golden scenarios, so
/// their incrementals apply), routed by `route`. If it fails its checksums, it is received
/// once more with every checksum recomputed (`rechecksum`), so that mutations reach the
/// record validators. Never panics; a failure leaves everything as it was (tree roots and
/// space always, the target's manifests after a receive that got past BEGIN); a success
/// must read back and leave the rest alone (with `set_thorough`, also integrity and a round
/// trip), and is then undone.
pub fn recv_bytes(data: &[u8]) {
    with_recv_pool(BaseKind::Streams, |pool, base| {
        let begin = peek_begin(data);
        let fs = route(base, begin.as_ref());
        let fromguid = begin.as_ref().map_or(0, |b| b.fromguid);
        let opts = RecvOptions::default();
        let full_checks = thorough();
        let case = RecvCase { fs: &fs, fromguid, opts, expect: None, full_checks };
        if let Err(RecvError::Checksum { .. }) = receive_checked(pool, base, &case, data) {
            if let Ok(fixed) = rechecksum(data) {
                assert_eq!(fixed.len(), data.len(), "rechecksum changed the length");
                let _ = receive_checked(pool, base, &case, &fixed);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// Structured streams: arbitrary records, valid checksums, and what they must produce.
// ---------------------------------------------------------------------------------------

/// Sector index -> its 512 bytes; absent sectors are zeros.
type SectorMap = BTreeMap<u64, Vec<u8>>;

fn map_write(map: &mut SectorMap, offset: u64, data: &[u8]) {
    let mut at = 0usize;
    while at < data.len() {
        let pos = offset + at as u64;
        let (sector, within) = (pos / SECTOR, (pos % SECTOR) as usize);
        let n = (SECTOR_BYTES - within).min(data.len() - at);
        let s = map.entry(sector).or_insert_with(|| vec![0; SECTOR_BYTES]);
        s[within..within + n].copy_from_slice(&data[at..at + n]);
        at += n;
    }
}

/// Zero `[offset, end)`.
fn map_zero(map: &mut SectorMap, offset: u64, end: u64) {
    let keys: Vec<u64> =
        map.range(offset / SECTOR..end.div_ceil(SECTOR)).map(|(k, _)| *k).collect();
    for k in keys {
        let start = k * SECTOR;
        let from = usize::try_from(offset.max(start) - start).expect("< 512");
        let to = usize::try_from(end.min(start + SECTOR) - start).expect("<= 512");
        let s = map.get_mut(&k).expect("listed");
        s[from..to].fill(0);
        if s.iter().all(|&b| b == 0) {
            map.remove(&k);
        }
    }
}

/// `Arbitrary` by a leading byte: `weighted!(u, { 0..=199 => A(u.arbitrary()?), _ => B })`.
/// Common, valid shapes take most of the byte's range, so that most generated streams get
/// far; every edge case keeps a share. Byte 0 (also what exhausted input reads as) picks the
/// first, most common arm.
macro_rules! weighted {
    ($u:ident, { $($pat:pat => $arm:expr),+ $(,)? }) => {
        Ok(match u8::arbitrary($u)? {
            $($pat => $arm),+
        })
    };
}

/// Which snapshot of `FUZZ_BASE_FS` an incremental starts from.
#[derive(Clone, Copy, Debug)]
enum Source {
    Newest,
    Full,
    Older,
    FullIntoBase,
    Guid(u64),
}

impl<'a> Arbitrary<'a> for Source {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=119 => Self::Newest,
            120..=199 => Self::Full,
            200..=219 => Self::Older,
            220..=235 => Self::FullIntoBase,
            _ => Self::Guid(u.arbitrary()?),
        })
    }
}

/// BEGIN fields a sender sets differently.
#[derive(Clone, Debug)]
enum BeginQuirk {
    None,
    Compound,
    ObjsetType(u8),
    CloneFlag,
    Flags(u32),
    SnapName(u8),
    Payload(Vec<u8>),
    ZeroToguid,
    Feature(u8),
}

impl<'a> Arbitrary<'a> for BeginQuirk {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=215 => Self::None,
            216..=219 => Self::Compound,
            220..=223 => Self::ObjsetType(u.arbitrary()?),
            224..=227 => Self::CloneFlag,
            228..=231 => Self::Flags(u.arbitrary()?),
            232..=237 => Self::SnapName(u.arbitrary()?),
            238..=241 => Self::Payload(u.arbitrary()?),
            242..=245 => Self::ZeroToguid,
            _ => Self::Feature(u.arbitrary()?),
        })
    }
}

#[derive(Clone, Debug)]
enum EndQuirk {
    Normal,
    Missing,
    Toguid(u64),
    ZeroToguid,
    Trailing(Vec<u8>),
    Twice,
}

impl<'a> Arbitrary<'a> for EndQuirk {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=235 => Self::Normal,
            236..=239 => Self::Missing,
            240..=243 => Self::Toguid(u.arbitrary()?),
            244..=247 => Self::ZeroToguid,
            248..=251 => Self::Trailing(u.arbitrary()?),
            _ => Self::Twice,
        })
    }
}

/// An object number: small, one of the base's, 0, or next to 2^48.
#[derive(Clone, Copy, Debug)]
enum ObjNum {
    Low(u8),
    Base(u8),
    Zero,
    NearMax(u8),
    Raw(u64),
}

impl<'a> Arbitrary<'a> for ObjNum {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=119 => Self::Low(u.arbitrary()?),
            120..=229 => Self::Base(u.arbitrary()?),
            230..=235 => Self::Zero,
            236..=247 => Self::NearMax(u.arbitrary()?),
            _ => Self::Raw(u.arbitrary()?),
        })
    }
}

#[derive(Clone, Copy, Debug)]
enum Blksz {
    Pow(u8),
    Multiple(u8),
    Large(u8),
    Raw(u32),
}

impl<'a> Arbitrary<'a> for Blksz {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=199 => Self::Pow(u.arbitrary()?),
            200..=229 => Self::Multiple(u.arbitrary()?),
            230..=245 => Self::Large(u.arbitrary()?),
            _ => Self::Raw(u.arbitrary()?),
        })
    }
}

impl Blksz {
    fn value(self) -> u32 {
        match self {
            Self::Pow(s) => 512 << (s % 9),
            Self::Multiple(m) => 512 * (u32::from(m) + 1),
            Self::Large(i) => [256 << 10, 1 << 20, 16 << 20, 0][usize::from(i % 4)],
            Self::Raw(v) => v,
        }
    }
}

/// A bonus length: small, at the 320-byte limit, or past it.
#[derive(Clone, Copy, Debug)]
enum BonusLen {
    Small(u8),
    Limit(u8),
    Raw(u16),
}

impl<'a> Arbitrary<'a> for BonusLen {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=189 => Self::Small(u.arbitrary()?),
            190..=239 => Self::Limit(u.arbitrary()?),
            _ => Self::Raw(u.arbitrary()?),
        })
    }
}

impl BonusLen {
    fn value(self) -> u32 {
        match self {
            Self::Small(v) => u32::from(v % 65),
            Self::Limit(d) => 318 + u32::from(d % 5),
            Self::Raw(v) => u32::from(v % 4097),
        }
    }
}

/// An offset: a block of the object, unaligned, next to 2^62, next to 2^64, or anything.
#[derive(Clone, Copy, Debug)]
enum Offset {
    Block(u8),
    Unaligned(u32),
    NearMax(u16),
    Huge(u16),
    Raw(u64),
}

impl<'a> Arbitrary<'a> for Offset {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=179 => Self::Block(u.arbitrary()?),
            180..=219 => Self::Unaligned(u.arbitrary()?),
            220..=234 => Self::NearMax(u.arbitrary()?),
            235..=244 => Self::Huge(u.arbitrary()?),
            _ => Self::Raw(u.arbitrary()?),
        })
    }
}

impl Offset {
    fn value(self, blksz: u64) -> u64 {
        match self {
            Self::Block(b) => u64::from(b) * blksz,
            Self::Unaligned(v) => u64::from(v),
            Self::NearMax(d) => DMU_MAX_OFFSET - u64::from(d) * SECTOR,
            Self::Huge(d) => u64::MAX - u64::from(d),
            Self::Raw(v) => v,
        }
    }
}

/// A WRITE's logical size.
#[derive(Clone, Copy, Debug)]
enum Lsize {
    Block,
    Pow(u8),
    Odd(u16),
    Large(u8),
    Zero,
}

impl<'a> Arbitrary<'a> for Lsize {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=199 => Self::Block,
            200..=224 => Self::Pow(u.arbitrary()?),
            225..=244 => Self::Odd(u.arbitrary()?),
            245..=250 => Self::Large(u.arbitrary()?),
            _ => Self::Zero,
        })
    }
}

impl Lsize {
    fn value(self, blksz: u64) -> u64 {
        match self {
            Self::Block => blksz,
            Self::Pow(s) => 512 << (s % 9),
            Self::Odd(v) => u64::from(v) + 1,
            Self::Large(i) => [256 << 10, 1 << 20][usize::from(i % 2)],
            Self::Zero => 0,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Length {
    Blocks(u8),
    End,
    Raw(u64),
    Overflow,
}

impl<'a> Arbitrary<'a> for Length {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=159 => Self::Blocks(u.arbitrary()?),
            160..=219 => Self::End,
            220..=247 => Self::Raw(u.arbitrary()?),
            _ => Self::Overflow,
        })
    }
}

impl Length {
    fn value(self, blksz: u64) -> u64 {
        match self {
            Self::Blocks(n) => u64::from(n) * blksz,
            Self::End => DMU_OBJECT_END,
            Self::Raw(v) => v,
            Self::Overflow => u64::MAX - 1,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Count {
    Small(u8),
    ToMax,
    Old,
    Overflow,
    Raw(u64),
}

impl<'a> Arbitrary<'a> for Count {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=159 => Self::Small(u.arbitrary()?),
            160..=199 => Self::ToMax,
            200..=219 => Self::Old,
            220..=229 => Self::Overflow,
            _ => Self::Raw(u.arbitrary()?),
        })
    }
}

impl Count {
    fn value(self, first: u64) -> u64 {
        match self {
            Self::Small(n) => u64::from(n),
            Self::ToMax => DN_MAX_OBJECT.saturating_sub(first),
            Self::Old => u64::MAX - first,
            Self::Overflow => u64::MAX,
            Self::Raw(v) => v,
        }
    }
}

#[derive(Clone, Debug)]
enum WriteCompress {
    Off,
    Lz4,
    Garbage(Vec<u8>),
    Type(u8),
}

impl<'a> Arbitrary<'a> for WriteCompress {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=189 => Self::Off,
            190..=239 => Self::Lz4,
            240..=249 => Self::Garbage(u.arbitrary()?),
            _ => Self::Type(u.arbitrary()?),
        })
    }
}

/// OBJECT fields a sender never sets this way.
#[derive(Clone, Copy, Debug)]
enum ObjectQuirk {
    None,
    DnSlots(u8),
    Flags(u8),
    Checksum(u8),
    Compress(u8),
    RawFields(u8),
    RawBonuslen(u16),
}

impl<'a> Arbitrary<'a> for ObjectQuirk {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=219 => Self::None,
            220..=225 => Self::DnSlots(u.arbitrary()?),
            226..=231 => Self::Flags(u.arbitrary()?),
            232..=237 => Self::Checksum(u.arbitrary()?),
            238..=243 => Self::Compress(u.arbitrary()?),
            244..=249 => Self::RawFields(u.arbitrary()?),
            _ => Self::RawBonuslen(u.arbitrary()?),
        })
    }
}

/// One record of a structured stream.
#[derive(Clone, Debug)]
enum RecSpec {
    Object {
        object: ObjNum,
        ot: u8,
        bonustype: u8,
        blksz: Blksz,
        bonuslen: BonusLen,
        seed: u8,
        quirk: ObjectQuirk,
    },
    FreeObjects {
        first: ObjNum,
        count: Count,
    },
    Write {
        object: ObjNum,
        offset: Offset,
        lsize: Lsize,
        seed: u8,
        ot: u8,
        compress: WriteCompress,
    },
    Embedded {
        object: ObjNum,
        offset: Offset,
        lsize: u16,
        fill: u8,
        mode: u8,
        etype: u8,
    },
    Free {
        object: ObjNum,
        offset: Offset,
        length: Length,
    },
    Spill {
        object: ObjNum,
        sectors: u8,
        unmodified: bool,
    },
    Redact {
        object: ObjNum,
        offset: Offset,
        length: Length,
    },
    ObjectRange {
        first: u64,
        numslots: u64,
    },
    WriteByref {
        object: ObjNum,
    },
    Oversize {
        kind: u8,
        extra: u16,
    },
}

impl<'a> Arbitrary<'a> for RecSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=89 => Self::Write {
                object: u.arbitrary()?,
                offset: u.arbitrary()?,
                lsize: u.arbitrary()?,
                seed: u.arbitrary()?,
                ot: u.arbitrary()?,
                compress: u.arbitrary()?,
            },
            90..=139 => Self::Object {
                object: u.arbitrary()?,
                ot: u.arbitrary()?,
                bonustype: u.arbitrary()?,
                blksz: u.arbitrary()?,
                bonuslen: u.arbitrary()?,
                seed: u.arbitrary()?,
                quirk: u.arbitrary()?,
            },
            140..=174 => Self::Free {
                object: u.arbitrary()?,
                offset: u.arbitrary()?,
                length: u.arbitrary()?,
            },
            175..=194 => Self::FreeObjects { first: u.arbitrary()?, count: u.arbitrary()? },
            195..=214 => Self::Embedded {
                object: u.arbitrary()?,
                offset: u.arbitrary()?,
                lsize: u.arbitrary()?,
                fill: u.arbitrary()?,
                mode: u.arbitrary()?,
                etype: u.arbitrary()?,
            },
            215..=224 => Self::Redact {
                object: u.arbitrary()?,
                offset: u.arbitrary()?,
                length: u.arbitrary()?,
            },
            225..=234 => Self::Spill {
                object: u.arbitrary()?,
                sectors: u.arbitrary()?,
                unmodified: u.arbitrary()?,
            },
            235..=241 => Self::ObjectRange { first: u.arbitrary()?, numslots: u.arbitrary()? },
            242..=248 => Self::WriteByref { object: u.arbitrary()? },
            _ => Self::Oversize { kind: u.arbitrary()?, extra: u.arbitrary()? },
        })
    }
}

impl RecSpec {
    /// Sort key of a sender's order: by object, OBJECT before FREE before data.
    fn rank(&self, resolve: &dyn Fn(ObjNum) -> u64) -> (u64, u8) {
        match self {
            Self::FreeObjects { first, .. } => (resolve(*first), 0),
            Self::Object { object, .. } => (resolve(*object), 1),
            Self::Free { object, .. } | Self::Redact { object, .. } => (resolve(*object), 2),
            Self::Write { object, .. } | Self::Embedded { object, .. } => (resolve(*object), 3),
            Self::Spill { object, .. } | Self::WriteByref { object } => (resolve(*object), 4),
            Self::ObjectRange { first, .. } => (*first, 0),
            Self::Oversize { .. } => (u64::MAX, u8::MAX),
        }
    }
}

/// Feature bits a sender of this pool's streams sets (the low four bits of a byte choose);
/// others come from `BeginQuirk::Feature`.
const FEATURE_CHOICES: [u64; 4] = [
    DMU_BACKUP_FEATURE_EMBED_DATA,
    DMU_BACKUP_FEATURE_LZ4,
    DMU_BACKUP_FEATURE_COMPRESSED,
    DMU_BACKUP_FEATURE_LARGE_BLOCKS,
];

/// A structured stream: BEGIN choices, records, END choices.
#[derive(Arbitrary, Clone, Debug)]
struct StreamSpec {
    big_endian: bool,
    source: Source,
    force: bool,
    features: u8,
    toguid: u16,
    begin: BeginQuirk,
    canonical: bool,
    end: EndQuirk,
    records: Vec<RecSpec>,
}

/// A built structured stream and what receiving it must produce.
struct Planned {
    fs: String,
    fromguid: u64,
    stream: Vec<u8>,
    byteswap: bool,
    features: u64,
    /// `FUZZ_BASE_FS` snapshot an incremental starts from.
    from: Option<String>,
    records: Vec<Record>,
    /// Plain data of each WRITE / WRITE_EMBEDDED (None: unknown, e.g. garbage compressed).
    plains: Vec<Option<Vec<u8>>>,
    /// Reasons the spec (§4) gives for refusing this stream, found while building.
    must_fail: Vec<String>,
}

/// Builds a structured stream record by record.
struct Builder {
    base_objects: Vec<u64>,
    blksz: BTreeMap<u64, u32>,
    toguid: u64,
    records: Vec<Record>,
    plains: Vec<Option<Vec<u8>>>,
    oversize: Option<Record>,
    payload_bytes: usize,
}

impl Builder {
    fn resolve(&self, n: ObjNum) -> u64 {
        resolve_obj(&self.base_objects, n)
    }

    fn blksz_of(&self, obj: u64) -> u64 {
        u64::from(self.blksz.get(&obj).copied().unwrap_or(512)).max(SECTOR)
    }

    fn push(&mut self, rec: Record, plain: Option<Vec<u8>>) {
        self.payload_bytes += rec.payload().len();
        self.records.push(rec);
        self.plains.push(plain);
    }

    fn add(&mut self, spec: &RecSpec) {
        let toguid = self.toguid;
        match spec {
            RecSpec::Object { object, ot, bonustype, blksz, bonuslen, seed, quirk } => {
                let (o, blksz) = (self.resolve(*object), blksz.value());
                self.blksz.insert(o, blksz);
                let rec = object_record(
                    o,
                    *ot,
                    *bonustype,
                    blksz,
                    bonuslen.value(),
                    *seed,
                    *quirk,
                    toguid,
                );
                self.push(rec, None);
            }
            RecSpec::FreeObjects { first, count } => {
                let firstobj = self.resolve(*first);
                let numobjs = count.value(firstobj);
                self.push(Record::FreeObjects(DrrFreeObjects { firstobj, numobjs, toguid }), None);
            }
            RecSpec::Write { object, offset, lsize, seed, ot, compress } => {
                let o = self.resolve(*object);
                let bs = self.blksz_of(o);
                let (offset, lsize) = (offset.value(bs), lsize.value(bs));
                if lsize > DRR_PAYLOAD_MAX_BYTES {
                    self.oversize = Some(oversize_record(0, 0, toguid));
                    return;
                }
                let lsize = lsize.min(STRUCTURED_WRITE_MAX_BYTES);
                let (rec, plain) = write_record(o, offset, lsize, *seed, *ot, compress, toguid);
                self.push(rec, plain);
            }
            RecSpec::Embedded { object, offset, lsize, fill, mode, etype } => {
                let o = self.resolve(*object);
                let offset = offset.value(self.blksz_of(o));
                let (rec, plain) = embedded_record(o, offset, *lsize, *fill, *mode, *etype, toguid);
                self.push(rec, plain);
            }
            other => self.add_other(other),
        }
    }

    fn add_other(&mut self, spec: &RecSpec) {
        let toguid = self.toguid;
        let rec = match spec {
            RecSpec::Free { object, offset, length }
            | RecSpec::Redact { object, offset, length } => {
                let o = self.resolve(*object);
                let bs = self.blksz_of(o);
                let (offset, length) = (offset.value(bs), length.value(bs));
                if matches!(spec, RecSpec::Free { .. }) {
                    Record::Free(DrrFree { object: o, offset, length, toguid })
                } else {
                    Record::Redact(DrrRedact { object: o, offset, length, toguid })
                }
            }
            RecSpec::Spill { object, sectors, unmodified } => {
                let length = u64::from(*sectors) * SECTOR;
                let flags = if *unmodified { DRR_SPILL_UNMODIFIED } else { 0 };
                let drr = DrrSpill {
                    object: self.resolve(*object),
                    length,
                    toguid,
                    flags,
                    ..DrrSpill::default()
                };
                Record::Spill { drr, data: vec![0x5a; usize::from(*sectors) * SECTOR_BYTES] }
            }
            RecSpec::ObjectRange { first, numslots } => Record::ObjectRange(DrrObjectRange {
                firstobj: *first,
                numslots: *numslots,
                toguid,
                ..DrrObjectRange::default()
            }),
            RecSpec::WriteByref { object } => Record::WriteByref(DrrWriteByref {
                object: self.resolve(*object),
                length: 512,
                toguid,
                ..DrrWriteByref::default()
            }),
            RecSpec::Oversize { kind, extra } => {
                self.oversize = Some(oversize_record(*kind, *extra, toguid));
                return;
            }
            _ => unreachable!("handled by add"),
        };
        self.push(rec, None);
    }
}

fn resolve_obj(base_objects: &[u64], n: ObjNum) -> u64 {
    match n {
        ObjNum::Low(v) => 1 + u64::from(v % 40),
        ObjNum::Base(i) => {
            base_objects.get(usize::from(i) % base_objects.len().max(1)).copied().unwrap_or(1)
        }
        ObjNum::Zero => 0,
        ObjNum::NearMax(d) => DN_MAX_OBJECT - 2 + u64::from(d % 4),
        ObjNum::Raw(v) => v,
    }
}

#[allow(clippy::too_many_arguments)] // one per OBJECT field the input chooses
fn object_record(
    object: u64,
    ot: u8,
    bonustype: u8,
    blksz: u32,
    bonuslen: u32,
    seed: u8,
    quirk: ObjectQuirk,
    toguid: u64,
) -> Record {
    let ot = [19, 19, 20, 21, 26, 0x89, 0, 54, 0xc4][usize::from(ot % 9)];
    let bonustype = [0, 44, 26, 16, 0, 54, 0x80][usize::from(bonustype % 7)];
    let mut drr = DrrObject {
        object,
        object_type: ot,
        bonustype,
        blksz,
        bonuslen,
        checksumtype: 7,
        compress: 2,
        dn_slots: 1,
        toguid,
        ..DrrObject::default()
    };
    match quirk {
        ObjectQuirk::None => {}
        ObjectQuirk::DnSlots(v) => drr.dn_slots = v,
        ObjectQuirk::Flags(v) => drr.flags = v,
        ObjectQuirk::Checksum(v) => drr.checksumtype = v,
        ObjectQuirk::Compress(v) => drr.compress = v,
        ObjectQuirk::RawFields(v) => {
            (drr.nlevels, drr.nblkptr, drr.indblkshift) = (v & 3, (v >> 2) & 3, (v >> 4) & 15);
            drr.maxblkid = u64::from(v >> 6);
        }
        ObjectQuirk::RawBonuslen(v) => drr.raw_bonuslen = u32::from(v % 4097),
    }
    let len = usize::try_from(drr.payload_len()).expect("bounded bonus");
    let mut bonus = pattern(seed | 1, 0, len);
    bonus[usize::try_from(bonuslen).expect("small").min(len)..].fill(0);
    Record::Object { drr, bonus }
}

fn write_record(
    object: u64,
    offset: u64,
    lsize: u64,
    seed: u8,
    ot: u8,
    compress: &WriteCompress,
    toguid: u64,
) -> (Record, Option<Vec<u8>>) {
    let object_type = [19, 19, 20, 21, 26, 0x89, 0, 60][usize::from(ot % 8)];
    let plain = pattern(seed, offset, usize::try_from(lsize).expect("bounded lsize"));
    let mut drr = DrrWrite {
        object,
        object_type,
        offset,
        logical_size: lsize,
        toguid,
        checksumtype: 7,
        ..DrrWrite::default()
    };
    let (data, known) = match compress {
        WriteCompress::Off => (plain.clone(), true),
        WriteCompress::Lz4 => match lz4_compress(&plain, plain.len().saturating_sub(1)) {
            Some(c) => {
                (drr.compressiontype, drr.compressed_size) = (15, c.len() as u64);
                (c, true)
            }
            None => (plain.clone(), true),
        },
        WriteCompress::Garbage(bytes) => {
            let mut c = bytes.clone();
            c.truncate(plain.len());
            (drr.compressiontype, drr.compressed_size) = (15, c.len() as u64);
            (c, false)
        }
        WriteCompress::Type(t) => {
            (drr.compressiontype, drr.compressed_size) = (*t, lsize);
            (plain.clone(), *t == 0)
        }
    };
    (Record::Write { drr, data }, known.then_some(plain))
}

fn embedded_record(
    object: u64,
    offset: u64,
    lsize: u16,
    fill: u8,
    mode: u8,
    etype: u8,
    toguid: u64,
) -> (Record, Option<Vec<u8>>) {
    let lsize = u32::from(lsize) % (128 << 10) + 1;
    let plain = vec![fill; lsize as usize];
    let etype = etype.saturating_sub(200);
    let (compression, payload, known) = match mode % 4 {
        0 | 1 => match lz4_compress(&plain, 112) {
            Some(c) => (15, c, true),
            None => (15, vec![fill; 112], false),
        },
        2 if lsize <= 112 => (2, plain.clone(), true),
        _ => (mode, vec![fill; usize::from(mode)], false),
    };
    let psize = u32::try_from(payload.len()).expect("small");
    let drr = DrrWriteEmbedded {
        object,
        offset,
        length: u64::from(lsize),
        toguid,
        compression,
        etype,
        lsize,
        psize,
    };
    let mut data = payload;
    data.resize(usize::try_from(roundup8_u32(psize)).expect("small"), 0);
    (Record::WriteEmbedded { drr, data }, known.then_some(plain))
}

/// A record whose payload is past its limit (§6 #17): its header only, then the stream ends.
fn oversize_record(kind: u8, extra: u16, toguid: u64) -> Record {
    let len = DRR_PAYLOAD_MAX_BYTES + u64::from(extra) * SECTOR + SECTOR;
    match kind % 3 {
        0 => Record::Write {
            drr: DrrWrite {
                object: 1,
                object_type: 19,
                logical_size: len,
                toguid,
                ..DrrWrite::default()
            },
            data: Vec::new(),
        },
        1 => Record::Object {
            drr: DrrObject {
                object: 1,
                object_type: 19,
                blksz: 512,
                raw_bonuslen: u32::try_from(len).expect("< 4 GiB"),
                dn_slots: 1,
                toguid,
                ..DrrObject::default()
            },
            bonus: Vec::new(),
        },
        _ => Record::Spill {
            drr: DrrSpill { object: 1, length: len, toguid, ..DrrSpill::default() },
            data: Vec::new(),
        },
    }
}

impl StreamSpec {
    fn source(&self, base: &RecvBase) -> (String, u64, Option<String>) {
        let guid_of =
            |snap: &str| base.state.snapshots.iter().find(|s| s.name == snap).map_or(0, |s| s.guid);
        let base_fs = FUZZ_BASE_FS.to_owned();
        match self.source {
            Source::Full => (FUZZ_NEW_FS.to_owned(), 0, None),
            Source::FullIntoBase => (base_fs, 0, None),
            Source::Newest => (base_fs, guid_of("pool/base@s1"), Some("pool/base@s1".to_owned())),
            Source::Older => (base_fs, guid_of("pool/base@s0"), Some("pool/base@s0".to_owned())),
            Source::Guid(g) => {
                let from = ["pool/base@s0", "pool/base@s1"].into_iter().find(|s| guid_of(s) == g);
                (base_fs, g, from.map(str::to_owned))
            }
        }
    }

    fn features(&self) -> u64 {
        let mut features = 0;
        for (i, f) in FEATURE_CHOICES.iter().enumerate() {
            if self.features & (1 << i) != 0 {
                features |= f;
            }
        }
        if let BeginQuirk::Feature(bit) = self.begin {
            features |= 1 << (bit % 30);
        }
        features
    }

    fn begin(&self, fs: &str, fromguid: u64, features: u64, toguid: u64) -> Record {
        let mut hdrtype = DMU_SUBSTREAM;
        let mut drr = DrrBegin {
            creation_time: FUZZ_NOW_SECS + 7,
            objset_type: engine::dmu::objset::DMU_OST_ZFS as u32,
            toguid,
            fromguid,
            ..DrrBegin::default()
        };
        let mut snap = "r".to_owned();
        let mut payload = Vec::new();
        match &self.begin {
            BeginQuirk::None | BeginQuirk::ZeroToguid | BeginQuirk::Feature(_) => {}
            BeginQuirk::Compound => hdrtype = DMU_COMPOUNDSTREAM,
            BeginQuirk::ObjsetType(t) => drr.objset_type = u32::from(*t),
            BeginQuirk::CloneFlag => drr.flags |= DRR_FLAG_CLONE,
            BeginQuirk::Flags(f) => drr.flags = *f,
            BeginQuirk::SnapName(i) => {
                snap = ["s0", "s1", "", "a b", "x@y", "%recv", "r"][usize::from(i % 7)].to_owned()
            }
            BeginQuirk::Payload(p) => payload = p.clone(),
        }
        drr.versioninfo = dmu_versioninfo(hdrtype, features);
        let name = format!("{fs}@{snap}");
        drr.set_toname(&name[..name.len().min(DRR_TONAME_MAX_LEN)]);
        Record::Begin { drr, payload }
    }

    fn records(&self, base: &RecvBase, from: Option<&str>, toguid: u64) -> Builder {
        let objset = from.and_then(|f| base.objsets.get(f));
        let base_objects: Vec<u64> =
            objset.map(|o| o.keys().copied().collect()).unwrap_or_default();
        let blksz =
            objset.map(|o| o.iter().map(|(k, v)| (*k, v.blksz)).collect()).unwrap_or_default();
        let mut specs: Vec<&RecSpec> = self.records.iter().take(STRUCTURED_RECORDS_MAX).collect();
        if self.canonical {
            let resolve = |n: ObjNum| resolve_obj(&base_objects, n);
            specs.sort_by_key(|s| s.rank(&resolve));
        }
        let mut b = Builder {
            base_objects,
            blksz,
            toguid,
            records: Vec::new(),
            plains: Vec::new(),
            oversize: None,
            payload_bytes: 0,
        };
        for s in specs {
            if b.oversize.is_some() || b.payload_bytes > STRUCTURED_PAYLOAD_MAX_BYTES {
                break;
            }
            b.add(s);
        }
        b
    }

    fn build(&self, base: &RecvBase) -> Planned {
        let (fs, fromguid, from) = self.source(base);
        let toguid = if matches!(self.begin, BeginQuirk::ZeroToguid) {
            0
        } else {
            0x5eed_0000_0000 | u64::from(self.toguid)
        };
        let features = self.features();
        let order = if self.big_endian { ByteOrder::Big } else { ByteOrder::Little };
        let begin = self.begin(&fs, fromguid, features, toguid);
        let b = self.records(base, from.as_deref(), toguid);
        let mut w = StreamWriter::new(Vec::new(), order);
        w.write_record(&begin).expect("writing to a Vec cannot fail");
        for r in &b.records {
            w.write_record(r).expect("writing to a Vec cannot fail");
        }
        let mut stream = w.into_inner().expect("a Vec flushes");
        match &b.oversize {
            Some(rec) => append_header_only(&mut stream, rec, order),
            None => append_end(&mut stream, &self.end, order, toguid),
        }
        let must_fail = must_fail(&begin, &b, base, from.as_deref(), &self.end);
        let byteswap = order != ByteOrder::HOST;
        let (records, plains) = (b.records, b.plains);
        Planned { fs, fromguid, stream, byteswap, features, from, records, plains, must_fail }
    }
}

/// Append `rec`'s header with a valid checksum and no payload (the stream ends there).
fn append_header_only(stream: &mut Vec<u8>, rec: &Record, order: ByteOrder) {
    let mut hdr = encode_header(rec, order);
    let mut f = Fletcher4::new();
    order.fletcher4_update(&mut f, stream);
    order.fletcher4_update(&mut f, &hdr[..DRR_CHECKSUM_OFFSET]);
    hdr[DRR_CHECKSUM_OFFSET..].copy_from_slice(&order.cksum_bytes(&f.finish()));
    assert!(rec.payload_len_from_header() > DRR_PAYLOAD_MAX_BYTES, "not oversize");
    stream.extend_from_slice(&hdr);
}

/// Append the END `quirk` asks for, checksummed over everything since BEGIN.
fn append_end(stream: &mut Vec<u8>, quirk: &EndQuirk, order: ByteOrder, toguid: u64) {
    let end = |toguid| Record::End(DrrEnd { checksum: [0; 4], toguid });
    let rec = match quirk {
        EndQuirk::Missing => return,
        EndQuirk::Toguid(g) => end(*g),
        EndQuirk::ZeroToguid => end(0),
        _ => end(toguid),
    };
    let mut f = Fletcher4::new();
    order.fletcher4_update(&mut f, stream);
    let before = f.finish();
    let mut hdr = encode_header(&rec, order);
    hdr[8..40].copy_from_slice(&order.cksum_bytes(&before));
    order.fletcher4_update(&mut f, &hdr[..DRR_CHECKSUM_OFFSET]);
    hdr[DRR_CHECKSUM_OFFSET..].copy_from_slice(&order.cksum_bytes(&f.finish()));
    stream.extend_from_slice(&hdr);
    match quirk {
        EndQuirk::Trailing(bytes) => stream.extend_from_slice(bytes),
        EndQuirk::Twice => stream.extend_from_slice(&hdr),
        _ => {}
    }
}

/// Why §4 of the spec requires a receiver to refuse this stream (empty: it may succeed).
fn must_fail(
    begin: &Record,
    b: &Builder,
    base: &RecvBase,
    from: Option<&str>,
    end: &EndQuirk,
) -> Vec<String> {
    let mut why = Vec::new();
    if let Record::Begin { drr, .. } = begin {
        if drr.features() & !DMU_BACKUP_FEATURE_MASK != 0 {
            why.push("unknown feature flags".to_owned());
        }
        if drr.hdrtype() != DMU_SUBSTREAM || drr.objset_type >= 6 || drr.flags & DRR_FLAG_CLONE != 0
        {
            why.push("compound, bad objset type or a clone without origin".to_owned());
        }
    }
    if b.oversize.is_some() || matches!(end, EndQuirk::Missing) {
        why.push("payload past its limit, or no END".to_owned());
    }
    let mut exists: BTreeSet<u64> = from
        .and_then(|f| base.objsets.get(f))
        .map(|o| o.keys().copied().collect())
        .unwrap_or_default();
    let mut last_write = None;
    for (i, rec) in b.records.iter().enumerate() {
        if let Some(reason) = record_must_fail(rec, &mut exists, &mut last_write) {
            why.push(format!("record {}: {reason}", i + 1));
        }
    }
    why
}

/// §4.3's checks of one record that hold for every receiver (and this pool: 512-byte
/// dnodes, 128 KiB blocks), tracking which objects exist.
fn record_must_fail(
    rec: &Record,
    exists: &mut BTreeSet<u64>,
    last: &mut Option<(u64, u64)>,
) -> Option<&'static str> {
    match rec {
        Record::Object { drr, .. } => {
            let bad_obj = drr.object == 0 || drr.object >= DN_MAX_OBJECT;
            let bs = u64::from(drr.blksz);
            let bad_bs = bs < SECTOR || bs % SECTOR != 0 || bs > engine::limits::SPA_MAXBLOCKSIZE;
            let raw = drr.raw_bonuslen != 0
                || drr.nblkptr != 0
                || drr.indblkshift != 0
                || drr.nlevels != 0;
            let bad_enum = drr.checksumtype >= 15 || drr.compress >= 17;
            let bad_type = drr.object_type == 0 || !ot_is_valid(drr.object_type);
            let bad_bonus = drr.bonuslen > 320 || !ot_is_valid(drr.bonustype);
            exists.insert(drr.object);
            (bad_obj || bad_bs || raw || bad_enum || bad_type || bad_bonus)
                .then_some("OBJECT with an invalid field")
        }
        Record::FreeObjects(f) => {
            let Some(end) = f.firstobj.checked_add(f.numobjs) else {
                return Some("FREEOBJECTS firstobj + numobjs overflows");
            };
            let first = f.firstobj.max(1);
            let gone: Vec<u64> = exists.range(first..end.max(first)).copied().collect();
            gone.iter().for_each(|o| {
                exists.remove(o);
            });
            None
        }
        Record::Write { drr, .. } => {
            let over = drr.offset.checked_add(drr.logical_size).is_none();
            let over = over || !ot_is_valid(drr.object_type);
            let order = last.is_some_and(|l| (drr.object, drr.offset) < l);
            *last = Some((drr.object, drr.offset));
            (over || order || !exists.contains(&drr.object))
                .then_some("WRITE overflows, out of order or to a missing object")
        }
        Record::Free(f) => {
            let over = f.length != DMU_OBJECT_END && f.offset.checked_add(f.length).is_none();
            (over || !exists.contains(&f.object))
                .then_some("FREE overflows or names a missing object")
        }
        Record::WriteEmbedded { drr, .. } => {
            let bad = drr.psize > 112
                || drr.etype >= 3
                || drr.compression >= 17
                || drr.offset.checked_add(drr.length).is_none();
            (bad || !exists.contains(&drr.object)).then_some("WRITE_EMBEDDED with an invalid field")
        }
        Record::Spill { drr, .. } if drr.flags & DRR_SPILL_UNMODIFIED == 0 => (drr.length < SECTOR
            || !exists.contains(&drr.object))
        .then_some("SPILL too short or to a missing object"),
        Record::ObjectRange(_) => Some("OBJECT_RANGE in a non-raw stream"),
        Record::WriteByref(_) => Some("WRITE_BYREF"),
        _ => None,
    }
}

/// What the receiver holds of one object after the stream: attributes, bonus, and the
/// candidate contents (two after a reallocation: kept or freed; none if unknown).
#[derive(Clone, Debug)]
struct ExpObj {
    ot: u8,
    blksz: u32,
    bonustype: u8,
    bonus: Vec<u8>,
    data: Vec<SectorMap>,
    touched: BTreeSet<u64>,
}

impl Planned {
    /// The objects the received snapshot must hold, replaying the records on the source.
    fn expected(&self, base: &RecvBase) -> BTreeMap<u64, ExpObj> {
        let mut objs: BTreeMap<u64, ExpObj> = BTreeMap::new();
        if let Some(from) = self.from.as_deref().and_then(|f| base.objsets.get(f)) {
            for (o, b) in from {
                let (ot, blksz, bonustype, bonus) = (b.ot, b.blksz, b.bonustype, b.bonus.clone());
                let touched = b.data.keys().copied().collect();
                objs.insert(
                    *o,
                    ExpObj { ot, blksz, bonustype, bonus, data: vec![b.data.clone()], touched },
                );
            }
        }
        for (rec, plain) in self.records.iter().zip(&self.plains) {
            self.replay(&mut objs, rec, plain.as_deref());
        }
        objs
    }

    fn replay(&self, objs: &mut BTreeMap<u64, ExpObj>, rec: &Record, plain: Option<&[u8]>) {
        match rec {
            Record::Object { drr, bonus } => {
                let mut bonus = bonus[..(drr.bonuslen as usize).min(bonus.len())].to_vec();
                if self.byteswap {
                    if let Some(kind) = ot_byteswap_kind(drr.bonustype) {
                        byteswap_in_place(kind, &mut bonus);
                    }
                }
                let (data, touched) = match objs.get(&drr.object) {
                    Some(old) if old.data.is_empty() => (Vec::new(), old.touched.clone()),
                    Some(old) => {
                        ([old.data.clone(), vec![SectorMap::new()]].concat(), old.touched.clone())
                    }
                    None => (vec![SectorMap::new()], BTreeSet::new()),
                };
                let (ot, bonustype) = (drr.object_type as u8, drr.bonustype as u8);
                objs.insert(
                    drr.object,
                    ExpObj { ot, blksz: drr.blksz, bonustype, bonus, data, touched },
                );
            }
            Record::FreeObjects(f) => {
                let end = f.firstobj.saturating_add(f.numobjs).min(DN_MAX_OBJECT);
                let start = f.firstobj.max(1);
                let gone: Vec<u64> = objs.range(start..end.max(start)).map(|(k, _)| *k).collect();
                gone.iter().for_each(|o| {
                    objs.remove(o);
                });
            }
            Record::Write { drr, .. } => {
                let mut plain = plain.map(<[u8]>::to_vec);
                if let (Some(p), true, 0) = (plain.as_mut(), self.byteswap, drr.compressiontype) {
                    if let Some(kind) = ot_byteswap_kind(drr.object_type) {
                        byteswap_in_place(kind, p);
                    }
                }
                apply_write(objs, drr.object, drr.offset, plain.as_deref());
            }
            Record::WriteEmbedded { drr, .. } => apply_write(objs, drr.object, drr.offset, plain),
            Record::Free(DrrFree { object, offset, length, .. })
            | Record::Redact(DrrRedact { object, offset, length, .. }) => {
                let end = if *length == DMU_OBJECT_END {
                    u64::MAX
                } else {
                    offset.saturating_add(*length)
                };
                if let Some(x) = objs.get_mut(object) {
                    x.data.iter_mut().for_each(|m| map_zero(m, *offset, end));
                }
            }
            _ => {}
        }
    }

    /// The received snapshot holds what the records say (only called after a success).
    fn verify(&self, spa: &mut Spa, base: &RecvBase, snap: &str) -> Result<(), String> {
        if !self.must_fail.is_empty() {
            return Err(format!("stream received though §4 refuses it: {:?}", self.must_fail));
        }
        let want = self.expected(base);
        let got = spa.objects(snap).map_err(|e| format!("objects({snap}): {e}"))?;
        let keys: Vec<u64> = want.keys().copied().collect();
        if got != keys {
            return Err(format!("objects of {snap}: engine {got:?}, records say {keys:?}"));
        }
        for (&obj, x) in &want {
            verify_object(spa, snap, obj, x)
                .map_err(|e| format!("{e} (features {:#x})", self.features))?;
        }
        Ok(())
    }
}

fn apply_write(objs: &mut BTreeMap<u64, ExpObj>, obj: u64, offset: u64, plain: Option<&[u8]>) {
    let Some(x) = objs.get_mut(&obj) else { return };
    match plain {
        None => x.data.clear(),
        Some(p) => {
            x.data.iter_mut().for_each(|m| map_write(m, offset, p));
            let end = offset.saturating_add(p.len() as u64);
            x.touched.extend((offset / SECTOR..end.div_ceil(SECTOR)).take(1 << 12));
        }
    }
}

fn verify_object(spa: &mut Spa, snap: &str, obj: u64, x: &ExpObj) -> Result<(), String> {
    let info = spa.object_info(snap, obj).map_err(|e| format!("{snap} obj {obj}: {e}"))?;
    let got = (info.ot, info.blksz, info.bonustype, usize::from(info.bonuslen));
    let want = (x.ot, x.blksz, x.bonustype, x.bonus.len());
    if got != want {
        return Err(format!(
            "obj {obj} (ot, blksz, bonustype, bonuslen): engine {got:?}, records {want:?}"
        ));
    }
    let (_, bonus) = spa.bonus(snap, obj).map_err(|e| format!("bonus {obj}: {e}"))?;
    if bonus != x.bonus {
        return Err(format!("obj {obj} bonus: engine {bonus:02x?}, records {:02x?}", x.bonus));
    }
    if x.data.is_empty() {
        return Ok(());
    }
    let mut sectors = x.touched.clone();
    x.data.iter().for_each(|m| sectors.extend(m.keys()));
    sectors.retain(|s| (s + 1).saturating_mul(SECTOR) <= DMU_MAX_OFFSET);
    let read = read_sectors(spa, snap, obj, &sectors)?;
    let zero = vec![0u8; SECTOR_BYTES];
    let matches = |m: &SectorMap| sectors.iter().find(|s| read[s] != *m.get(s).unwrap_or(&zero));
    let mismatch = x.data.iter().map(matches).collect::<Vec<_>>();
    if mismatch.iter().any(Option::is_none) {
        return Ok(());
    }
    let s = mismatch[0].expect("every candidate mismatched");
    Err(format!(
        "obj {obj} sector {s} (offset {:#x}): engine {:02x?}.., records {:02x?}.. ({} candidates)",
        s * SECTOR,
        &read[s][..16],
        &x.data[0].get(s).unwrap_or(&zero)[..16],
        x.data.len()
    ))
}

/// Read the given sectors of an object, in runs.
fn read_sectors(
    spa: &mut Spa,
    snap: &str,
    obj: u64,
    sectors: &BTreeSet<u64>,
) -> Result<BTreeMap<u64, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    let list: Vec<u64> = sectors.iter().copied().collect();
    let mut i = 0;
    while i < list.len() {
        let mut j = i + 1;
        while j < list.len() && list[j] == list[j - 1] + 1 && j - i < 2048 {
            j += 1;
        }
        let (start, n) = (list[i], (j - i) as u64);
        let bytes = spa
            .read(snap, obj, start * SECTOR, n * SECTOR)
            .map_err(|e| format!("read {snap} obj {obj} sector {start}: {e}"))?;
        for (k, chunk) in bytes.chunks_exact(SECTOR_BYTES).enumerate() {
            out.insert(start + k as u64, chunk.to_vec());
        }
        i = j;
    }
    Ok(out)
}

/// Target `recv_structured`: `data` drives an arbitrary record sequence (`StreamSpec`) that
/// is encoded with valid checksums in either byte order: full or incremental from
/// `FUZZ_BASE_FS`'s @s0/@s1 (forced or not), reallocations, frees past the end, huge offsets
/// and object numbers, odd block sizes, bonus lengths at and past 320, payloads past their
/// limits. A failure must change nothing; a success must hold exactly what the records say
/// (objects, attributes, bonus, data; both outcomes of a reallocation are accepted), refuse
/// nothing §4 refuses, and pass the checks of `receive_checked`.
pub fn recv_structured(data: &[u8]) {
    let Ok(spec) = StreamSpec::arbitrary_take_rest(Unstructured::new(data)) else { return };
    with_recv_pool(BaseKind::Structured, |pool, base| {
        let planned = spec.build(base);
        let case = RecvCase {
            fs: &planned.fs,
            fromguid: planned.fromguid,
            opts: RecvOptions { force: spec.force },
            expect: Some(&planned),
            full_checks: true,
        };
        let _ = receive_checked(pool, base, &case, &planned.stream);
    });
}

// ---------------------------------------------------------------------------------------
// Operations against engine and model.
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
struct OpsInput {
    send: SendChoice,
    ops: Vec<FuzzOp>,
}

fn ops_cfg() -> SpaConfig {
    SpaConfig { guid_seed: FUZZ_GUID_SEED, now_secs: FUZZ_NOW_SECS, ..SpaConfig::default() }
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
    let Some(copy) =
        send_recv(spa, first, None, OPS_COPY_FS, &opts).unwrap_or_else(|e| panic!("ops: {e}"))
    else {
        return;
    };
    compare_objsets(spa, first, &copy).unwrap_or_else(|e| panic!("ops: full round trip: {e}"));
    let Some(from) = from else { return };
    let got =
        send_recv(spa, to, Some(from), OPS_COPY_FS, &opts).unwrap_or_else(|e| panic!("ops: {e}"));
    if let Some(copy) = got {
        compare_objsets(spa, to, &copy)
            .unwrap_or_else(|e| panic!("ops: incremental round trip: {e}"));
    }
}

// ---------------------------------------------------------------------------------------
// Crashes: operations on a SimDisk, power lost at chosen moments with chosen cached sectors.
// ---------------------------------------------------------------------------------------

/// Which cached sectors survive a crash (`ordinal` = position of the write in the cache).
#[derive(Arbitrary, Clone, Debug)]
enum Keep {
    All,
    Nothing,
    InOrder(u8),
    Pattern(u64),
    PerWrite(Vec<u8>),
}

impl Keep {
    fn keeps(&self, ordinal: usize, sector: usize) -> bool {
        match self {
            Self::All => true,
            Self::Nothing => false,
            Self::InOrder(n) => ordinal < usize::from(*n),
            Self::Pattern(bits) => (bits >> ((ordinal * 7 + sector) % 64)) & 1 == 1,
            Self::PerWrite(v) if v.is_empty() => true,
            Self::PerWrite(v) => match v[ordinal % v.len()] {
                0 => false,
                u8::MAX => true,
                torn => sector < usize::from(torn),
            },
        }
    }
}

#[derive(Arbitrary, Debug)]
enum CrashStep {
    Op(FuzzOp),
    Crash {
        mid_sync_steps: u8,
        keep: Keep,
    },
    /// An fsync: every change to the filesystem so far must survive the next crash.
    Fsync {
        fs: FuzzTarget,
        obj: FuzzObj,
    },
}

#[derive(Arbitrary, Debug)]
struct CrashInput {
    cache_writes: u8,
    steps: Vec<CrashStep>,
    last: Keep,
}

/// A crash run: engine on a recording SimDisk, the model, and the model as of the last
/// committed txg (run.rs's `Sim`, with crash choices from the input instead of a seed).
struct CrashSim {
    spa: Spa,
    disk: SimDisk,
    disk_cfg: DiskConfig,
    model: Model,
    durable: Model,
    synced: u64,
    crashes: usize,
    /// Operations of uncommitted txgs the intent logs may hold.
    log: LogTracker,
}

impl CrashSim {
    fn start(cache_writes: u8) -> Self {
        let disk_cfg = DiskConfig {
            cache_capacity_writes: cache_writes.into(),
            record_events: true,
            ..DiskConfig::default()
        };
        let disk = SimDisk::new(CRASH_DEVICE_BYTES, disk_cfg, CRASH_DISK_SEED);
        let spa = Spa::create(Box::new(disk.clone()), OPS_POOL, ops_cfg())
            .expect("create the crash pool");
        let model = Model::new(OPS_POOL);
        let synced = spa.last_synced_txg();
        let log = LogTracker::default();
        Self { spa, disk, disk_cfg, durable: model.clone(), model, synced, crashes: 0, log }
    }

    fn op(&mut self, i: usize, op: &Op) {
        let open = self.spa.open_txg();
        match op.apply_checked(&mut self.spa, &mut self.model) {
            Ok(true) => self.log.note(i, op, &self.model, open),
            Ok(false) => {}
            Err(d) => panic!("crash: op #{i} {op:?}: {d}"),
        }
        if let Err(d) = conformance::check(&mut self.spa, &self.model) {
            panic!("crash: after op #{i} {op:?}: {d}");
        }
        self.note_sync();
    }

    /// A newly committed txg with nothing dirty: the model as of now is durable.
    fn note_sync(&mut self) {
        let now = self.spa.last_synced_txg();
        if now != self.synced && self.spa.syncing_txg().is_none() && !self.spa.is_dirty() {
            self.synced = now;
            self.durable = self.model.clone();
            self.log.committed(now);
            if let Err(e) = integrity::check(&mut self.spa) {
                panic!("crash: integrity after txg {now}: {e}");
            }
        }
    }

    /// The image if power failed now, keeping the cached sectors `keep` chooses.
    fn crash_image(&self, keep: &Keep) -> Vec<u8> {
        let rec = self.disk.take_recording().expect("invariant: the disk records");
        if rec.events.is_empty() {
            return rec.base_image;
        }
        let mut replay = Replayer::new(rec.base_image, &rec.events);
        replay.advance_to(rec.events.len() - 1);
        let ordinal: BTreeMap<usize, usize> =
            replay.cached_writes().iter().enumerate().map(|(j, &e)| (e, j)).collect();
        replay.image(&|event, sector| keep.keeps(ordinal[&event], sector))
    }

    /// Crash (after `mid_steps` phases of a sync of the open txg), import, and find the
    /// model the pool equals: the last committed txg's, or the one being synced, each plus
    /// the intent-log replay the import reports, which must reach every fsynced op.
    fn crash(&mut self, mid_steps: u8, keep: &Keep) {
        let mut candidates = vec![self.durable.clone()];
        if mid_steps > 0 {
            if let Ok(Some(_)) = self.spa.txg_quiesce() {
                candidates.push(self.model.clone());
                for _ in 0..mid_steps {
                    if self.spa.sync_step().is_err() {
                        break;
                    }
                }
            }
        } else if self.spa.is_dirty() || self.spa.syncing_txg().is_some() {
            candidates.push(self.model.clone());
        }
        let placeholder = Spa::create(
            Box::new(MemoryDevice::new(engine::limits::SPA_MINDEVSIZE)),
            "placeholder",
            SpaConfig::default(),
        )
        .expect("placeholder pool");
        drop(std::mem::replace(&mut self.spa, placeholder).into_device());
        let image = self.crash_image(keep);
        // A fresh disk holding the image (written and flushed: `from_image` would scan every
        // byte, slow under coverage instrumentation).
        self.disk = SimDisk::new(image.len() as u64, self.disk_cfg, CRASH_DISK_SEED);
        let mut dev = self.disk.clone();
        dev.write(0, &image).expect("invariant: the image fits its disk");
        dev.flush().expect("invariant: faults are off");
        self.spa = Spa::import(Box::new(self.disk.clone()), ops_cfg(), None)
            .unwrap_or_else(|e| panic!("crash: import after crash {}: {e}", self.crashes));
        let report = self.spa.import_report().clone();
        let mut errors = Vec::new();
        for c in candidates.iter().rev() {
            let r = match self.log.replay(c, report.loaded_txg, &report.replayed) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let state = r.model.unwrap_or_else(|| c.clone());
            match conformance::check(&mut self.spa, &state) {
                Ok(()) => {
                    assert!(
                        r.lost.is_empty(),
                        "crash: durability violation: fsynced data lost ({}): {}",
                        r.replayed.join(", "),
                        r.lost.join("; ")
                    );
                    self.durable = state.clone();
                    self.model = state;
                    self.synced = self.spa.last_synced_txg();
                    self.log.clear();
                    if let Err(e) = integrity::check(&mut self.spa) {
                        panic!("crash: integrity after import: {e}");
                    }
                    return;
                }
                Err(d) => errors.push(d.to_string()),
            }
        }
        panic!(
            "crash: durability violation: the pool matches no txg in [last committed, last \
             started]: {}",
            errors.join(" | ")
        );
    }
}

/// Target `crash`: operations (at most `FUZZ_OPS_MAX`) on a pool on a recording SimDisk with
/// a write cache of the input's size; at the input's crash points (at most
/// `FUZZ_CRASHES_MAX`, optionally in the middle of a txg sync) power fails, keeping the
/// cached sectors the input chooses (whole writes in order, torn writes, arbitrary subsets).
/// Fsync steps commit intent logs. The pool must import and equal the model as of the last
/// committed txg or the one being synced, plus the intent-log replay import reports, which
/// must reach every op an fsync covered (design.md property 2, `intent::LogTracker`);
/// conformance after every op, integrity after every commit.
pub fn crash(data: &[u8]) {
    let Ok(input) = CrashInput::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let mut sim = CrashSim::start(input.cache_writes);
    for (i, step) in input.steps.iter().take(FUZZ_OPS_MAX).enumerate() {
        match step {
            CrashStep::Op(op) => sim.op(i, &op.to_op()),
            CrashStep::Crash { mid_sync_steps, keep } if sim.crashes < FUZZ_CRASHES_MAX => {
                sim.crashes += 1;
                sim.crash(mid_sync_steps % 8, keep);
            }
            CrashStep::Crash { .. } => {}
            CrashStep::Fsync { fs, obj } => {
                sim.op(i, &Op::Fsync { fs: fs.to_op(), obj: obj.to_op() });
            }
        }
    }
    sim.spa.txg_sync().unwrap_or_else(|e| panic!("crash: final sync: {e}"));
    sim.note_sync();
    sim.crash(0, &input.last);
}

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
    let Ok(objs) = spa.objects(name) else { return Ok(()) };
    let want = model.objects(name).expect("invariant: listed dataset");
    if objs != want {
        return Err(format!("objects of {name}: engine {objs:?}, model {want:?}"));
    }
    for obj in want {
        let ob = model.object(name, obj).expect("invariant: listed object");
        if let Ok(info) = spa.object_info(name, obj) {
            if ModelInfo::of_engine(&info) != ob.info() {
                return Err(format!("{name} obj {obj}: engine {info:?}, model {:?}", ob.info()));
            }
        }
        if let Ok(bonus) = spa.bonus(name, obj) {
            if bonus != (ob.bonustype, ob.bonus.clone()) {
                return Err(format!("{name} obj {obj}: bonus {bonus:?} is not the model's"));
            }
        }
        let bs = u64::from(ob.blksz);
        for blkid in 0..=ob.maxblkid + 1 {
            if let Ok(got) = spa.read(name, obj, blkid * bs, bs) {
                let want = ob.read_bytes(blkid * bs, ob.blksz as usize);
                if got != want {
                    return Err(format!("{name} obj {obj} block {blkid}: wrong data"));
                }
            }
        }
    }
    Ok(())
}

/// After an import of a damaged image: sync, write, sync, export and import again; the new
/// data reads back (or fails to read), never differently.
fn write_after_import(mut spa: Spa) {
    if spa.txg_sync().is_err() {
        return;
    }
    let target = spa.datasets().into_iter().find_map(|fs| {
        let obj = spa.objects(&fs).ok()?.into_iter().next()?;
        Some((fs, obj))
    });
    let Some((fs, obj)) = target else { return };
    let data = pattern(0x77, 100, 1500);
    if spa.write(&fs, obj, 100, &data).is_err() || spa.txg_sync().is_err() {
        return;
    }
    let Ok(dev) = spa.export() else { return };
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
        write_after_import(spa);
    }
}
