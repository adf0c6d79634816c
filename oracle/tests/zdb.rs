//! Self-tests of the integrity checker's own walk (oracle::zdb): a healthy pool with several
//! datasets, snapshots, a sparse object and an intent log passes with counts that match the
//! engine's own traversal; damage written to the device behind the engine (mid-extent, in a
//! ditto copy), a sector freed mid-extent, a leaked extent, double references (across
//! datasets, inside one tree) and forged birth txgs (every block above the edit re-sealed up
//! to the uberblock, so every checksum is right) are each reported as the right `Problem`. The tests use engine internals to plant the damage; the
//! checker under test uses none of them.

use engine::dmu::traverse::{traverse_objset, Visit};
use engine::dnode::DnodePhys;
use engine::dsl::pool::MosPhys;
use engine::spa::uberblock::UberblockPhys;
use engine::vdev::label::uberblock_offset;
use engine::zio::blkptr::{BlkPtr, Dva, BP_BYTES};
use engine::zio::checksum::fletcher4;
use engine::zio::compress::{lz4_compress, Compress};
use engine::{ChecksumType, DatasetProps, MemoryDevice, ObjectSpec, Spa, SpaConfig};
use oracle::integrity::{self, BlockError, IntegrityError, Problem};
use oracle::op::{export_import, pattern};

const FS: &str = "tank";
const CHUNK_BYTES: usize = 128 * 1024;

fn fresh() -> Spa {
    Spa::create(Box::new(MemoryDevice::new(64 << 20)), FS, SpaConfig::default()).expect("create")
}

fn err_of(spa: &mut Spa) -> IntegrityError {
    integrity::check(spa).expect_err("the planted problem must be reported")
}

/// The synced pointers of `object` at `level` in the head of `fs`, by block id.
fn bps_of(spa: &mut Spa, fs: &str, object: u64, level: u8) -> Vec<(u64, BlkPtr)> {
    let (trees, _) = spa.pool_trees();
    let root = trees.iter().find(|t| t.name == fs).expect("dataset").head;
    let mut found = Vec::new();
    spa.zio_mut().cache_clear();
    traverse_objset(spa.zio_mut(), &root, 0, &mut |_, v| {
        if let Visit::Block { object: o, level: l, blkid, bp, .. } = v {
            if *o == object && *l == level && !bp.is_hole() {
                found.push((*blkid, **bp));
            }
        }
    })
    .expect("traverse");
    found
}

/// Blocks (non-embedded), embedded blocks and allocated bytes as the engine's own walk
/// counts them: every snapshot oldest first and the head, each pruned at the previous
/// snapshot's txg, plus the MOS blocks (the checker's walk before it was rewritten).
fn engine_counts(spa: &mut Spa) -> (u64, u64, u64) {
    let (trees, mos) = spa.pool_trees();
    let (mut blocks, mut embedded, mut asize) = (mos.len() as u64, 0, 0);
    asize += mos.iter().map(BlkPtr::asize_total).sum::<u64>();
    let zio = spa.zio_mut();
    zio.cache_clear();
    for t in &trees {
        let mut prev = t.origin_txg;
        let roots = t.snapshots.iter().map(|(_, txg, r)| (*txg, *r));
        for (txg, root) in roots.chain(std::iter::once((u64::MAX, t.head))) {
            traverse_objset(zio, &root, prev, &mut |_, v| {
                if let Visit::Block { bp, .. } = v {
                    if bp.embedded {
                        embedded += 1;
                    } else if !bp.is_hole() {
                        blocks += 1;
                        asize += bp.asize_total();
                    }
                }
            })
            .expect("traverse");
            prev = txg;
        }
    }
    (blocks, embedded, asize)
}

/// Several datasets (one with sha256 and lz4), snapshots, a snapshot destroyed, a large
/// sparse object, 128 KiB blocks, tiny embedded blocks, and fsynced changes in a log.
fn busy_pool() -> Spa {
    let mut spa = fresh();
    let lz = DatasetProps { checksum: ChecksumType::Sha256, compress: Compress::Lz4 };
    spa.dataset_create("tank/a", lz).expect("create a");
    spa.dataset_create("tank/b", DatasetProps::default()).expect("create b");
    let big = spa.object_alloc(FS, &ObjectSpec::new(19, 128 * 1024, 0, 0)).expect("alloc");
    spa.write(FS, big, 0, &pattern(3, 0, 3 * CHUNK_BYTES)).expect("write");
    let sparse = spa.object_alloc("tank/a", &ObjectSpec::new(19, 512, 0, 0)).expect("alloc");
    for off in [0u64, 1 << 30, 40 << 30, (1 << 62) - 512] {
        spa.write("tank/a", sparse, off, &pattern(5, off, 512)).expect("sparse write");
    }
    let tiny = spa.object_alloc("tank/a", &ObjectSpec::new(19, 4096, 26, 32)).expect("alloc");
    spa.write("tank/a", tiny, 0, b"123\n").expect("embedded-size write");
    spa.txg_sync().expect("sync");
    spa.snapshot("tank/a@one").expect("snap");
    spa.snapshot("tank@one").expect("snap");
    spa.write(FS, big, CHUNK_BYTES as u64, &pattern(4, 0, CHUNK_BYTES)).expect("overwrite");
    spa.write("tank/a", sparse, 1 << 30, &pattern(6, 0, 512)).expect("overwrite");
    spa.txg_sync().expect("sync");
    spa.snapshot("tank/a@two").expect("snap");
    spa.snapshot("tank@two").expect("snap");
    spa.free_range(FS, big, 0, CHUNK_BYTES as u64).expect("punch");
    spa.txg_sync().expect("sync");
    spa.snapshot("tank@three").expect("snap");
    spa.snapshot_destroy("tank@two").expect("destroy a middle snapshot");
    let o = spa.object_alloc("tank/b", &ObjectSpec::new(19, 4096, 26, 32)).expect("alloc");
    spa.write("tank/b", o, 0, &pattern(8, 0, 40 * 4096)).expect("write");
    spa.txg_sync().expect("sync");
    spa.write_sync("tank/b", o, 4096, &pattern(9, 0, 8192)).expect("fsync");
    spa
}

#[test]
fn healthy_busy_pool_passes_with_the_engine_walks_counts() {
    let mut spa = busy_pool();
    let report = integrity::check(&mut spa).expect("healthy");
    let (blocks, embedded, asize) = engine_counts(&mut spa);
    assert_eq!(report.blocks - report.embedded, blocks, "{report:#?}");
    assert_eq!(report.asize_bytes, asize, "{report:#?}");
    assert!(report.embedded >= 1 && embedded >= 1, "{report:#?}");
    assert_eq!(report.asize_bytes + report.zil_bytes, spa.space().allocated, "{report:#?}");
    assert_eq!(report.datasets, 3);
    assert_eq!(report.snapshots, 4, "tank@one, tank@three, tank/a@one, tank/a@two");
    assert_eq!(report.trees, report.datasets + report.snapshots);
    assert!(report.shared > 0, "snapshots share blocks with heads: {report:#?}");
    assert!(report.zil_blocks >= 1, "the fsync wrote a log block: {report:#?}");
    assert!(report.blocks_by_level.len() >= 6, "the sparse object is deep: {report:#?}");
    assert!(report.deferred_bytes > 0, "the punch and the destroy freed blocks");
    assert!(report.copies_verified > report.blocks - report.embedded, "ditto copies read");
    assert_eq!(report.uberblock_txg, spa.last_synced_txg());
    export_import(&mut spa).expect("export/import");
    let again = integrity::check(&mut spa).expect("healthy after import");
    assert!(again.zil_memory_only_bytes > 0, "import restarts every chain: {again:#?}");
    assert_eq!(again.blocks, report.blocks - report.mos_blocks + again.mos_blocks);
}

#[test]
fn damage_in_the_middle_of_a_data_extent_is_reported() {
    let mut spa = fresh();
    let o = spa.object_alloc(FS, &ObjectSpec::new(19, 128 * 1024, 0, 0)).expect("alloc");
    spa.write(FS, o, 0, &pattern(7, 0, 2 * CHUNK_BYTES)).expect("write");
    spa.txg_sync().expect("sync");
    let (_, bp) = bps_of(&mut spa, FS, o, 0)[1];
    let dva = bp.dva[0];
    assert_eq!(dva.asize, CHUNK_BYTES as u64, "{bp:?}");
    let middle = dva.offset + dva.asize / 2;
    spa.zio_mut().dev.write(middle, &[0x5a; 512]).expect("damage");
    let err = err_of(&mut spa);
    let hit = |p: &Problem| {
        matches!(p, Problem::Unreadable { object, level: 0, blkid: 1, error: BlockError::Checksum { dva: d }, .. }
            if *object == o && *d == dva)
    };
    assert!(err.problems.iter().any(hit), "{err}");
}

#[test]
fn damage_to_one_ditto_copy_is_reported_though_the_engine_reads_the_other() {
    let mut spa = fresh();
    let o = spa.object_alloc(FS, &ObjectSpec::new(19, 4096, 26, 32)).expect("alloc");
    spa.write(FS, o, 0, &pattern(7, 0, 128 * 4096)).expect("write");
    spa.txg_sync().expect("sync");
    let (_, l1) = bps_of(&mut spa, FS, o, 1)[0];
    let ditto = l1.dva[1];
    assert!(ditto.asize >= 2048, "an incompressible indirect block: {l1:?}");
    let middle = ditto.offset + (ditto.asize / 2).next_multiple_of(512) - 512;
    assert!(middle > ditto.offset && middle + 512 < ditto.offset + ditto.asize);
    spa.zio_mut().dev.write(middle, &[0xa5; 512]).expect("damage the second copy");
    spa.zio_mut().cache_clear();
    assert_eq!(spa.read(FS, o, 0, 4096).expect("the first copy serves"), pattern(7, 0, 4096));
    let err = err_of(&mut spa);
    let hit = |p: &Problem| {
        matches!(p, Problem::Unreadable { level: 1, error: BlockError::Checksum { dva }, .. }
            if *dva == ditto)
    };
    assert!(err.problems.iter().any(hit), "{err}");
}

#[test]
fn a_sector_freed_in_the_middle_of_a_live_extent_is_reported() {
    let mut spa = fresh();
    let o = spa.object_alloc(FS, &ObjectSpec::new(19, 128 * 1024, 0, 0)).expect("alloc");
    spa.write(FS, o, 0, &pattern(7, 0, CHUNK_BYTES)).expect("write");
    spa.txg_sync().expect("sync");
    let (_, bp) = bps_of(&mut spa, FS, o, 0)[0];
    let inner = Dva { offset: bp.dva[0].offset + 8 * 512, asize: 512 };
    spa.zio_mut().ms.free_now(inner);
    let err = err_of(&mut spa);
    let hit = |p: &Problem| matches!(p, Problem::LiveBlockFree { dva } if *dva == bp.dva[0]);
    assert!(err.problems.iter().any(hit), "not only the first and last sector: {err}");
}

#[test]
fn a_leaked_extent_is_reported() {
    let mut spa = busy_pool();
    integrity::check(&mut spa).expect("healthy");
    let before = spa.space().allocated;
    let leak = spa.zio_mut().ms.alloc(3 * 512).expect("space");
    let err = err_of(&mut spa);
    let hit = |p: &Problem| {
        matches!(p, Problem::SpaceMismatch { allocated, referenced }
            if *allocated == before + 3 * 512 && *referenced == before)
    };
    assert!(err.problems.iter().any(hit), "{err}");
    spa.zio_mut().ms.free_now(leak);
    integrity::check(&mut spa).expect("healthy again");
}

/// Rewrite the MOS of the last committed txg in place with `edit` applied (it must still
/// fit the chunks' space), re-sealing everything above it: chunk checksums, the root block,
/// and the uberblock in both labels. The engine's memory is left as it was.
fn forge_mos(spa: &mut Spa, edit: impl FnOnce(&mut MosPhys)) {
    let txg = spa.last_synced_txg();
    let zio = spa.zio_mut();
    zio.cache_clear();
    let size = zio.dev.size_bytes();
    let mut slot = vec![0u8; 1024];
    let at = uberblock_offset(0, size, txg);
    zio.dev.read(at, &mut slot).expect("uberblock");
    let mut ub = UberblockPhys::decode(&slot, at).expect("the committed uberblock");
    let mut root = zio.read(&ub.rootbp).expect("MOS root").to_vec();
    let len = usize::try_from(ub.mos_len).expect("small");
    let mut chunks = Vec::new();
    let mut blob = Vec::new();
    for i in 0..len.div_ceil(CHUNK_BYTES) {
        let bp = BlkPtr::decode(&root[16 + i * BP_BYTES..16 + (i + 1) * BP_BYTES]).expect("bp");
        blob.extend_from_slice(&zio.read(&bp).expect("chunk"));
        chunks.push(bp);
    }
    blob.truncate(len);
    let mut mos = MosPhys::decode(&blob).expect("MOS");
    edit(&mut mos);
    let blob = mos.encode();
    let len = blob.len();
    assert_eq!(len.div_ceil(CHUNK_BYTES), chunks.len(), "the edit must keep the chunk count");
    root[..8].copy_from_slice(&(len as u64).to_le_bytes());
    ub.mos_len = len as u64;
    for (i, bp) in chunks.iter_mut().enumerate() {
        let piece = &blob[i * CHUNK_BYTES..len.min((i + 1) * CHUNK_BYTES)];
        let mut padded = piece.to_vec();
        padded.resize(piece.len().next_multiple_of(512), 0);
        rewrite_in_place(spa, bp, &padded);
        bp.encode(&mut root[16 + i * BP_BYTES..16 + (i + 1) * BP_BYTES]);
    }
    rewrite_in_place(spa, &mut ub.rootbp, &root);
    for l in 0..2 {
        let at = uberblock_offset(l, size, txg);
        spa.zio_mut().dev.write(at, &ub.encode(at)).expect("uberblock");
    }
    spa.zio_mut().cache_clear();
}

/// Store `data` as the new contents of `bp` at its own locations (compressed as the engine
/// would), fixing psize, compression and checksum.
fn rewrite_in_place(spa: &mut Spa, bp: &mut BlkPtr, data: &[u8]) {
    bp.lsize = u32::try_from(data.len()).expect("small");
    let (mut stored, compress) = match lz4_compress(data, data.len()) {
        Some(c) => (c, Compress::Lz4),
        None => (data.to_vec(), Compress::Off),
    };
    stored.resize(stored.len().next_multiple_of(512), 0);
    assert!(bp.dvas().all(|d| d.asize >= stored.len() as u64), "the new contents must fit");
    bp.psize = u32::try_from(stored.len()).expect("small");
    bp.compress = compress as u8;
    bp.checksum = ChecksumType::Fletcher4 as u8;
    bp.cksum = fletcher4(&stored);
    for d in bp.dva.iter().filter(|d| d.is_valid()) {
        spa.zio_mut().dev.write(d.offset, &stored).expect("rewrite");
    }
}

fn snapshots_pool() -> Spa {
    let mut spa = fresh();
    spa.dataset_create("tank/a", DatasetProps::default()).expect("create");
    for (i, fs) in ["tank", "tank/a"].into_iter().enumerate() {
        let o = spa.object_alloc(fs, &ObjectSpec::new(19, 4096, 26, 32)).expect("alloc");
        spa.write(fs, o, 0, &pattern(7 + i as u8, 0, 8 * 4096)).expect("write");
    }
    spa.txg_sync().expect("sync");
    spa.snapshot("tank@s").expect("snap");
    spa.write(FS, 1, 0, &pattern(9, 0, 4096)).expect("change the head");
    spa.txg_sync().expect("sync");
    spa.write(FS, 1, 4096, &pattern(9, 0, 4096)).expect("change the head");
    spa.txg_sync().expect("sync");
    integrity::check(&mut spa).expect("healthy before forging");
    spa
}

fn births(err: &IntegrityError, why: &str) -> Vec<Problem> {
    let hit = |p: &&Problem| matches!(p, Problem::Birth { why: w, .. } if *w == why);
    err.problems.iter().filter(hit).cloned().collect()
}

#[test]
fn a_forged_snapshot_birth_is_reported() {
    let mut spa = snapshots_pool();
    let mut snap_txg = 0;
    forge_mos(&mut spa, |mos| {
        let s = &mut mos.datasets.iter_mut().find(|d| d.name == FS).expect("tank").snapshots[0];
        snap_txg = s.creation_txg;
        s.root.birth_txg = s.creation_txg + 1;
    });
    assert!(snap_txg < spa.last_synced_txg(), "the forged birth is not in the future");
    let err = err_of(&mut spa);
    let found = births(&err, "after its snapshot");
    assert_eq!(found.len(), 1, "{err}");
    assert!(matches!(&found[0], Problem::Birth { tree, birth, limit, .. }
        if tree == "tank@s" && *birth == snap_txg + 1 && *limit == snap_txg));
}

#[test]
fn a_forged_root_birth_is_reported_against_children_and_the_uberblock() {
    let mut spa = snapshots_pool();
    forge_mos(&mut spa, |mos| {
        mos.datasets.iter_mut().find(|d| d.name == "tank/a").expect("a").head_root.birth_txg = 1;
    });
    let err = err_of(&mut spa);
    let found = births(&err, "after its parent");
    assert!(!found.is_empty(), "the meta-dnode's blocks are born after the objset: {err}");
    assert!(found
        .iter()
        .all(|p| matches!(p, Problem::Birth { tree, limit: 1, .. } if tree == "tank/a")));

    let mut spa = snapshots_pool();
    let txg = spa.last_synced_txg();
    forge_mos(&mut spa, |mos| {
        mos.datasets.iter_mut().find(|d| d.name == "tank/a").expect("a").head_root.birth_txg =
            txg + 5;
    });
    let err = err_of(&mut spa);
    let found = births(&err, "after the uberblock's txg");
    assert_eq!(found.len(), 1, "{err}");
    assert!(
        matches!(&found[0], Problem::Birth { birth, limit, .. } if *birth == txg + 5 && *limit == txg)
    );
}

#[test]
fn a_double_reference_across_datasets_is_reported() {
    let mut spa = snapshots_pool();
    let mut root = BlkPtr::HOLE;
    forge_mos(&mut spa, |mos| {
        root = mos.datasets.iter().find(|d| d.name == FS).expect("tank").head_root;
        mos.datasets.iter_mut().find(|d| d.name == "tank/a").expect("a").head_root = root;
    });
    let err = err_of(&mut spa);
    let hit = |p: &Problem| {
        matches!(p, Problem::DoubleReference { dva, first, second }
            if *dva == root.dva[0] && first == FS && second == "tank/a")
    };
    assert!(err.problems.iter().any(hit), "{err}");
}

#[test]
fn a_deferred_free_of_a_live_block_on_disk_is_reported() {
    let mut spa = snapshots_pool();
    let (_, bp) = bps_of(&mut spa, "tank/a", 1, 0)[0];
    let txg = spa.last_synced_txg();
    forge_mos(&mut spa, |mos| mos.defer.entry(txg).or_default().push(bp.dva[0]));
    let err = err_of(&mut spa);
    let hit = |p: &Problem| matches!(p, Problem::DeferredOverlap { dva, .. } if *dva == bp.dva[0]);
    assert!(err.problems.iter().any(hit), "{err}");
}

/// Rewrite, in place and re-sealed up to the uberblock, the level-1 block of `object` in
/// the head of `fs` with `edit` applied to its pointers: the L1, its dnode block, the
/// objset block, the MOS. Needs a two-level object in the first dnode blocks.
fn forge_l1(spa: &mut Spa, fs: &str, object: u64, edit: impl FnOnce(&mut [BlkPtr])) {
    let (trees, _) = spa.pool_trees();
    let mut root = trees.iter().find(|t| t.name == fs).expect("dataset").head;
    let zio = spa.zio_mut();
    zio.cache_clear();
    let mut os_raw = zio.read(&root).expect("objset").to_vec();
    let mut meta = DnodePhys::decode(&os_raw[..512]).expect("meta-dnode");
    assert_eq!(meta.nlevels, 1, "a small objset");
    let blk = usize::try_from(object / 32).expect("small");
    let mut dbp = meta.blkptr[blk];
    let mut dblock = zio.read(&dbp).expect("dnode block").to_vec();
    let at = usize::try_from(object % 32).expect("small") * 512;
    let mut dn = DnodePhys::decode(&dblock[at..at + 512]).expect("dnode");
    assert_eq!(dn.nlevels, 2, "an object with one indirect level");
    let mut l1 = dn.blkptr[0];
    let raw = zio.read(&l1).expect("L1").to_vec();
    let mut kids: Vec<BlkPtr> =
        raw.chunks_exact(BP_BYTES).map(|c| BlkPtr::decode(c).expect("bp")).collect();
    edit(&mut kids);
    let mut raw = vec![0u8; raw.len()];
    for (k, out) in kids.iter().zip(raw.chunks_exact_mut(BP_BYTES)) {
        k.encode(out);
    }
    rewrite_in_place(spa, &mut l1, &raw);
    dn.blkptr[0] = l1;
    dn.encode(&mut dblock[at..at + 512]);
    rewrite_in_place(spa, &mut dbp, &dblock);
    meta.blkptr[blk] = dbp;
    meta.encode(&mut os_raw[..512]);
    rewrite_in_place(spa, &mut root, &os_raw);
    forge_mos(spa, |mos| {
        mos.datasets.iter_mut().find(|d| d.name == fs).expect("fs").head_root = root
    });
}

#[test]
fn a_double_reference_inside_one_tree_is_reported() {
    let mut spa = snapshots_pool();
    let mut named = Dva::default();
    forge_l1(&mut spa, FS, 1, |kids| {
        named = kids[0].dva[0];
        kids[5] = kids[0];
    });
    let err = err_of(&mut spa);
    let hit = |p: &Problem| {
        matches!(p, Problem::DoubleReference { dva, first, second }
            if *dva == named && first == FS && second == FS)
    };
    assert!(err.problems.iter().any(hit), "{err}");
}

#[test]
fn a_forged_birth_inside_a_tree_is_reported() {
    let mut spa = snapshots_pool();
    let mut forged = 0;
    forge_l1(&mut spa, "tank/a", 1, |kids| {
        // Written in one txg with their L1: the newest child's birth is the L1's.
        forged = kids.iter().map(|k| k.birth_txg).max().expect("children") + 1;
        kids[3].birth_txg = forged;
    });
    assert!(forged <= spa.last_synced_txg(), "born before the uberblock, after the parent");
    let err = err_of(&mut spa);
    let found = births(&err, "after its parent");
    assert_eq!(found.len(), 1, "{err}");
    assert!(matches!(&found[0], Problem::Birth { tree, level: 0, blkid: 3, birth, .. }
        if tree == "tank/a" && *birth == forged));
    assert!(births(&err, "after the uberblock's txg").is_empty(), "{err}");
}
