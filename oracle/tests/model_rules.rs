//! Unit tests of the reference model's ZFS rules (free_range, truncate, bonus, allocation,
//! names, argument checks), grounded in the real OpenZFS `truncate` and `holes` fixtures:
//! the model and the engine must both give the maxblkid/size the real manifests list.

use engine::{MemoryDevice, ObjectSpec, Spa, SpaConfig};
use oracle::manifest::{manifest, manifest_of_model, parse_manifest, ManifestLine};
use oracle::model::{ErrKind, Model, MODEL_MAX_OFFSET, MODEL_OBJECT_END};

const FS: &str = "tank";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../golden/fixtures/openzfs");

fn file_spec(blksz: u32) -> ObjectSpec {
    ObjectSpec::new(19, blksz, 26, 32)
}

fn filled(model: &mut Model, blksz: u32, blocks: u64) -> u64 {
    let obj = model.object_alloc(FS, &file_spec(blksz)).expect("alloc");
    let len = usize::try_from(u64::from(blksz) * blocks).expect("small");
    model.write(FS, obj, 0, &vec![0xab; len]).expect("write");
    obj
}

#[test]
fn truncate_scenario_gives_openzfs_maxblkids() {
    let mut m = Model::new(FS);
    let a = filled(&mut m, 8192, 10);
    let b = filled(&mut m, 4096, 4);
    let c = filled(&mut m, 131_072, 1);
    let d = filled(&mut m, 4096, 8);
    m.free_range(FS, a, 3 * 8192 + 100, MODEL_OBJECT_END).expect("A");
    m.free_range(FS, b, 0, MODEL_OBJECT_END).expect("B");
    m.free_range(FS, c, 5000, MODEL_OBJECT_END).expect("C");
    m.free_range(FS, d, 2 * 4096, MODEL_OBJECT_END).expect("D");
    assert_eq!(m.object_info(FS, d).expect("D").maxblkid, 1);
    m.write(FS, d, 6 * 4096, &[7; 4096]).expect("D write");
    let got: Vec<u64> =
        [a, b, c, d].iter().map(|&o| m.object_info(FS, o).expect("i").maxblkid).collect();
    assert_eq!(got, vec![3, 0, 0, 6]);
    let a_tail = m.read(FS, a, 3 * 8192, 8192).expect("read A");
    assert!(a_tail[..100].iter().all(|&x| x == 0xab), "kept bytes survive");
    assert!(a_tail[100..].iter().all(|&x| x == 0), "bytes past the new end are zero");
    assert!(m.read(FS, b, 0, 4096).expect("B").iter().all(|&x| x == 0));
    let c_data = m.read(FS, c, 0, 131_072).expect("C");
    assert!(c_data[..5000].iter().all(|&x| x == 0xab) && c_data[5000..].iter().all(|&x| x == 0));
    let d_data = m.read(FS, d, 0, 7 * 4096).expect("D");
    assert!(d_data[8192..6 * 4096].iter().all(|&x| x == 0), "truncated blocks stay holes");
}

#[test]
fn free_range_rules() {
    let mut m = Model::new(FS);
    let o = filled(&mut m, 4096, 4);
    m.free_range(FS, o, 5 * 4096, 100).expect("past maxblkid is a no-op");
    m.free_range(FS, o, 4 * 4096, MODEL_OBJECT_END).expect("truncate at the end: no-op");
    assert_eq!(m.object_info(FS, o).expect("info").maxblkid, 3);
    m.free_range(FS, o, 100, 200).expect("inside one block");
    let data = m.read(FS, o, 0, 4 * 4096).expect("read");
    assert!(data[..100].iter().all(|&x| x == 0xab) && data[100..300].iter().all(|&x| x == 0));
    assert!(data[300..].iter().all(|&x| x == 0xab));
    m.free_range(FS, o, 0, 10).expect("aligned start inside one block");
    assert!(m.read(FS, o, 0, 10).expect("read").iter().all(|&x| x == 0));
    m.free_range(FS, o, 4096, 2 * 4096).expect("whole blocks");
    assert!(!m.object(FS, o).expect("obj").blocks.contains_key(&1), "whole block became a hole");
    m.free_range(FS, o, 3 * 4096, 4096).expect("whole last block, not a truncation");
    assert_eq!(m.object_info(FS, o).expect("info").maxblkid, 3, "only truncation lowers it");
    m.free_range(FS, o, 3000, u64::MAX - 3000).expect("huge length is clipped");
    assert!(m.read(FS, o, 3000, 4 * 4096 - 3000).expect("read").iter().all(|&x| x == 0));
    assert_eq!(m.free_range(FS, o, 10, u64::MAX - 5), Err(ErrKind::OffsetOverflow));
    m.free_range(FS, o, 1 << 63, 1).expect("free_range checks no DMU_MAX_OFFSET");
    m.free_range(FS, o, 1, MODEL_OBJECT_END).expect("truncate to 1 byte");
    assert_eq!(m.object_info(FS, o).expect("info").maxblkid, 0);
}

#[test]
fn writes_reads_and_limits() {
    let mut m = Model::new(FS);
    let o = m.object_alloc(FS, &file_spec(512)).expect("alloc");
    assert_eq!(o, 1, "lowest free number");
    m.write(FS, o, (1 << 30) + 7, b"xyz").expect("sparse");
    assert_eq!(m.object_info(FS, o).expect("i").maxblkid, ((1 << 30) + 7) / 512);
    assert_eq!(m.object(FS, o).expect("o").blocks.len(), 1);
    assert_eq!(m.read(FS, o, (1 << 30) + 6, 5).expect("r"), vec![0, b'x', b'y', b'z', 0]);
    assert_eq!(m.write(FS, o, MODEL_MAX_OFFSET - 1, b"ab"), Err(ErrKind::OffsetOverflow));
    m.write(FS, o, MODEL_MAX_OFFSET - 2, b"ab").expect("exactly up to the limit");
    assert_eq!(m.read(FS, o, u64::MAX, 1), Err(ErrKind::OffsetOverflow));
    assert_eq!(m.write(FS, 0, 0, b"a"), Err(ErrKind::InvalidObject));
    assert_eq!(m.write(FS, 1 << 48, 0, b"a"), Err(ErrKind::InvalidObject));
    assert_eq!(m.write(FS, 9, 0, b"a"), Err(ErrKind::NoSuchObject));
    assert_eq!(m.write(FS, 9, 0, b""), Err(ErrKind::NoSuchObject), "empty writes hold too");
    assert_eq!(m.object_info(FS, 0), Err(ErrKind::NoSuchObject), "info does not check numbers");
    assert_eq!(m.write("tank@x", o, 0, b"a"), Err(ErrKind::ReadOnly), "ReadOnly before lookup");
    assert_eq!(m.write("nope", o, 0, b"a"), Err(ErrKind::NoSuchDataset));
    assert_eq!(m.read("tank@x", o, 0, 1), Err(ErrKind::NoSuchDataset));
}

#[test]
fn allocation_spec_checks_follow_the_engine_order() {
    let mut m = Model::new(FS);
    let bad = |ot, blksz, ibs, bt, bl| ObjectSpec {
        ot,
        blksz,
        indblkshift: ibs,
        bonustype: bt,
        bonuslen: bl,
    };
    assert_eq!(m.object_alloc(FS, &bad(0, 7, 0, 0, 999)), Err(ErrKind::InvalidType));
    assert_eq!(m.object_alloc(FS, &bad(19, 7, 0, 60, 0)), Err(ErrKind::InvalidType));
    assert_eq!(m.object_alloc(FS, &bad(19, 1536, 0, 0, 999)), Err(ErrKind::InvalidBlockSize));
    assert_eq!(m.object_alloc(FS, &bad(19, 256 << 10, 0, 0, 0)), Err(ErrKind::InvalidBlockSize));
    assert_eq!(m.object_alloc(FS, &bad(19, 512, 11, 0, 999)), Err(ErrKind::InvalidIndBlkShift));
    assert_eq!(m.object_alloc(FS, &bad(19, 512, 0, 0, 321)), Err(ErrKind::BonusTooLong));
    assert_eq!(m.object_alloc("tank@s", &file_spec(512)), Err(ErrKind::ReadOnly));
    assert_eq!(m.object_alloc(FS, &bad(0x8a, 512, 0, 0, 0)), Err(ErrKind::InvalidType));
    assert_eq!(m.object_alloc(FS, &bad(0x89, 512, 17, 0x80, 0)), Ok(1), "new-style types");
    m.object_claim(FS, 3, &file_spec(512)).expect("claim");
    assert_eq!(m.object_claim(FS, 3, &file_spec(512)), Err(ErrKind::ObjectExists));
    assert_eq!(m.object_alloc(FS, &file_spec(512)), Ok(2), "fills the gap");
    assert_eq!(m.object_alloc(FS, &file_spec(512)), Ok(4));
    m.object_free(FS, 2).expect("free");
    assert_eq!(m.object_alloc(FS, &file_spec(512)), Ok(2), "reuses the lowest");
    assert_eq!(m.object_reclaim(FS, 9, &file_spec(512)), Err(ErrKind::NoSuchObject));
}

#[test]
fn bonus_capacity_follows_nblkptr() {
    let mut m = Model::new(FS);
    for (bonuslen, nblkptr, capacity) in
        [(0, 3, 64), (64, 3, 64), (65, 2, 192), (192, 2, 192), (193, 1, 320), (320, 1, 320)]
    {
        let o = m.object_alloc(FS, &ObjectSpec::new(19, 512, 26, bonuslen)).expect("alloc");
        let info = m.object_info(FS, o).expect("info");
        assert_eq!((info.nblkptr, usize::from(info.bonuslen)), (nblkptr, bonuslen));
        assert_eq!(m.bonus(FS, o).expect("bonus"), (26, vec![0; bonuslen]), "zeroed at alloc");
        m.set_bonus(FS, o, 44, &vec![1; capacity]).expect("fits");
        assert_eq!(m.set_bonus(FS, o, 44, &vec![1; capacity + 1]), Err(ErrKind::BonusTooLong));
        assert_eq!(m.set_bonus(FS, o, 60, &[]), Err(ErrKind::InvalidType));
        assert_eq!(m.object_info(FS, o).expect("info").bonuslen as usize, capacity);
    }
}

#[test]
fn datasets_snapshots_and_rollback() {
    let mut m = Model::new(FS);
    assert_eq!(m.dataset_create("tank/a/b"), Err(ErrKind::NoSuchDataset));
    m.dataset_create("tank/a").expect("create");
    assert_eq!(m.dataset_create("tank/a"), Err(ErrKind::Exists));
    for bad in ["tank//a", "other/a", "tank/a@s", "tank/a b", "tank/%recv", ""] {
        assert_eq!(m.dataset_create(bad), Err(ErrKind::InvalidName), "{bad:?}");
    }
    m.dataset_create("tank/a/b").expect("child");
    assert_eq!(m.dataset_destroy("tank/a"), Err(ErrKind::Busy));
    assert_eq!(m.dataset_destroy("tank"), Err(ErrKind::Busy));
    let o = filled(&mut m, 512, 1);
    m.snapshot("tank@s1").expect("snap");
    assert_eq!(m.snapshot("tank@s1"), Err(ErrKind::Exists));
    assert_eq!(m.snapshot("tank@"), Err(ErrKind::InvalidName));
    m.write(FS, o, 0, b"new").expect("write");
    m.snapshot("tank@s2").expect("snap");
    m.write(FS, o, 0, b"NEW").expect("write");
    assert_eq!(m.snapshots(FS).expect("list"), vec!["tank@s1", "tank@s2"]);
    assert_eq!(m.read("tank@s1", o, 0, 3).expect("r"), vec![0xab; 3]);
    m.rollback(FS).expect("rollback");
    assert_eq!(m.read(FS, o, 0, 3).expect("r"), b"new".to_vec());
    m.snapshot_destroy("tank@s2").expect("destroy");
    assert_eq!(m.snapshot_destroy("tank@s2"), Err(ErrKind::NoSuchDataset));
    assert_eq!(m.rollback("tank/a"), Err(ErrKind::NoSnapshot));
    m.dataset_destroy("tank/a/b").expect("leaf");
    assert_eq!(m.datasets(), vec!["tank", "tank/a"]);
}

/// Non-hash fields of a manifest line (contents differ: the fixtures' data is random).
fn shape(l: &ManifestLine) -> (u64, u8, u32, u64, u64, u8, u16) {
    (l.obj, l.ot, l.bs, l.maxblkid, l.size, l.bonustype, l.bonuslen)
}

fn fixture_shapes(scenario: &str, which: &str) -> Vec<(u64, u8, u32, u64, u64, u8, u16)> {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{scenario}/manifest-{which}.txt"));
    let lines = parse_manifest(&text.expect("fixture manifest")).expect("fixture parses");
    lines.iter().filter(|l| l.obj != 1).map(shape).collect()
}

fn our_shapes(text: &str) -> Vec<(u64, u8, u32, u64, u64, u8, u16)> {
    parse_manifest(text).expect("ours parses").iter().map(shape).collect()
}

/// The truncate scenario on the engine and on the model; object 1 stands in for the
/// master node, E (object 6) is the untouched control.
fn truncate_scenario(spa: &mut Spa, m: &mut Model) {
    let objs = [(8192u32, 10u64), (4096, 4), (131_072, 1), (4096, 8), (4096, 3)];
    let master = ObjectSpec::new(21, 512, 0, 0);
    assert_eq!(
        spa.object_alloc(FS, &master).expect("engine"),
        m.object_alloc(FS, &master).expect("model")
    );
    for (bs, n) in objs {
        let o = spa.object_alloc(FS, &file_spec(bs)).expect("engine alloc");
        assert_eq!(m.object_alloc(FS, &file_spec(bs)), Ok(o));
        let data: Vec<u8> = (0..u64::from(bs) * n).map(|i| (i % 251) as u8 + 1).collect();
        spa.write(FS, o, 0, &data).expect("engine write");
        m.write(FS, o, 0, &data).expect("model write");
    }
    spa.snapshot("tank@before").expect("snap");
    m.snapshot("tank@before").expect("snap");
    let frees = [(2u64, 3 * 8192 + 100), (3, 0), (4, 5000), (5, 2 * 4096)];
    for (o, off) in frees {
        spa.free_range(FS, o, off, MODEL_OBJECT_END).expect("engine truncate");
        m.free_range(FS, o, off, MODEL_OBJECT_END).expect("model truncate");
    }
    spa.write(FS, 5, 6 * 4096, &[9; 4096]).expect("engine write");
    m.write(FS, 5, 6 * 4096, &[9; 4096]).expect("model write");
    spa.snapshot("tank@after").expect("snap");
    m.snapshot("tank@after").expect("snap");
}

#[test]
fn truncate_scenario_matches_openzfs_manifests_on_engine_and_model() {
    let dev = Box::new(MemoryDevice::new(64 << 20));
    let mut spa = Spa::create(dev, FS, SpaConfig::default()).expect("create");
    let mut m = Model::new(FS);
    truncate_scenario(&mut spa, &mut m);
    for which in ["before", "after"] {
        let snap = format!("tank@{which}");
        let ours = manifest(&mut spa, &snap).expect("engine manifest");
        assert_eq!(ours, manifest_of_model(&m, &snap).expect("model manifest"), "{which}");
        assert!(ours.starts_with(&format!("# manifest v1 snapshot=@{which}\n")));
        let mine: Vec<_> = our_shapes(&ours).into_iter().filter(|s| s.0 != 1).collect();
        assert_eq!(mine, fixture_shapes("truncate", which), "{which}");
    }
}
