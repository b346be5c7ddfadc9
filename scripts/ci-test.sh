#!/usr/bin/env bash
# `make test` (the CI run, .ci/run): each phase in turn, timed; the table of wall times is printed
# at the end, also when a phase fails (then the failing phase is the last row). The budget and
# the measured times are in docs/benchmarks.md "CI time".
set -uo pipefail
cd "$(dirname "$0")/.."
names=(); secs=()
table() {
  local total=0
  echo
  echo "make test: phase wall times (s)"
  for i in "${!names[@]}"; do
    printf '  %-34s %6s\n' "${names[$i]}" "${secs[$i]}"
    total=$((total + secs[i]))
  done
  printf '  %-34s %6s  (%dm%02ds)\n' "total" "$total" $((total / 60)) $((total % 60))
}
phase() {
  local name=$1; shift
  echo "== make test: $name"
  local t0=$SECONDS
  "$@"
  local rc=$?
  names+=("$name$([ $rc -ne 0 ] && echo " (FAILED, exit $rc)")"); secs+=($((SECONDS - t0)))
  if [ $rc -ne 0 ]; then table; exit $rc; fi
}
phase "packages (apt-get, npm ci)"        make -s deps test-deps
phase "model check (Spin)"                make -s verify-only
phase "build: clang ASan+UBSan+fuzzer"    make -s build-san-only
phase "tests: ASan+UBSan"                 make -s test-san-only
phase "fuzz smoke (every target)"         make -s fuzz-smoke-only
phase "build: GCC Release"                make -s build-release-only
phase "tests: Release"                    make -s test-release-only
table
