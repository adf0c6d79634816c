//! Shrinking a failing seed: delta debugging (ddmin) over its keyed operation list, down to a
//! list where removing any chunk makes the failure go away; printed as a ready-to-paste
//! regression test. Each op keeps its key (its index in the generated list), and the run
//! loop draws the op's think time, the crash after it and that crash's disk choices from the
//! key (`schedule`), so removing ops keeps the rest of the schedule. Called by `zsim shrink`.

use crate::run::{ops_for, run_ops, SimConfig};
use crate::schedule::KeyedOp;

/// Most runs a shrink may make.
pub const SHRINK_RUNS_MAX: usize = 4000;

/// Failure classes, most specific first (see `failure_kind`).
const FAILURE_KINDS: [&str; 10] = [
    "fsynced data lost",
    "durability violation",
    "integrity",
    "nondeterminism",
    "panic",
    "virtual time limit",
    "import after",
    "sync step failed",
    "engine failed",
    "divergence",
];

/// The class of a failure message: a shrink keeps it, since a smaller list that fails for
/// another reason does not reproduce the original bug.
#[must_use]
pub fn failure_kind(failure: &str) -> &'static str {
    FAILURE_KINDS.iter().copied().find(|k| failure.contains(k)).unwrap_or("other")
}

/// What a shrink found.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The minimal failing list, with the ops' original keys.
    pub ops: Vec<KeyedOp>,
    /// Its failure.
    pub failure: String,
    /// Length of the list the seed generated.
    pub ops_generated: usize,
    /// Runs made.
    pub runs: usize,
}

/// The minimal failing list found and its failure, or None if the seed passes. Only lists
/// that fail with the original's `failure_kind` count as failing.
#[must_use]
pub fn shrink(seed: u64, cfg: &SimConfig) -> Option<Shrunk> {
    let mut ops = ops_for(seed, cfg);
    let ops_generated = ops.len();
    let mut failure = run_ops(seed, &ops, cfg, false).failure?;
    let kind = failure_kind(&failure);
    let fails = |ops: &[KeyedOp]| {
        run_ops(seed, ops, cfg, false).failure.filter(|f| failure_kind(f) == kind)
    };
    let mut runs = 1;
    let mut n = 2usize;
    while ops.len() >= 2 && runs < SHRINK_RUNS_MAX {
        let chunk = ops.len().div_ceil(n);
        let mut reduced = false;
        for start in (0..ops.len()).step_by(chunk) {
            let candidate: Vec<KeyedOp> = ops[..start]
                .iter()
                .chain(&ops[(start + chunk).min(ops.len())..])
                .cloned()
                .collect();
            runs += 1;
            if let Some(f) = fails(&candidate) {
                assert!(candidate.len() < ops.len());
                ops = candidate;
                failure = f;
                n = n.saturating_sub(1).max(2);
                reduced = true;
                break;
            }
        }
        if !reduced {
            if n >= ops.len() {
                break;
            }
            n = (2 * n).min(ops.len());
        }
    }
    assert_eq!(failure_kind(&failure), kind);
    Some(Shrunk { ops, failure, ops_generated, runs })
}

/// A regression test reproducing `ops` under `seed` and `cfg` (profile and generated length:
/// the crash chances follow it), ready to paste into sim/tests/. It asserts the run passes,
/// so it fails until the bug is fixed.
#[must_use]
pub fn as_regression_test(seed: u64, cfg: &SimConfig, ops: &[KeyedOp], failure: &str) -> String {
    let profile = cfg.profile.to_string();
    let mut s = String::new();
    s.push_str(&format!(
        "/// Regression: seed {seed}, profile {profile}, {} ops kept of {}.\n/// Failed with: {}\n",
        ops.len(),
        cfg.ops_per_seed,
        failure.replace('\n', " ")
    ));
    s.push_str(&format!("#[test]\nfn seed_{seed}_{}_regression() {{\n", profile.replace('-', "_")));
    s.push_str("    #[allow(unused_imports)]\n");
    s.push_str("    use oracle::op::{ObjRef::*, Op::*, Pos::*, Target::*};\n");
    s.push_str("    #[allow(unused_imports)]\n    use engine::ObjectSpec;\n");
    s.push_str(
        "    // (key, op): the key is the op's index in the generated list; the op's think\n",
    );
    s.push_str("    // time and the crash after it follow the key.\n");
    s.push_str("    let ops = [\n");
    for (key, op) in ops {
        s.push_str(&format!("        ({key}, {op:?}),\n"));
    }
    s.push_str(&format!(
        "    ];\n    let cfg = sim::run::SimConfig {{\n        profile: \"{profile}\".parse().expect(\"profile\"),\n        ops_per_seed: {},\n        ..Default::default()\n    }};\n    let report = sim::run::run_ops({seed}, &ops, &cfg, false);\n    assert_eq!(report.failure, None);\n}}\n",
        cfg.ops_per_seed
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::failure_kind;

    #[test]
    fn failure_kinds_take_the_most_specific_class() {
        let lost = "durability violation after crash: fsynced data lost: the pool equals [x]";
        assert_eq!(failure_kind(lost), "fsynced data lost");
        assert_eq!(
            failure_kind("durability violation after crash: the pool (txg 3)"),
            "durability violation"
        );
        assert_eq!(failure_kind("op #4 Write: divergence: contents differ"), "divergence");
        assert_eq!(failure_kind("something new"), "other");
    }
}
