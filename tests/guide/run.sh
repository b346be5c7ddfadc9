#!/usr/bin/env bash
# Runs the operations guide's production walkthrough (docs/operations.md, "Production
# walkthrough (tested)") exactly as written: every ```sh block that follows a
# `<!-- walkthrough -->` line, in order, as one `bash -euo pipefail` script in a fresh
# directory, with the custos binary under test first on PATH (and Debian's AWS CLI in /usr/bin
# before any other). So the guide cannot drift from the code: a command it shows that fails, or
# a check it makes that does not hold, fails this test.
#
#   tests/guide/run.sh CUSTOS_BIN [GUIDE.md]
#
# Environment: GUIDE_KEEP=1 keeps the directory (logs of every keeper and node).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 1 ]; then echo "usage: $0 CUSTOS_BIN [GUIDE.md]" >&2; exit 2; fi
BIN_DIR="$(cd "$(dirname "$1")" && pwd)"
GUIDE="${2:-$HERE/../../docs/operations.md}"
[ -x "$BIN_DIR/custos" ] && [ -x "$BIN_DIR/custos-enclave" ] || { echo "no custos/custos-enclave in $BIN_DIR" >&2; exit 2; }
for tool in jq openssl sqlite3 curl /usr/bin/aws; do
  command -v "$tool" > /dev/null || { echo "guide test needs $tool (scripts/install-deps.sh)" >&2; exit 2; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/custos-guide.XXXXXX")"
cleanup() {
  local rc=$?
  # The walkthrough runs in its own process group: end all of it, whatever pid files say.
  [ -n "${walk_pid:-}" ] && kill -TERM -- "-$walk_pid" 2>/dev/null
  # Whatever the walkthrough left running (it records every process in NAME.pid).
  for f in "$work"/*.pid; do
    [ -e "$f" ] || continue
    kill -TERM "$(cat "$f")" 2>/dev/null
  done
  sleep 0.5
  for f in "$work"/*.pid; do [ -e "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
  if [ "$rc" -ne 0 ]; then
    echo "---- guide walkthrough failed (exit $rc); last lines of its trace ----" >&2
    tail -n 40 "$work/trace.log" >&2
    for log in "$work"/*.log "$work"/*/server.log; do
      [ -e "$log" ] && [ "$log" != "$work/trace.log" ] || continue
      echo "---- $log ----" >&2; tail -n 8 "$log" >&2
    done
  fi
  if [ "${GUIDE_KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The walkthrough, extracted.
awk '/^<!-- walkthrough -->$/ { want = 1; next }
     want && /^```sh$/       { inside = 1; next }
     inside && /^```$/       { inside = 0; want = 0; print ""; next }
     inside                  { print }' "$GUIDE" > "$work/walkthrough.sh"
blocks=$(grep -c '^<!-- walkthrough -->$' "$GUIDE")
if [ "$blocks" -lt 5 ] || [ ! -s "$work/walkthrough.sh" ]; then
  echo "found $blocks walkthrough blocks in $GUIDE: nothing to run" >&2; exit 1
fi

# Twelve consecutive free loopback ports for the keepers and nodes, below Linux's ephemeral
# range (32768-60999: a port an outgoing connection holds cannot be listened on).
port_free() { ! (: < "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }
base=""
for _ in $(seq 50); do
  b=$(( 10000 + RANDOM % 19000 ))  # 10000-29011; the e2e tests use 30000-32699
  ok=1
  for p in $(seq "$b" $((b + 11))); do port_free "$p" || { ok=0; break; }; done
  [ $ok = 1 ] && { base=$b; break; }
done
[ -n "$base" ] || { echo "no free port range" >&2; exit 1; }

echo "guide: $blocks blocks, $(wc -l < "$work/walkthrough.sh") lines from $GUIDE; ports $base.."
start=$(date +%s)
set -m  # the walkthrough gets its own process group (cleanup ends the whole group)
(
  cd "$work"
  export PATH="$BIN_DIR:/usr/bin:$PATH" HOST=127.0.0.1 PORT_BASE="$base"
  unset CUSTOS_CA_FILE AWS_CA_BUNDLE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY CUSTOS_ENDPOINT CUSTOS_ADMIN_TOKEN_FILE
  exec timeout --foreground --kill-after=10 "${GUIDE_TIMEOUT:-240}" bash -euo pipefail -x walkthrough.sh
) > "$work/raw.log" 2>&1 &
walk_pid=$!
wait "$walk_pid"
rc=$?
set +m
# The trace shows sourced credentials: mask them (the processes the walkthrough started are
# still running here, so nothing may wait for their output: they write to files, not a pipe).
sed -E "s/(SECRET[A-Z_]*=)[^ '\"]*/\1***/g" "$work/raw.log" > "$work/trace.log"
rm -f "$work/raw.log"
echo "guide: walkthrough exit $rc in $(( $(date +%s) - start )) s"
exit $rc
