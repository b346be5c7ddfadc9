#!/usr/bin/env bash
# KMIP Encrypt throughput and latency, custos against PyKMIP's own server on the same machine
# (issue 18; docs/benchmarks.md "KMIP"). `make bench-kmip` runs it; not part of `make test`.
#
#   scripts/bench_kmip.sh CUSTOS_BIN KMIP_LOAD_BIN
#
# Starts `CUSTOS_BIN server --dev` (loopback, free ports, data directory under BENCH_KMIP_DIR)
# and PyKMIP's server (tests/kmip/pykmip_reference_server.sh: Debian's python3-pykmip with its
# default configuration, SQLite database, INFO logging), creates and activates one AES-256 key on
# each with PyKMIP's client, then for each connection count runs KMIP_LOAD_BIN (bench/kmip_load.cc)
# for BENCH_KMIP_SECONDS after a 1 s warm-up: the same pre-encoded KMIP 1.4 Encrypt of 64 bytes
# (AES-GCM, 16-byte tag) sent back to back on every connection over mutual TLS. A short probe run
# first checks that each server answers that request with success; if PyKMIP's server did not do
# GCM, both would be measured with AES-CBC/PKCS5 instead, and the table says so.
#
# Prints a table: server, connections, req/s, p50, p99, max, failed requests, the CPU the server
# (custos: with its trusted core) used (in cores, over the run) and per request, the CPU the load
# generator used, and the custos/PyKMIP ratio of req/s per connection count. For custos the
# audit log must hold at least one entry per measured request (every batch item is audited).
# Failed requests are server defects: they are printed with their reasons and make the exit
# status 1 (after the table). Timings are never asserted.
#
# Environment: BENCH_KMIP_SECONDS (10), BENCH_KMIP_CONNECTIONS ("1 16"), BENCH_KMIP_DIR
# (/var/tmp: custos's audit log, with its fsyncs, lives there), BENCH_KMIP_KEEP=1 keeps the work
# directory (logs, kmip_load outputs).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
if [ $# -ne 2 ]; then
  echo "usage: $0 CUSTOS_BIN KMIP_LOAD_BIN" >&2
  exit 2
fi
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
custos="$(abs "$1")" load="$(abs "$2")"
seconds="${BENCH_KMIP_SECONDS:-10}"
conns_list="${BENCH_KMIP_CONNECTIONS:-1 16}"
for b in "$custos" "$load"; do [ -x "$b" ] || { echo "bench_kmip: not an executable: $b" >&2; exit 2; }; done
py=/usr/bin/python3  # Debian's, with python3-pykmip
"$py" -c 'import kmip' 2>/dev/null || { echo "bench_kmip: needs python3-pykmip (scripts/install-deps.sh)" >&2; exit 2; }
reference="$root/tests/kmip/pykmip_reference_server.sh"
[ -x "$reference" ] || { echo "bench_kmip: $reference is missing" >&2; exit 2; }

tmp="$(mktemp -d "${BENCH_KMIP_DIR:-/var/tmp}/custos-bench-kmip.XXXXXX")"
server_pid="" ref_dir="" load_pid=""
. "$here/lib/dev_server.sh"  # start_dev_server, stop_pid

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$load_pid" ]; then kill -TERM "$load_pid" 2>/dev/null; wait "$load_pid" 2>/dev/null; fi
  stop_pid "$server_pid"
  [ -n "$ref_dir" ] && "$reference" --stop "$ref_dir" >/dev/null 2>&1
  if [ "${BENCH_KMIP_KEEP:-0}" = 1 ]; then echo "bench_kmip: kept $tmp" >&2; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail() { echo "bench_kmip: FAIL: $*" >&2; exit 1; }

free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# pids of a process and all its descendants.
tree_pids() {
  local p
  echo "$1"
  for p in $(pgrep -P "$1"); do tree_pids "$p"; done
}
# cpu_ticks PID: user + system clock ticks of the process and its descendants (all threads).
cpu_ticks() {
  local p
  for p in $(tree_pids "$1"); do cat "/proc/$p/stat" 2>/dev/null; done |
    sed 's/.*) //' | awk '{ t += $12 + $13 } END { print t + 0 }'
}
# audit_entries: entries in custos's audit table.
audit_entries() {
  "$py" - "$tmp/dev/server/custos.db" <<'PY' 2>/dev/null || echo 0
import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=10)
print(db.execute("SELECT count(*) FROM audit").fetchone()[0])
PY
}
# make_key ENV_FILE: creates and activates an AES-256 key (Encrypt and Decrypt usage) with
# PyKMIP's client at KMIP 1.4 on the server ENV_FILE's CUSTOS_KMIP_* lines name; prints its id.
make_key() {
  "$py" - "$1" <<'PY'
import logging, sys, warnings
warnings.filterwarnings("ignore")  # PyKMIP 0.10 calls the deprecated ssl.wrap_socket
logging.getLogger().addHandler(logging.NullHandler())
from kmip.core import enums
from kmip.pie.client import ProxyKmipClient
env = dict(l.rstrip("\n").split("=", 1) for l in open(sys.argv[1]) if l.startswith("CUSTOS_KMIP_"))
client = ProxyKmipClient(hostname=env["CUSTOS_KMIP_HOST"], port=int(env["CUSTOS_KMIP_PORT"]),
                         cert=env["CUSTOS_KMIP_CERT"], key=env["CUSTOS_KMIP_KEY"], ca=env["CUSTOS_KMIP_CA"],
                         ssl_version="PROTOCOL_TLS", kmip_version=enums.KMIPVersion.KMIP_1_4,
                         config_file="/dev/null")
with client:
    uid = client.create(enums.CryptographicAlgorithm.AES, 256, cryptographic_usage_mask=[
        enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT])
    client.activate(uid)
print(uid)
PY
}
# load_args NAME: sets largs to kmip_load's connection arguments for server NAME (custos or
# pykmip).
load_args() {
  local f="$tmp/$1.env"
  env_value() { sed -n "s/^$1=//p" "$f"; }
  largs=(--host "$(env_value CUSTOS_KMIP_HOST)" --port "$(env_value CUSTOS_KMIP_PORT)"
    --ca "$(env_value CUSTOS_KMIP_CA)" --cert "$(env_value CUSTOS_KMIP_CERT)"
    --key "$(env_value CUSTOS_KMIP_KEY)" --uid "$(cat "$tmp/$1.uid")")
}
# run_load OUT ARGS...: kmip_load in the background (so the cleanup can stop it); returns its status.
run_load() {
  local out="$1" rc
  shift
  "$load" "$@" >"$out" 2>"$out.err" &
  load_pid=$!
  wait "$load_pid"
  rc=$?
  load_pid=""
  return "$rc"
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores online"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "PyKMIP $("$py" -c 'import kmip; print(kmip.__version__)') on $("$py" --version 2>&1), $(openssl version | cut -d' ' -f1-2)"
echo "work dir: $tmp ($(stat -f -c %T "$tmp"))"

# ---- the two servers and their keys --------------------------------------------------------
start_dev_server "$custos" "$tmp/dev" "$tmp/server.log" 120 || fail "no dev server"
for _ in $(seq 50); do grep -q '^CUSTOS_KMIP_KEY=.' "$tmp/dev/dev.env" && break; sleep 0.1; done
grep '^CUSTOS_KMIP_' "$tmp/dev/dev.env" >"$tmp/custos.env"
[ "$(wc -l <"$tmp/custos.env")" -ge 5 ] || fail "dev.env names no KMIP listener"
echo "custos: KMIP on port $(sed -n 's/^CUSTOS_KMIP_PORT=//p' "$tmp/custos.env") (server pid $server_pid, trusted core $(pgrep -P "$server_pid" | tr '\n' ' '))"

ref_dir="$tmp/pykmip"
"$reference" "$ref_dir" "$(free_port)" >"$tmp/pykmip.start" 2>&1 || { cat "$tmp/pykmip.start" >&2; ref_dir=""; fail "PyKMIP's server did not start"; }
cp "$ref_dir/env" "$tmp/pykmip.env"
ref_pid="$(cat "$ref_dir/pid")"
echo "PyKMIP server: port $(sed -n 's/^CUSTOS_KMIP_PORT=//p' "$tmp/pykmip.env") (pid $ref_pid)"

for s in custos pykmip; do
  make_key "$tmp/$s.env" >"$tmp/$s.uid" 2>"$tmp/$s.uid.err" || { cat "$tmp/$s.uid.err" >&2; fail "$s: Create/Activate with PyKMIP failed"; }
  echo "$s: key $(cat "$tmp/$s.uid") (AES-256, active)"
done

# ---- the cipher mode: AES-GCM if PyKMIP's server does it --------------------------------------
mode=gcm
load_args pykmip
if ! run_load "$tmp/probe-pykmip-gcm" "${largs[@]}" --mode gcm --conns 1 --warmup 0 --seconds 0.5; then
  echo "NOTE: PyKMIP's server does not answer the AES-GCM Encrypt: $(head -n 3 "$tmp/probe-pykmip-gcm.err")"
  run_load "$tmp/probe-pykmip-cbc" "${largs[@]}" --mode cbc --conns 1 --warmup 0 --seconds 0.5 ||
    { cat "$tmp/probe-pykmip-cbc.err" >&2; fail "PyKMIP's server answers neither AES-GCM nor AES-CBC Encrypt"; }
  mode=cbc
  echo "NOTE: both servers are measured with AES-CBC, PKCS5 padding (80-byte ciphertexts), not AES-GCM"
fi
load_args custos
run_load "$tmp/probe-custos" "${largs[@]}" --mode "$mode" --conns 1 --warmup 0 --seconds 0.5 ||
  { cat "$tmp/probe-custos.err" >&2; fail "custos does not answer the $mode Encrypt"; }
mode_text="AES-GCM, 16-byte tag"
[ "$mode" = cbc ] && mode_text="AES-CBC, PKCS5 padding"

# ---- runs --------------------------------------------------------------------------------------
tck="$(getconf CLK_TCK)"
runs="$tmp/runs.tsv"
: >"$runs"
failed=0
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" "$2"; }
# measure NAME CONNS: one run; appends a line to runs.tsv.
measure() {
  local name="$1" conns="$2" pid out="$tmp/load-$1-c$2.txt" t0 t1 c0 c1 a0=0 a1=0 rc audit="-"
  if [ "$name" = custos ]; then pid="$server_pid"; a0="$(audit_entries)"; else pid="$ref_pid"; fi
  t0="$(date +%s.%N)"; c0="$(cpu_ticks "$pid")"
  load_args "$name"
  run_load "$out" "${largs[@]}" --mode "$mode" --conns "$conns" --seconds "$seconds"
  rc=$?
  c1="$(cpu_ticks "$pid")"; t1="$(date +%s.%N)"
  grep -q '^kmip_load: conns=' "$out" || { cat "$out.err" >&2; fail "kmip_load printed no result ($name, $conns connections)"; }
  local requests failures
  requests="$(field requests "$out")"; failures="$(field failures "$out")"
  if [ "$name" = custos ]; then
    a1="$(audit_entries)"
    audit=$((a1 - a0))
    if [ "$audit" -lt "$requests" ]; then
      failed=1
      echo "  custos c=$conns: $requests requests but only $audit new audit entries"
    fi
  fi
  if [ "$rc" != 0 ] || [ "$failures" != 0 ]; then
    failed=1
    echo "  $name c=$conns: $failures FAILED requests (kmip_load exit $rc):"
    sed 's/^/    /' "$out.err"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$conns" "$(field rps "$out")" \
    "$(field p50_us "$out")" "$(field p99_us "$out")" "$(field max_us "$out")" "$failures" \
    "$(awk -v a="$c1" -v b="$c0" -v t="$tck" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.2f", (a - b) / t / (e - s) }')" \
    "$(field client_cpu_s "$out" | awk -v d="$seconds" '{ printf "%.2f", $1 / d }')" "$requests" "$audit" >>"$runs"
  printf '  %-6s c=%-3s %s req/s\n' "$name" "$conns" "$(field rps "$out")"
}

echo
echo "runs: KMIP 1.4 Encrypt of 64 B ($mode_text), ${seconds} s each after a 1 s warm-up:"
for c in $conns_list; do
  for s in custos pykmip; do measure "$s" "$c"; done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

awk -F'\t' -v mode="$mode_text" -v nproc="$(nproc)" '
  { rps[$1 "," $2] = $3; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
  NR == 1 {
    printf "KMIP Encrypt 64 B (%s), one request in flight per connection\n", mode
    printf "%-8s %5s %9s %9s %9s %9s %7s %11s %11s %11s\n", "server", "conns", "req/s", "p50 ms", "p99 ms", "max ms", "failed", "server CPU", "CPU/req us", "client CPU"
  }
  { printf "%-8s %5s %9.0f %9.3f %9.3f %9.1f %7s %11s %11.0f %11s\n", $1, $2, $3, $4 / 1000, $5 / 1000, $6 / 1000, $7, $8, ($3 > 0 ? $8 * 1e6 / $3 : 0), $9 }
  END {
    print "(CPU in cores, averaged over the run; the machine has " nproc " cores, shared by server and load generator)"
    for (i = 1; i <= n; i++) {
      c = order[i]
      if (rps["pykmip," c] > 0) printf "custos/PyKMIP req/s at %s connection(s): %.1f\n", c, rps["custos," c] / rps["pykmip," c]
    }
  }' "$runs" | tee "$tmp/report.txt"
awk -F'\t' '$1 == "custos" { printf "custos audit entries written during the run at %s connection(s): %s (measured requests: %s)\n", $2, $11, $10 }' "$runs"

if [ "$failed" != 0 ]; then
  echo "bench_kmip: FAIL: some requests failed (above): the figures of those runs are not clean" >&2
  exit 1
fi
exit 0
