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
use engine::{MemoryDevice, Spa, SpaConfig};
use oracle::resend::same_records;
use oracle::{manifest_of_model_trimmed, manifest_trimmed, random_ops, GenConfig, Model, Op};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

const OPS_MAX: usize = 40;
const CASES: u64 = 24;
const THOROUGH_CASES: u64 = 1000;

#[derive(Clone, Debug)]
struct History(Vec<Op>, Vec<Op>, u16);

impl Arbitrary for History {
    fn arbitrary(g: &mut Gen) -> Self {
        let cfg = GenConfig {
            write_len_max: 32 << 10,
            sparse: false,
            export_import: false,
            ..GenConfig::default()
        };
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
        same_records(sent, &resent, from.is_some()).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(())
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
