#!/usr/bin/env bash
# Unseal latency of the appliance, 1 provider + 2-of-3 customers, on loopback (issue 3).
# Sets up four keepers with a real DKG, one `custos server` (sim backend), initialises it, then
# RUNS times: restart the server (not timed), release from P1, C1, C2 in parallel with
# `custos keeper release --dir ... --dir ...`, which prints elapsed_ms for the releases alone
# (SIGMA with evidence checks, audit append with fsync, partial + DLEQ proof, verification and
# the envelope opening in the enclave): no process start, no Argon2id unlock.
# Usage: scripts/bench_unseal.sh [build/custos]   (RUNS=20 by default)
set -euo pipefail
BIN=$(realpath "${1:-build/custos}")
RUNS=${RUNS:-20}
W=$(mktemp -d)
export CUSTOS_KEEPER_PASSPHRASE=bench
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
cd "$W"
declare -A URL
"$BIN" client init --out admin.key >/dev/null   # approves the DKG on every keeper
for spec in P1:provider C1:customer C2:customer C3:customer; do
  id=${spec%%:*}; dom=${spec##*:}; p=$(port)
  "$BIN" keeper init --dir "$id" --domain "$dom" --id "$id" --kdf-memory-kib 4096 --kdf-iterations 1 >/dev/null
  "$BIN" keeper allow --dir "$id" --client admin.key.pub --role admin >/dev/null
  "$BIN" keeper serve --dir "$id" --listen "127.0.0.1:$p" --insecure-http >"$id.log" 2>&1 & pids+=($!)
  URL[$id]="http://127.0.0.1:$p"
done
sleep 1
"$BIN" ceremony dkg --provider "${URL[P1]}" --provider-threshold 1 \
  --customer "${URL[C1]},${URL[C2]},${URL[C3]}" --customer-threshold 2 --out custody.json --client-key admin.key >/dev/null 2>&1
SP=$(port)
printf '[server]\nlisten = "127.0.0.1:%s"\ndata_dir = "node"\ncustody = "custody.json"\ninsecure_http = true\n' "$SP" > server.toml
SURL="http://127.0.0.1:$SP"
start_server() {
  "$BIN" server --config server.toml >server.out 2>>server.err & SPID=$!
  for _ in $(seq 200); do curl -sf "$SURL/v1/sys/health" >/dev/null && return; sleep 0.02; done
  echo "server did not start" >&2; cat server.err >&2; exit 1
}
start_server
"$BIN" operator init --server "$SURL" --token-file node/admin.token >/dev/null
M=$(sha256sum "$(dirname "$BIN")/custos-enclave" | cut -d' ' -f1)
echo "{\"allow_sim\": true, \"measurements\": [\"$M\"]}" > policy.json
: > times.txt
for i in $(seq "$RUNS"); do
  kill "$SPID"; wait "$SPID" 2>/dev/null || true
  start_server
  "$BIN" keeper release --dir P1 --dir C1 --dir C2 --server "$SURL" --policy policy.json \
    | python3 -c 'import json,sys
for l in sys.stdin:
  j=json.loads(l)
  if "elapsed_ms" in j:
    assert j["unsealed"], "not unsealed"
    print(j["elapsed_ms"])' >> times.txt
done
kill "$SPID"; wait "$SPID" 2>/dev/null || true
python3 - "$RUNS" <<'PY'
import statistics,sys
t=sorted(float(x) for x in open("times.txt"))
p95=t[min(len(t)-1,int(round(0.95*(len(t)-1))))]
print(f"unseal latency (1 provider + 2-of-3 customers, loopback, {len(t)} runs): "
      f"mean {statistics.mean(t):.1f} ms, median {statistics.median(t):.1f} ms, min {t[0]:.1f} ms, "
      f"p95 {p95:.1f} ms, max {t[-1]:.1f} ms; target <= 100 ms: "
      + ("MET" if p95 <= 100 else "MISSED at p95"))
PY
