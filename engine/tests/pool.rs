//! Pool-level behaviour through the public API: objects, txgs, snapshots, rollback,
//! export/import round trips, space, bad input. Runs on the RAM vdev.

use engine::limits::DMU_OBJECT_END;
use engine::{
    BlockDevice, DatasetProps, DmuError, DslError, ImportError, MemoryDevice, ObjectSpec, Spa,
    SpaConfig,
};

const MIB: u64 = 1 << 20;

fn pool(size: u64) -> Spa {
    Spa::create(Box::new(MemoryDevice::new(size)), "tank", SpaConfig::default()).expect("create")
}

fn reimport(spa: Spa) -> Spa {
    let dev = spa.export().expect("export");
    Spa::import(dev, SpaConfig::default(), None).expect("import")
}

fn file_spec(bs: u32) -> ObjectSpec {
    ObjectSpec::new(19, bs, 26, 32)
}

#[test]
fn write_read_across_sync_and_reimport() {
    let mut spa = pool(64 * MIB);
    let obj = spa.object_alloc("tank", &file_spec(4096)).expect("alloc");
    assert_eq!(obj, 1);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    spa.write("tank", obj, 1000, &data).expect("write");
    assert_eq!(spa.read("tank", obj, 1000, 10_000).expect("read dirty"), data);
    spa.txg_sync().expect("sync");
    assert_eq!(spa.read("tank", obj, 1000, 10_000).expect("read synced"), data);
    let mut spa = reimport(spa);
    assert_eq!(spa.read("tank", obj, 1000, 10_000).expect("read imported"), data);
    assert_eq!(spa.read("tank", obj, 0, 1000).expect("hole"), vec![0; 1000]);
    let info = spa.object_info("tank", obj).expect("info");
    assert_eq!(info.maxblkid, 2);
    assert_eq!(info.bonuslen, 32);
}

#[test]
fn sparse_object_addresses_past_one_tib() {
    let mut spa = pool(64 * MIB);
    let obj = spa.object_alloc("tank", &ObjectSpec::new(19, 512, 0, 0)).expect("alloc");
    let far = 1u64 << 41;
    spa.write("tank", obj, far, b"far away").expect("write far");
    spa.write("tank", obj, 0, b"near").expect("write near");
    let mut spa = reimport(spa);
    assert_eq!(spa.read("tank", obj, far, 8).expect("read"), b"far away");
    assert_eq!(spa.read("tank", obj, 0, 4).expect("read"), b"near");
    assert_eq!(spa.read("tank", obj, far / 2, 4).expect("hole"), vec![0; 4]);
    assert_eq!(spa.object_info("tank", obj).expect("info").maxblkid, far / 512);
    assert!(spa.object_info("tank", obj).expect("info").nlevels >= 4);
}

#[test]
fn truncate_follows_zfs_rules() {
    let mut spa = pool(64 * MIB);
    let a = spa.object_alloc("tank", &file_spec(8192)).expect("alloc");
    spa.write("tank", a, 0, &vec![7u8; 10 * 8192]).expect("write");
    spa.txg_sync().expect("sync");
    spa.free_range("tank", a, 3 * 8192 + 100, DMU_OBJECT_END).expect("truncate");
    assert_eq!(spa.object_info("tank", a).expect("info").maxblkid, 3);
    let tail = spa.read("tank", a, 3 * 8192, 8192).expect("read");
    assert!(tail[..100].iter().all(|&b| b == 7) && tail[100..].iter().all(|&b| b == 0));
    spa.free_range("tank", a, 0, DMU_OBJECT_END).expect("truncate to 0");
    assert_eq!(spa.object_info("tank", a).expect("info").maxblkid, 0);
    spa.write("tank", a, 6 * 8192, b"x").expect("extend");
    let mut spa = reimport(spa);
    assert_eq!(spa.object_info("tank", a).expect("info").maxblkid, 6);
    assert_eq!(spa.read("tank", a, 0, 8192).expect("read"), vec![0; 8192]);
}

#[test]
fn snapshots_keep_old_data_and_rollback_restores_it() {
    let mut spa = pool(64 * MIB);
    spa.dataset_create("tank/fs", DatasetProps::default()).expect("create fs");
    let o = spa.object_alloc("tank/fs", &file_spec(512)).expect("alloc");
    spa.write("tank/fs", o, 0, b"123\n").expect("write");
    spa.snapshot("tank/fs@before").expect("snap");
    spa.write("tank/fs", o, 4, b"456\n").expect("write 2");
    spa.snapshot("tank/fs@after").expect("snap 2");
    spa.write("tank/fs", o, 0, b"zzzz").expect("write 3");
    assert_eq!(spa.read("tank/fs@before", o, 0, 8).expect("read"), b"123\n\0\0\0\0");
    assert_eq!(spa.read("tank/fs@after", o, 0, 8).expect("read"), b"123\n456\n");
    spa.rollback("tank/fs").expect("rollback");
    assert_eq!(spa.read("tank/fs", o, 0, 8).expect("read"), b"123\n456\n");
    let mut spa = reimport(spa);
    assert_eq!(spa.read("tank/fs@before", o, 0, 4).expect("read"), b"123\n");
    let snaps = spa.snapshots("tank/fs").expect("list");
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[1].prev_guid, snaps[0].guid);
    assert!(snaps[0].creation_txg < snaps[1].creation_txg);
    assert!(matches!(spa.write("tank/fs@before", o, 0, b"x"), Err(DmuError::ReadOnly(_))));
}

#[test]
fn destroying_snapshots_and_datasets_returns_all_space() {
    let mut spa = pool(64 * MIB);
    spa.txg_sync().expect("sync");
    let base = spa.space().allocated;
    spa.dataset_create("tank/fs", DatasetProps::default()).expect("create");
    let o = spa.object_alloc("tank/fs", &file_spec(131072)).expect("alloc");
    spa.write("tank/fs", o, 0, &vec![1u8; 4 << 20]).expect("write");
    spa.snapshot("tank/fs@a").expect("snap a");
    spa.write("tank/fs", o, 0, &vec![2u8; 2 << 20]).expect("overwrite half");
    spa.snapshot("tank/fs@b").expect("snap b");
    spa.write("tank/fs", o, 1 << 20, &vec![3u8; 2 << 20]).expect("overwrite");
    spa.txg_sync().expect("sync");
    let with_all = spa.space().allocated;
    spa.snapshot_destroy("tank/fs@a").expect("destroy a");
    assert!(spa.space().allocated < with_all, "destroying @a frees its unique blocks");
    assert_eq!(spa.read("tank/fs@b", o, 0, 4).expect("read b"), vec![2; 4]);
    assert_eq!(spa.read("tank/fs@b", o, 3 << 20, 4).expect("read b"), vec![1; 4]);
    spa.dataset_destroy("tank/fs").expect("destroy fs");
    for _ in 0..4 {
        spa.dataset_create("tank/x", DatasetProps::default()).expect("churn");
        spa.dataset_destroy("tank/x").expect("churn");
    }
    let now = spa.space().allocated;
    assert!(now <= base + 64 * 1024, "leak: {base} -> {now}");
}

#[test]
fn bad_input_gets_typed_errors_and_changes_nothing() {
    let mut spa = pool(16 * MIB);
    assert!(matches!(
        spa.object_alloc("tank", &ObjectSpec::new(19, 1000, 0, 0)),
        Err(DmuError::InvalidBlockSize { .. })
    ));
    assert!(matches!(
        spa.object_alloc("tank", &ObjectSpec::new(19, 1 << 18, 0, 0)),
        Err(DmuError::InvalidBlockSize { .. })
    ));
    assert!(matches!(
        spa.object_alloc("tank", &ObjectSpec::new(0, 512, 0, 0)),
        Err(DmuError::InvalidType { .. })
    ));
    assert!(matches!(
        spa.object_alloc("tank", &ObjectSpec::new(19, 512, 0, 321)),
        Err(DmuError::BonusTooLong { .. })
    ));
    assert!(matches!(spa.object_alloc("nope", &file_spec(512)), Err(DmuError::NoSuchDataset(_))));
    let o = spa.object_alloc("tank", &file_spec(512)).expect("alloc");
    assert!(matches!(
        spa.write("tank", o, u64::MAX - 2, b"abc"),
        Err(DmuError::OffsetOverflow { .. })
    ));
    assert!(matches!(spa.write("tank", 99, 0, b"abc"), Err(DmuError::NoSuchObject { object: 99 })));
    assert!(matches!(spa.write("tank", 0, 0, b"abc"), Err(DmuError::InvalidObject { object: 0 })));
    assert!(matches!(spa.set_bonus("tank", o, 26, &[0; 65]), Err(DmuError::BonusTooLong { .. })));
    assert!(matches!(
        spa.object_claim("tank", o, &file_spec(512)),
        Err(DmuError::ObjectExists { .. })
    ));
    assert!(matches!(
        spa.dataset_create("tank/a b", DatasetProps::default()),
        Err(DslError::InvalidName(_))
    ));
    assert!(matches!(
        spa.dataset_create("tank/a/b", DatasetProps::default()),
        Err(DslError::NoSuchDataset(_))
    ));
    assert!(matches!(
        spa.dataset_create("tank", DatasetProps::default()),
        Err(DslError::Exists(_))
    ));
    assert!(matches!(spa.dataset_destroy("tank"), Err(DslError::Busy(_))));
    assert!(matches!(spa.rollback("tank"), Err(DslError::NoSnapshot(_))));
    assert!(matches!(spa.snapshot("tank@"), Err(DslError::InvalidName(_))));
    assert_eq!(spa.objects("tank").expect("list"), vec![o]);
}

#[test]
fn full_pool_returns_enospc_and_stays_usable() {
    let mut spa = pool(8 * MIB);
    let o = spa.object_alloc("tank", &file_spec(131072)).expect("alloc");
    let chunk = vec![9u8; 131072];
    let mut written = 0u64;
    let err = loop {
        match spa.write("tank", o, written, &chunk) {
            Ok(()) => written += 131072,
            Err(e) => break e,
        }
        assert!(written < 64 * MIB, "never ran out");
    };
    assert_eq!(err, DmuError::NoSpace);
    spa.txg_sync().expect("sync after ENOSPC");
    spa.free_range("tank", o, 0, DMU_OBJECT_END).expect("free");
    spa.txg_sync().expect("sync");
    for _ in 0..4 {
        spa.write("tank", o, 0, b"again").expect("write");
        spa.txg_sync().expect("sync");
    }
    let mut spa = reimport(spa);
    assert_eq!(spa.read("tank", o, 0, 5).expect("read"), b"again");
}

#[test]
fn importing_garbage_fails_cleanly() {
    let zero: Box<dyn BlockDevice> = Box::new(MemoryDevice::new(4 * MIB));
    assert!(matches!(Spa::import(zero, SpaConfig::default(), None), Err(ImportError::NotAPool)));
    let mut noise = MemoryDevice::new(4 * MIB);
    let mut x = 12345u64;
    for b in noise.image_mut() {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *b = (x >> 56) as u8;
    }
    assert!(matches!(
        Spa::import(Box::new(noise), SpaConfig::default(), None),
        Err(ImportError::NotAPool)
    ));
    let tiny: Box<dyn BlockDevice> = Box::new(MemoryDevice::new(4096));
    assert!(matches!(Spa::import(tiny, SpaConfig::default(), None), Err(ImportError::NotAPool)));
}

#[test]
fn import_falls_back_past_a_torn_uberblock_and_can_rewind() {
    let mut spa = pool(16 * MIB);
    let o = spa.object_alloc("tank", &file_spec(512)).expect("alloc");
    spa.write("tank", o, 0, b"one").expect("w");
    let t1 = spa.txg_sync().expect("sync");
    spa.write("tank", o, 0, b"two").expect("w");
    let t2 = spa.txg_sync().expect("sync");
    let mut dev = spa.into_device();
    let mut img = vec![0u8; dev.size_bytes() as usize];
    dev.read(0, &mut img).expect("image");
    let size = img.len() as u64;
    for l in 0..2 {
        let at = engine::vdev::label::uberblock_offset(l, size, t2) as usize;
        img[at + 20] ^= 0xff;
    }
    let mut spa =
        Spa::import(Box::new(MemoryDevice::from_image(img.clone())), SpaConfig::default(), None)
            .expect("fallback");
    assert_eq!(spa.last_synced_txg(), t1);
    assert_eq!(spa.read("tank", o, 0, 3).expect("read"), b"one");
    let dev2 = MemoryDevice::from_image(img);
    let r = Spa::import(Box::new(dev2), SpaConfig::default(), Some(t1 - 1)).expect("rewind");
    assert!(r.last_synced_txg() < t1);
}

/// Regression (found by `zsim run --profile crash`, seeds 7/58/64): a free_range shorter
/// than a block that starts on a block boundary zeroed nothing, because the tail-partial
/// branch only ran when the tail was in a later block than the head.
#[test]
fn aligned_sub_block_free_range_zeroes_its_bytes() {
    let mut spa = pool(16 * MIB);
    let o = spa.object_alloc("tank", &file_spec(16384)).expect("alloc");
    spa.write("tank", o, 0, &vec![5u8; 3 * 16384]).expect("write");
    spa.free_range("tank", o, 16384, 1000).expect("free");
    let got = spa.read("tank", o, 16384, 16384).expect("read");
    assert!(got[..1000].iter().all(|&b| b == 0), "freed bytes must read zero");
    assert!(got[1000..].iter().all(|&b| b == 5), "the rest of the block is kept");
    assert_eq!(spa.read("tank", o, 0, 16384).expect("read"), vec![5u8; 16384]);
}

/// Regression (found by the `ops` fuzz target, artifact timeout-object-near-dn-max-object):
/// importing a pool whose head holds an object near DN_MAX_OBJECT scanned every dnode block
/// up to the meta-dnode's maxblkid (2^43 lookups) instead of skipping hole subtrees.
#[test]
fn an_object_near_dn_max_object_imports_quickly() {
    let mut spa = pool(16 * MIB);
    let far = engine::limits::DN_MAX_OBJECT - 1;
    spa.object_claim("tank", far, &file_spec(512)).expect("claim");
    spa.write("tank", far, 0, b"far").expect("write");
    spa.snapshot("tank@s").expect("snapshot");
    let mut spa = reimport(spa);
    assert_eq!(spa.objects("tank").expect("list"), vec![far]);
    assert_eq!(spa.objects("tank@s").expect("list"), vec![far]);
    assert_eq!(spa.read("tank", far, 0, 3).expect("read"), b"far");
}

/// Regression (found by `zsim run --profile unrestricted`, seed 76): a write spanning two
/// partial blocks changed the first, then failed reading the second (a damaged block) and
/// returned an error with the object already changed. A failed call must change nothing.
#[test]
fn a_write_that_cannot_read_its_last_block_changes_nothing() {
    let mut spa = pool(16 * MIB);
    let o = spa.object_alloc("tank", &file_spec(4096)).expect("alloc");
    spa.write("tank", o, 0, &[1u8; 8192]).expect("write");
    spa.snapshot("tank@s").expect("snapshot");
    let head = spa.pool_trees().0.iter().find(|t| t.name == "tank").expect("tank").head;
    let mut second = None;
    engine::dmu::traverse::traverse_objset(spa.zio_mut(), &head, 0, &mut |_, v| {
        if let engine::dmu::traverse::Visit::Block { object, level: 0, blkid: 1, bp, .. } = v {
            if *object == o {
                second = Some(**bp);
            }
        }
    })
    .expect("traverse");
    let bp = second.expect("block 1");
    let mut dev = spa.export().expect("export");
    dev.write(bp.dva[0].offset, &[0xbd; 4096]).expect("damage block 1");
    let mut spa = Spa::import(dev, SpaConfig::default(), None).expect("import");
    let err = spa.write("tank", o, 4000, &[2u8; 200]).expect_err("block 1 cannot be read");
    assert!(matches!(err, DmuError::Zio(_)), "{err:?}");
    assert_eq!(spa.read("tank", o, 0, 4096).expect("block 0"), vec![1u8; 4096], "changed");
}

/// A user object may have the type DMU_OT_DNODE (10): only object 0's blocks are dnode blocks,
/// so its data is sent and received as data (a mutant that walked every object of that type
/// as dnode blocks survived the simulator, whose workloads never make one).
#[test]
fn a_user_object_of_the_dnode_type_is_sent_as_data() {
    let mut spa = pool(64 * MIB);
    let obj = spa.object_alloc("tank", &ObjectSpec::new(10, 16384, 0, 0)).expect("alloc");
    let data: Vec<u8> = (0..3 * 16384u32).map(|i| (i % 253) as u8 | 1).collect();
    spa.write("tank", obj, 0, &data).expect("write");
    spa.snapshot("tank@a").expect("snapshot");
    let mut stream = Vec::new();
    let opts = engine::dmu::send::SendOptions::default();
    spa.send("tank@a", None, &opts, &mut stream).expect("send");
    let recv = engine::dmu::recv::RecvOptions::default();
    let out = spa.recv("tank/copy", &mut stream.as_slice(), &recv).expect("receive");
    let got = spa.read(&out.snapshot, obj, 0, data.len() as u64).expect("read");
    assert_eq!(got, data, "the copy of a DMU_OT_DNODE-typed object holds its data");
}

/// An incremental names only what changed after its source: a hole punched before the source
/// snapshot (born in an older txg) is not sent again as a FREE, as OpenZFS skips holes born
/// at or before the source txg (hole_birth). Kills traverse.rs's skip test with the `&&` of
/// its birth-0 exception turned into `||` (old holes revisited, redundant FREE records).
#[test]
fn an_incremental_does_not_resend_a_hole_punched_before_its_source() {
    use engine::stream::record::{Record, StreamReader};
    let mut spa = pool(64 * MIB);
    let obj = spa.object_alloc("tank", &file_spec(4096)).expect("alloc");
    spa.write("tank", obj, 0, &[7u8; 8 * 4096]).expect("write");
    spa.txg_sync().expect("sync");
    spa.free_range("tank", obj, 2 * 4096, 4096).expect("punch block 2");
    spa.txg_sync().expect("sync");
    spa.snapshot("tank@a").expect("snapshot a");
    spa.write("tank", obj, 6 * 4096, &[9u8; 4096]).expect("write block 6");
    spa.snapshot("tank@b").expect("snapshot b");
    let mut stream = Vec::new();
    let opts = engine::dmu::send::SendOptions::default();
    spa.send("tank@b", Some("tank@a"), &opts, &mut stream).expect("send");
    let mut r = StreamReader::new(&stream[..]);
    let (mut writes, mut old_hole_frees) = (0, Vec::new());
    while let Some(rec) = r.next_record().expect("a valid stream") {
        match rec {
            Record::Write { drr, .. } if drr.object == obj => writes += 1,
            Record::Free(f)
                if f.object == obj
                    && f.offset < 3 * 4096
                    && f.offset.saturating_add(f.length) > 2 * 4096 =>
            {
                old_hole_frees.push(f);
            }
            _ => {}
        }
    }
    assert_eq!(writes, 1, "the one changed block is sent");
    assert!(old_hole_frees.is_empty(), "a hole older than @a was sent again: {old_hole_frees:?}");
}

/// What the space check accepts, a sync can write: a small pool is filled with one-block
/// writes to objects 32 apart (each dirties its own dnode block) until a write is refused
/// for space; every inline sync and the last one succeed, and nothing suspends the pool.
/// Kills a write estimate that leaves out the dnode block a write dirties
/// (`Dnode::write_metadata_bytes`).
#[test]
fn every_write_the_space_check_accepts_can_be_synced() {
    let mut spa = pool(4 * MIB);
    let spec = ObjectSpec::new(19, 512, 0, 0);
    let mut accepted = 0u64;
    for k in 1..100_000u64 {
        let obj = k * engine::limits::DNODES_PER_BLOCK;
        match spa.object_claim("tank", obj, &spec) {
            Ok(()) => {}
            Err(DmuError::NoSpace) => break,
            Err(e) => panic!("claim of object {obj} after {accepted} writes: {e}"),
        }
        match spa.write("tank", obj, 0, &[0xa5; 512]) {
            Ok(()) => accepted += 1,
            Err(DmuError::NoSpace) => break,
            Err(e) => panic!("write to object {obj} after {accepted} writes: {e}"),
        }
    }
    assert!(accepted > 10, "the pool filled after {accepted} writes");
    spa.txg_sync().expect("every accepted write syncs");
    let mut spa = reimport(spa);
    let last = accepted * engine::limits::DNODES_PER_BLOCK;
    assert_eq!(spa.read("tank", last, 0, 512).expect("read back"), vec![0xa5; 512]);
}

/// `SendStats` describes the stream written and the traversal behind it: bytes and records
/// are the stream's, and every block pointer of the three data blocks was visited.
#[test]
fn send_stats_count_the_stream_and_the_traversal() {
    use engine::stream::record::StreamReader;
    let mut spa = pool(64 * MIB);
    let obj = spa.object_alloc("tank", &file_spec(4096)).expect("alloc");
    spa.write("tank", obj, 0, &[3u8; 3 * 4096]).expect("write");
    spa.snapshot("tank@a").expect("snapshot");
    let mut stream = Vec::new();
    let opts = engine::dmu::send::SendOptions::default();
    let stats = spa.send("tank@a", None, &opts, &mut stream).expect("send");
    let mut r = StreamReader::new(&stream[..]);
    let mut records = 0;
    while r.next_record().expect("a valid stream").is_some() {
        records += 1;
    }
    assert_eq!((stats.bytes, stats.records), (stream.len() as u64, records));
    assert!(stats.blocks_visited >= 3, "{stats:?}");
}

/// With `-c`, data blocks go out as stored (lz4) and metadata blocks uncompressed, as
/// OpenZFS's send does (`!DMU_OT_IS_METADATA` in its compressed-send test: metadata may
/// need byteswapping on receive). Kills the mutant that inverts that test.
#[test]
fn a_compressed_send_sends_data_as_stored_and_metadata_uncompressed() {
    use engine::stream::record::{Record, StreamReader};
    let mut spa = pool(64 * MIB);
    let props = DatasetProps { compress: engine::Compress::Lz4, ..DatasetProps::default() };
    spa.dataset_create("tank/c", props).expect("dataset");
    let compressible: Vec<u8> = (0..16384u32).map(|i| (i / 64) as u8).collect();
    let data = spa.object_alloc("tank/c", &ObjectSpec::new(19, 16384, 0, 0)).expect("alloc");
    let meta = spa.object_alloc("tank/c", &ObjectSpec::new(20, 16384, 0, 0)).expect("alloc");
    spa.write("tank/c", data, 0, &compressible).expect("write data");
    spa.write("tank/c", meta, 0, &compressible).expect("write metadata");
    spa.snapshot("tank/c@s").expect("snapshot");
    let mut stream = Vec::new();
    let opts = engine::dmu::send::SendOptions { compressed: true, ..Default::default() };
    spa.send("tank/c@s", None, &opts, &mut stream).expect("send");
    let mut r = StreamReader::new(&stream[..]);
    let mut seen = Vec::new();
    while let Some(rec) = r.next_record().expect("a valid stream") {
        if let Record::Write { drr, .. } = rec {
            if drr.object == data || drr.object == meta {
                seen.push((drr.object, drr.compressiontype, drr.compressed_size));
            }
        }
    }
    seen.sort_unstable();
    let lz4 = engine::Compress::Lz4 as u8;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].0 == data && seen[0].1 == lz4 && seen[0].2 < 16384, "data: {seen:?}");
    assert!(seen[1].0 == meta && seen[1].1 == 0 && seen[1].2 == 0, "metadata: {seen:?}");
}
