//! The intent log's promises, on the RAM vdev (every write durable at once, so dropping the
//! pool without export is a crash that keeps everything written): fsync survives a crash,
//! unsynced changes do not, a torn log replays whole operations only, replay is idempotent,
//! large writes are written in place, log space is returned, rollback discards the log.

use engine::zil::ZIL_BLOCK_SIZE;
use engine::{BlockDevice, MemoryDevice, ObjectSpec, Spa, SpaConfig};

const MIB: u64 = 1 << 20;

fn pool() -> Spa {
    Spa::create(Box::new(MemoryDevice::new(32 * MIB)), "tank", SpaConfig::default())
        .expect("create")
}

fn image_of(spa: Spa) -> Vec<u8> {
    let mut dev = spa.into_device();
    let mut img = vec![0u8; usize::try_from(dev.size_bytes()).expect("fits")];
    dev.read(0, &mut img).expect("image");
    img
}

fn import(img: &[u8]) -> Spa {
    Spa::import(Box::new(MemoryDevice::from_image(img.to_vec())), SpaConfig::default(), None)
        .expect("import")
}

fn spec(bs: u32) -> ObjectSpec {
    ObjectSpec::new(19, bs, 26, 32)
}

#[test]
fn fsynced_changes_survive_a_crash_and_unsynced_ones_do_not() {
    let mut spa = pool();
    let a = spa.object_alloc("tank", &spec(4096)).expect("alloc a");
    spa.write("tank", a, 100, b"synced").expect("write");
    spa.set_bonus("tank", a, 26, &[9; 32]).expect("bonus");
    let stats = spa.fsync("tank", a).expect("fsync");
    assert!(stats.log_blocks >= 1 && stats.flushes == 1, "{stats:?}");
    let b = spa.object_alloc("tank", &spec(512)).expect("alloc b");
    spa.write("tank", b, 0, b"never fsynced").expect("write b");
    let mut spa = import(&image_of(spa));
    assert_eq!(spa.read("tank", a, 100, 6).expect("read"), b"synced");
    assert_eq!(spa.bonus("tank", a).expect("bonus").1, vec![9; 32]);
    assert!(spa.object_info("tank", b).is_err(), "unsynced object must not appear");
}

#[test]
fn large_whole_block_writes_are_written_in_place() {
    let mut spa = pool();
    let o = spa.object_alloc("tank", &spec(131072)).expect("alloc");
    let data: Vec<u8> = (0..3 * 131072u32).map(|i| (i % 253) as u8).collect();
    let st = spa.write_sync("tank", o, 0, &data).expect("write_sync");
    assert_eq!(st.indirect_blocks, 3, "{st:?}");
    let mut spa = import(&image_of(spa));
    assert_eq!(spa.read("tank", o, 0, data.len() as u64).expect("read"), data);
}

#[test]
fn replay_is_idempotent_and_log_space_is_returned() {
    let mut spa = pool();
    spa.txg_sync().expect("sync");
    let base = spa.space().allocated;
    let o = spa.object_alloc("tank", &spec(512)).expect("alloc");
    for i in 0..40u64 {
        spa.write("tank", o, i * 700, &[i as u8 + 1; 700]).expect("write");
        spa.fsync("tank", o).expect("fsync");
    }
    let img = image_of(spa);
    let mut first = import(&img);
    let mut again = import(&img);
    let want: Vec<u8> = first.read("tank", o, 0, 40 * 700).expect("read");
    assert_eq!(again.read("tank", o, 0, 40 * 700).expect("read"), want, "crash during replay");
    assert_eq!(want[39 * 700], 40);
    let after_replay = image_of(first);
    let mut third = import(&after_replay);
    assert_eq!(
        third.read("tank", o, 0, 40 * 700).expect("read"),
        want,
        "replayed state is durable"
    );
    third.object_free("tank", o).expect("free");
    // Let the freed log blocks and data wait out their defer period.
    for _ in 0..5 {
        let x = third.object_alloc("tank", &spec(512)).expect("churn alloc");
        third.object_free("tank", x).expect("churn free");
        third.txg_sync().expect("sync");
    }
    third.txg_sync().expect("sync");
    let now = third.space().allocated;
    assert!(now <= base + 8 * ZIL_BLOCK_SIZE, "log space leaked: {base} -> {now}");
}

#[test]
fn a_torn_log_replays_only_whole_operations_before_the_tear() {
    let mut spa = pool();
    let o = spa.object_alloc("tank", &spec(512)).expect("alloc");
    spa.fsync("tank", o).expect("fsync alloc");
    let mut log_blocks = Vec::new();
    for i in 0..3u8 {
        spa.write("tank", o, u64::from(i) * 512, &[i + 1; 512]).expect("write");
        let before = spa.pool_trees().0[0].zil.clone();
        spa.fsync("tank", o).expect("fsync");
        let after = spa.pool_trees().0[0].zil.clone();
        log_blocks.push(after.into_iter().find(|d| !before.contains(d)).map(|_| ()).is_some());
    }
    let trees = spa.pool_trees().0[0].zil.clone();
    let mut img = image_of(spa);
    // Tear the third commit's block: the log ends after the second write.
    let third = trees[trees.len() - 2];
    img[usize::try_from(third.offset).expect("fits") + 2000] ^= 0xff;
    let mut spa = import(&img);
    let got = spa.read("tank", o, 0, 1536).expect("read");
    assert_eq!(&got[..512], &[1; 512][..]);
    assert_eq!(&got[512..1024], &[2; 512][..]);
    assert_eq!(&got[1024..], &[0; 512][..], "the torn commit must not replay");
    assert!(log_blocks.iter().all(|&b| b));
}

#[test]
fn rollback_discards_the_log_and_snapshots_include_fsynced_data() {
    let mut spa = pool();
    let o = spa.object_alloc("tank", &spec(512)).expect("alloc");
    spa.write_sync("tank", o, 0, b"kept").expect("write_sync");
    spa.snapshot("tank@s").expect("snapshot");
    assert_eq!(spa.read("tank@s", o, 0, 4).expect("read"), b"kept");
    spa.write_sync("tank", o, 0, b"gone").expect("write_sync");
    spa.rollback("tank").expect("rollback");
    let mut spa = import(&image_of(spa));
    assert_eq!(spa.read("tank", o, 0, 4).expect("read"), b"kept", "rollback must discard the log");
}
