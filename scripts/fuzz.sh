#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR for SECONDS each, from the seed corpora in fuzz/corpus.
# Usage: scripts/fuzz.sh BUILD_DIR SECONDS
set -euo pipefail
build=${1:?build dir}; seconds=${2:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
targets=("$build"/*_fuzz)
if [ ${#targets[@]} -eq 0 ]; then echo "no fuzz targets built in $build" >&2; exit 1; fi
for t in "${targets[@]}"; do
  name=$(basename "$t")
  work=$(mktemp -d)
  seeds="$root/fuzz/corpus/$name"
  [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/ 2>/dev/null || true
  echo "fuzz: $name for ${seconds}s"
  # Crash artifacts go next to the log (kept on failure), never into the working tree.
  "$t" -max_total_time="$seconds" -print_final_stats=0 -artifact_prefix="$work.crash-" "$work" 2>"$work.log" \
    || { tail -50 "$work.log"; echo "fuzz: $name failed; artifacts: $work.crash-*" >&2; exit 1; }
  rm -rf "$work" "$work.log"
done
echo "fuzz: ${#targets[@]} targets ran clean"
