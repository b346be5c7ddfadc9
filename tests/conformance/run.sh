#!/usr/bin/env bash
# Conformance of custos's AWS KMS-compatible API with real AWS clients (docs/conformance.md).
#
#   tests/conformance/run.sh CUSTOS_BIN [cli] [boto3] [js]
#
# Starts `CUSTOS_BIN server --dev` on a free loopback port in a temporary directory, makes two
# more principals (conformance-a, conformance-b), runs the AWS CLI, boto3 and AWS SDK for
# JavaScript suites against it (all three unless some are named), stops the server with SIGTERM
# and checks that it exited 0. Prints per-suite counts and exits non-zero if anything failed.
#
# Environment: CONFORMANCE_PYTHON, CONFORMANCE_AWS, CONFORMANCE_NODE pick the interpreters
# (default: Debian's /usr/bin/python3 and /usr/bin/aws when present, else the ones on PATH);
# CONFORMANCE_KEEP=1 keeps the temporary directory (server log, suite logs).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 1 ]; then
  echo "usage: $0 CUSTOS_BIN [cli] [boto3] [js]" >&2
  exit 2
fi
CUSTOS_BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
shift
SUITES=("$@")
[ ${#SUITES[@]} -eq 0 ] && SUITES=(cli boto3 js)
for s in "${SUITES[@]}"; do
  case "$s" in cli|boto3|js) ;; *) echo "unknown suite: $s (cli, boto3, js)" >&2; exit 2 ;; esac
done
if [ ! -x "$CUSTOS_BIN" ]; then
  echo "not an executable: $CUSTOS_BIN" >&2
  exit 2
fi
# Seconds per suite; the CLI starts one aws process per call (~1 s of CPU each).
declare -A SUITE_TIMEOUT=([cli]="${CONFORMANCE_CLI_TIMEOUT:-420}" [boto3]=180 [js]=180)

tmp="$(mktemp -d "${TMPDIR:-/tmp}/custos-conformance.XXXXXX")"
server_pid=""
failed_any=0

cleanup() {
  local rc=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  if [ "${CONFORMANCE_KEEP:-0}" = 1 ]; then
    echo "kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

server_log_tail() {
  echo "---- last lines of the server log ($tmp/server.log) ----" >&2
  tail -n 40 "$tmp/server.log" >&2
  echo "----" >&2
}

# --- clients -------------------------------------------------------------------------------
pick() {  # pick VAR-override debian-path path-name
  if [ -n "$1" ]; then echo "$1"; elif [ -x "$2" ]; then echo "$2"; else command -v "$3" || true; fi
}
PY="$(pick "${CONFORMANCE_PYTHON:-}" /usr/bin/python3 python3)"
if [ -n "$PY" ] && ! "$PY" -c 'import boto3' 2>/dev/null; then
  alt="$(command -v python3 || true)"
  if [ -n "$alt" ] && "$alt" -c 'import boto3' 2>/dev/null; then PY="$alt"; fi
fi
AWS="$(pick "${CONFORMANCE_AWS:-}" /usr/bin/aws aws)"
NODE="$(pick "${CONFORMANCE_NODE:-}" "" node)"

# --- isolation: no user AWS configuration, no proxy, no retries ---------------------------
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_CA_BUNDLE \
  AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KMS AWS_DATA_PATH
export AWS_CONFIG_FILE="$tmp/aws-config" AWS_SHARED_CREDENTIALS_FILE="$tmp/aws-credentials"
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" AWS_CLI_AUTO_PROMPT=off
export AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
export PYTHONDONTWRITEBYTECODE=1

# --- server --------------------------------------------------------------------------------
mkdir -p "$tmp/dev"
"$CUSTOS_BIN" server --dev --listen 127.0.0.1:0 --data-dir "$tmp/dev" >"$tmp/server.log" 2>&1 &
server_pid=$!

env_ready() {
  [ -f "$tmp/dev/dev.env" ] || return 1
  local v
  for v in CUSTOS_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION; do
    grep -q "^$v=." "$tmp/dev/dev.env" || return 1
  done
}
deadline=$((SECONDS + 30))
until env_ready; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid"; rc=$?; server_pid=""
    echo "FAIL: custos server --dev exited ($rc) before writing dev.env" >&2
    server_log_tail
    exit 1
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "FAIL: no complete $tmp/dev/dev.env within 30 s" >&2
    server_log_tail
    exit 1
  fi
  sleep 0.2
done
while IFS= read -r line; do
  if [[ "$line" =~ ^([A-Z_][A-Z0-9_]*)=(.*)$ ]]; then
    export "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
  fi
done <"$tmp/dev/dev.env"
export AWS_DEFAULT_REGION="$AWS_REGION"
echo "server: $CUSTOS_ENDPOINT (pid $server_pid, log $tmp/server.log)"

# Two more principals for the key-policy tests.
make_principal() {  # make_principal NAME PREFIX
  local out
  if [ -z "${CUSTOS_ADMIN_TOKEN_FILE:-}" ]; then
    echo "FAIL: dev.env has no CUSTOS_ADMIN_TOKEN_FILE" >&2
    return 1
  fi
  if ! out="$("$CUSTOS_BIN" operator access-key create --name "$1" --server "$CUSTOS_ENDPOINT" \
      --token-file "$CUSTOS_ADMIN_TOKEN_FILE" 2>"$tmp/principal-$1.err")"; then
    echo "FAIL: custos operator access-key create --name $1:" >&2
    cat "$tmp/principal-$1.err" >&2
    return 1
  fi
  local id secret arn
  id="$(sed -n 's/^AWS_ACCESS_KEY_ID=//p' <<<"$out" | head -n1)"
  secret="$(sed -n 's/^AWS_SECRET_ACCESS_KEY=//p' <<<"$out" | head -n1)"
  arn="$(sed -n 's/^CUSTOS_PRINCIPAL_ARN=//p' <<<"$out" | head -n1)"
  if [ -z "$id" ] || [ -z "$secret" ] || [ -z "$arn" ]; then
    echo "FAIL: access-key create --name $1 printed no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/CUSTOS_PRINCIPAL_ARN:" >&2
    echo "$out" >&2
    return 1
  fi
  export "${2}_ACCESS_KEY_ID=$id" "${2}_SECRET_ACCESS_KEY=$secret" "${2}_PRINCIPAL_ARN=$arn"
}
if ! make_principal conformance-a CONF_A || ! make_principal conformance-b CONF_B; then
  server_log_tail
  exit 1
fi

# --- suites --------------------------------------------------------------------------------
declare -A PASS FAIL STATUS
num() {  # num KEY TEXT: the N of "KEY=N" in TEXT, else 0
  local n
  n="$(grep -Eo "$1=[0-9]+" <<<"$2" | head -n1 | cut -d= -f2)"
  echo "${n:-0}"
}
run_suite() {
  local name="$1" log="$tmp/$1.log" rc p=0 f=0
  shift
  echo
  echo "=== suite $name: $* ==="
  timeout --kill-after=10 "${SUITE_TIMEOUT[$name]}" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then echo "FAIL: suite $name timed out after ${SUITE_TIMEOUT[$name]} s"; fi
  case "$name" in
    boto3)
      # unittest closes with "Ran N tests in Xs" then "OK [(skipped=S)]" or
      # "FAILED (failures=F, errors=E, skipped=S)".
      local ran last
      ran="$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in .*/\1/p' "$log" | tail -n1)"
      last="$(grep -E '^(OK|FAILED)' "$log" | tail -n1)"
      f=$(( $(num failures "$last") + $(num errors "$last") ))
      p=$(( ${ran:-0} - f - $(num skipped "$last") ))
      ;;
    js)
      p="$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -n1)"
      f="$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -n1)"
      ;;
    cli)
      p="$(sed -n 's/^cli: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$log" | tail -n1)"
      f="$(sed -n 's/^cli: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$log" | tail -n1)"
      ;;
  esac
  p=${p:-0}; f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi  # crashed, timed out or failed to start
  if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ]; then f=1; rc=1; fi  # ran nothing
  PASS[$name]=$p; FAIL[$name]=$f
  if [ "$rc" -eq 0 ] && [ "$f" -eq 0 ]; then STATUS[$name]=ok; else STATUS[$name]="FAILED (exit $rc)"; failed_any=1; fi
}

for s in "${SUITES[@]}"; do
  case "$s" in
    cli)
      if [ -z "$AWS" ]; then echo "FAIL: no aws CLI (scripts/install-deps.sh installs Debian's awscli)" >&2
        PASS[cli]=0; FAIL[cli]=1; STATUS[cli]="FAILED (no aws)"; failed_any=1; continue; fi
      run_suite cli env AWS_BIN="$AWS" JSON_PY="${PY:-python3}" bash "$HERE/aws_cli.sh"
      ;;
    boto3)
      if [ -z "$PY" ] || ! "$PY" -c 'import boto3' 2>/dev/null; then
        echo "FAIL: no python3 with boto3 (scripts/install-deps.sh installs Debian's python3-boto3)" >&2
        PASS[boto3]=0; FAIL[boto3]=1; STATUS[boto3]="FAILED (no boto3)"; failed_any=1; continue; fi
      run_suite boto3 bash -c 'cd "$1" && exec "$2" -m unittest -f -v boto3_test' _ "$HERE" "$PY"
      ;;
    js)
      if [ -z "$NODE" ]; then echo "FAIL: no node (scripts/install-deps.sh installs Debian's nodejs)" >&2
        PASS[js]=0; FAIL[js]=1; STATUS[js]="FAILED (no node)"; failed_any=1; continue; fi
      if [ ! -d "$HERE/js/node_modules/@aws-sdk/client-kms" ]; then
        echo "installing the JS client: npm ci in $HERE/js"
        if ! (cd "$HERE/js" && npm ci --no-audit --no-fund >"$tmp/npm.log" 2>&1); then
          echo "FAIL: npm ci in $HERE/js:" >&2; tail -n 20 "$tmp/npm.log" >&2
          PASS[js]=0; FAIL[js]=1; STATUS[js]="FAILED (npm ci)"; failed_any=1; continue
        fi
      fi
      run_suite js bash -c 'cd "$1/js" && exec "$2" --test --test-reporter=tap kms.test.mjs' _ "$HERE" "$NODE"
      ;;
  esac
done

# --- stop the server -----------------------------------------------------------------------
echo
kill -TERM "$server_pid" 2>/dev/null
stopped=0
for _ in $(seq 1 150); do
  if ! kill -0 "$server_pid" 2>/dev/null; then stopped=1; break; fi
  sleep 0.2
done
if [ $stopped -eq 1 ]; then
  wait "$server_pid"; server_rc=$?
else
  kill -KILL "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; server_rc="killed (no exit 30 s after SIGTERM)"
fi
server_pid=""
if [ "$server_rc" = 0 ]; then
  echo "server: stopped by SIGTERM, exit 0"
else
  echo "FAIL: server after SIGTERM: exit $server_rc"
  failed_any=1
  server_log_tail
fi
if [ $failed_any -ne 0 ] && [ "$server_rc" = 0 ]; then server_log_tail; fi

# --- summary -------------------------------------------------------------------------------
echo
echo "=== conformance summary ==="
tp=0; tf=0
for s in "${SUITES[@]}"; do
  printf '  %-6s %4d passed %4d failed  %s\n' "$s" "${PASS[$s]}" "${FAIL[$s]}" "${STATUS[$s]}"
  tp=$((tp + PASS[$s])); tf=$((tf + FAIL[$s]))
done
if [ "$server_rc" != 0 ]; then tf=$((tf + 1)); fi
echo "conformance: $tp passed, $tf failed"
[ $failed_any -eq 0 ]
