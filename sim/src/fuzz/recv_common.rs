//! What both receive harnesses (`recv_bytes`, `recv_structured`) share: their base pool, built
//! once per process (from the `fuzz/base` streams, or `FUZZ_BASE_FS`) and imported per thread
//! on a `GuardDevice`; and `receive_checked`, which receives one stream into it and checks.
//! Input: a stream and a `RecvCase` (target, source guid, options, expected contents).
//! Must hold: a receive never writes over a live block of the base; a failed one leaves the
//! pool state (tree roots, snapshots, space, and every dataset's manifests) as it was; a
//! successful one reads back, changes only its target, matches `RecvCase::expect` (with
//! `full_checks`: integrity and a round trip), and is then undone.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use engine::dmu::recv::{RecvOptions, RecvOutcome};
use engine::dmu::send::SendOptions;
use engine::dmu::traverse::{traverse_objset, Visit};
use engine::vdev::{check_range, BlockDevice, VdevError};
use engine::zio::blkptr::BlkPtr;
use engine::{DatasetProps, MemoryDevice, ObjectSpec, RecvError, SnapshotInfo, Spa, SpaConfig};
use oracle::integrity;
use oracle::manifest::manifest;
use oracle::op::pattern;

use super::recv_structured::{map_write, Planned, SectorMap};
use super::{
    compare_objsets, compare_ranges, device_image, fuzz_dir, send_recv, written_blocks,
    COMPARE_DENSE_BYTES_MAX, FUZZ_BASE_FS, FUZZ_GUID_SEED, FUZZ_NOW_SECS, FUZZ_POOL,
    RECV_DEVICE_BYTES, RECV_DIRTY_BYTES_MAX, ROUND_TRIP_FS, SECTOR_BYTES,
};

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
pub(super) struct PoolState {
    pub(super) datasets: Vec<String>,
    pub(super) snapshots: Vec<SnapshotInfo>,
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
pub(super) fn fs_of(name: &str) -> &str {
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
pub(super) struct BaseObject {
    pub(super) ot: u8,
    pub(super) blksz: u32,
    pub(super) bonustype: u8,
    pub(super) bonus: Vec<u8>,
    pub(super) data: SectorMap,
}

/// The base pool of `recv_bytes` and `recv_structured`, built once per process.
pub(super) struct RecvBase {
    image: Vec<u8>,
    live: Extents,
    pub(super) state: PoolState,
    /// Manifest of every snapshot and head.
    manifests: BTreeMap<String, String>,
    /// Snapshot guid -> its filesystem (where an incremental from it goes).
    pub(super) guids: BTreeMap<u64, String>,
    /// `FUZZ_BASE_FS`'s snapshots: object -> contents.
    pub(super) objsets: BTreeMap<String, BTreeMap<u64, BaseObject>>,
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
pub(super) enum BaseKind {
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
pub(super) struct RecvPool {
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
pub(super) fn with_recv_pool(kind: BaseKind, f: impl FnOnce(&mut RecvPool, &RecvBase)) {
    let base = recv_base(kind);
    let taken = RECV_POOLS.with(|cell| cell.borrow_mut()[kind as usize].take());
    let mut pool = taken.unwrap_or_else(|| RecvPool::fresh(base));
    f(&mut pool, base);
    RECV_POOLS.with(|cell| cell.borrow_mut()[kind as usize] = Some(pool));
}

/// One receive the harness makes and what it knows about it.
pub(super) struct RecvCase<'a> {
    pub(super) fs: &'a str,
    pub(super) fromguid: u64,
    pub(super) opts: RecvOptions,
    /// What the records say the received snapshot holds (structured streams).
    pub(super) expect: Option<&'a Planned>,
    /// After a success, also walk the pool (`integrity::check`) and round-trip the snapshot.
    pub(super) full_checks: bool,
}

/// Receive `stream` as `case` says, then check: a failure changed nothing; a success reads
/// back, touched nothing else, matches `case.expect` (and with `full_checks` passes the
/// integrity walk and round-trips). After a success the pool is brought back to the base.
pub(super) fn receive_checked(
    pool: &mut RecvPool,
    base: &RecvBase,
    case: &RecvCase<'_>,
    stream: &[u8],
) -> Result<RecvOutcome, RecvError> {
    pool.armed.store(true, Ordering::Relaxed);
    let r = pool.spa().recv(case.fs, &mut &stream[..], &case.opts);
    pool.armed.store(false, Ordering::Relaxed);
    match &r {
        Err(e) => check_unchanged(pool.spa(), base, case.fs, e),
        Ok(out) => {
            check_received(pool.spa(), base, case, out);
            restore(pool, base, case);
        }
    }
    r
}

/// After a failed receive: the pool state (tree roots, snapshots, space) equals the base's;
/// and the manifests of every dataset's snapshots and head equal the base's (always: the
/// same under libFuzzer as on replay). The roots
/// and `GuardDevice` already imply equal data on disk; the manifests also cover in-memory
/// state a receive could corrupt (cached dnodes and buffers of the target).
fn check_unchanged(spa: &mut Spa, base: &RecvBase, fs: &str, err: &RecvError) {
    assert!(!spa.is_suspended(), "failed receive into {fs} ({err}) suspended the pool");
    spa.txg_sync().unwrap_or_else(|e| panic!("sync after a failed receive into {fs}: {e}"));
    let now = pool_state(spa);
    if now != base.state {
        panic!(
            "failed receive into {fs} ({err}) changed the pool:\n{}",
            state_diff(&base.state, &now)
        );
    }
    spa.zio_mut().cache_clear();
    for name in objset_names(&base.state, None) {
        let got = manifest(spa, &name).unwrap_or_else(|e| panic!("manifest of {name}: {e}"));
        assert!(
            got == base.manifests[&name],
            "failed receive into {fs} ({err}) changed {name}:\nwas\n{}\nnow\n{got}",
            base.manifests[&name]
        );
    }
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
    // No model of this pool exists, so no space bound: a refusal for space skips the round
    // trip (listed in the README's "What the oracle trusts").
    match send_recv(spa, &out.snapshot, None, ROUND_TRIP_FS, &opts, None) {
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
