//! Shrinking a failing seed: delta debugging (ddmin) over its operation list, keeping the
//! seed's disk and crash schedule, down to a list where removing any chunk makes the failure
//! go away; printed as a ready-to-paste regression test. Called by `zsim shrink`.

use oracle::op::Op;

use crate::run::{ops_for, run_ops, SimConfig};

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

/// The minimal failing list found and its failure, or None if the seed passes. Only lists
/// that fail with the original's `failure_kind` count as failing.
#[must_use]
pub fn shrink(seed: u64, cfg: &SimConfig) -> Option<(Vec<Op>, String)> {
    let mut ops = ops_for(seed, cfg);
    let mut failure = run_ops(seed, &ops, cfg, false).failure?;
    let kind = failure_kind(&failure);
    let fails =
        |ops: &[Op]| run_ops(seed, ops, cfg, false).failure.filter(|f| failure_kind(f) == kind);
    let mut runs = 1;
    let mut n = 2usize;
    while ops.len() >= 2 && runs < SHRINK_RUNS_MAX {
        let chunk = ops.len().div_ceil(n);
        let mut reduced = false;
        for start in (0..ops.len()).step_by(chunk) {
            let candidate: Vec<Op> = ops[..start]
                .iter()
                .chain(&ops[(start + chunk).min(ops.len())..])
                .cloned()
                .collect();
            runs += 1;
            if let Some(f) = fails(&candidate) {
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
    Some((ops, failure))
}

/// A regression test reproducing `ops` under `seed`, ready to paste into sim/tests/.
#[must_use]
pub fn as_regression_test(seed: u64, profile: &str, ops: &[Op], failure: &str) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "/// Regression: seed {seed}, profile {profile}.\n/// Failed with: {}\n",
        failure.replace('\n', " ")
    ));
    s.push_str(&format!("#[test]\nfn seed_{seed}_{}_regression() {{\n", profile.replace('-', "_")));
    s.push_str(
        "    use oracle::op::{ObjRef::*, Op::*, Pos::*, Target::*};\n    use engine::ObjectSpec;\n",
    );
    s.push_str("    let ops = vec![\n");
    for op in ops {
        s.push_str(&format!("        {op:?},\n"));
    }
    s.push_str(&format!(
        "    ];\n    let cfg = sim::run::SimConfig {{ profile: \"{profile}\".parse().expect(\"profile\"), ..Default::default() }};\n    let report = sim::run::run_ops({seed}, &ops, &cfg, false);\n    assert_eq!(report.failure, None);\n}}\n"
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
