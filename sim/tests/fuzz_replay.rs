//! Stable replay of the fuzz corpora and artifacts: every file of `fuzz/corpus/TARGET/` and
//! `fuzz/artifacts/TARGET/` runs through the harness its cargo-fuzz target calls
//! (`sim::fuzz`), so an input that once crashed a fuzzer stays a regression test without
//! nightly or libFuzzer. Corpora are capped per target (`CORPUS_REPLAY_MAX`, spread evenly
//! over the sorted names) to keep the debug run short; artifacts are always replayed in full.
//! `write_seed_corpora` (ignored) regenerates the seeds and `fuzz/base/`.

use std::path::{Path, PathBuf};

use engine::dmu::send::SendOptions;
use engine::stream::ByteOrder;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Corpus files replayed per target at most (all artifacts are replayed).
const CORPUS_REPLAY_MAX: usize = 200;
/// Corpus files replayed for the slow targets (each input runs a pool history).
const CORPUS_REPLAY_SLOW_MAX: usize = 40;
/// How long one input may take in a debug build before the replay calls it a hang.
const REPLAY_INPUT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Random seed inputs written per non-stream target.
const RANDOM_SEEDS: usize = 24;
/// Golden scenarios whose full `@before` stream is received into the receive harnesses' base
/// pool, so that their incrementals apply (the fixture mirrors are covered by the real
/// streams; `large` and `many-objects` would make every check slower).
const BASE_SCENARIOS: [&str; 9] = [
    "wiki",
    "realloc",
    "empty",
    "chain",
    "bug-hole-birth-reuse",
    "bug-hole-birth-indirect",
    "bug-hole-birth-truncate-extend",
    "bug-freeobjects-double-advance",
    "bug-embedded-padding",
];

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

/// At most `max` of `all`, spread evenly.
fn spread(all: Vec<PathBuf>, max: usize) -> Vec<PathBuf> {
    if all.len() <= max {
        return all;
    }
    let step = all.len() as f64 / max as f64;
    (0..max).map(|i| all[(i as f64 * step) as usize].clone()).collect()
}

fn replay(target: &str, harness: fn(&[u8]), corpus_max: usize) {
    let dir = sim::fuzz::fuzz_dir();
    let corpus = spread(files(&dir.join("corpus").join(target)), corpus_max);
    let artifacts = files(&dir.join("artifacts").join(target));
    assert!(!corpus.is_empty(), "{target}: no seed corpus in {}", dir.display());
    let inputs: Vec<PathBuf> = corpus.iter().chain(&artifacts).cloned().collect();
    // One worker runs every input (its thread keeps the harness's pools); this thread waits
    // for each with a deadline, so that an input that hangs the engine fails the test
    // instead of hanging it (the worker is then left behind until the process exits).
    let (tx, rx) = std::sync::mpsc::channel();
    let work = inputs.clone();
    std::thread::spawn(move || {
        for path in work {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let ok = std::panic::catch_unwind(|| harness(&data)).is_ok();
            if tx.send(ok).is_err() {
                return;
            }
        }
    });
    for path in &inputs {
        let reproduce = format!("cargo fuzz run -s none {target} {}", path.display());
        match rx.recv_timeout(REPLAY_INPUT_TIMEOUT) {
            Ok(true) => {}
            Ok(false) => panic!("{target}: {} fails (reproduce: {reproduce})", path.display()),
            Err(_) => panic!(
                "{target}: {} did not finish in {REPLAY_INPUT_TIMEOUT:?} (reproduce: \
                 {reproduce})",
                path.display()
            ),
        }
    }
    eprintln!("{target}: replayed {} corpus files and {} artifacts", corpus.len(), artifacts.len());
}

#[test]
fn replay_recv_bytes() {
    replay("recv_bytes", sim::fuzz::recv_bytes, CORPUS_REPLAY_MAX);
}

#[test]
fn replay_recv_structured() {
    replay("recv_structured", sim::fuzz::recv_structured, CORPUS_REPLAY_MAX);
}

#[test]
fn replay_ops() {
    replay("ops", sim::fuzz::ops, CORPUS_REPLAY_SLOW_MAX);
}

#[test]
fn replay_crash() {
    replay("crash", sim::fuzz::crash, CORPUS_REPLAY_SLOW_MAX);
}

#[test]
fn replay_import() {
    replay("import", sim::fuzz::import, CORPUS_REPLAY_MAX);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("create corpus dir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

/// Golden streams: every scenario's, little endian; some also big endian and `-e -c`.
fn golden_seeds(recv: &Path, base: &Path) {
    let be = SendOptions { byte_order: ByteOrder::Big, ..SendOptions::default() };
    let ec = SendOptions { embed: true, compressed: true, ..SendOptions::default() };
    for name in golden::names() {
        let mut sc = golden::build(name).expect("build scenario");
        let plain = golden::streams(&mut sc, &SendOptions::default());
        for s in
            plain.named(&sc).iter().filter(|s| (*name, s.stem.as_str()) != ("large", "full-after"))
        {
            write(recv, &format!("golden-{name}-{}.zstream", s.stem), s.bytes);
        }
        if BASE_SCENARIOS.contains(name) {
            write(base, &format!("g-{name}.0.zstream"), &plain.full_before);
        }
        for (tag, opts) in [("be", &be), ("ec", &ec)] {
            if matches!(*name, "basic" | "chain" | "realloc" | "bug-embedded-padding") {
                let streams = golden::streams(&mut sc, opts);
                write(
                    recv,
                    &format!("golden-{name}-full-before-{tag}.zstream"),
                    &streams.full_before,
                );
                write(
                    recv,
                    &format!("golden-{name}-incr-before-after-{tag}.zstream"),
                    &streams.incr_before_after,
                );
            }
        }
    }
}

/// The real OpenZFS streams, as seeds and (their full `@before`) as bases.
fn real_seeds(recv: &Path, base: &Path) {
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/fixtures/openzfs");
    for dir in dirs(&real) {
        let name = dir.file_name().expect("named").to_string_lossy().into_owned();
        for f in files(&dir).into_iter().filter(|p| p.extension().is_some_and(|x| x == "zstream")) {
            let stem = f.file_stem().expect("named").to_string_lossy().into_owned();
            let bytes = std::fs::read(&f).expect("read real stream");
            write(recv, &format!("real-{name}-{stem}.zstream"), &bytes);
            if stem == "full-before" {
                write(base, &format!("real-{name}.0.zstream"), &bytes);
            }
        }
    }
}

fn dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    out.sort();
    out
}

/// Random byte strings: `arbitrary` turns them into varied inputs for the typed targets.
fn random_seeds(dir: &Path, target: &str) {
    let mut rng = ChaCha8Rng::seed_from_u64(0xf022);
    for i in 0..RANDOM_SEEDS {
        let len = [16, 64, 256, 1024, 4096][i % 5];
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        write(dir, &format!("seed-{target}-{i:02}"), &bytes);
    }
}

/// Regenerate the seed corpora and the base streams:
/// `cargo test -p sim --test fuzz_replay -- --ignored write_seed_corpora`.
#[test]
#[ignore = "writes fuzz/corpus and fuzz/base; run by hand"]
fn write_seed_corpora() {
    let dir = sim::fuzz::fuzz_dir();
    let (recv, base) = (dir.join("corpus/recv_bytes"), dir.join("base"));
    golden_seeds(&recv, &base);
    real_seeds(&recv, &base);
    for target in ["recv_structured", "ops", "crash", "import"] {
        random_seeds(&dir.join("corpus").join(target), target);
    }
}
