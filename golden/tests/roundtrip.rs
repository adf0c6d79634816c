//! Round trip (design.md property 3) for every golden scenario: the full stream of the
//! first snapshot plus each incremental, or the full stream of the last snapshot alone,
//! received into a fresh pool give the source's manifests; sending the received snapshots
//! again gives the same records (guids, times and data preserved). Also with embedded and
//! compressed records (and a second compressed hop, §6 #15), and in big-endian byte order.

#[macro_use]
mod common;

use common::{pool, recv_ok, view, COPY};
use engine::dmu::send::SendOptions;
use engine::stream::{ByteOrder, Record};
use engine::Spa;
use golden::check::{decode, dump_v, normalized, summary};
use golden::{short_name, Scenario};

/// The source's view of every snapshot, oldest first.
fn source_views(sc: &mut Scenario) -> Vec<String> {
    sc.snapshots.clone().iter().map(|s| view(&mut sc.spa, s)).collect()
}

/// `name` of the copy of source snapshot `snap`.
fn copy_of(snap: &str) -> String {
    format!("{COPY}@{}", short_name(snap))
}

/// Receive full(first) and every step into a fresh pool; check each snapshot's view.
fn receive_chain(sc: &Scenario, streams: &golden::Streams, views: &[String], what: &str) -> Spa {
    let mut dst = pool(0xc0de);
    let got = recv_ok(&mut dst, COPY, &streams.full_before, what);
    assert_eq!(got, copy_of(sc.before()));
    assert_eq!(view(&mut dst, &got), views[0], "{what}: {got} after the full stream");
    for (i, step) in streams.steps.iter().enumerate() {
        let got = recv_ok(&mut dst, COPY, step, what);
        assert_eq!(got, copy_of(&sc.snapshots[i + 1]));
        assert_eq!(view(&mut dst, &got), views[i + 1], "{what}: {got} after step {i}");
    }
    dst
}

/// The records of `a` and `b` say the same (`check::summary`; incrementals without their
/// hole FREEs, which follow the shape of each pool's trees).
fn assert_same_records(a: &[u8], b: &[u8], incremental: bool, what: &str) {
    let (ra, rb) = (decode(a).expect("decode a"), decode(b).expect("decode b"));
    let (mut sa, mut sb) = (summary(&ra), summary(&rb));
    if incremental {
        (sa, sb) = (sa.without_holes(), sb.without_holes());
    }
    if sa != sb {
        let (da, db) = (dump_v(a).stdout, dump_v(b).stdout);
        let diff: Vec<String> = da
            .lines()
            .zip(db.lines())
            .filter(|(x, y)| x != y)
            .take(8)
            .map(|(x, y)| format!("- {x}\n+ {y}"))
            .collect();
        panic!(
            "{what}: re-sent records differ ({} vs {} records):\n{}",
            ra.len(),
            rb.len(),
            diff.join("\n")
        );
    }
}

fn roundtrip(name: &str) {
    let mut sc = golden::build(name).expect("build");
    let views = source_views(&mut sc);
    let streams = golden::streams(&mut sc, &SendOptions::default());
    let mut dst = receive_chain(&sc, &streams, &views, name);
    let last = views.last().expect("two snapshots");
    let mut alone = pool(0xa10e);
    let got = recv_ok(&mut alone, COPY, &streams.full_after, name);
    assert_eq!(&view(&mut alone, &got), last, "{name}: full-after alone");
    if sc.snapshots.len() > 2 {
        let mut skip = pool(0x5419);
        recv_ok(&mut skip, COPY, &streams.full_before, name);
        let got = recv_ok(&mut skip, COPY, &streams.incr_before_after, name);
        assert_eq!(&view(&mut skip, &got), last, "{name}: full-before + incr-before-after");
    }
    let opts = SendOptions::default();
    let (first, after) = (copy_of(sc.before()), copy_of(sc.after()));
    let resent = golden::send(&mut dst, &first, None, &opts).expect("re-send full-before");
    assert_same_records(&streams.full_before, &resent, false, &format!("{name} full-before"));
    let resent = golden::send(&mut dst, &after, None, &opts).expect("re-send full-after");
    assert_same_records(&streams.full_after, &resent, false, &format!("{name} full-after"));
    for (i, pair) in sc.snapshots.windows(2).enumerate() {
        let (from, to) = (copy_of(&pair[0]), copy_of(&pair[1]));
        let resent = golden::send(&mut dst, &to, Some(&from), &opts).expect("re-send step");
        assert_same_records(&streams.steps[i], &resent, true, &format!("{name} {from} -> {to}"));
    }
}

for_every_scenario!(roundtrip);

/// Embedded and compressed records (`zfs send -e -c`) receive to the same views, and a
/// second compressed hop from the received pool does too (§6 #15: "compressed" is taken
/// from the block pointer, never from lsize != psize).
#[test]
fn embedded_compressed_streams_roundtrip_over_two_hops() {
    let opts = SendOptions { embed: true, compressed: true, ..SendOptions::default() };
    for name in golden::names() {
        let mut sc = golden::build(name).expect("build");
        let views = source_views(&mut sc);
        let streams = golden::streams(&mut sc, &opts);
        let mut hop1 = receive_chain(&sc, &streams, &views, &format!("{name} -e -c"));
        let mut hop2 = pool(0x2409);
        let first = copy_of(sc.before());
        let full = golden::send(&mut hop1, &first, None, &opts).expect("hop 2 full");
        recv_ok(&mut hop2, COPY, &full, name);
        for pair in sc.snapshots.windows(2) {
            let (from, to) = (copy_of(&pair[0]), copy_of(&pair[1]));
            let incr = golden::send(&mut hop1, &to, Some(&from), &opts).expect("hop 2 incr");
            recv_ok(&mut hop2, COPY, &incr, name);
            let want = views.last().expect("views");
            if to == copy_of(sc.after()) {
                assert_eq!(&view(&mut hop2, &to), want, "{name}: second compressed hop");
            }
        }
    }
}

/// Big-endian streams (as a big-endian host sends them) receive to the same views.
#[test]
fn big_endian_streams_receive_to_the_same_views() {
    let opts = SendOptions { byte_order: ByteOrder::Big, ..SendOptions::default() };
    let mut failed = Vec::new();
    for name in golden::names() {
        let mut sc = golden::build(name).expect("build");
        let views = source_views(&mut sc);
        let streams = golden::streams(&mut sc, &opts);
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            receive_chain(&sc, &streams, &views, &format!("{name} big-endian"));
        }));
        if run.is_err() {
            failed.push(*name);
        }
    }
    assert!(failed.is_empty(), "big-endian round trip fails for {failed:?}");
}

/// Headers of big-endian streams decode to the same records as little-endian ones (the
/// stream layer's byteswap of every integer field, §1.2-1.3); payloads set aside.
#[test]
fn big_endian_headers_decode_like_little_endian() {
    let big = SendOptions { byte_order: ByteOrder::Big, ..SendOptions::default() };
    let strip = |recs: Vec<Record>| -> Vec<Record> {
        normalized(&recs)
            .into_iter()
            .map(|r| match r {
                Record::Object { drr, .. } => Record::Object { drr, bonus: Vec::new() },
                Record::Write { drr, .. } => Record::Write { drr, data: Vec::new() },
                other => other,
            })
            .collect()
    };
    for name in golden::names() {
        let mut sc = golden::build(name).expect("build");
        let le = golden::streams(&mut sc, &SendOptions::default());
        let be = golden::streams(&mut sc, &big);
        for (l, b) in le.named(&sc).into_iter().zip(be.named(&sc)) {
            let stem = l.stem.clone();
            assert_eq!(l.bytes.len(), b.bytes.len(), "{name} {stem}: stream lengths");
            let (l, b) = (decode(l.bytes).expect("LE"), decode(b.bytes).expect("BE"));
            assert_eq!(strip(l), strip(b), "{name} {stem}: BE headers differ from LE");
        }
    }
}
