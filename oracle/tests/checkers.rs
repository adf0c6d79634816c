//! Self-tests of the checkers: a planted bug must be reported. Damage behind the engine's
//! back (a flipped data byte on the device, a leaked or double-freed extent in the
//! allocator, a model one byte off) must show up in integrity or conformance, and a damaged
//! block must read back as an error, never as different data (property 7).

use engine::dmu::traverse::{traverse_objset, Visit};
use engine::zio::blkptr::BlkPtr;
use engine::{MemoryDevice, ObjectSpec, Spa, SpaConfig};
use oracle::integrity::{self, Problem};
use oracle::manifest::{manifest, manifest_of_model, parse_manifest};
use oracle::op::{export_import, pattern};
use oracle::{conformance, random_ops, run_checked, GenConfig, Model};

const FS: &str = "tank";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../golden/fixtures/openzfs");

fn fresh() -> (Spa, Model) {
    let dev = Box::new(MemoryDevice::new(64 << 20));
    (Spa::create(dev, FS, SpaConfig::default()).expect("create"), Model::new(FS))
}

/// An object with `blocks` blocks of 4 KiB pattern data in engine and model, synced.
fn populated(blocks: u64) -> (Spa, Model, u64) {
    let (mut spa, mut model) = fresh();
    let spec = ObjectSpec::new(19, 4096, 26, 32);
    let o = spa.object_alloc(FS, &spec).expect("alloc");
    assert_eq!(model.object_alloc(FS, &spec), Ok(o));
    let data = pattern(7, 0, usize::try_from(4096 * blocks).expect("small"));
    spa.write(FS, o, 0, &data).expect("write");
    model.write(FS, o, 0, &data).expect("write");
    spa.txg_sync().expect("sync");
    (spa, model, o)
}

/// The synced level-0 pointer of `blkid` in `object` of the head of `fs`.
fn data_bp(spa: &mut Spa, fs: &str, object: u64, blkid: u64) -> BlkPtr {
    let (trees, _) = spa.pool_trees();
    let root = trees.iter().find(|t| t.name == fs).expect("dataset").head;
    let mut found = None;
    traverse_objset(spa.zio_mut(), &root, 0, &mut |_, v| {
        if let Visit::Block { object: o, level: 0, blkid: b, bp, .. } = v {
            if *o == object && *b == blkid && !bp.is_hole() {
                found = Some(**bp);
            }
        }
    })
    .expect("traverse");
    found.expect("block exists")
}

#[test]
fn integrity_counts_a_healthy_pool() {
    let (mut spa, _, _) = populated(40);
    let report = integrity::check(&mut spa).expect("healthy");
    assert_eq!(report.asize_bytes + report.zil_bytes, spa.space().allocated);
    assert!(report.blocks_by_level.get(&0).copied().unwrap_or(0) >= 40, "{report:?}");
    assert!(
        report.blocks_by_level.get(&1).copied().unwrap_or(0) >= 1,
        "40 blocks need an indirect"
    );
    assert!(report.mos_blocks >= 2 && report.trees == 1, "{report:?}");
}

#[test]
fn flipped_data_byte_is_unreadable_never_wrong() {
    let (mut spa, model, o) = populated(4);
    let bp = data_bp(&mut spa, FS, o, 2);
    assert!(!bp.embedded && bp.dva[0].is_valid() && !bp.dva[1].is_valid(), "{bp:?}");
    let mut dev = spa.export().expect("export");
    let mut sector = vec![0u8; 512];
    dev.read(bp.dva[0].offset, &mut sector).expect("read sector");
    sector[17] ^= 0x40;
    dev.write(bp.dva[0].offset, &sector).expect("damage");
    let mut spa = Spa::import(dev, SpaConfig::default(), None).expect("import (metadata intact)");
    let err = integrity::check(&mut spa).expect_err("damage must be reported");
    let unreadable = err.problems.iter().any(
        |p| matches!(p, Problem::Unreadable { object, level: 0, blkid: 2, .. } if *object == o),
    );
    assert!(unreadable, "{err}");
    assert!(spa.read(FS, o, 2 * 4096, 4096).is_err(), "damaged block must not read");
    assert!(spa.read(FS, o, 2 * 4096 + 600, 10).is_err(), "nor any part of it");
    assert_eq!(spa.read(FS, o, 4096, 4096).expect("neighbour"), pattern(7, 4096, 4096));
    assert!(conformance::check(&mut spa, &model).is_err(), "conformance sees the read error");
}

#[test]
fn leaked_extent_is_reported() {
    let (mut spa, _, _) = populated(2);
    let leak = spa.zio_mut().ms.alloc(8192).expect("space");
    let err = integrity::check(&mut spa).expect_err("leak");
    assert!(err.problems.iter().any(|p| matches!(p, Problem::SpaceMismatch { .. })), "{err}");
    spa.zio_mut().ms.free_now(leak);
    integrity::check(&mut spa).expect("healthy again");
}

#[test]
fn live_block_freed_behind_the_engine_is_reported() {
    let (mut spa, _, o) = populated(2);
    let bp = data_bp(&mut spa, FS, o, 1);
    spa.zio_mut().ms.free_now(bp.dva[0]);
    let err = integrity::check(&mut spa).expect_err("double free");
    assert!(err.problems.iter().any(|p| matches!(p, Problem::LiveBlockFree { .. })), "{err}");
    assert!(err.problems.iter().any(|p| matches!(p, Problem::SpaceMismatch { .. })), "{err}");
}

#[test]
fn deferred_free_of_a_live_block_is_reported() {
    let (mut spa, _, o) = populated(2);
    let bp = data_bp(&mut spa, FS, o, 0);
    let txg = spa.open_txg();
    spa.zio_mut().ms.free_deferred(txg, bp.dva[0]);
    let err = integrity::check(&mut spa).expect_err("deferred overlap");
    let hit = |p: &Problem| matches!(p, Problem::DeferredOverlap { dva, .. } if *dva == bp.dva[0]);
    assert!(err.problems.iter().any(hit), "{err}");
}

#[test]
fn conformance_reports_a_one_byte_difference() {
    let (mut spa, mut model, o) = populated(3);
    conformance::check(&mut spa, &model).expect("equal");
    model.write(FS, o, 5000, &[pattern(7, 5000, 1)[0] ^ 1]).expect("model only");
    let err = conformance::check(&mut spa, &model).expect_err("one byte off");
    assert!(err.what.contains("offset 0x1388"), "{err}");
}

#[test]
fn conformance_reports_a_difference_in_a_snapshot() {
    let (mut spa, mut model, o) = populated(1);
    spa.snapshot("tank@s").expect("snap");
    model.snapshot("tank@s").expect("snap");
    let mut shadow = Model::new(FS);
    shadow.object_claim(FS, o, &ObjectSpec::new(19, 4096, 26, 32)).expect("claim");
    shadow.write(FS, o, 0, &pattern(7, 0, 4096)).expect("write");
    shadow.write(FS, o, 4095, &[0]).expect("differs in the last byte");
    shadow.snapshot("tank@s").expect("snap");
    shadow.write(FS, o, 4095, &pattern(7, 4095, 1)).expect("head equal again");
    conformance::check(&mut spa, &model).expect("equal");
    let err = conformance::check(&mut spa, &shadow).expect_err("snapshot differs");
    assert!(err.what.contains("tank@s"), "{err}");
}

#[test]
fn sparse_objects_are_checked_cheaply_and_still_catch_differences() {
    let (mut spa, mut model) = fresh();
    let spec = ObjectSpec::new(19, 512, 0, 0);
    let o = spa.object_alloc(FS, &spec).expect("alloc");
    model.object_alloc(FS, &spec).expect("alloc");
    for off in [0u64, 1 << 30, 40 << 30, (1 << 62) - 512] {
        spa.write(FS, o, off, &pattern(3, off, 512)).expect("write");
        model.write(FS, o, off, &pattern(3, off, 512)).expect("write");
    }
    conformance::check(&mut spa, &model).expect("equal before sync");
    spa.txg_sync().expect("sync");
    conformance::check(&mut spa, &model).expect("equal after sync");
    integrity::check(&mut spa).expect("healthy");
    model.write(FS, o, 20 << 30, b"!").expect("model only");
    let err = conformance::check(&mut spa, &model).expect_err("found by the model's list");
    assert!(err.what.contains(&format!("{:#x}", 20u64 << 30)), "{err}");
}

#[test]
fn manifests_of_engine_and_model_agree_after_random_ops() {
    let (mut spa, mut model) = fresh();
    let cfg = GenConfig { write_len_max: 64 << 10, sparse: false, ..GenConfig::default() };
    run_checked(&mut spa, &mut model, &random_ops(11, 80, &cfg)).expect("conforms");
    spa.snapshot("tank@m").expect("snap");
    model.snapshot("tank@m").expect("snap");
    export_import(&mut spa).expect("export/import");
    let ours = manifest(&mut spa, "tank@m").expect("engine manifest");
    assert_eq!(ours, manifest_of_model(&model, "tank@m").expect("model manifest"));
    let lines = parse_manifest(&ours).expect("parses");
    assert_eq!(lines.len(), model.objects("tank@m").expect("objs").len());
}

#[test]
fn real_fixture_manifests_parse_and_bad_ones_do_not() {
    for scenario in ["basic", "basic-ec", "holes", "truncate", "freeobjects"] {
        for which in ["before", "after"] {
            let path = format!("{FIXTURES}/{scenario}/manifest-{which}.txt");
            let text = std::fs::read_to_string(&path).expect("fixture");
            let lines = parse_manifest(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(!lines.is_empty(), "{path}");
            let again: String = lines.iter().map(|l| l.format() + "\n").collect();
            let body: String =
                text.lines().filter(|l| !l.starts_with('#')).map(|l| l.to_owned() + "\n").collect();
            assert_eq!(again, body, "{path}: format(parse(x)) == x");
        }
    }
    let good = "obj=1 type=19 bs=512 maxblkid=0 size=512 bonustype=0 bonuslen=0 sha256=";
    let h = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert!(parse_manifest(&format!("{good}{h} bonus_sha256={h}\n")).is_ok());
    assert!(parse_manifest(&format!("{good}{h}\n")).is_err(), "missing field");
    let bad_size =
        format!("{} bonus_sha256={h}", format!("{good}{h}").replace("size=512", "size=9"));
    assert_eq!(parse_manifest(&bad_size).expect_err("size").line, 1);
    let twice = format!("{good}{h} bonus_sha256={h}\n{good}{h} bonus_sha256={h}\n");
    assert_eq!(parse_manifest(&twice).expect_err("order").line, 2);
}
