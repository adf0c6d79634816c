//! The `zsim gen SCENARIO OUTDIR` contract (design.md): the five files in the layout of
//! `golden/fixtures/openzfs/`, extra files for multi-snapshot scenarios, receivable to their
//! own manifests; and determinism (design.md property 6): a scenario is a pure function of
//! its name, so two builds send byte-identical streams.

mod common;

use std::path::PathBuf;

use common::{pool, recv_ok};
use engine::dmu::send::SendOptions;
use golden::GoldenError;

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("golden-gen-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read(dir: &TempDir, file: &str) -> Vec<u8> {
    std::fs::read(dir.0.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn text(dir: &TempDir, file: &str) -> String {
    String::from_utf8(read(dir, file)).expect("manifest is UTF-8")
}

#[test]
fn gen_writes_the_five_files_and_they_receive_to_their_manifests() {
    for name in ["basic", "holes", "chain"] {
        let dir = TempDir::new(name);
        golden::gen(name, &dir.0).expect("gen");
        let mut spa = pool(0x6e);
        let before = recv_ok(&mut spa, "pool/g", &read(&dir, "full-before.zstream"), name);
        assert_eq!(golden::manifest(&mut spa, &before), text(&dir, "manifest-before.txt"));
        let after = recv_ok(&mut spa, "pool/g", &read(&dir, "incr-before-after.zstream"), name);
        assert_eq!(golden::manifest(&mut spa, &after), text(&dir, "manifest-after.txt"));
        let mut alone = pool(0x6f);
        let after = recv_ok(&mut alone, "pool/g", &read(&dir, "full-after.zstream"), name);
        assert_eq!(golden::manifest(&mut alone, &after), text(&dir, "manifest-after.txt"));
        let mut files: Vec<String> = std::fs::read_dir(&dir.0)
            .expect("outdir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort_unstable();
        let mut want = vec![
            "full-after.zstream",
            "full-before.zstream",
            "incr-before-after.zstream",
            "manifest-after.txt",
            "manifest-before.txt",
        ];
        if name == "chain" {
            want.extend([
                "incr-a-b.zstream",
                "incr-b-c.zstream",
                "manifest-a.txt",
                "manifest-b.txt",
                "manifest-c.txt",
            ]);
            want.sort_unstable();
            assert!(text(&dir, "manifest-before.txt").starts_with("# manifest v1 snapshot=@a\n"));
            assert_eq!(text(&dir, "manifest-after.txt"), text(&dir, "manifest-c.txt"));
        }
        assert_eq!(files, want, "{name}: files written");
    }
}

#[test]
fn gen_of_an_unknown_scenario_is_a_typed_error() {
    let dir = TempDir::new("unknown");
    let err = golden::gen("no-such-scenario", &dir.0).expect_err("unknown scenario");
    assert!(matches!(err, GoldenError::UnknownScenario(ref n) if n == "no-such-scenario"));
    assert!(!dir.0.exists(), "nothing is written for an unknown scenario");
}

#[test]
fn catalog_names_are_unique_and_described() {
    let names = golden::names();
    let mut sorted = names.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "duplicate scenario names");
    for required in [
        "wiki",
        "basic",
        "holes",
        "truncate",
        "freeobjects",
        "realloc",
        "large",
        "empty",
        "chain",
        "many-objects",
    ] {
        assert!(names.contains(&required), "design.md names scenario {required}");
    }
    for name in names {
        assert!(golden::about(name).is_some_and(|a| !a.is_empty()), "{name}: no description");
    }
}

#[test]
fn scenarios_are_deterministic() {
    for opts in [
        SendOptions::default(),
        SendOptions { embed: true, compressed: true, ..SendOptions::default() },
    ] {
        for name in golden::names() {
            let mut a = golden::build(name).expect("build a");
            let mut b = golden::build(name).expect("build b");
            assert_eq!(a.snapshots, b.snapshots);
            let (sa, sb) = (golden::streams(&mut a, &opts), golden::streams(&mut b, &opts));
            assert!(sa == sb, "{name} {opts:?}: two builds sent different streams");
        }
    }
}
