#!/usr/bin/env bash
# Mutation score of the engine's crash and send logic (issue 10, section 3), with the real
# cargo-mutants. Pass 1 tests every mutant with the simulator alone
# (sim/tests/simulator_gate.rs: `zsim run` on the crash and faults profiles and
# `zsim explore` of every scenario); pass 2 tests the mutants pass 1 missed with the whole
# test suite. The summary gives viable mutants, killed by the simulator, killed by tests
# only, and survivors (listed in target/mutants/all/mutants.out/missed.txt).
#
# Usage: scripts/mutants.sh [--shard K/N] [--file PATH]... [--list]
#   --shard K/N   passed to cargo-mutants: this run tests shard K of N (0-based), mutant i
#                 going to shard i % N (round-robin), so each shard is an even sample of
#                 every file and one shard's score already estimates the whole.
#   --file PATH   mutate only PATH (repeatable); default: the files below.
#   --list        list the mutants and exit.
# Needs cargo-mutants (`cargo install cargo-mutants --locked`, installed here if missing).
# Time: each mutant rebuilds the `mutants` profile (release code, incremental, no debug
# info) and runs about 25 s of simulation on two free cores (a caught mutant stops at its
# first failing seed, so it costs less).
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_FILES=(
  engine/src/spa/sync.rs engine/src/spa/load.rs engine/src/spa/metaslab.rs
  engine/src/dmu/send.rs engine/src/dmu/recv.rs engine/src/dmu/traverse.rs
  engine/src/dnode/sync.rs engine/src/dbuf.rs engine/src/dsl/destroy.rs engine/src/zil.rs
)
# Seconds a mutant's tests may run before it counts as a timeout (reported separately by
# cargo-mutants, counted here as caught): the simulator pass takes about 25 s, the whole
# suite in release several minutes (more on a loaded machine).
SIM_TIMEOUT_SECS=${MUTANTS_SIM_TIMEOUT_SECS:-180}
TESTS_TIMEOUT_SECS=${MUTANTS_TESTS_TIMEOUT_SECS:-1800}

files=() shard=() list=0
while [ $# -gt 0 ]; do
  case "$1" in
    --shard) shard=(--shard "$2" --sharding round-robin); shift 2 ;;
    --file) files+=("$2"); shift 2 ;;
    --list) list=1; shift ;;
    *) echo "mutants.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ ${#files[@]} -gt 0 ] || files=("${DEFAULT_FILES[@]}")
file_args=()
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "mutants.sh: no such file: $f" >&2; exit 2; }
  file_args+=(--file "$f")
done

command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked
common=(mutants "${file_args[@]}" "${shard[@]}" --profile mutants --no-shuffle)
if [ $list -eq 1 ]; then
  exec cargo "${common[@]}" --list
fi

out=target/mutants
rm -rf "$out/sim" "$out/all"
mkdir -p "$out/sim" "$out/all"
# cargo-mutants exits 2 when mutants were missed and 3 on timeouts: that is data, not failure.
data_only() { local rc=0; "$@" || rc=$?; case $rc in 0 | 2 | 3) ;; *) exit "$rc" ;; esac; }
# Pass 1: the simulator alone.
# (cargo-mutants 27 passes `--package=<mutated package>` to cargo test whatever its
# --test-workspace says; `--workspace` among the test arguments widens it again.)
data_only cargo "${common[@]}" --timeout "$SIM_TIMEOUT_SECS" --output "$out/sim" \
  -- --workspace --test simulator_gate -- --ignored
# Pass 2: every test, on exactly the mutants pass 1 missed (selected by name: --iterate
# with --shard would re-partition the remaining mutants and test other ones).
count() { if [ -f "$1" ]; then grep -c . "$1" || true; else echo 0; fi; }
if [ "$(count "$out/sim/mutants.out/missed.txt")" -gt 0 ]; then
  names=$(sed -e 's/[][\\.^$*+?(){}|]/\\&/g' "$out/sim/mutants.out/missed.txt" | paste -sd'|')
  data_only cargo mutants "${file_args[@]}" --profile mutants --no-shuffle \
    --re "^($names)\$" --timeout "$TESTS_TIMEOUT_SECS" --output "$out/all" -- --workspace
fi
sim_caught=$(count "$out/sim/mutants.out/caught.txt")
sim_timeout=$(count "$out/sim/mutants.out/timeout.txt")
sim_missed=$(count "$out/sim/mutants.out/missed.txt")
all_missed=0
[ "$sim_missed" -eq 0 ] || all_missed=$(count "$out/all/mutants.out/missed.txt")
viable=$((sim_caught + sim_timeout + sim_missed))
by_sim=$((sim_caught + sim_timeout))
by_tests=$((sim_missed - all_missed))
echo "mutants: $viable viable; killed by the simulator: $by_sim;" \
  "killed by tests only: $by_tests; survivors: $all_missed"
if [ "$viable" -gt 0 ]; then
  echo "simulator score: $((100 * by_sim / viable))%;" \
    "overall: $((100 * (by_sim + by_tests) / viable))%"
fi
[ "$all_missed" -eq 0 ] && echo "survivors: none" || {
  echo "survivors:"; cat "$out/all/mutants.out/missed.txt"; }
