//! Properties 3 and 4 as quickcheck properties over random operation histories: receiving
//! full(A) gives model(A); then incremental(A, B) gives model(B); re-sending the received
//! snapshot gives the same records; and a receive of a truncated or damaged stream fails
//! and changes nothing. Histories come from `random_ops` (seeded; quickcheck shrinks them).
//! Contents are compared by `manifest_trimmed`: a non-raw stream carries no maxblkid (nor do
//! OpenZFS's), so an object whose last blocks were punched is received shorter with the same
//! contents. Records are compared by `golden::check::summary` (the received pool's own tree
//! shapes bound hole FREEs differently).

use engine::dmu::recv::RecvOptions;
use engine::dmu::send::SendOptions;
use engine::limits::DNODES_PER_BLOCK;
use engine::{MemoryDevice, Spa, SpaConfig};
use golden::check::{decode, summary, StreamSummary};
use oracle::{manifest_of_model_trimmed, manifest_trimmed, random_ops, GenConfig, Model, Op};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

const OPS_MAX: usize = 40;
const CASES: u64 = 24;
const THOROUGH_CASES: u64 = 1000;

#[derive(Clone, Debug)]
struct History(Vec<Op>, Vec<Op>, u16);

impl Arbitrary for History {
    fn arbitrary(g: &mut Gen) -> Self {
        let cfg =
            GenConfig { write_len_max: 32 << 10, sparse: false, export_import: false, fsync: true };
        let a = random_ops(u64::arbitrary(g), usize::arbitrary(g) % OPS_MAX + 1, &cfg);
        let b = random_ops(u64::arbitrary(g), usize::arbitrary(g) % OPS_MAX + 1, &cfg);
        Self(a, b, u16::arbitrary(g))
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let (b, cut) = (self.1.clone(), self.2);
        let a = self.0.clone();
        let mut out = Vec::new();
        for i in 0..self.0.len() {
            let mut s = self.0.clone();
            s.remove(i);
            out.push(Self(s, b.clone(), cut));
        }
        for i in 0..self.1.len() {
            let mut s = self.1.clone();
            s.remove(i);
            out.push(Self(a.clone(), s, cut));
        }
        Box::new(out.into_iter())
    }
}

fn pool(name: &str) -> Spa {
    Spa::create(Box::new(MemoryDevice::new(64 << 20)), name, SpaConfig::default()).expect("pool")
}

fn apply_all(spa: &mut Spa, model: &mut Model, ops: &[Op]) -> Result<(), String> {
    for op in ops {
        op.apply(spa, model).map_err(|d| format!("{op:?}: {d}"))?;
    }
    Ok(())
}

fn send(spa: &mut Spa, to: &str, from: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    spa.send(to, from, &SendOptions::default(), &mut out).expect("send");
    out
}

fn check(h: &History) -> Result<(), String> {
    let (mut src, mut model) = (pool("tank"), Model::new("tank"));
    apply_all(&mut src, &mut model, &h.0)?;
    src.snapshot("tank@qa").map_err(|e| e.to_string())?;
    model.snapshot("tank@qa").map_err(|e| format!("{e:?}"))?;
    apply_all(&mut src, &mut model, &h.1)?;
    if !model.snapshots("tank").map_err(|e| format!("{e:?}"))?.contains(&"tank@qa".to_owned()) {
        return Ok(()); // the second history destroyed @qa: nothing to send incrementally
    }
    src.snapshot("tank@qb").map_err(|e| e.to_string())?;
    model.snapshot("tank@qb").map_err(|e| format!("{e:?}"))?;
    let (full, incr) =
        (send(&mut src, "tank@qa", None), send(&mut src, "tank@qb", Some("tank@qa")));
    let mut dst = pool("dst");
    dst.recv("dst/copy", &mut full.as_slice(), &RecvOptions::default())
        .map_err(|e| e.to_string())?;
    let want_a = manifest_of_model_trimmed(&model, "tank@qa").map_err(|e| format!("{e:?}"))?;
    let got_a = manifest_trimmed(&mut dst, "dst/copy@qa").map_err(|e| e.to_string())?;
    if got_a != want_a {
        return Err(format!("recv(full(A)) != model(A):\n{got_a}\nvs\n{want_a}"));
    }
    // A damaged incremental fails and changes nothing.
    let cut = usize::from(h.2) % incr.len().max(1);
    let mut bad = incr.clone();
    bad.truncate(cut.max(1));
    if dst.recv("dst/copy", &mut bad.as_slice(), &RecvOptions::default()).is_ok() {
        return Err(format!("a stream cut at {cut} of {} was accepted", incr.len()));
    }
    if manifest_trimmed(&mut dst, "dst/copy@qa").map_err(|e| e.to_string())? != want_a
        || dst.snapshots("dst/copy").map_err(|e| e.to_string())?.len() != 1
    {
        return Err("a failed receive changed the target".into());
    }
    dst.recv("dst/copy", &mut incr.as_slice(), &RecvOptions::default())
        .map_err(|e| e.to_string())?;
    let want_b = manifest_of_model_trimmed(&model, "tank@qb").map_err(|e| format!("{e:?}"))?;
    if manifest_trimmed(&mut dst, "dst/copy@qb").map_err(|e| e.to_string())? != want_b {
        return Err("recv(full(A)) + recv(incr(A, B)) != model(B)".into());
    }
    for (what, to, from, sent) in
        [("full(A)", "@qa", None, &full), ("incr(A, B)", "@qb", Some("dst/copy@qa"), &incr)]
    {
        let resent = send(&mut dst, &format!("dst/copy{to}"), from);
        let (a, b) = (decode(sent).map_err(|e| e.to_string())?, decode(&resent));
        let (mut a, mut b) = (summary(&a), summary(&b.map_err(|e| e.to_string())?));
        if from.is_some() {
            (a, b) = (a.without_holes(), b.without_holes());
        }
        trim_tails(&mut a);
        trim_tails(&mut b);
        if a != b {
            return Err(format!("re-sent {what} says other records: {}", differences(&a, &b)));
        }
    }
    Ok(())
}

/// Every object's end (its FREE-to-end offset) lowered to the end of its last WRITE, and its
/// holes clipped there: the received object keeps no trailing holes (`manifest_trimmed`).
fn trim_tails(s: &mut StreamSummary) {
    for (obj, (drr, _, end)) in &mut s.objects {
        let bs = u64::from(drr.blksz);
        let last = s.data.range((*obj, 0)..=(*obj, u64::MAX)).next_back();
        *end = last.map_or(0, |((_, offset), _)| (offset / bs + 1) * bs);
        if let Some(holes) = s.holes.get_mut(obj) {
            holes.retain_mut(|h| {
                h.1 = h.1.min(*end);
                h.0 < h.1
            });
        }
    }
    s.holes.retain(|_, h| !h.is_empty());
    // Free dnode slots past the last object's dnode block: the meta-dnode's length is not
    // carried either (a receive never wrote the blocks of objects freed before the send).
    let last = s.objects.keys().next_back().map_or(0, |o| o + 1);
    let end = last.div_ceil(DNODES_PER_BLOCK).max(1) * DNODES_PER_BLOCK;
    s.freeobjects.retain_mut(|r| {
        r.1 = r.1.min(end);
        r.0 < r.1
    });
}

/// What differs between two summaries, briefly.
fn differences(a: &StreamSummary, b: &StreamSummary) -> String {
    let mut out = Vec::new();
    if a.begin != b.begin {
        out.push(format!("BEGIN {:?} vs {:?}", a.begin, b.begin));
    }
    for (obj, x) in &a.objects {
        match b.objects.get(obj) {
            Some(y) if y == x => {}
            y => out.push(format!("OBJECT {obj}: {:?} vs {:?}", (x.0, x.2), y.map(|y| (y.0, y.2)))),
        }
    }
    let extra: Vec<_> = b.objects.keys().filter(|o| !a.objects.contains_key(o)).collect();
    if !extra.is_empty() {
        out.push(format!("objects only re-sent: {extra:?}"));
    }
    let keys = |s: &StreamSummary| s.data.keys().copied().collect::<Vec<_>>();
    if keys(a) != keys(b) {
        out.push(format!("WRITEs at {:?} vs {:?}", keys(a), keys(b)));
    } else if a.data != b.data {
        out.push("WRITE payloads differ".to_owned());
    }
    if a.holes != b.holes || a.freeobjects != b.freeobjects {
        out.push(format!(
            "holes {:?} vs {:?}",
            (&a.holes, &a.freeobjects),
            (&b.holes, &b.freeobjects)
        ));
    }
    out.join("; ")
}

fn prop(h: History) -> TestResult {
    match check(&h) {
        Ok(()) => TestResult::passed(),
        Err(e) => TestResult::error(e),
    }
}

fn run(seed: u64, cases: u64) {
    QuickCheck::new()
        .rng(Gen::from_size_and_seed(OPS_MAX, seed))
        .tests(cases)
        .max_tests(cases)
        .quickcheck(prop as fn(History) -> TestResult);
}

#[test]
fn send_receive_round_trips_and_failed_receives_change_nothing() {
    run(0x5e4d, CASES);
}

/// The long form (`cargo test --release -p oracle --test roundtrip -- --ignored`).
#[test]
#[ignore = "long: THOROUGH_CASES histories"]
fn send_receive_round_trips_thoroughly() {
    run(0x7409, THOROUGH_CASES);
}
