//! Transaction groups and pool options through the public API: writes into txg N+1 while N
//! syncs phase by phase, syncs triggered by the dirty limit and by the host's timer,
//! SHA-256 datasets that detect damage, claim/reclaim, and a pool on a real file.

use engine::txg::{SyncPhase, SyncStep};
use engine::{
    BlockDevice, ChecksumType, Compress, DatasetProps, DmuError, FileDevice, MemoryDevice,
    ObjectSpec, Spa, SpaConfig, SpaError,
};

const MIB: u64 = 1 << 20;

fn pool_with(cfg: SpaConfig) -> Spa {
    Spa::create(Box::new(MemoryDevice::new(32 * MIB)), "tank", cfg).expect("create")
}

fn spec() -> ObjectSpec {
    ObjectSpec::new(19, 4096, 0, 0)
}

#[test]
fn writes_land_in_the_next_txg_while_one_syncs() {
    let mut spa = pool_with(SpaConfig::default());
    let o = spa.object_alloc("tank", &spec()).expect("alloc");
    spa.write("tank", o, 0, b"in N").expect("write");
    let n = spa.txg_quiesce().expect("quiesce").expect("dirty txg starts syncing");
    assert_eq!(spa.syncing_txg(), Some(n));
    assert_eq!(spa.open_txg(), n + 1);
    assert_eq!(spa.sync_step().expect("step"), SyncStep::Progress(SyncPhase::Datasets));
    spa.write("tank", o, 4096, b"in N+1").expect("write while N syncs");
    assert_eq!(spa.read("tank", o, 0, 4).expect("read"), b"in N");
    let mut last = SyncStep::Idle;
    while !matches!(last, SyncStep::Done(_)) {
        last = spa.sync_step().expect("step");
    }
    assert_eq!(last, SyncStep::Done(n));
    assert_eq!(spa.last_synced_txg(), n);
    assert!(spa.is_dirty(), "txg N+1 still holds the second write");
    // Crash now: N is committed, N+1 is not.
    let mut dev = spa.into_device();
    let mut img = vec![0; dev.size_bytes() as usize];
    dev.read(0, &mut img).expect("image");
    let mut back = Spa::import(Box::new(MemoryDevice::from_image(img)), SpaConfig::default(), None)
        .expect("import");
    assert_eq!(back.last_synced_txg(), n);
    assert_eq!(back.read("tank", o, 0, 4).expect("read"), b"in N");
    assert_eq!(back.read("tank", o, 4096, 6).expect("read"), vec![0; 6], "N+1 was not committed");
}

#[test]
fn dirty_limit_and_timer_trigger_syncs() {
    let cfg = SpaConfig { dirty_bytes_max: 256 << 10, txg_timeout_secs: 5, ..SpaConfig::default() };
    let mut spa = pool_with(cfg);
    let o = spa.object_alloc("tank", &spec()).expect("alloc");
    let before = spa.last_synced_txg();
    for i in 0..100u64 {
        spa.write("tank", o, i * 4096, &[1; 4096]).expect("write");
    }
    assert!(spa.last_synced_txg() > before, "the dirty limit must sync inline");
    spa.txg_sync().expect("sync");
    spa.write("tank", o, 0, b"x").expect("write");
    let dirty = spa.dirty_bytes();
    assert!(dirty > 0 && dirty < cfg.dirty_bytes_max, "one small write dirties {dirty} bytes");
    assert!(!spa.sync_wanted(), "a fresh txg under the limit does not ask for a sync");
    spa.set_time(cfg.now_secs + 6);
    assert!(spa.sync_wanted(), "the host timer asks for a sync after the timeout");
}

#[test]
fn sha256_datasets_verify_and_detect_damage() {
    let mut spa = pool_with(SpaConfig::default());
    let props = DatasetProps { checksum: ChecksumType::Sha256, compress: Compress::Off };
    spa.dataset_create("tank/s", props).expect("create");
    let o = spa.object_alloc("tank/s", &spec()).expect("alloc");
    spa.write("tank/s", o, 0, &[0x5a; 4096]).expect("write");
    spa.txg_sync().expect("sync");
    let trees = spa.pool_trees().0;
    let head = trees.iter().find(|t| t.name == "tank/s").expect("dataset").head;
    let mut data_bp = None;
    engine::dmu::traverse::traverse_objset(spa.zio_mut(), &head, 0, &mut |_, v| {
        if let engine::dmu::traverse::Visit::Block { object, level: 0, bp, .. } = v {
            if *object == o && !bp.is_hole() {
                data_bp = Some(**bp);
            }
        }
    })
    .expect("traverse");
    let bp = data_bp.expect("data block");
    assert_eq!(bp.checksum, ChecksumType::Sha256 as u8);
    let mut dev = spa.export().expect("export");
    dev.write(bp.dva[0].offset, &[0x5b; 4096]).expect("damage");
    let mut spa = Spa::import(dev, SpaConfig::default(), None).expect("import");
    assert!(matches!(spa.read("tank/s", o, 0, 4096), Err(DmuError::Zio(_))), "never wrong data");
}

#[test]
fn claim_and_reclaim_follow_the_dmu_rules() {
    let mut spa = pool_with(SpaConfig::default());
    spa.object_claim("tank", 77, &spec()).expect("claim a chosen number");
    spa.write("tank", 77, 0, b"old").expect("write");
    assert_eq!(spa.object_alloc("tank", &spec()).expect("alloc"), 1, "alloc takes the lowest");
    let new = ObjectSpec::new(25, 8192, 26, 64);
    spa.object_reclaim("tank", 77, &new).expect("reclaim");
    let info = spa.object_info("tank", 77).expect("info");
    assert_eq!((info.ot, info.blksz, info.bonustype, info.bonuslen), (25, 8192, 26, 64));
    assert_eq!(spa.read("tank", 77, 0, 3).expect("read"), vec![0; 3], "reclaim drops contents");
    assert!(matches!(spa.object_reclaim("tank", 78, &new), Err(DmuError::NoSuchObject { .. })));
    spa.object_free("tank", 77).expect("free");
    assert!(matches!(spa.object_info("tank", 77), Err(DmuError::NoSuchObject { .. })));
}

#[test]
fn a_pool_on_a_file_round_trips_through_export_and_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pool.img");
    let dev = FileDevice::create(&path, 16 * MIB).expect("file device");
    let mut spa = Spa::create(Box::new(dev), "tank", SpaConfig::default()).expect("create");
    let o = spa.object_alloc("tank", &spec()).expect("alloc");
    spa.write("tank", o, 12345, b"on a real file").expect("write");
    spa.snapshot("tank@s").expect("snap");
    drop(spa.export().expect("export"));
    let dev = FileDevice::open(&path).expect("reopen");
    let mut spa = Spa::import(Box::new(dev), SpaConfig::default(), None).expect("import");
    assert_eq!(spa.read("tank@s", o, 12345, 14).expect("read"), b"on a real file");
}

/// A device whose writes fail after `fail_after` more succeed, and which fails its
/// `WRITE_ATTEMPTS_MAX`-th failed write loudly: retrying without bound is a hang.
struct DyingDisk {
    inner: std::sync::Arc<std::sync::Mutex<(MemoryDevice, Option<u64>, u64)>>,
}

/// Failed writes a sync may retry in all before it must give up (far above the engine's
/// `ZIO_MAX_RETRIES` per write, times the writes of one small txg).
const WRITE_ATTEMPTS_MAX: u64 = 10_000;

impl BlockDevice for DyingDisk {
    fn size_bytes(&self) -> u64 {
        self.inner.lock().expect("lock").0.size_bytes()
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), engine::VdevError> {
        self.inner.lock().expect("lock").0.read(offset, buf)
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), engine::VdevError> {
        let mut g = self.inner.lock().expect("lock");
        match g.1 {
            Some(0) => {
                g.2 += 1;
                assert!(g.2 < WRITE_ATTEMPTS_MAX, "a failing write was retried without bound");
                Err(engine::VdevError::Io { offset })
            }
            Some(n) => {
                g.1 = Some(n - 1);
                g.0.write(offset, data)
            }
            None => g.0.write(offset, data),
        }
    }
    fn flush(&mut self) -> Result<(), engine::VdevError> {
        self.inner.lock().expect("lock").0.flush()
    }
}

/// A disk that stops taking writes suspends the pool (OpenZFS's failmode=wait, reported as
/// an error here) after a bounded number of retries, at every point of a sync: the data
/// blocks, the MOS, the uberblock. Kills an unbounded retry loop in `write_retry`.
#[test]
fn a_disk_that_stops_writing_suspends_the_pool_at_any_point_of_a_sync() {
    let mut fail_after = 0;
    let mut suspended_at = std::collections::BTreeSet::new();
    loop {
        let state =
            std::sync::Arc::new(std::sync::Mutex::new((MemoryDevice::new(64 << 20), None, 0)));
        let dev = DyingDisk { inner: std::sync::Arc::clone(&state) };
        let mut spa = Spa::create(Box::new(dev), "tank", SpaConfig::default()).expect("create");
        let o = spa.object_alloc("tank", &spec()).expect("alloc");
        spa.write("tank", o, 0, &[5; 8192]).expect("write");
        state.lock().expect("lock").1 = Some(fail_after);
        match spa.txg_sync() {
            Ok(_) => break,
            Err(e) => assert!(matches!(e, SpaError::Suspended(_)), "{e}"),
        }
        suspended_at.insert(fail_after);
        fail_after += 1;
    }
    assert!(suspended_at.len() >= 3, "the sync wrote only {fail_after} times");
}

/// A device whose next `fail` writes into `range` fail (a burst of write errors).
struct BurstDisk {
    inner: MemoryDevice,
    range: std::ops::Range<u64>,
    fail: u32,
}

impl BlockDevice for BurstDisk {
    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), engine::VdevError> {
        self.inner.read(offset, buf)
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), engine::VdevError> {
        if self.fail > 0 && self.range.contains(&offset) {
            self.fail -= 1;
            return Err(engine::VdevError::Io { offset });
        }
        self.inner.write(offset, data)
    }
    fn flush(&mut self) -> Result<(), engine::VdevError> {
        self.inner.flush()
    }
}

/// A write that fails `ZIO_MAX_RETRIES` times in a row is retried once more and the sync
/// commits: for the first block a sync writes, and for the uberblock of the first label
/// (the two places with their own retry loops).
#[test]
fn a_write_failing_zio_max_retries_times_is_retried_once_more() {
    use engine::limits::{VDEV_LABEL_HEADER_SIZE, VDEV_LABEL_SIZE};
    use engine::spa::ZIO_MAX_RETRIES;
    for range in [0..u64::MAX, VDEV_LABEL_HEADER_SIZE..VDEV_LABEL_SIZE] {
        let mut spa = pool_with(SpaConfig::default());
        let o = spa.object_alloc("tank", &spec()).expect("alloc");
        spa.txg_sync().expect("sync");
        let mut dev = spa.export().expect("export");
        let mut img = vec![0u8; usize::try_from(dev.size_bytes()).expect("fits")];
        dev.read(0, &mut img).expect("image");
        let burst = BurstDisk {
            inner: MemoryDevice::from_image(img),
            range: range.clone(),
            fail: ZIO_MAX_RETRIES,
        };
        let mut spa = Spa::import(Box::new(burst), SpaConfig::default(), None).expect("import");
        spa.write("tank", o, 0, &[6; 4096]).expect("write");
        spa.txg_sync().unwrap_or_else(|e| {
            panic!("writes into {range:?} failing {ZIO_MAX_RETRIES} times: {e}")
        });
        let dev = spa.export().expect("export");
        let mut spa = Spa::import(dev, SpaConfig::default(), None).expect("import");
        assert_eq!(spa.read("tank", o, 0, 4096).expect("read"), vec![6; 4096]);
    }
}
