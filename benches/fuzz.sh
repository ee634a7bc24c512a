#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/, one per hostile decoder: src/fuzz_targets.rs) and
# prints one line per target: executions, exec/s, corpus files, crashes.
#
# Needs the NIGHTLY toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz`); the project itself builds and tests on stable, where
# tests/fuzz_corpus.rs replays every corpus and regression file instead.
#
#   benches/fuzz.sh                     every target, 60 s each
#   SECONDS=600 benches/fuzz.sh wire mse    only those, 10 minutes each
#   JOBS=2 benches/fuzz.sh              two targets at once (default 1)
#
# New inputs the fuzzer finds go into fuzz/corpus/NAME (minimise before committing:
# `cargo +nightly fuzz cmin NAME`, then `cargo run --example fuzz_seeds` to put back the
# named seeds tests/fuzz_corpus.rs checks); crashes into fuzz/artifacts/NAME (minimise with
# `cargo +nightly fuzz tmin NAME FILE`, then commit under fuzz/regressions/NAME).
# Bash's own SECONDS starts from the value in the environment: read it first.
secs="${SECONDS_EACH:-$SECONDS}"
[ "$secs" -gt 0 ] || secs=60
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
jobs="${JOBS:-1}"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
cargo +nightly fuzz build >/dev/null

# Files under a directory (0 when it does not exist yet).
count() {
    if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi
}

run_one() {
    local t="$1"
    local before
    before=$(count "artifacts/$t")
    cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -timeout=10 \
        -print_final_stats=1 >"$logs/$t.log" 2>&1 || true
    local execs rate files after
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' || true)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' || true)
    files=$(count "corpus/$t")
    after=$(count "artifacts/$t")
    printf '%-22s executions %12s  exec/s %8s  seconds %5s  corpus files %6s  crashes %s\n' \
        "$t" "${execs:-0}" "${rate:-0}" "$secs" "$files" "$((after - before))"
}

running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
