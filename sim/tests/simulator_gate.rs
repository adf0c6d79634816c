//! The simulator alone as a test target: the test command of the mutation score's first
//! pass (`scripts/mutants.sh`), so its figure shows what `zsim run` and `zsim explore`
//! catch without any unit or fixture test. Ignored in the ordinary test run (it takes about
//! a minute in release); `scripts/mutants.sh` runs it with `--ignored`. Sizes come from the
//! environment so a user can trade time for strength: `ZSIM_GATE_CRASH_SEEDS` (default
//! 150), `ZSIM_GATE_FAULTS_SEEDS` (default 50), `ZSIM_GATE_JOBS` (default 2: the run's
//! worker count; about 25 s of run time on two free cores). Runs stop at their first
//! failing seed (`--fail-fast`), so a caught mutant costs little.

use std::process::{Command, Stdio};

fn zsim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_zsim")).args(args).output().expect("zsim runs")
}

fn seeds(var: &str, default: u64) -> String {
    std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(default).to_string()
}

fn passes(args: &[&str]) {
    succeeded(args, &zsim(args));
}

fn succeeded(args: &[&str], out: &std::process::Output) {
    assert!(
        out.status.success(),
        "zsim {} exited {:?}:\n{}{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "the mutation score's simulator pass (scripts/mutants.sh); about a minute in release"]
fn the_simulator_alone_finds_nothing() {
    let crash = seeds("ZSIM_GATE_CRASH_SEEDS", 150);
    let faults = seeds("ZSIM_GATE_FAULTS_SEEDS", 50);
    let jobs = seeds("ZSIM_GATE_JOBS", 2);
    passes(&["run", "--seeds", &crash, "--profile", "crash", "--jobs", &jobs, "--fail-fast"]);
    passes(&["run", "--seeds", &faults, "--profile", "faults", "--jobs", &jobs, "--fail-fast"]);
    let list = zsim(&["explore", "--list"]);
    assert!(list.status.success(), "zsim explore --list failed");
    let text = String::from_utf8(list.stdout).expect("utf-8 list");
    let names: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.len() >= 10, "too few scenarios listed: {names:?}");
    // The scenarios run `jobs` at a time (each is one process on one core).
    let width = jobs.parse::<usize>().expect("a number").max(1);
    for batch in names.chunks(width) {
        let children: Vec<_> = batch
            .iter()
            .map(|name| {
                let child = Command::new(env!("CARGO_BIN_EXE_zsim"))
                    .args(["explore", name])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("zsim runs");
                (name, child)
            })
            .collect();
        for (name, child) in children {
            succeeded(&["explore", name], &child.wait_with_output().expect("zsim ends"));
        }
    }
}
