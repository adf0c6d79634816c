//! Receive atomicity (design.md property 4): a receive that fails for any reason leaves the
//! target exactly as it was: the same datasets and snapshots (names, guids, txgs), the same
//! manifest of every snapshot and head, and the same allocated space after a txg sync.
//! Failure classes: truncation at every record boundary and inside records, flipped bits
//! (ECKSUM), a bad END checksum, unknown features, a modified target (ETXTBSY unless
//! forced), a wrong source guid (ENODEV), an existing target (EEXIST), a missing target
//! (ENOENT), oversized payloads (§6 #17: E2BIG / ERANGE).

mod common;

use common::{pool, recv, recv_ok, state, view, COPY};
use engine::dmu::recv::RecvOptions;
use engine::dmu::send::SendOptions;
use engine::stream::rechecksum;
use engine::stream::record::{
    DMU_BACKUP_FEATURE_DEDUP, DRR_CHECKSUM_OFFSET, DRR_END, DRR_HEADER_SIZE, DRR_WRITE,
};
use engine::zio::checksum::fletcher4;
use engine::{RecvError, Spa};
use golden::check::record_spans;

/// The scenario the failure tests run on: small, with every record type a plain
/// incremental has (OBJECT, FREE, WRITE, FREEOBJECTS) and three snapshots.
const SCENARIO: &str = "chain";

/// A pool holding `pool/copy@a` received from `chain`, and chain's streams.
fn target_at_a() -> (Spa, golden::Streams) {
    let mut sc = golden::build(SCENARIO).expect("build");
    let streams = golden::streams(&mut sc, &SendOptions::default());
    let mut dst = pool(0xa70);
    recv_ok(&mut dst, COPY, &streams.full_before, "full @a");
    (dst, streams)
}

/// Receive `stream` into `fs`, which must fail; the pool's state must not change.
fn assert_fails_cleanly(spa: &mut Spa, fs: &str, stream: &[u8], what: &str) -> RecvError {
    let before = state(spa);
    let err = match recv(spa, fs, stream) {
        Ok(out) => panic!("{what}: receive succeeded ({})", out.snapshot),
        Err(e) => e,
    };
    let after = state(spa);
    if after != before {
        let diff: Vec<String> = before
            .lines()
            .zip(after.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!("{what}: failed receive ({err}) changed the pool:\n{}", diff.join("\n"));
    }
    err
}

/// Little-endian u64 at `at`.
fn get64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Apply `f` to the little-endian u64 at `at`.
fn update64(b: &mut [u8], at: usize, f: impl FnOnce(u64) -> u64) {
    let v = f(get64(b, at));
    put64(b, at, v);
}

/// Recompute the per-record checksum of the record at `start` only (little endian).
fn fix_record_checksum(stream: &mut [u8], start: usize) {
    let cksum = fletcher4(&stream[..start + DRR_CHECKSUM_OFFSET]);
    for (i, w) in cksum.iter().enumerate() {
        put64(stream, start + DRR_CHECKSUM_OFFSET + 8 * i, *w);
    }
}

#[test]
fn recv_truncated_leaves_target_as_is() {
    let (mut dst, streams) = target_at_a();
    let incr = &streams.steps[0];
    let spans = record_spans(incr).expect("spans");
    let mut cuts = vec![0, 100];
    for s in &spans {
        cuts.extend([s.start, s.start + 7, s.start + DRR_HEADER_SIZE - 1]);
        if s.end - s.start > DRR_HEADER_SIZE {
            cuts.push(s.start + DRR_HEADER_SIZE + (s.end - s.start - DRR_HEADER_SIZE) / 2);
        }
        cuts.push(s.end - 1);
    }
    cuts.retain(|&c| c < incr.len());
    cuts.sort_unstable();
    cuts.dedup();
    for cut in cuts {
        let err = assert_fails_cleanly(&mut dst, COPY, &incr[..cut], &format!("cut at {cut}"));
        match (cut, &err) {
            (0, RecvError::BadMagic) | (1.., RecvError::Truncated { .. }) => {}
            _ => panic!("cut at {cut}: {err:?}, want ZFS_ERR_STREAM_TRUNCATED"),
        }
    }
    let got = recv_ok(&mut dst, COPY, incr, "whole incremental after the failures");
    assert_eq!(got, format!("{COPY}@b"));
}

#[test]
fn failed_full_receive_leaves_no_dataset() {
    let (_, streams) = target_at_a();
    let full = &streams.full_before;
    let spans = record_spans(full).expect("spans");
    let mut empty = pool(0xe0);
    let datasets = empty.datasets();
    for s in spans.iter().skip(1) {
        for cut in [s.start, s.start + DRR_HEADER_SIZE / 2, s.end - 1] {
            assert_fails_cleanly(&mut empty, COPY, &full[..cut], &format!("full cut at {cut}"));
            assert_eq!(empty.datasets(), datasets, "cut at {cut}: a dataset was left behind");
        }
    }
    let mut flipped = full.clone();
    flipped[spans[2].start + 30] ^= 0x10;
    let err = assert_fails_cleanly(&mut empty, COPY, &flipped, "full with a flipped bit");
    assert!(matches!(err, RecvError::Checksum { .. }), "{err:?}");
    assert_eq!(empty.datasets(), datasets);
}

#[test]
fn recv_flipped_bit_is_ecksum_and_leaves_target_as_is() {
    let (mut dst, streams) = target_at_a();
    let incr = &streams.steps[0];
    let spans = record_spans(incr).expect("spans");
    let mut places = vec![(0, 40)]; // BEGIN toguid: caught by the next record's checksum
    for s in &spans[1..] {
        places.push((s.start, 24)); // a header field
        places.push((s.start, DRR_CHECKSUM_OFFSET + 3)); // the stored checksum itself
        if s.end - s.start > DRR_HEADER_SIZE {
            places.push((s.start, DRR_HEADER_SIZE + 5)); // the payload
        }
    }
    for (start, off) in places {
        let mut bad = incr.clone();
        bad[start + off] ^= 0x04;
        let what = format!("bit flipped at {} (record at {start})", start + off);
        let err = assert_fails_cleanly(&mut dst, COPY, &bad, &what);
        assert!(matches!(err, RecvError::Checksum { .. }), "{what}: {err:?}, want ECKSUM");
    }
}

#[test]
fn recv_bad_end_checksum_is_ecksum_and_leaves_target_as_is() {
    let (mut dst, streams) = target_at_a();
    let mut bad = streams.steps[0].clone();
    let end = record_spans(&bad).expect("spans").last().expect("END").start;
    assert_eq!(u32::from_le_bytes(bad[end..end + 4].try_into().expect("4")), DRR_END);
    update64(&mut bad, end + 8, |v| v ^ 1);
    fix_record_checksum(&mut bad, end);
    let err = assert_fails_cleanly(&mut dst, COPY, &bad, "END checksum off by one bit");
    assert!(matches!(err, RecvError::Checksum { .. }), "{err:?}, want ECKSUM");
}

#[test]
fn recv_unknown_feature_is_refused_and_leaves_target_as_is() {
    let (mut dst, streams) = target_at_a();
    for feature in [1u64 << 30, 1 << 40, DMU_BACKUP_FEATURE_DEDUP] {
        let mut bad = streams.steps[0].clone();
        update64(&mut bad, 16, |v| v | feature << 2);
        let bad = rechecksum(&bad).expect("rechecksum");
        let what = format!("feature {feature:#x}");
        let err = assert_fails_cleanly(&mut dst, COPY, &bad, &what);
        assert!(matches!(err, RecvError::UnsupportedFeature { .. }), "{what}: {err:?}");
    }
}

#[test]
fn recv_onto_modified_target_is_etxtbsy_unless_forced() {
    let (mut dst, streams) = target_at_a();
    dst.write(COPY, 2, 0, b"changed since @a").expect("modify the head");
    let err = assert_fails_cleanly(&mut dst, COPY, &streams.steps[0], "modified target");
    assert!(matches!(err, RecvError::TargetModified(_)), "{err:?}, want ETXTBSY");
    let opts = RecvOptions { force: true };
    let got = dst.recv(COPY, &mut &streams.steps[0][..], &opts).expect("forced receive");
    let mut sc = golden::build(SCENARIO).expect("build");
    let want = view(&mut sc.spa, &sc.snapshots[1].clone());
    assert_eq!(view(&mut dst, &got.snapshot), want, "forced receive");
    let body = |v: String| v.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(body(view(&mut dst, COPY)), body(want), "head rolled back, then updated");
}

#[test]
fn recv_wrong_fromguid_is_enodev_and_leaves_target_as_is() {
    let (mut dst, streams) = target_at_a();
    let mut bad = streams.steps[0].clone();
    update64(&mut bad, 48, |v| v ^ 0x5a5a);
    let bad = rechecksum(&bad).expect("rechecksum");
    let err = assert_fails_cleanly(&mut dst, COPY, &bad, "wrong fromguid");
    assert!(matches!(err, RecvError::NoSuchFromSnap(_)), "{err:?}, want ENODEV");
    let err = assert_fails_cleanly(&mut dst, COPY, &streams.steps[1], "@b -> @c onto @a");
    assert!(matches!(err, RecvError::NoSuchFromSnap(_)), "{err:?}, want ENODEV");
}

#[test]
fn recv_existing_or_missing_target_is_refused_and_leaves_pool_as_is() {
    let (mut dst, streams) = target_at_a();
    let err = assert_fails_cleanly(&mut dst, COPY, &streams.full_after, "full onto existing");
    assert!(matches!(err, RecvError::Exists(_)), "{err:?}, want EEXIST");
    let err = assert_fails_cleanly(&mut dst, COPY, &streams.full_before, "same full again");
    assert!(matches!(err, RecvError::Exists(_)), "{err:?}, want EEXIST");
    let err = assert_fails_cleanly(&mut dst, "pool/other", &streams.steps[0], "incr, no target");
    assert!(matches!(err, RecvError::NoTarget(_)), "{err:?}, want ENOENT");
    recv_ok(&mut dst, COPY, &streams.steps[0], "@a -> @b");
    let err = assert_fails_cleanly(&mut dst, COPY, &streams.steps[0], "@a -> @b twice");
    assert!(!matches!(err, RecvError::Checksum { .. }), "{err:?}");
}

/// §6 #17: a BEGIN claiming a 4 GiB nvlist and a WRITE claiming more than 16 MiB fail
/// with E2BIG / ERANGE before anything is allocated, and change nothing.
#[test]
fn recv_oversized_payloads_fail_cleanly() {
    let (mut dst, streams) = target_at_a();
    let mut bad = streams.steps[0].clone();
    bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = assert_fails_cleanly(&mut dst, COPY, &bad, "BEGIN payloadlen 0xFFFFFFFF");
    assert!(matches!(err, RecvError::TooLarge { .. }), "{err:?}, want E2BIG");
    let spans = record_spans(&streams.steps[0]).expect("spans");
    let write = spans.iter().find(|s| s.drr_type == DRR_WRITE).expect("a WRITE record");
    let mut bad = streams.steps[0].clone();
    put64(&mut bad, write.start + 32, (16 << 20) + 512);
    let bad = &bad[..write.start + DRR_HEADER_SIZE];
    let mut bad = bad.to_vec();
    fix_record_checksum(&mut bad, write.start);
    let err = assert_fails_cleanly(&mut dst, COPY, &bad, "WRITE logical_size 16 MiB + 512");
    assert!(matches!(err, RecvError::TooLarge { .. }), "{err:?}, want ERANGE");
}
