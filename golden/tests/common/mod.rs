//! Helpers shared by the golden integration tests: fresh pools to receive into, receiving a
//! byte buffer, the comparable view of a snapshot, and the whole observable pool state that
//! the atomicity tests compare before and after a failed receive.
#![allow(dead_code)] // each test binary uses its own subset

use engine::dmu::recv::{RecvOptions, RecvOutcome};
use engine::{MemoryDevice, RecvError, Spa, SpaConfig};

/// The dataset tests receive into (a different name from the source's `pool/fs`).
pub const COPY: &str = "pool/copy";
/// Objects larger than this are not hashed by `view` in debug builds: SHA-256 runs at about
/// 23 MB/s unoptimized, and `large` has objects past 1 GiB. Release builds hash everything.
pub const VIEW_HASH_MAX_BYTES: u64 = 16 << 20;

/// An empty in-memory pool named `pool` (guid seed `seed`, so guids differ from sources).
pub fn pool(seed: u64) -> Spa {
    let cfg = SpaConfig { guid_seed: seed, now_secs: 1_800_000_000, ..SpaConfig::default() };
    Spa::create(Box::new(MemoryDevice::new(golden::POOL_DEVICE_BYTES)), "pool", cfg)
        .expect("create pool")
}

/// Receive `stream` into `fs` of `spa`.
pub fn recv(spa: &mut Spa, fs: &str, stream: &[u8]) -> Result<RecvOutcome, RecvError> {
    spa.recv(fs, &mut &stream[..], &RecvOptions::default())
}

/// Receive `stream` into `fs`, which must succeed; returns the received snapshot's name.
pub fn recv_ok(spa: &mut Spa, fs: &str, stream: &[u8], what: &str) -> String {
    match recv(spa, fs, stream) {
        Ok(out) => out.snapshot,
        Err(e) => panic!("{what}: receive into {fs} failed: {e}"),
    }
}

/// `snap`'s v1 manifest; in debug builds objects above `VIEW_HASH_MAX_BYTES` keep every
/// field but the content hash (the re-send comparisons cover their contents).
pub fn view(spa: &mut Spa, snap: &str) -> String {
    if !cfg!(debug_assertions) {
        return golden::manifest(spa, snap);
    }
    let mut out = format!("# manifest v1 snapshot=@{}\n", golden::short_name(snap));
    for obj in spa.objects(snap).expect("objects") {
        let info = spa.object_info(snap, obj).expect("object info");
        let size = (info.maxblkid + 1) * u64::from(info.blksz);
        if size <= VIEW_HASH_MAX_BYTES {
            out.push_str(&golden::manifest_line(spa, snap, obj).expect("manifest line"));
        } else {
            let (bt, bonus) = spa.bonus(snap, obj).expect("bonus");
            out.push_str(&format!(
                "obj={obj} type={} bs={} maxblkid={} size={size} bonustype={bt} bonuslen={} \
                 sha256=(not hashed in debug builds) bonus={bonus:02x?}",
                info.ot,
                info.blksz,
                info.maxblkid,
                bonus.len()
            ));
        }
        out.push('\n');
    }
    out
}

/// Everything a receive could change, as text: datasets, their snapshots (name, guid,
/// creation txg and time), the view of every snapshot and head, and the space allocated
/// to datasets after a txg sync: allocated space minus the MOS blocks, which also hold the
/// deferred-free lists (a failed receive frees its temporary blocks, so the MOS of the next
/// txgs is legitimately larger until those frees are released).
pub fn state(spa: &mut Spa) -> String {
    spa.txg_sync().expect("txg sync");
    let mut out = String::new();
    for fs in spa.datasets() {
        out.push_str(&format!("dataset {fs}\n"));
        for s in spa.snapshots(&fs).expect("snapshots") {
            out.push_str(&format!(
                "snapshot {} guid={:x} txg={} time={}\n",
                s.name, s.guid, s.creation_txg, s.creation_time
            ));
            out.push_str(&view(spa, &s.name));
        }
        out.push_str(&view(spa, &fs));
    }
    let space = spa.space();
    let (_, mos) = spa.pool_trees();
    let mos_bytes: u64 = mos.iter().flat_map(|bp| bp.dva.iter()).map(|d| d.asize).sum();
    assert!(mos_bytes <= space.allocated, "MOS {mos_bytes} > allocated {}", space.allocated);
    out.push_str(&format!(
        "allocated to datasets={} capacity={}\n",
        space.allocated - mos_bytes,
        space.capacity
    ));
    out
}

/// One `#[test]` per catalog scenario calling `$body(name)`, plus a test that the list
/// covers the catalog exactly (a new scenario must get its tests).
#[macro_export]
macro_rules! scenario_tests {
    ($body:path; $($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                $body($name);
            }
        )*

        #[test]
        fn every_catalog_scenario_has_a_test() {
            let mut listed = vec![$($name),*];
            let mut catalog = golden::names().to_vec();
            listed.sort_unstable();
            catalog.sort_unstable();
            assert_eq!(listed, catalog);
        }
    };
}

/// `scenario_tests!` over the whole catalog.
#[macro_export]
macro_rules! for_every_scenario {
    ($body:path) => {
        $crate::scenario_tests! { $body;
            wiki => "wiki",
            basic => "basic",
            holes => "holes",
            truncate => "truncate",
            freeobjects => "freeobjects",
            realloc => "realloc",
            large => "large",
            empty => "empty",
            chain => "chain",
            many_objects => "many-objects",
            bug_hole_birth_reuse => "bug-hole-birth-reuse",
            bug_hole_birth_indirect => "bug-hole-birth-indirect",
            bug_hole_birth_truncate_extend => "bug-hole-birth-truncate-extend",
            bug_freeobjects_double_advance => "bug-freeobjects-double-advance",
            bug_embedded_padding => "bug-embedded-padding",
            zil_replay => "zil-replay",
            recv => "recv",
        }
    };
}
