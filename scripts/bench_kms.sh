#!/usr/bin/env bash
# KMS API throughput and latency with signed requests, against nginx in the same run
# (issue 4; docs/benchmarks.md "KMS API throughput").
#
#   scripts/bench_kms.sh CUSTOS_BIN [RESULT_FILE]
#
# Starts `CUSTOS_BIN server --dev` (loopback, free port, data directory under BENCH_KMS_DIR)
# and a private nginx answering `return 200 "ok"` with keep-alive (worker_processes 2, like the
# server's 2 HTTP I/O threads), creates one symmetric key with boto3, then for each connection
# count runs wrk for BENCH_KMS_SECONDS against nginx (GET /) and against custos for three signed
# requests: Encrypt of 64 B, Encrypt of 4 KiB, GenerateDataKey AES_256, Decrypt of a 64 B
# plaintext's ciphertext, and the XKS proxy API's Encrypt of 64 B (issue 17; signed as AWS KMS
# signs it, service kms-xks-proxy).
#
# Every custos run replays one request signed just before it (scripts/bench_kms/sign.py; SigV4
# accepts a signed request again within its 5-minute clock-skew window). Before the run the
# same request is sent with curl and its CiphertextBlob decrypted with boto3; after it, wrk's
# output must have no "Non-2xx or 3xx responses" and the server's /metrics must count at least
# wrk's number of successful requests of that operation and no failed ones. Any of these
# failing stops the script with exit 1: a figure for requests the server refused means nothing.
#
# Prints a table (req/s, p50, p99, the CPU the server and wrk used) and the verdicts against the
# targets of issue 14: Encrypt 64 B at 64 connections >= 0.25 x nginx at 64 connections with
# p99 <= 5 ms, and at 1 connection p50 <= 0.3 ms. The table also
# goes to RESULT_FILE when given. Timings are never asserted (exit 0 whatever the figures).
#
# Environment: BENCH_KMS_SECONDS (10), BENCH_KMS_CONNECTIONS ("1 16 64"), BENCH_KMS_DIR
# (/var/tmp: the server's audit log, with its fsyncs, lives there), BENCH_KMS_PERF=1 adds one
# more run under `perf record --call-graph dwarf` of the server and its trusted core (Encrypt 64 B
# at the last connection count; BENCH_KMS_PERF_LABEL=encrypt64|encrypt4k|gdk|decrypt64 and
# BENCH_KMS_PERF_CONNECTIONS choose another) and prints the top of the profile,
# BENCH_KMS_LABELS (default "nginx encrypt64 encrypt4k gdk decrypt64 xks64") limits the runs,
# BENCH_KMS_KEEP=1 keeps the work directory (wrk outputs, logs).
# Needs wrk, nginx (nginx-light), curl and python3 with boto3: scripts/install-deps.sh.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 CUSTOS_BIN [RESULT_FILE]" >&2
  exit 2
fi
custos="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
result_file="${2:-}"
seconds="${BENCH_KMS_SECONDS:-10}"
conns_list="${BENCH_KMS_CONNECTIONS:-1 16 64}"
[ -x "$custos" ] || { echo "bench_kms: not an executable: $custos" >&2; exit 2; }
for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench_kms: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }
done
py=/usr/bin/python3
"$py" -c 'import boto3' 2>/dev/null || py=python3
"$py" -c 'import boto3' 2>/dev/null || { echo "bench_kms: no python3 with boto3 (scripts/install-deps.sh)" >&2; exit 2; }

tmp="$(mktemp -d "${BENCH_KMS_DIR:-/var/tmp}/custos-bench-kms.XXXXXX")"
server_pid="" nginx_pid="" load_pid=""
. "$here/lib/dev_server.sh"  # start_dev_server, export_dev_env, stop_pid

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$load_pid" ]; then  # a wrk run (or perf) still going: its runner wrote the pids
    local p
    for p in $(cat "$tmp/load.pids" 2>/dev/null); do kill -TERM "$p" 2>/dev/null; done
    wait "$load_pid" 2>/dev/null
  fi
  stop_pid "$nginx_pid"
  stop_pid "$server_pid"
  if [ "${BENCH_KMS_KEEP:-0}" = 1 ]; then echo "bench_kms: kept $tmp" >&2; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "bench_kms: FAIL: $*" >&2
  exit 1
}

free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# pids of a process and all its descendants (the server's trusted core is a child process).
tree_pids() {
  local p
  echo "$1"
  for p in $(pgrep -P "$1"); do tree_pids "$p"; done
}
# cpu_ticks PID...: user + system clock ticks of the processes and their descendants (all threads).
cpu_ticks() {
  local p
  for p in $(for r in "$@"; do tree_pids "$r"; done); do
    cat "/proc/$p/stat" 2>/dev/null
  done | sed 's/.*) //' | awk '{ t += $12 + $13 } END { print t + 0 }'
}

# kms_counts OP: "<ok> <not ok>" from the server's custos_kms_requests_total for OP.
kms_counts() {
  curl -sS --max-time 10 -H "Authorization: Bearer $(cat "$CUSTOS_ADMIN_TOKEN_FILE")" "$CUSTOS_ENDPOINT/metrics" |
    awk -v op="$1" '$1 ~ "^custos_kms_requests_total[{]operation=\"" op "\"," {
      if ($1 ~ /outcome="ok"/) ok += $2; else bad += $2 } END { print ok + 0, bad + 0 }'
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores online"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tools: $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | sed 's/.*: //'), $("$py" -c 'import botocore; print("botocore", botocore.__version__)')"
echo "work dir: $tmp ($(stat -f -c %T "$tmp"))"
# Every KMS request waits for its audit batch's SQLite commit (WAL, synchronous=FULL: one fsync),
# so the fsync latency of the work directory's filesystem bounds the serial rate.
"$py" - "$tmp/fsync-probe" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
t = []
for _ in range(200):
    a = time.perf_counter(); os.write(fd, b"x" * 256); os.fsync(fd); t.append(time.perf_counter() - a)
os.close(fd); os.unlink(sys.argv[1]); t.sort()
print(f"fsync of a 256-byte append there: median {t[100] * 1e3:.2f} ms, p99 {t[197] * 1e3:.2f} ms (200 samples)")
PY

# ---- custos dev server --------------------------------------------------------------------
start_dev_server "$custos" "$tmp/dev" "$tmp/server.log" 120 || fail "no dev server"
export_dev_env "$tmp/dev"
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KMS
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost" PYTHONDONTWRITEBYTECODE=1
core_pids="$(pgrep -P "$server_pid" | tr '\n' ' ')"
echo "custos: $CUSTOS_ENDPOINT (server pid $server_pid, trusted core pid(s) ${core_pids:-none})"

# ---- nginx --------------------------------------------------------------------------------
nginx_port="$(free_port)"
sed -e "s|@DIR@|$tmp|g" -e "s|@PORT@|$nginx_port|g" -e "s|@WORKERS@|2|g" \
  "$here/bench_kms/nginx.conf.in" >"$tmp/nginx.conf"
nginx -e "$tmp/nginx-error.log" -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;' >"$tmp/nginx.out" 2>&1 &
nginx_pid=$!
nginx_url="http://127.0.0.1:$nginx_port/"
for _ in $(seq 1 50); do
  [ "$(curl -s --max-time 2 "$nginx_url")" = ok ] && break
  kill -0 "$nginx_pid" 2>/dev/null || { cat "$tmp/nginx.out" "$tmp/nginx-error.log" >&2; fail "nginx exited"; }
  sleep 0.2
done
[ "$(curl -s --max-time 2 "$nginx_url")" = ok ] || fail "nginx does not answer on $nginx_url"
echo "nginx: $nginx_url (pid $nginx_pid, 2 workers)"

# ---- key and runs -------------------------------------------------------------------------
key_id="$("$py" "$here/bench_kms/sign.py" create-key)" || fail "CreateKey failed (server log: $tmp/server.log)"
echo "key: $key_id"

# run_load OUT THREADS CONNS DURATION URL [wrk args...]: wrk in the background (so the cleanup
# can stop it); OUT.times gets the user and system CPU seconds wrk used.
run_load() {
  local out="$1" threads="$2" conns="$3" duration="$4"
  shift 4
  (
    wrk -t"$threads" -c"$conns" -d"$duration" --latency --timeout 10s "$@" >"$out" 2>&1 &
    echo $! >"$tmp/load.pids"
    wait $!
    echo "wrk_exit=$?" >"$out.times"
    times >>"$out.times"  # not in a pipe (that would fork): last line = this subshell's children, wrk only
  ) &
  load_pid=$!
  wait "$load_pid"
  load_pid=""
}
seconds_of() {  # "1m2.500s" -> 62.500
  awk -v t="$1" 'BEGIN { m = t; sub(/m.*/, "", m); s = t; sub(/.*m/, "", s); sub(/s$/, "", s); printf "%.3f", m * 60 + s }'
}

# core_ticks LABEL: CPU ticks of the trusted core process(es) (0 for the nginx runs).
core_ticks() {
  if [ "$1" = nginx ] || [ -z "$core_pids" ]; then echo 0; else cpu_ticks $core_pids; fi
}
# audit_counts: "<entries> <signed batches>" in the server's audit table ("0 0" if unreadable).
# The writer group-commits: each batch is one core signature and one fsync, so entries/batches
# says how many requests shared a commit.
audit_counts() {
  "$py" - "$tmp/dev/server/custos.db" <<'PY' 2>/dev/null || echo "0 0"
import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=10)
n, b = db.execute("SELECT count(*), coalesce(sum(length(signature) > 0), 0) FROM audit").fetchone()
print(n, b)
PY
}
op_of() { case "$1" in encrypt64|encrypt4k) echo Encrypt ;; gdk) echo GenerateDataKey ;; decrypt64) echo Decrypt ;;
  xks64) echo XksEncrypt ;; esac; }
tck="$(getconf CLK_TCK)"
runs="$tmp/runs.tsv"
: >"$runs"

# measure LABEL CONNS: one run; appends a line to runs.tsv.
measure() {
  local label="$1" conns="$2" threads=2 url pids out="$tmp/wrk-$1-c$2.txt" before after op="" c0 c1 a0 a1
  [ "$conns" -lt 2 ] && threads=1
  if [ "$label" = nginx ]; then
    url="$nginx_url"; pids="$nginx_pid"
    set --
  else
    pids="$server_pid"; op="$(op_of "$label")"
    local req="$tmp/req-$label-c$conns"
    "$py" "$here/bench_kms/sign.py" sign "$label" "$key_id" "$req" || fail "signing $label"
    url="$(cat "$req.url")"
    # Spot check: the very request wrk will replay, sent once with curl, must succeed and its
    # ciphertext must decrypt to the right plaintext.
    local code
    code="$(curl -sS --max-time 10 -o "$req.response" -w '%{http_code}' -H "@$req.headers" \
      --data-binary "@$req.body" "$url")" || fail "curl $label"
    [ "$code" = 200 ] || fail "$label: the signed request got HTTP $code: $(head -c 300 "$req.response")"
    "$py" "$here/bench_kms/sign.py" check "$label" "$req" "$req.response" >"$req.check" ||
      fail "$label: response check failed"
    export CUSTOS_BENCH_REQUEST="$req.lua"
    set -- -s "$here/bench_kms/replay.lua"
    c0="$(kms_counts "$op")"; a0="$(audit_counts)"
  fi
  local core_before core_after
  before="$(cpu_ticks $pids)"; core_before="$(core_ticks "$label")"
  run_load "$out" "$threads" "$conns" "${seconds}s" "$@" "$url"
  after="$(cpu_ticks $pids)"; core_after="$(core_ticks "$label")"
  grep -q '^wrk_exit=0$' "$out.times" || { cat "$out" >&2; fail "wrk failed ($label, $conns connections)"; }
  if grep -q 'Non-2xx or 3xx responses' "$out"; then
    cat "$out" >&2
    fail "$label at $conns connections: the server refused requests ($(grep 'Non-2xx' "$out" | sed 's/^ *//'))"
  fi
  local requests
  requests="$(awk '/ requests in / { print $1 }' "$out")"
  [ -n "$requests" ] && [ "$requests" -gt 0 ] || { cat "$out" >&2; fail "$label: wrk completed no request"; }
  local ok_delta=- bad_delta=- batch=-
  if [ -n "$op" ]; then
    a1="$(audit_counts)"
    batch="$(awk -v a="$a1" -v b="$a0" 'BEGIN { split(a, x, " "); split(b, y, " "); n = x[1] - y[1]; m = x[2] - y[2];
      if (m > 0) printf "%.2f", n / m; else print "-" }')"
    c1="$(kms_counts "$op")"
    ok_delta=$(( ${c1% *} - ${c0% *} )); bad_delta=$(( ${c1#* } - ${c0#* } ))
    [ "$bad_delta" -eq 0 ] || fail "$label: /metrics counts $bad_delta failed $op requests during the run"
    [ "$ok_delta" -ge "$requests" ] ||
      fail "$label: wrk counted $requests responses but /metrics only $ok_delta successful $op requests"
  fi
  local wrk_times wrk_user wrk_sys
  wrk_times="$(tail -n1 "$out.times")"
  wrk_user="$(seconds_of "${wrk_times% *}")"; wrk_sys="$(seconds_of "${wrk_times#* }")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$conns" "$seconds" \
    "$(awk -v a="$after" -v b="$before" -v t="$tck" 'BEGIN { printf "%.2f", (a - b) / t }')" \
    "$(awk -v a="$core_after" -v b="$core_before" -v t="$tck" 'BEGIN { printf "%.2f", (a - b) / t }')" \
    "$wrk_user" "$wrk_sys" "$ok_delta" "$bad_delta" "$batch" "$out" >>"$runs"
  printf '  %-9s c=%-3s %s req/s\n' "$label" "$conns" "$(awk '/^Requests\/sec:/ { print $2 }' "$out")"
}

echo
echo "warm-up: Encrypt 64 B, 16 connections, 2 s (not reported)"
saved_seconds="$seconds"; seconds=2
measure encrypt64 16
seconds="$saved_seconds"; : >"$runs"

echo "runs (${seconds} s each; wrk -t2, -t1 for 1 connection):"
for c in $conns_list; do
  for label in ${BENCH_KMS_LABELS:-nginx encrypt64 encrypt4k gdk decrypt64 xks64}; do measure "$label" "$c"; done
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
echo

"$py" "$here/bench_kms/report.py" "$runs" "$(nproc)" "$load_after" | tee "$tmp/report.txt"
# Memory after every run: resident now and the peak (VmHWM) of the server and of its core.
mem_of() { awk '/^VmRSS|^VmHWM/ { printf "%s %.1f MiB  ", $1, $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }
{
  echo
  echo "memory after the runs: server (pid $server_pid): $(mem_of "$server_pid")"
  for p in $core_pids; do echo "memory after the runs: trusted core (pid $p): $(mem_of "$p")"; done
} | tee -a "$tmp/report.txt"
if [ -n "$result_file" ]; then cp "$tmp/report.txt" "$result_file"; fi

if [ "${BENCH_KMS_PERF:-0}" = 1 ]; then
  if ! command -v perf >/dev/null 2>&1; then
    echo "BENCH_KMS_PERF=1 but perf is not installed" >&2
  else
    c_max="${BENCH_KMS_PERF_CONNECTIONS:-$(echo $conns_list | awk '{ print $NF }')}"
    perf_label="${BENCH_KMS_PERF_LABEL:-encrypt64}"
    echo
    echo "profile: perf record --call-graph dwarf of the server and its trusted core during $perf_label at $c_max connections"
    req="$tmp/req-perf"
    "$py" "$here/bench_kms/sign.py" sign "$perf_label" "$key_id" "$req" || fail "signing"
    export CUSTOS_BENCH_REQUEST="$req.lua"
    perf record -F 499 --call-graph dwarf,16384 -o "$tmp/perf.data" -p "$(tree_pids "$server_pid" | paste -sd,)" \
      -- sleep "$((seconds > 2 ? seconds - 1 : seconds))" >"$tmp/perf.out" 2>&1 &
    perf_pid=$!
    perf_threads=2; [ "$c_max" -lt 2 ] && perf_threads=1
    run_load "$tmp/wrk-perf.txt" "$perf_threads" "$c_max" "${seconds}s" -s "$here/bench_kms/replay.lua" "$CUSTOS_ENDPOINT/"
    wait "$perf_pid"
    grep -E 'Requests/sec|Non-2xx' "$tmp/wrk-perf.txt"
    echo "-- CPU samples by process and library"
    perf report -i "$tmp/perf.data" --no-children --sort comm,dso --stdio -g none 2>/dev/null |
      grep -E '^ +[0-9]' | head -n 15 | tee "$tmp/perf-dso.txt"
    # Inclusive shares of the request path's own functions and of the syscalls it waits in
    # (percent of all samples of both processes).
    echo "-- inclusive (children) share of custos functions and key syscalls"
    perf report -i "$tmp/perf.data" --children --sort comm,sym --stdio -g none 2>/dev/null |
      grep -E '^ +[0-9]' | grep -v 'inlined)$' |
      grep -E 'custos::(kms|host|enclave|store|crypto|ecall)::|SecretBytes|sys_fdatasync|sys_mlock|sys_munlock|sys_sendmsg|sys_read|sqlite3_step|EVP_DigestSign|HMAC' |
      grep -v -E '_Function_handler|__invoke|std::function' | sed 's/  */ /g' | cut -c1-150 | head -n 45 | tee "$tmp/perf-sym.txt"
    if [ -n "$result_file" ]; then cat "$tmp/perf-dso.txt" "$tmp/perf-sym.txt" >"$result_file.perf.txt"; fi
  fi
fi
exit 0
