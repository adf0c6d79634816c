//! Receive the real OpenZFS streams of golden/fixtures/openzfs and compare each received
//! snapshot with OpenZFS's own manifest (v1 format, comment lines ignored); then re-send
//! what was received and check the re-sent stream receives to the same manifest.

use std::path::{Path, PathBuf};

use engine::dmu::recv::RecvOptions;
use engine::dmu::send::SendOptions;
use engine::{MemoryDevice, Spa, SpaConfig};
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/fixtures/openzfs")
}

fn hex(d: &[u8]) -> String {
    hex::encode(d)
}

/// The v1 manifest lines of snapshot `snap` (no comment lines).
fn manifest(spa: &mut Spa, snap: &str) -> Vec<String> {
    let mut out = Vec::new();
    for obj in spa.objects(snap).expect("objects") {
        let info = spa.object_info(snap, obj).expect("info");
        let size = (info.maxblkid + 1) * u64::from(info.blksz);
        let data = spa.read(snap, obj, 0, size).expect("read");
        let (bt, bonus) = spa.bonus(snap, obj).expect("bonus");
        out.push(format!(
            "obj={obj} type={} bs={} maxblkid={} size={size} bonustype={bt} bonuslen={} sha256={} bonus_sha256={}",
            info.ot, info.blksz, info.maxblkid, info.bonuslen, hex(&Sha256::digest(&data)), hex(&Sha256::digest(&bonus))
        ));
    }
    out
}

fn expected(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("manifest")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn pool() -> Spa {
    Spa::create(Box::new(MemoryDevice::new(256 << 20)), "zsim", SpaConfig::default())
        .expect("create")
}

fn recv_file(spa: &mut Spa, fs: &str, path: &Path) -> String {
    let bytes = std::fs::read(path).expect("stream");
    spa.recv(fs, &mut bytes.as_slice(), &RecvOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .snapshot
}

#[test]
fn every_fixture_receives_to_its_manifests() {
    for dir in ["basic", "basic-ec", "holes", "truncate", "freeobjects"] {
        let d = fixtures().join(dir);
        let mut spa = pool();
        let before = recv_file(&mut spa, "zsim/src", &d.join("full-before.zstream"));
        assert_eq!(
            manifest(&mut spa, &before),
            expected(&d.join("manifest-before.txt")),
            "{dir} before"
        );
        let after = recv_file(&mut spa, "zsim/src", &d.join("incr-before-after.zstream"));
        assert_eq!(
            manifest(&mut spa, &after),
            expected(&d.join("manifest-after.txt")),
            "{dir} incr after"
        );
        let mut spa2 = pool();
        let full_after = recv_file(&mut spa2, "zsim/src", &d.join("full-after.zstream"));
        assert_eq!(
            manifest(&mut spa2, &full_after),
            expected(&d.join("manifest-after.txt")),
            "{dir} full after"
        );
        // re-send what we received, full and incremental, and receive it elsewhere
        let mut full = Vec::new();
        spa.send(&before, None, &SendOptions::default(), &mut full).expect("send full");
        let mut incr = Vec::new();
        spa.send(&after, Some(&before), &SendOptions::default(), &mut incr).expect("send incr");
        let mut spa3 = pool();
        spa3.recv("zsim/copy", &mut full.as_slice(), &RecvOptions::default())
            .expect("recv resent full");
        spa3.recv("zsim/copy", &mut incr.as_slice(), &RecvOptions::default())
            .expect("recv resent incr");
        assert_eq!(
            manifest(&mut spa3, "zsim/copy@after"),
            expected(&d.join("manifest-after.txt")),
            "{dir} resent"
        );
    }
}

/// OpenZFS checks an embedded record's compression against its table only, not against
/// BEGIN's LZ4 feature flag: `basic-ec`'s full stream with that flag cleared (checksums
/// recomputed) receives under OpenZFS 2.3 to the fixture's own manifest (checked with
/// `zoracle recv`, the real libzpool receive), and so it must here.
#[test]
fn an_embedded_lz4_record_without_the_lz4_feature_flag_is_received_as_openzfs_does() {
    let d = fixtures().join("basic-ec");
    let mut stream = std::fs::read(d.join("full-before.zstream")).expect("stream");
    let lz4_flag = engine::stream::record::DMU_BACKUP_FEATURE_LZ4 << 2; // in drr_versioninfo
    let vi = u64::from_le_bytes(stream[16..24].try_into().expect("8 bytes"));
    assert_ne!(vi & lz4_flag, 0, "the fixture sets the LZ4 flag");
    stream[16..24].copy_from_slice(&(vi & !lz4_flag).to_le_bytes());
    let stream = engine::stream::record::rechecksum(&stream).expect("framing");
    let mut spa = pool();
    let snap = spa
        .recv("zsim/copy", &mut stream.as_slice(), &RecvOptions::default())
        .expect("received as OpenZFS receives it")
        .snapshot;
    assert_eq!(manifest(&mut spa, &snap), expected(&d.join("manifest-before.txt")));
}
