//! Tests of the simulated disk (sim::disk, sim::fault): the vdev contract with faults off, the
//! crash model (flushed data always survives, unflushed data per sector), every fault class,
//! the damage budget over many seeds, determinism, and `image_at` against `crash`.
//! Counterpart: TigerBeetle testing/storage.zig's own tests. Uses only the public API.

use std::collections::BTreeSet;

use engine::vdev::{BlockDevice, VdevError};
use sim::disk::{cached_writes_at, image_at, DiskConfig, DiskEvent, FaultEvent, Replayer, SimDisk};
use sim::fault::{FaultBudget, FaultConfig, FaultSwitch, Profile, PROFILES, SECTOR_SIZE};

const SIZE: u64 = 1 << 20;
const SEEDS: u64 = 200;
const SECTOR: usize = SECTOR_SIZE as usize;

fn disk(faults: FaultConfig, seed: u64) -> SimDisk {
    SimDisk::new(SIZE, DiskConfig { faults, ..DiskConfig::default() }, seed)
}

fn read_vec(d: &mut SimDisk, offset: u64, len: usize) -> Result<Vec<u8>, VdevError> {
    let mut buf = vec![0; len];
    d.read(offset, &mut buf).map(|()| buf)
}

fn sector_of(image: &[u8], offset: u64) -> &[u8] {
    let at = usize::try_from(offset).unwrap();
    &image[at..at + SECTOR]
}

/// A tiny deterministic generator for workloads (independent of the disk's stream).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 =
            self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

#[test]
fn sim_disk_passes_vdev_contract() {
    for cache in [0, 1, 2, 64] {
        engine::vdev::contract::run(|size| {
            let config = DiskConfig { cache_capacity_writes: cache, ..DiskConfig::default() };
            Box::new(SimDisk::new(size, config, 7))
        });
    }
}

#[test]
fn flushed_writes_survive_every_crash_and_unflushed_may_be_lost() {
    let (mut lost, mut kept) = (0, 0);
    for seed in 0..SEEDS {
        let mut d = disk(Profile::Crash.fault_config(), seed);
        d.write(0, &[1; 4096]).unwrap();
        d.flush().unwrap();
        d.write(8192, &[2; 4096]).unwrap();
        let image = d.crash();
        assert!(image[..4096].iter().all(|&b| b == 1), "seed {seed}: flushed data lost");
        let unflushed = &image[8192..8192 + 4096];
        if unflushed.iter().all(|&b| b == 0) {
            lost += 1;
        }
        if unflushed.iter().all(|&b| b == 2) {
            kept += 1;
        }
        assert_eq!(d.cached_writes(), 0, "crash leaves an empty cache");
        assert_eq!(read_vec(&mut d, 8192, 4096).unwrap(), unflushed, "handle shows the image");
    }
    assert!(lost > 0, "no crash ever dropped an unflushed write");
    assert!(kept > 0, "no crash ever kept an unflushed write");
}

#[test]
fn crash_keeps_a_per_sector_subset() {
    let mut patterns = BTreeSet::new();
    for seed in 0..SEEDS {
        let mut d = disk(FaultConfig::NONE, seed);
        d.write(0, &[1; 1024]).unwrap();
        d.flush().unwrap();
        d.write(0, &[2; 1024]).unwrap();
        let image = d.crash();
        let first = sector_of(&image, 0)[0];
        let second = sector_of(&image, 512)[0];
        assert!(sector_of(&image, 0).iter().all(|&b| b == first), "sector torn inside");
        assert!(sector_of(&image, 512).iter().all(|&b| b == second), "sector torn inside");
        patterns.insert((first, second));
    }
    let all: BTreeSet<(u8, u8)> = [(1, 1), (1, 2), (2, 1), (2, 2)].into();
    assert_eq!(patterns, all, "every per-sector combination occurs over the seeds");
}

#[test]
fn later_writes_to_a_sector_apply_in_order_when_kept() {
    for seed in 0..SEEDS {
        let mut d = disk(FaultConfig::NONE, seed);
        d.write(0, &[1; 512]).unwrap();
        d.write(0, &[2; 512]).unwrap();
        d.write(0, &[3; 512]).unwrap();
        let crash = d.crash_detailed();
        let expected =
            crash.kept.iter().zip([1u8, 2, 3]).filter(|(k, _)| k[0]).map(|(_, v)| v).next_back();
        assert_eq!(crash.image[0], expected.unwrap_or(0), "seed {seed}: {:?}", crash.kept);
    }
}

#[test]
fn torn_write_keeps_a_prefix() {
    let faults = FaultConfig { torn_write: FaultSwitch::ALWAYS, ..FaultConfig::NONE };
    let mut prefixes = BTreeSet::new();
    for seed in 0..SEEDS {
        let mut d = disk(faults, seed);
        d.write(0, &[9; 8 * 512]).unwrap();
        let crash = d.crash_detailed();
        let keep = &crash.kept[0];
        let prefix = keep.iter().take_while(|&&k| k).count();
        assert!(keep[prefix..].iter().all(|&k| !k), "seed {seed}: not a prefix {keep:?}");
        assert!(prefix < 8, "a torn write drops at least its last sector");
        assert_eq!(d.counters().torn_write, 1);
        prefixes.insert(prefix);
    }
    assert!(prefixes.len() > 4, "torn at few places: {prefixes:?}");
}

#[test]
fn lying_flush_loses_data_at_crash() {
    let mut d = disk(FaultConfig::NONE, 1);
    d.write(4096, &[5; 4096]).unwrap();
    d.drop_next_flush();
    d.flush().unwrap();
    assert_eq!(d.counters().lying_flush, 1);
    assert!(d.durable_image()[4096..8192].iter().all(|&b| b == 0), "lying flush persisted");
    assert_eq!(d.cached_writes(), 1, "lying flush drained the cache");
    let mut lost = 0;
    for seed in 0..SEEDS {
        let mut d = disk(Profile::LyingFlush.fault_config(), seed);
        d.write(4096, &[5; 4096]).unwrap();
        d.flush().unwrap();
        let image = d.crash();
        if image[4096..8192].iter().any(|&b| b != 5) {
            lost += 1;
        }
        assert_eq!(d.counters().lying_flush, 1);
    }
    assert!(lost > 0, "lying flushes never lost data at crash");
}

#[test]
fn flush_error_leaves_data_cached() {
    let faults = FaultConfig { flush_error: FaultSwitch::ALWAYS, ..FaultConfig::NONE };
    let mut d = disk(faults, 3);
    d.write(0, &[7; 2048]).unwrap();
    assert_eq!(d.flush(), Err(VdevError::Io { offset: 0 }));
    assert_eq!(d.cached_writes(), 1, "failed flush drained the cache");
    assert!(d.durable_image()[..2048].iter().all(|&b| b == 0));
    assert_eq!(read_vec(&mut d, 0, 2048).unwrap(), vec![7; 2048], "cache still serves reads");
    assert_eq!(d.counters().flush_error, 1);
    d.set_faults(FaultConfig::NONE);
    d.flush().unwrap();
    assert!(d.durable_image()[..2048].iter().all(|&b| b == 7));
}

#[test]
fn misdirected_write_damages_another_location_and_leaves_the_intended_one_old() {
    let faults =
        FaultConfig { misdirected_write: FaultSwitch::ALWAYS, budget: None, ..FaultConfig::NONE };
    let config = DiskConfig { faults, record_events: true, ..DiskConfig::default() };
    let mut d = SimDisk::new(SIZE, config, 11);
    d.set_faults(FaultConfig::NONE);
    d.write(65536, &[1; 4096]).unwrap();
    d.set_faults(faults);
    d.write(65536, &[2; 4096]).unwrap();
    d.flush().unwrap();
    assert_eq!(read_vec(&mut d, 65536, 4096).unwrap(), vec![1; 4096], "intended got new data");
    let image = d.durable_image();
    let landed: Vec<usize> =
        (0..image.len() / SECTOR).filter(|&s| image[s * SECTOR] == 2).collect();
    assert_eq!(landed.len(), 8, "the data landed somewhere as a whole");
    assert!(landed.windows(2).all(|w| w[1] == w[0] + 1), "landing not contiguous");
    let events = d.take_recording().unwrap().events;
    let fault = events.iter().find_map(|e| match e {
        DiskEvent::Fault(FaultEvent::MisdirectedWrite { intended, landed, len }) => {
            Some((*intended, *landed, *len))
        }
        _ => None,
    });
    let (intended, at, len) = fault.expect("misdirection recorded");
    assert_eq!((intended, len), (65536, 4096));
    assert_eq!(at, landed[0] as u64 * SECTOR_SIZE);
    assert_eq!(d.counters().misdirected_write, 1);
}

#[test]
fn misdirected_write_never_touches_its_intended_range() {
    let faults =
        FaultConfig { misdirected_write: FaultSwitch::ALWAYS, budget: None, ..FaultConfig::NONE };
    let mut landed_near = 0;
    for seed in 0..SEEDS {
        let mut d = SimDisk::new(16 * SECTOR_SIZE, DiskConfig::default(), seed);
        d.write(4 * SECTOR_SIZE, &[1; 4 * SECTOR]).unwrap();
        d.set_faults(faults);
        d.write(4 * SECTOR_SIZE, &[2; 4 * SECTOR]).unwrap();
        assert_eq!(d.counters().misdirected_write, 1, "seed {seed}: ALWAYS did not fire");
        let intended = read_vec(&mut d, 4 * SECTOR_SIZE, 4 * SECTOR).unwrap();
        assert_eq!(intended, vec![1; 4 * SECTOR], "seed {seed}: intended range changed");
        let near =
            [3, 8].iter().any(|&s| read_vec(&mut d, s * SECTOR_SIZE, SECTOR).unwrap()[0] == 2);
        landed_near += usize::from(near);
    }
    assert!(landed_near > 0, "misdirected writes never landed next to their target");
}

#[test]
fn lost_write_reads_back_old_data_at_once() {
    let faults = FaultConfig { lost_write: FaultSwitch::ALWAYS, budget: None, ..FaultConfig::NONE };
    let mut d = disk(FaultConfig::NONE, 5);
    d.write(0, &[1; 1024]).unwrap();
    d.set_faults(faults);
    d.write(0, &[2; 1024]).unwrap();
    assert_eq!(read_vec(&mut d, 0, 1024).unwrap(), vec![1; 1024], "lost write was visible");
    d.flush().unwrap();
    assert!(d.durable_image()[..1024].iter().all(|&b| b == 1));
    assert_eq!(d.counters().lost_write, 1);
    assert_eq!(d.stats().bytes_written, 2048, "a lost write is acknowledged");
}

#[test]
fn latent_sector_error_returns_io_until_rewritten() {
    let faults =
        FaultConfig { latent_read: FaultSwitch::ALWAYS, budget: None, ..FaultConfig::NONE };
    let mut d = disk(FaultConfig::NONE, 9);
    d.write(4096, &[3; 4096]).unwrap();
    let mut buf = vec![0; 4096];
    d.set_faults(faults);
    d.read(4096, &mut buf).unwrap();
    assert_eq!(d.counters().latent_read, 0, "unflushed sectors are not damaged");
    d.flush().unwrap();
    let Err(VdevError::Io { offset }) = d.read(4096, &mut buf) else { panic!("no EIO") };
    assert!((4096..8192).contains(&offset), "error offset {offset:#x} outside the read");
    d.set_faults(FaultConfig::NONE);
    assert_eq!(d.read(offset, &mut buf[..512]), Err(VdevError::Io { offset }), "not persistent");
    assert_eq!(d.latent_sectors(), vec![offset / SECTOR_SIZE]);
    d.write(offset, &[4; 512]).unwrap();
    d.read(4096, &mut buf).unwrap();
    assert!(d.latent_sectors().is_empty(), "a rewrite clears the latent error");
}

#[test]
fn corruption_at_rest_hits_only_settled_sectors() {
    let faults =
        FaultConfig { corrupt_at_rest: FaultSwitch::ALWAYS, budget: None, ..FaultConfig::NONE };
    let mut d = disk(FaultConfig::NONE, 13);
    d.write(0, &[1; 4096]).unwrap();
    d.flush().unwrap();
    d.set_faults(faults);
    d.write(8192, &[2; 4096]).unwrap();
    let mut buf = vec![0; 4096];
    for _ in 0..20 {
        let _ = d.read(8192, &mut buf);
    }
    assert_eq!(buf, vec![2; 4096], "corruption reached a cached write");
    let image = d.durable_image();
    assert!(image[8192..12288].iter().all(|&b| b == 0), "unsettled sector corrupted");
    let flipped: u32 = image[..4096].iter().map(|&b| (b ^ 1).count_ones()).sum();
    assert!(flipped > 0, "no bit flipped");
    assert!(u64::from(flipped) <= d.counters().corrupt_at_rest);
    assert!(image[4096..8192].iter().all(|&b| b == 0), "never-written sector corrupted");
    d.set_faults(FaultConfig::NONE);
    d.corrupt_sector(16384);
    assert_eq!(d.durable_image()[16384], 0xff, "corrupt_sector changed nothing");
}

#[test]
fn full_device_refuses_writes_and_changes_nothing() {
    let faults = FaultConfig { full_device: FaultSwitch::ALWAYS, ..FaultConfig::NONE };
    let mut d = disk(faults, 2);
    assert_eq!(d.write(512, &[1; 512]), Err(VdevError::NoSpace { offset: 512 }));
    assert_eq!(read_vec(&mut d, 512, 512).unwrap(), vec![0; 512]);
    assert_eq!(d.cached_writes(), 0);
    let max = 64 * 1024;
    let threshold = FaultConfig { full_after_bytes_max: max, ..FaultConfig::NONE };
    for seed in 0..20 {
        let mut d = disk(threshold, seed);
        let mut written = 0;
        while d.write(0, &[1; 4096]).is_ok() {
            written += 4096;
            assert!(written <= max + 4096, "threshold never reached");
        }
        assert!(written >= max / 2, "seed {seed}: full after {written} bytes");
        assert!(d.write(0, &[1; 512]).is_err(), "full device accepted a write");
        d.set_faults(threshold);
        d.write(0, &[1; 512]).expect("set_faults re-arms the threshold");
    }
}

/// A random workload on `d` with a shadow of what every acknowledged write should leave.
fn run_workload(d: &mut SimDisk, seed: u64, ops: usize, shadow: &mut [u8]) {
    let mut rng = Lcg(seed ^ 0x5eed);
    let sectors = SIZE / SECTOR_SIZE;
    for op in 0..ops {
        let choice = rng.next(10);
        let len = (rng.next(16) + 1) * SECTOR_SIZE;
        let offset = rng.next(sectors - len / SECTOR_SIZE) * SECTOR_SIZE;
        if choice < 6 {
            let data = vec![(op % 251) as u8 + 1; usize::try_from(len).unwrap()];
            match d.write(offset, &data) {
                Ok(()) => {
                    let at = usize::try_from(offset).unwrap();
                    shadow[at..at + data.len()].copy_from_slice(&data);
                }
                Err(e) => assert!(matches!(e, VdevError::NoSpace { .. }), "{e}"),
            }
        } else if choice < 9 {
            let _ = read_vec(d, offset, usize::try_from(len).unwrap());
        } else {
            let _ = d.flush();
        }
    }
}

/// Sectors that read back wrong or fail, after draining the cache with faults off.
fn damaged_sectors(d: &mut SimDisk, shadow: &[u8]) -> BTreeSet<u64> {
    d.set_faults(FaultConfig::NONE);
    d.flush().unwrap();
    let mut damaged = BTreeSet::new();
    for sector in 0..SIZE / SECTOR_SIZE {
        let offset = sector * SECTOR_SIZE;
        match read_vec(d, offset, SECTOR) {
            Ok(data) if data == sector_of(shadow, offset) => {}
            _ => {
                damaged.insert(sector);
            }
        }
    }
    damaged
}

fn heavy_faults(budget: Option<FaultBudget>) -> FaultConfig {
    FaultConfig {
        latent_read: FaultSwitch::on(50_000),
        corrupt_at_rest: FaultSwitch::on(20_000),
        misdirected_write: FaultSwitch::on(20_000),
        lost_write: FaultSwitch::on(20_000),
        flush_error: FaultSwitch::on(50_000),
        full_device: FaultSwitch::on(20_000),
        budget,
        ..Profile::Faults.fault_config()
    }
}

#[test]
fn budget_never_damages_more_than_allowed() {
    let budget = FaultBudget { damaged_sectors_max: 40, window_shift: 3 };
    let window = budget.window_sectors(SIZE);
    let (mut injected, mut denied) = (0, 0);
    for seed in 0..SEEDS {
        let mut d = disk(heavy_faults(Some(budget)), seed);
        let mut shadow = vec![0; SIZE as usize];
        run_workload(&mut d, seed, 300, &mut shadow);
        let damaged = damaged_sectors(&mut d, &shadow);
        assert!(damaged.len() as u64 <= budget.damaged_sectors_max, "seed {seed}: {damaged:?}");
        if let (Some(first), Some(last)) = (damaged.first(), damaged.last()) {
            assert_eq!(first / window, last / window, "seed {seed}: damage in two windows");
        }
        let ledger = d.budget_ledger();
        assert!(damaged.is_subset(ledger.damaged_sectors()), "seed {seed}: unledgered damage");
        injected += d.counters().total();
        denied += d.stats().budget_denials;
    }
    assert!(injected > SEEDS, "too few faults injected: {injected}");
    assert!(denied > 0, "the budget never refused anything: the test proves nothing");
}

#[test]
fn unrestricted_profile_damages_beyond_the_budget() {
    let budget = FaultBudget { damaged_sectors_max: 40, window_shift: 3 };
    let window = budget.window_sectors(SIZE);
    let mut beyond = 0;
    for seed in 0..20 {
        let mut d = disk(heavy_faults(None), seed);
        let mut shadow = vec![0; SIZE as usize];
        run_workload(&mut d, seed, 300, &mut shadow);
        let damaged = damaged_sectors(&mut d, &shadow);
        let windows: BTreeSet<u64> = damaged.iter().map(|s| s / window).collect();
        if damaged.len() as u64 > budget.damaged_sectors_max || windows.len() > 1 {
            beyond += 1;
        }
    }
    assert!(beyond > 0, "the damage check above cannot see damage");
}

fn crash_after_workload(profile: Profile, seed: u64) -> (Vec<u8>, SimDisk) {
    let mut d = disk(profile.fault_config(), seed);
    let mut shadow = vec![0; SIZE as usize];
    run_workload(&mut d, seed, 200, &mut shadow);
    (d.crash(), d)
}

#[test]
fn same_seed_gives_the_same_crash_image() {
    let mut differs = false;
    for seed in 0..20 {
        let (a, da) = crash_after_workload(Profile::Faults, seed);
        let (b, db) = crash_after_workload(Profile::Faults, seed);
        assert!(a == b, "seed {seed}: crash images differ");
        assert_eq!(da.counters(), db.counters(), "seed {seed}");
        assert_eq!(da.stats(), db.stats(), "seed {seed}");
        let (c, _) = crash_after_workload(Profile::Faults, seed + 1000);
        differs |= a != c;
    }
    assert!(differs, "the seed changes nothing");
}

fn recorded_workload(seed: u64, cache: usize) -> SimDisk {
    let faults = FaultConfig {
        corrupt_at_rest: FaultSwitch::on(30_000),
        misdirected_write: FaultSwitch::on(30_000),
        lost_write: FaultSwitch::on(30_000),
        flush_error: FaultSwitch::on(100_000),
        lying_flush: FaultSwitch::on(100_000),
        torn_write: FaultSwitch::on(500_000),
        budget: None,
        ..FaultConfig::NONE
    };
    let config = DiskConfig { cache_capacity_writes: cache, faults, record_events: true };
    let mut d = SimDisk::new(SIZE, config, seed);
    let mut shadow = vec![0; SIZE as usize];
    run_workload(&mut d, seed, 150, &mut shadow);
    d
}

#[test]
fn image_at_agrees_with_crash_given_the_same_choices() {
    for seed in 0..50 {
        let d = recorded_workload(seed, [0, 3, 8, 64][seed as usize % 4]);
        let rec = d.recording().expect("recording on");
        let last = rec.events.len() - 1;
        let cached = cached_writes_at(&rec.events, last);
        assert_eq!(cached.len(), d.cached_writes(), "seed {seed}: cache differs from the log");
        let none = image_at(&rec.base_image, &rec.events, last, &|_, _| false);
        assert!(none == d.durable_image(), "seed {seed}: durable image differs from replay");
        let crash = d.crash_detailed();
        let keep = |write: usize, sector: usize| {
            let position = cached.iter().position(|&w| w == write).expect("a cached write");
            crash.kept[position][sector]
        };
        let replayed = image_at(&rec.base_image, &rec.events, last, &keep);
        assert!(replayed == crash.image, "seed {seed}: image_at disagrees with crash");
        assert!(d.recording().unwrap().events.is_empty(), "recording restarts at a crash");
    }
}

#[test]
fn replayer_walks_crash_points_like_image_at() {
    let d = recorded_workload(77, 8);
    let rec = d.take_recording().unwrap();
    let mut replayer = Replayer::new(rec.base_image.clone(), &rec.events);
    let odd = |write: usize, sector: usize| (write + sector) % 2 == 1;
    for point in (0..rec.events.len()).step_by(7) {
        replayer.advance_to(point);
        assert_eq!(replayer.cached_writes(), cached_writes_at(&rec.events, point), "at {point}");
        let slow = image_at(&rec.base_image, &rec.events, point, &odd);
        assert!(replayer.image(&odd) == slow, "replayer differs at {point}");
    }
    let flushes = rec.events.iter().filter(|e| matches!(e, DiskEvent::Flush)).count();
    let destages = rec.events.iter().filter(|e| matches!(e, DiskEvent::Destage { .. })).count();
    assert!(flushes > 0 && destages > 0, "workload exercised neither flush nor destage");
}

#[test]
fn profiles_parse_and_print_their_five_names() {
    let names: Vec<String> = PROFILES.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["none", "crash", "faults", "unrestricted", "lying-flush"]);
    for name in &names {
        assert_eq!(name.parse::<Profile>().unwrap().to_string(), *name);
    }
    assert!("everything".parse::<Profile>().is_err());
    assert_eq!(Profile::default(), Profile::Crash);
}

#[test]
fn from_image_restarts_a_crashed_disk() {
    let mut d = disk(FaultConfig::NONE, 4);
    d.write(0, &[6; 512]).unwrap();
    d.flush().unwrap();
    d.write(512, &[7; 512]).unwrap();
    let image = d.crash();
    let mut fresh = SimDisk::from_image(image.clone(), DiskConfig::default(), 4);
    assert_eq!(fresh.size_bytes(), SIZE);
    assert_eq!(read_vec(&mut fresh, 0, 1024).unwrap(), image[..1024]);
    assert_eq!(read_vec(&mut d, 0, 1024).unwrap(), image[..1024]);
    assert_eq!(d.stats().crashes, 1);
}

/// The integrity walk under faults explains exactly the recorded damage: a data block
/// corrupted behind the engine's back is a problem until its sector is in the damage
/// record, and then it is counted as explained; the quiet view injects nothing.
#[test]
fn integrity_explains_only_recorded_damage() {
    use engine::{ObjectSpec, Spa, SpaConfig};
    use oracle::integrity::{check, check_damaged, Damage};
    let d = SimDisk::new(16 << 20, DiskConfig::default(), 7);
    let mut spa = Spa::create(Box::new(d.clone()), "tank", SpaConfig::default()).expect("create");
    let o = spa.object_alloc("tank", &ObjectSpec::new(19, 65536, 0, 0)).expect("alloc");
    let data: Vec<u8> = (0..65536u32).map(|i| (i * 31 % 251) as u8 ^ 0x5a).collect();
    spa.write("tank", o, 0, &data).expect("write");
    spa.txg_sync().expect("sync");
    spa.txg_sync().expect("sync");
    assert!(check(&mut spa).is_ok(), "a clean pool walks clean");
    let image = d.durable_image();
    let at = image.windows(4096).position(|w| w == &data[..4096]).expect("the block is on disk");
    let sector = at as u64 / SECTOR_SIZE;
    d.corrupt_sector(sector * SECTOR_SIZE);
    let size = d.size_bytes();
    let none = Damage { sectors: BTreeSet::new(), device_bytes: size, rewinds: Vec::new() };
    let err = check_damaged(&mut spa, &mut d.quiet_view(), none).expect_err("unrecorded damage");
    assert!(format!("{err}").contains("Checksum"), "{err}");
    let recorded =
        Damage { sectors: BTreeSet::from([sector]), device_bytes: size, rewinds: Vec::new() };
    let report = check_damaged(&mut spa, &mut d.quiet_view(), recorded).expect("explained");
    assert!(report.explained_by_damage >= 1, "{report:?}");
}
