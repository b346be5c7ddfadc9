#!/usr/bin/env bash
# Model-checks model/custody.pml with Spin (docs/verification.md). Every run below is one
# `spin -a` of the same model with its own flags:
#   - the real protocol, in each configuration: a full (exhaustive) search must end with no error,
#     not cut short by the depth bound, the memory bound or anything else;
#   - the reachability probes and the mutants: each must fail, and the property its counterexample
#     violates must be the expected one (the run checks only that property, -DONLY=...). Mutants
#     are searched breadth-first, so the trail is a shortest attack; probes depth-first (their
#     witnesses are deep, and Spin's breadth-first search also stores the states inside atomic
#     steps). The trail is replayed and kept.
# Each run leaves OUT_DIR/<run>/: the model as checked, pan's report (pan.out) and, for a failing
# run, the trail (custody.pml.trail), its replay (trail.txt: the narrated steps, the violated
# property and the final state) and the full replay (trail-steps.txt: every statement).
# OUT_DIR/summary.txt is the table printed at the end. Exit status 0 iff every run went as expected.
# Usage: model/run.sh [OUT_DIR] [JOBS]      (default: build-model, one run per CPU at a time)
#        MODEL_RUNS=REGEX model/run.sh ...  only the runs whose name matches
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build-model}
jobs=${2:-$(nproc)}
model=$root/model/custody.pml
# Depth bound of the depth-first searches (steps, atomic steps included); the deepest run reaches
# about 640, and a run that hits the bound fails.
depth=${MODEL_DEPTH:-200000}
# Memory bound per run (MB): the largest run needs about 800.
memlim=${MODEL_MEMLIM:-3072}

mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 1
for tool in spin gcc; do
  command -v "$tool" >/dev/null || { echo "model: $tool is not installed (scripts/install-deps.sh)" >&2; exit 1; }
done

# name | expected: "pass", or the property the counterexample must violate | spin flags |
# gcc optimisation of pan (-O0 unless given: compiling pan.c at -O2 takes longer than most runs).
# The two long runs come first so they overlap the short ones.
runs=(
  # The protocol as implemented.
  "real-C|pass|-DCFG=3|-O2"
  "real-B|pass|-DCFG=2|-O2"
  "real-A|pass|-DCFG=1"
  "real-join-B|pass|-DCFG=4"
  "real-join-C|pass|-DCFG=5"
  # The model can reach what the properties are about (else they would hold vacuously).
  "probe-unseal-A|probe|-DCFG=1 -DPROBE_UNSEAL=1"
  "probe-unseal-B|probe|-DCFG=2 -DPROBE_UNSEAL=1"
  "probe-join-B|probe|-DCFG=4 -DPROBE_JOIN=1"
  "probe-join-attempt-after-unseal-B|probe|-DCFG=2 -DPROBE_JOIN_ATTEMPT=1"
  # Mutants: one check removed each.
  "mutant-no-report-data-binding|partial_secrecy|-DCFG=2 -DMUT_NO_BINDING=1"
  "mutant-no-report-data-binding-root|root_secrecy|-DCFG=2 -DMUT_NO_BINDING=1"
  "mutant-no-report-data-binding-join|root_secrecy|-DCFG=4 -DMUT_NO_BINDING=1"
  "mutant-no-transcript-mac|agreement|-DCFG=2 -DMUT_NO_MAC=1"
  "mutant-no-sequence-numbers|record_order|-DCFG=2 -DMUT_NO_SEQ=1"
  "mutant-one-domain-unseal|unseal_rule|-DCFG=3 -DMUT_ONE_DOMAIN_UNSEAL=1"
  "mutant-one-domain-approval|join_measurement|-DCFG=5 -DMUT_ONE_DOMAIN_APPROVAL=1"
  "mutant-no-measurement-check|join_measurement|-DCFG=4 -DMUT_NO_MEASUREMENT=1"
  "mutant-no-measurement-check-root|root_secrecy|-DCFG=4 -DMUT_NO_MEASUREMENT=1"
  "mutant-no-fresh-handshake|agreement|-DCFG=2 -DMUT_NO_FRESH=1"
  "mutant-report-data-without-gy-and-pk|partial_secrecy|-DCFG=1 -DMUT_BIND_NO_GY=1 -DMUT_BIND_NO_PK=1"
  # Each report_data field alone is redundant in this model (docs/verification.md says why and
  # what the model leaves out): these variants must still pass.
  "variant-report-data-without-gy|pass|-DCFG=1 -DMUT_BIND_NO_GY=1"
  "variant-report-data-without-pk|pass|-DCFG=1 -DMUT_BIND_NO_PK=1"
  "variant-report-data-without-nonce|pass|-DCFG=1 -DMUT_BIND_NO_NONCE=1"
)

# one NAME EXPECT FLAGS [OPT]: one run in OUT_DIR/NAME; writes OUT_DIR/NAME/result, one line:
# "ok|FAILED<TAB>name<TAB>expected<TAB>what happened<TAB>states stored<TAB>transitions<TAB>seconds".
one() {
  local name=$1 expect=$2 flags=$3 opt=${4:--O0}
  local dir=$out/$name t0=$SECONDS verdict="FAILED" what="" states="-" trans="-"
  rm -rf "$dir" && mkdir -p "$dir" && cp "$model" "$dir/" && cd "$dir" || return
  local only="" cc_flags="-DSAFETY -DNOREDUCE -DMEMLIM=$memlim"
  if [ "$expect" != pass ]; then only="-DONLY=$expect"; fi
  if [ "$expect" != pass ] && [ "$expect" != probe ]; then cc_flags+=" -DBFS"; fi
  # shellcheck disable=SC2086
  if ! spin -a $flags $only custody.pml >spin.out 2>&1; then
    what="spin -a failed: $(head -c 300 spin.out | tr '\n' ' ')"
  elif ! gcc "$opt" -w $cc_flags -o pan pan.c >gcc.out 2>&1; then
    what="gcc failed: $(head -c 300 gcc.out | tr '\n' ' ')"
  else
    ./pan -m"$depth" >pan.out 2>&1
    states=$(awk '/states, stored$/ {print $1}' pan.out)
    trans=$(awk '/transitions \(= stored\+matched\)/ {print $1}' pan.out)
    local errors
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out | head -1)
    local cut
    cut=$(grep -E 'max search depth too small|out of memory|VECTORSZ|hash table is full|memlim|aborted' pan.out | head -1)
    if [ "$expect" = pass ]; then
      if [ -n "$cut" ]; then
        what="search cut short: $cut"
      elif [ "$errors" != 0 ]; then
        what="errors: ${errors:-?} (see $dir/pan.out)"
      elif grep -q 'Search not completed' pan.out; then
        what="search not completed"
      elif ! grep -q '^Full statespace search' pan.out; then
        what="not a full state-space search"
      else
        verdict=ok; what="full search, no error"
      fi
    else
      if [ -n "$cut" ]; then
        what="search cut short before a counterexample: $cut"
      elif [ -z "$errors" ] || [ "$errors" = 0 ]; then
        what="no counterexample: the $expect check cannot fail here"
      elif [ ! -f custody.pml.trail ]; then
        what="pan reported an error but wrote no trail"
      else
        # shellcheck disable=SC2086
        spin -t $flags $only custody.pml >trail.txt 2>&1
        # shellcheck disable=SC2086
        spin -t -p -g $flags $only custody.pml >trail-steps.txt 2>&1
        local found
        found=$(sed -n 's/.*PROPERTY-VIOLATED: \([a-z_]*\).*/\1/p' trail.txt | head -1)
        if [ "$found" = "$expect" ] && grep -q 'assertion violated' trail.txt; then
          local events
          events=$(grep -E '^ *MSC: [^ ]' trail.txt | grep -cvE 'MSC: (config [0-9]|initiator session [0-9]+: )')
          verdict=ok; what="counterexample of $events protocol events"
        else
          what="expected a $expect counterexample, the trail shows '${found:-another error}'"
        fi
      fi
    fi
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$verdict" "$name" "$expect" "$what" "${states:--}" \
    "${trans:--}" $((SECONDS - t0)) >"$dir/result"
}

# MODEL_RUNS=REGEX keeps only the runs whose name matches (while working on the model).
if [ -n "${MODEL_RUNS:-}" ]; then
  kept=()
  for r in "${runs[@]}"; do [[ ${r%%|*} =~ $MODEL_RUNS ]] && kept+=("$r"); done
  runs=("${kept[@]}")
fi
t0=$SECONDS
echo "model: $(spin -V | head -1); ${#runs[@]} runs, $jobs at a time, output in $out"
for r in "${runs[@]}"; do
  IFS='|' read -r name expect flags opt <<<"$r"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  (one "$name" "$expect" "$flags" "$opt") &
done
wait

failed=0
{
  printf '%-42s %-17s %-6s %12s %14s %5s  %s\n' run expected result states transitions s what
  for r in "${runs[@]}"; do
    IFS='|' read -r name expect flags <<<"$r"
    if [ -f "$out/$name/result" ]; then
      IFS=$'\t' read -r verdict _ _ what states trans secs <"$out/$name/result"
    else
      verdict=FAILED; what="no result"; states=-; trans=-; secs=-
    fi
    [ "$verdict" = ok ] || failed=$((failed + 1))
    printf '%-42s %-17s %-6s %12s %14s %5s  %s\n' "$name" "$expect" "$verdict" "$states" "$trans" "$secs" "$what"
  done
  echo "model: ${#runs[@]} runs, $failed not as expected, $((SECONDS - t0)) s wall"
} >"$out/summary.txt"  # not a pipeline: $failed must survive the block
cat "$out/summary.txt"
[ "$failed" -eq 0 ]
