#!/usr/bin/env bash
# KMS throughput of a local cluster (issue 15): signed Encrypt of 64 B with wrk
#   - through HAProxy in front of 1, 2 and 3 nodes on PostgreSQL (scripts/dev-cluster.sh), and
#   - on one node: the node on PostgreSQL reached directly (no HAProxy) against `custos server
#     --dev` on SQLite, same build, both plain HTTP,
# with the CPU every process of the deployment used per request (nodes, their trusted cores,
# HAProxy, PostgreSQL servers and backends; keepers idle and not counted).
#
#   scripts/bench_cluster.sh CUSTOS_BIN [RESULT_FILE]
#
# Environment: BENCH_CLUSTER_SECONDS (5), BENCH_CLUSTER_CONNECTIONS (64), BENCH_CLUSTER_NODES
# ("1 2 3"). Needs wrk, haproxy, PostgreSQL, boto3 (scripts/install-deps.sh). Every run's
# responses are checked (no non-2xx); timings are printed, never asserted. All of it shares the
# machine's cores with wrk: on a 2-core machine more nodes add no CPU, only spread the same two.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 1 ]; then echo "usage: $0 CUSTOS_BIN [RESULT_FILE]" >&2; exit 2; fi
custos="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
result_file="${2:-}"
seconds="${BENCH_CLUSTER_SECONDS:-5}"
conns="${BENCH_CLUSTER_CONNECTIONS:-64}"
node_counts="${BENCH_CLUSTER_NODES:-1 2 3}"
py=/usr/bin/python3
for tool in wrk haproxy curl; do
  command -v "$tool" >/dev/null || { echo "bench_cluster needs $tool (scripts/install-deps.sh)" >&2; exit 2; }
done

work="$(mktemp -d /tmp/custos-bench-cluster.XXXXXX)"
chmod 0711 "$work"  # as root, PostgreSQL runs as nobody, who must pass through it
dev_pid=""
cleanup() {
  [ -d "$work/c" ] && "$here/dev-cluster.sh" --stop "$work/c" >/dev/null 2>&1
  [ -n "$dev_pid" ] && kill "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null
  rm -rf "$work"
}
. "$here/lib/dev_server.sh"  # start_dev_server, export_dev_env
trap cleanup EXIT
fail() { echo "bench_cluster: $*" >&2; exit 1; }

tck="$(getconf CLK_TCK)"
# tree PID...: the pids and all their descendants.
tree() {
  local p
  for p in "$@"; do
    [ -e "/proc/$p" ] || continue
    echo "$p"
    tree $(pgrep -P "$p")
  done
}
# ticks PID...: utime + stime of those processes and their descendants.
ticks() {
  local sum=0 p f
  for p in $(tree "$@"); do
    f="$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null)" || continue
    sum=$((sum + $(echo "$f" | awk '{ print $12 + $13 }')))
  done
  echo "$sum"
}

# run LABEL URL PIDS...: one wrk run of the signed Encrypt against URL; one result line.
results="$work/results.tsv"
: >"$results"
run() {
  local label="$1" url="$2"
  shift 2
  local req="$work/req-$label"
  CUSTOS_ENDPOINT="$url" "$py" "$here/bench_kms/sign.py" sign encrypt64 "$key_id" "$req" ||
    fail "$label: signing"
  local code
  code="$(curl -sS --max-time 10 -o "$req.response" -w '%{http_code}' -H "@$req.headers" \
    --data-binary "@$req.body" "$url/")" || fail "$label: curl"
  [ "$code" = 200 ] || fail "$label: the signed request got HTTP $code: $(head -c 300 "$req.response")"
  CUSTOS_ENDPOINT="$url" "$py" "$here/bench_kms/sign.py" check encrypt64 "$req" "$req.response" >/dev/null ||
    fail "$label: response check"
  local before after out="$work/wrk-$label.txt"
  before="$(ticks "$@")"
  CUSTOS_BENCH_REQUEST="$req.lua" wrk -t2 -c"$conns" -d"${seconds}s" --latency --timeout 10s \
    -s "$here/bench_kms/replay.lua" "$url/" >"$out" 2>&1 || fail "$label: wrk failed"
  after="$(ticks "$@")"
  if grep -q 'Non-2xx' "$out"; then cat "$out" >&2; fail "$label: refused requests"; fi
  local rps p50 p99
  rps="$(awk '/^Requests\/sec:/ { print $2 }' "$out")"
  p50="$(awk '$1 == "50%" { print $2 }' "$out")"
  p99="$(awk '$1 == "99%" { print $2 }' "$out")"
  printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$rps" "$p50" "$p99" \
    "$(awk -v a="$after" -v b="$before" -v t="$tck" -v s="$seconds" -v r="$rps" \
      'BEGIN { c = (a - b) / t; printf "%.2f cores\t%.0f us", c / s, c / (r * s) * 1e6 }')" >>"$results"
  echo "  $label: $rps req/s"
}

load_env() {  # load_env FILE: export its lines
  set -a
  # shellcheck disable=SC1090
  . "$1"
  set +a
}

for n in $node_counts; do
  echo "cluster of $n node(s): starting"
  "$here/dev-cluster.sh" "$custos" "$work/c" "$n" >"$work/setup-$n.log" 2>&1 ||
    { tail -n 20 "$work/setup-$n.log" >&2; fail "dev-cluster.sh with $n nodes"; }
  load_env "$work/c/dev.env"
  key_id="$(CUSTOS_ENDPOINT="$CUSTOS_ENDPOINT" "$py" "$here/bench_kms/sign.py" create-key)" || fail "CreateKey"
  # Everything the deployment runs on a request's path: nodes (with their cores), HAProxy,
  # both PostgreSQL servers (the standby applies the WAL; it is synchronous).
  pids="$(awk '$1 ~ /^(node-|postgres-|haproxy)/ { print $2 }' "$work/c/pids" | tr '\n' ' ')"
  sleep 1  # let every node see the new key (refresh every 100 ms) before the load
  # shellcheck disable=SC2086
  run "haproxy-${n}-node(s)" "$CUSTOS_ENDPOINT" $pids
  if [ "$n" = 1 ]; then
    node_url="$(sed -n 's/^CUSTOS_ENDPOINT=//p' "$work/c/node-1.env")"
    # shellcheck disable=SC2086
    run "postgresql-1-node-direct" "$node_url" $pids
  fi
  "$here/dev-cluster.sh" --stop "$work/c" >/dev/null 2>&1
  rm -rf "$work/c"
done

echo "one node on SQLite: custos server --dev"
start_dev_server "$custos" "$work/dev" "$work/dev.log" 120 || fail "no dev server"
dev_pid="$server_pid"
export_dev_env "$work/dev"
key_id="$(CUSTOS_ENDPOINT="$CUSTOS_ENDPOINT" "$py" "$here/bench_kms/sign.py" create-key)" || fail "CreateKey (dev)"
run "sqlite-1-node-dev" "$CUSTOS_ENDPOINT" "$dev_pid"

{
  echo
  echo "Encrypt 64 B, $conns connections, ${seconds} s per run, wrk -t2 (load after: $(cut -d' ' -f1-3 /proc/loadavg))"
  printf '%-26s %10s %9s %9s %12s %9s\n' deployment req/s p50 p99 "CPU used" CPU/req
  while IFS=$'\t' read -r label rps p50 p99 cpu per; do
    printf '%-26s %10s %9s %9s %12s %9s\n' "$label" "$rps" "$p50" "$p99" "$cpu" "$per"
  done <"$results"
  echo "CPU used: every process of the deployment (nodes, trusted cores, HAProxy, PostgreSQL), CPU seconds per second"
} | tee "$work/report.txt"
[ -n "$result_file" ] && cp "$work/report.txt" "$result_file"
exit 0
