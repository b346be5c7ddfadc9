#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR for SECONDS each, from the seed corpora in fuzz/corpus,
# JOBS targets at a time (default: one per CPU; each fuzzer is one process on one core).
# Usage: scripts/fuzz.sh BUILD_DIR SECONDS [JOBS]
set -euo pipefail
build=${1:?build dir}; seconds=${2:-10}; jobs=${3:-$(nproc)}
root=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
targets=("$build"/*_fuzz)
if [ ${#targets[@]} -eq 0 ]; then echo "no fuzz targets built in $build" >&2; exit 1; fi

# one TARGET: runs it in a fresh copy of its seeds (a fuzzer writes into its corpus directory);
# on failure prints the end of its log and where the crash artifacts are.
one() {
  local t=$1 name work seeds
  name=$(basename "$t")
  work=$(mktemp -d)
  seeds="$root/fuzz/corpus/$name"
  [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/ 2>/dev/null || true
  echo "fuzz: $name for ${seconds}s"
  # Crash artifacts go next to the log (kept on failure), never into the working tree.
  if ! "$t" -max_total_time="$seconds" -print_final_stats=0 -artifact_prefix="$work.crash-" "$work" 2>"$work.log"; then
    tail -50 "$work.log"
    echo "fuzz: $name failed; artifacts: $work.crash-*" >&2
    return 1
  fi
  rm -rf "$work" "$work.log"
}

failed=0
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  [ "$failed" -eq 0 ] || break
  one "$t" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
if [ "$failed" -ne 0 ]; then echo "fuzz: a target failed (above)" >&2; exit 1; fi
echo "fuzz: ${#targets[@]} targets ran clean"
