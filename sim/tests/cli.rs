//! The `zsim` command line as a user and CI meet it: the exit-status contract (0 checked and
//! clean, 1 violations, 2 bad usage or input) for every subcommand, the named limits on
//! `--seeds` and `--ops`, reproduce lines that reproduce (same trace hash), and progress
//! lines when standard error is not a terminal.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ZSIM: &str = env!("CARGO_BIN_EXE_zsim");

fn zsim(args: &[&str]) -> Output {
    Command::new(ZSIM).args(args).output().expect("zsim runs")
}

/// Exit status of `zsim ARGS`, with the output shown when it is not `want`.
fn status_is(args: &[&str], want: i32) -> Output {
    let out = zsim(args);
    assert_eq!(
        out.status.code(),
        Some(want),
        "zsim {}\nstdout: {}\nstderr: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fixture(folder: &str, file: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../golden/fixtures/openzfs")
        .join(folder)
        .join(file);
    p.to_str().expect("utf-8 path").to_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zsim-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn run_exit_codes() {
    status_is(&["run", "--seeds", "2", "--ops", "20", "--jobs", "1"], 0);
    // A disk whose flush persists nothing: the oracle must find violations.
    status_is(&["run", "--seeds", "3", "--ops", "60", "--profile", "lying-flush"], 1);
    status_is(&["run", "--profile", "nosuch"], 2);
    status_is(&["run", "--shard", "3/2"], 2);
    status_is(&["run", "--determinism", "101"], 2);
    status_is(&["run", "--jobs", "0"], 2);
}

#[test]
fn limits_are_named_and_refused_before_any_work() {
    let out = status_is(&["run", "--seeds", "1000000001"], 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("1..=1000000000"));
    let out = status_is(&["run", "--ops", "99999999999"], 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("1..=10000"));
    status_is(&["replay", "--seed", "1", "--ops", "10001"], 2);
    status_is(&["shrink", "--seed", "1", "--ops", "0"], 2);
    let out = status_is(&["run", "--start", "18446744073709551615", "--seeds", "2"], 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("past the last seed"));
    // The largest seed count is accepted and iterated lazily: a far shard holds one seed.
    status_is(
        &["run", "--seeds", "1000000000", "--shard", "999999999/1000000000", "--ops", "5"],
        0,
    );
}

#[test]
fn replay_and_shrink_exit_codes() {
    status_is(&["replay", "--seed", "3", "--ops", "20"], 0);
    status_is(&["replay", "--seed", "1", "--ops", "60", "--profile", "lying-flush"], 1);
    status_is(&["replay"], 2);
    status_is(&["shrink", "--seed", "3", "--ops", "10"], 0);
    status_is(&["shrink", "--seed", "3", "--profile", "bogus"], 2);
}

#[test]
fn scenario_commands_exit_codes() {
    status_is(&["gen", "nosuch", scratch("gen-bad").to_str().expect("utf-8")], 2);
    status_is(&["explore", "nosuch"], 2);
    status_is(&["explore"], 2);
    status_is(&["gen", "--list"], 0);
    let dir = scratch("gen");
    status_is(&["gen", "wiki", dir.to_str().expect("utf-8")], 0);
    // An output path that cannot be a directory is bad input.
    let file = dir.join("full-before.zstream");
    status_is(&["gen", "wiki", file.join("sub").to_str().expect("utf-8")], 2);
    status_is(&["explore", "empty"], 0);
}

#[test]
fn stream_commands_exit_codes() {
    let full = fixture("basic", "full-before.zstream");
    let incr = fixture("basic", "incr-before-after.zstream");
    status_is(&["recv", &full, &incr], 0);
    status_is(&["recv", "/nonexistent/stream"], 2);
    status_is(&["recv", &incr], 2); // an incremental with nothing to apply it to: refused
    status_is(&["dump", "-v", &full], 0);
    status_is(&["dump", "--strict", &full], 0);
    status_is(&["dump", "/nonexistent/stream"], 2);
    let dir = scratch("dump");
    let bytes = std::fs::read(&full).expect("fixture");
    let junk = dir.join("junk");
    // A header with no checksum and no magic: not a send stream.
    std::fs::write(&junk, [0u8; 400]).expect("write");
    status_is(&["dump", junk.to_str().expect("utf-8")], 2);
    // Text: zstream complains of the first header's checksum and exits 0; --strict exits 1.
    std::fs::write(&junk, "not a send stream at all, just words. ".repeat(20)).expect("write");
    status_is(&["dump", junk.to_str().expect("utf-8")], 0);
    status_is(&["dump", "--strict", junk.to_str().expect("utf-8")], 1);
    // Shorter than one record header: zstream sees an empty stream; --strict, a truncated one.
    std::fs::write(&junk, b"short").expect("write");
    status_is(&["dump", junk.to_str().expect("utf-8")], 0);
    status_is(&["dump", "--strict", junk.to_str().expect("utf-8")], 1);
    // Truncated and corrupted: zstream dump exits 0 on both; --strict exits 1.
    let cut = dir.join("cut.zstream");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).expect("write");
    let cut = cut.to_str().expect("utf-8");
    status_is(&["dump", cut], 0);
    status_is(&["dump", "--strict", cut], 1);
    let mut flipped = bytes.clone();
    flipped[312 + 100] ^= 0x40;
    let bad = dir.join("bad.zstream");
    std::fs::write(&bad, &flipped).expect("write");
    let bad = bad.to_str().expect("utf-8");
    status_is(&["dump", bad], 0);
    status_is(&["dump", "--strict", bad], 1);
    // --strict changes the exit status only, never the text.
    assert_eq!(zsim(&["dump", "-v", bad]).stdout, zsim(&["dump", "-v", "--strict", bad]).stdout);
}

#[test]
fn completions_and_man_page() {
    let out = status_is(&["completions", "bash"], 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("zsim"));
    status_is(&["completions", "tcsh-of-the-future"], 2);
    let out = status_is(&["man"], 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH zsim"));
    let out = status_is(&["--help"], 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Exit status:"));
}

/// The trace hash a `zsim replay` prints.
fn replay_hash(line: &str) -> String {
    let args: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(args.first(), Some(&"zsim"), "{line}");
    let out = zsim(&args[1..]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("trace hash "))
        .unwrap_or_else(|| panic!("{line}: no trace hash in {text}"))
        .to_owned()
}

#[test]
fn followed_reproduce_lines_give_the_same_trace_hash() {
    // A non-default run: a profile and an operation count other than the defaults.
    let args = ["run", "--seeds", "3", "--ops", "45", "--profile", "lying-flush"];
    let json = zsim(&[&args[..], &["--json"]].concat());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON summary");
    let failures = v["failures"].as_array().expect("failures");
    assert!(!failures.is_empty(), "lying-flush found nothing: {v}");
    for f in failures {
        let line = f["reproducer"].as_str().expect("reproducer");
        assert!(line.contains("--ops 45") && line.contains("--profile lying-flush"), "{line}");
        assert_eq!(replay_hash(line), f["trace_hash"].as_str().expect("hash"), "{line}");
    }
    // The text form prints the same lines.
    let text = String::from_utf8_lossy(&zsim(&args).stdout).into_owned();
    for f in failures {
        let line = f["reproducer"].as_str().expect("reproducer");
        assert!(text.contains(&format!("reproduce: {line}")), "{text}");
    }
}

#[test]
fn progress_lines_when_not_on_a_terminal() {
    let out = status_is(&["run", "--seeds", "2", "--ops", "10"], 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zsim run: 2/2 seeds, 0 failing"), "{err}");
}
