#!/usr/bin/env bash
# The local cluster of scripts/dev-cluster.sh (issue 15, item 7): it starts (PostgreSQL primary
# and standby, keepers, three nodes, HAProxy) in a fresh directory; through HAProxy boto3
# a key created through node 1 encrypts through node 2 and decrypts through node 3 (each node's
# own endpoint from node-N.env), an altered ciphertext is refused; a key disabled through node 2 is refused
# by node 3 within 1 s; node 1 is killed (-9) while boto3 clients stream CreateKey/Encrypt
# through HAProxy and the stream keeps succeeding; node 1 restarts sealed and the keepers'
# auto-release unseals it; the PostgreSQL primary is killed and the standby promoted, every
# node writes again and every key and ciphertext acknowledged during the kill is there; a new
# core build approved by P1 alone is refused at join (the node stays sealed, naming the missing
# customer approvals), and approved by P1, C1 and C2 (`custos keeper policy approve`) it
# replaces nodes 3, 2, 1 one by one, each joining by attestation, while boto3 clients stream
# through HAProxy without a stall; after a whole-cluster restart the keepers release to the new
# build only once they honour the approval (--release-approval); every node's audit chain verifies (`custos audit verify
# --store-url`); then
# `--stop` ends every process DIR/pids named (and the nodes' trusted cores), and a second
# `--stop` is a no-op.
#
#   tests/cluster/run.sh CUSTOS_BIN
#
# Environment: CLUSTER_KEEP=1 keeps the directory (every component's log).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
script="$here/../../scripts/dev-cluster.sh"
if [ $# -ne 1 ]; then echo "usage: $0 CUSTOS_BIN" >&2; exit 2; fi
custos="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
py=/usr/bin/python3
"$py" -c 'import boto3' 2>/dev/null || { echo "cluster test needs Debian's python3-boto3 (scripts/install-deps.sh)" >&2; exit 2; }

# A short path: PostgreSQL's socket lives under it (sockaddr_un holds 107 bytes).
work="$(mktemp -d /tmp/custos-cluster.XXXXXX)"
chmod 0711 "$work"  # as root, PostgreSQL runs as nobody, who must pass through it
dir="$work/c"
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  "$script" --stop "$dir" >/dev/null 2>&1
  if [ "$rc" -ne 0 ]; then
    for log in "$dir/setup.log" "$dir"/node-*/server.log "$dir/haproxy.log" "$dir"/keepers/*.log \
               "$dir"/pg-run/*.log; do
      [ -s "$log" ] || continue
      echo "---- $log ----" >&2; tail -n 10 "$log" >&2
    done
  fi
  if [ "${CLUSTER_KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail() { echo "cluster: FAIL: $*" >&2; exit 1; }

t0=$SECONDS
"$script" "$custos" "$dir" 3 || fail "dev-cluster.sh exited $?"
echo "cluster: started in $((SECONDS - t0)) s"

# What the script promises to leave behind.
for f in dev.env node-1.env node-2.env node-3.env; do
  [ "$(stat -c %a "$dir/$f")" = 600 ] || fail "$f is not mode 0600"
done
grep -q '^CUSTOS_DEV_PID=' "$dir/dev.env" && fail "dev.env names a CUSTOS_DEV_PID"
names="$(cut -d' ' -f1 "$dir/pids" | tr '\n' ' ')"
[ "$names" = "node-1 node-2 node-3 postgres-primary postgres-standby haproxy keeper-P1 keeper-C1 keeper-C2 keeper-C3 " ] ||
  fail "DIR/pids names: $names"
haproxy_endpoint="$(sed -n 's/^CUSTOS_ENDPOINT=//p' "$dir/dev.env")"
grep -q "bind ${haproxy_endpoint#http://}\$" "$dir/haproxy.cfg" || fail "dev.env's endpoint is not HAProxy's"
for n in 1 2 3; do
  [ "$(sed -n 's/^CUSTOS_ENDPOINT=//p' "$dir/node-$n.env")" != "$haproxy_endpoint" ] ||
    fail "node-$n.env names HAProxy, not the node"
done

# A key created through node 1, encrypted through node 2, decrypted through node 3.
env -i PATH=/usr/bin:/bin AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    AWS_EC2_METADATA_DISABLED=true PYTHONDONTWRITEBYTECODE=1 "$py" - "$dir" "$here" <<'PY' || fail "KMS calls across the nodes"
import os, sys
import botocore.exceptions
sys.path.insert(0, sys.argv[2])
from cluster_kms import kms as cluster_kms

d = sys.argv[1]
def kms(name):
    return cluster_kms(d, name)

via_haproxy, node1, node2, node3 = kms("dev.env"), kms("node-1.env"), kms("node-2.env"), kms("node-3.env")
key_id = node1.create_key(Description="cluster test")["KeyMetadata"]["KeyId"]
plaintext = os.urandom(100)
blob = node2.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]
out = node3.decrypt(CiphertextBlob=blob)
assert out["Plaintext"] == plaintext, "node 3 decrypted to other bytes"
assert out["KeyId"].endswith(key_id), out["KeyId"]
bad = bytearray(blob)
bad[-1] ^= 1
try:
    via_haproxy.decrypt(CiphertextBlob=bytes(bad))
    raise SystemExit("an altered ciphertext decrypted")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidCiphertextException", e.response["Error"]
via_haproxy.describe_key(KeyId=key_id)
print(f"cluster: key {key_id}: created through node 1, encrypted through node 2, decrypted through node 3")
PY

# The XKS proxy API (docs/xks.md) through the cluster: the credential made through node 1 is in
# the shared database, so node 2 encrypts and node 3 decrypts under a key made through node 1.
xks_key="$(env -i PATH=/usr/bin:/bin AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    AWS_EC2_METADATA_DISABLED=true PYTHONDONTWRITEBYTECODE=1 "$py" - "$dir" "$here" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from cluster_kms import kms
print(kms(sys.argv[1], "node-1.env").create_key(Description="xks through the cluster")["KeyMetadata"]["KeyId"])
PY
)" || fail "CreateKey for XKS"
xks_call() {  # ENV_FILE OP BODY
  local e; e="$(sed -n 's/^CUSTOS_XKS_ENDPOINT=//p' "$dir/$1")"
  curl -s --aws-sigv4 "aws:amz:us-east-1:kms-xks-proxy" \
    --user "$(sed -n 's/^CUSTOS_XKS_ACCESS_KEY_ID=//p' "$dir/dev.env"):$(sed -n 's/^CUSTOS_XKS_SECRET_ACCESS_KEY=//p' "$dir/dev.env")" \
    -X POST -H 'Content-Type: application/json' --data "$3" \
    "$e$(sed -n 's/^CUSTOS_XKS_URI_PREFIX=//p' "$dir/dev.env")/keys/$xks_key/$2"
}
xks_meta='"requestMetadata":{"awsPrincipalArn":"arn:aws:iam::123456789012:user/Alice","kmsOperation":"Encrypt","kmsRequestId":"cluster-1"}'
xks_enc="$(xks_call node-2.env encrypt "{$xks_meta,\"plaintext\":\"$(printf cluster | base64 -w0)\",\"encryptionAlgorithm\":\"AES_GCM\"}")"
[ "$(jq -r '.ciphertext // empty' <<<"$xks_enc")" != "" ] || fail "XKS Encrypt through node 2: $xks_enc"
xks_dec="$(xks_call node-3.env decrypt "$(jq -c --argjson m "{$xks_meta}" '. + $m + {encryptionAlgorithm: "AES_GCM"} | del(.ciphertextDataIntegrityValue)' <<<"$xks_enc")")"
[ "$(jq -r .plaintext <<<"$xks_dec" | base64 -d)" = cluster ] || fail "XKS Decrypt through node 3: $xks_dec"
echo "cluster: XKS proxy API: encrypted through node 2, decrypted through node 3"

# A key disabled through node 2 is refused by node 3 within the cluster's bound (1 s; the nodes
# refresh every 100 ms), and re-enabled the same way.
env -i PATH=/usr/bin:/bin AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    AWS_EC2_METADATA_DISABLED=true PYTHONDONTWRITEBYTECODE=1 "$py" - "$dir" "$here" <<'PY' || fail "a key state change across the nodes"
import os, sys, time
import botocore.exceptions
sys.path.insert(0, sys.argv[2])
from cluster_kms import kms as cluster_kms

d = sys.argv[1]
def kms(name):
    return cluster_kms(d, name)
node1, node2, node3 = kms("node-1.env"), kms("node-2.env"), kms("node-3.env")
key_id = node1.create_key()["KeyMetadata"]["KeyId"]
# Each node uses the key once (node 3 has it cached from here on).
for n in (node1, node2, node3):
    deadline = time.monotonic() + 1.5
    while True:
        try:
            n.encrypt(KeyId=key_id, Plaintext=b"x"); break
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] != "NotFoundException" or time.monotonic() > deadline: raise
            time.sleep(0.02)

def refused_within(node, code, bound):
    start = time.monotonic()
    while True:
        try:
            node.encrypt(KeyId=key_id, Plaintext=b"x")
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == code, e.response["Error"]
            return time.monotonic() - start
        if time.monotonic() - start > bound:
            raise SystemExit(f"node 3 still encrypts under a key disabled {bound} s ago")
        time.sleep(0.01)

node2.disable_key(KeyId=key_id)
took = refused_within(node3, "DisabledException", 1.0)
print(f"cluster: disabled through node 2, refused by node 3 after {took * 1000:.0f} ms (bound 1 s)")
node2.enable_key(KeyId=key_id)
deadline = time.monotonic() + 1.0
while True:
    try:
        node3.encrypt(KeyId=key_id, Plaintext=b"x"); break
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "DisabledException", e.response["Error"]
        if time.monotonic() > deadline: raise SystemExit("node 3 still refuses a re-enabled key")
        time.sleep(0.01)
PY

# kill -9 of node 1 (the node the keepers auto-release) while boto3 clients (standard retries)
# stream CreateKey and Encrypt through HAProxy: the stream keeps succeeding, and every
# acknowledged key and ciphertext is checked after the PostgreSQL failover below.
node1_pid="$(sed -n 's/^node-1 //p' "$dir/pids")"
env -i PATH=/usr/bin:/bin AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    AWS_EC2_METADATA_DISABLED=true PYTHONDONTWRITEBYTECODE=1 "$py" - "$dir" "$node1_pid" "$here" <<'PY' || fail "kill -9 of a node under load"
import base64, json, os, signal, sys, time
sys.path.insert(0, sys.argv[3])
from cluster_kms import Stream

d, victim = sys.argv[1], int(sys.argv[2])
stream = Stream(d)
time.sleep(1.5)
killed_at = time.monotonic()
os.kill(victim, signal.SIGKILL)
time.sleep(2.5)
stream.stop()
acked, errors = stream.acked, stream.errors
after = [a for a in acked if a[0] > killed_at + 1.0]
assert len(after) >= 10, f"the stream stalled after the kill: {len(after)} acknowledged in the last 1.5 s ({errors[:3]})"
assert len(errors) <= len(acked) // 10, f"{len(errors)} requests failed after retries: {errors[:3]}"
stream.check_all_decrypt()
with open(os.path.join(d, "acked.json"), "w") as f:
    json.dump([[k, base64.b64encode(p).decode(), base64.b64encode(b).decode()] for _, k, p, b in acked], f)
print(f"cluster: kill -9 of node 1 under load: {len(acked)} acknowledged key+ciphertext pairs, "
      f"{len(after)} of them more than 1 s after the kill; {len(errors)} requests failed after retries")
PY
# Node 1 comes back sealed and the keepers' auto-release unseals it (it has no join).
(cd "$dir/node-1" && exec "$custos" server --config "$dir/node-1/server.toml" >>"$dir/node-1/server.log" 2>&1) &
node1_new=$!
sed -i "s/^node-1 .*/node-1 $node1_new/" "$dir/pids"
node1_url="$(sed -n 's/^CUSTOS_ENDPOINT=//p' "$dir/node-1.env")"
deadline=$((SECONDS + 20))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$node1_url/v1/sys/health?strict")" = 200 ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "the restarted node 1 was not unsealed and serving within 20 s"
  sleep 0.2
done
tail -n 50 "$dir/node-1/server.log" | grep -q '"msg":"keeper record accepted","state":"unsealed"' ||
  fail "node 1 serves, but its log does not show the keepers' release"
echo "cluster: node 1 restarted sealed, unsealed by the keepers' auto-release, serving"

# PostgreSQL failover: kill -9 the primary, promote the standby; the nodes reconnect by
# themselves and serve writes again.
pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
kill -KILL "$(sed -n 's/^postgres-primary //p' "$dir/pids")"
"${as_pg[@]}" "$pg_bin/pg_ctl" promote -w -D "$dir/pg-standby" >/dev/null || fail "pg_ctl promote"
t_failover=$SECONDS
env -i PATH=/usr/bin:/bin AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    AWS_EC2_METADATA_DISABLED=true PYTHONDONTWRITEBYTECODE=1 "$py" - "$dir" "$here" <<'PY' || fail "writes after the PostgreSQL failover"
import base64, json, os, sys, time
import botocore.exceptions
sys.path.insert(0, sys.argv[2])
from cluster_kms import kms as cluster_kms
d = sys.argv[1]
for node in ("node-1.env", "node-2.env", "node-3.env"):
    kms = cluster_kms(d, node)
    deadline = time.monotonic() + 20
    while True:
        try:
            key = kms.create_key()["KeyMetadata"]["KeyId"]
            kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=key, Plaintext=b"after")["CiphertextBlob"])
            break
        except botocore.exceptions.ClientError as ex:
            if time.monotonic() > deadline: raise
            time.sleep(0.2)
# Nothing acknowledged before the failover is lost: every key and ciphertext of the stream.
kms = cluster_kms(d, "dev.env")
acked = json.load(open(os.path.join(d, "acked.json")))
for key, pt, blob in acked:
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled", key
    assert kms.decrypt(CiphertextBlob=base64.b64decode(blob))["Plaintext"] == base64.b64decode(pt), key
print(f"cluster: after the failover all {len(acked)} acknowledged keys and ciphertexts are there")
PY
echo "cluster: PostgreSQL primary killed, standby promoted: every node writes again after $((SECONDS - t_failover)) s"

# Rolling upgrade to a new core binary (item 6), under boto3 load through HAProxy. The new
# build is custos-enclave with bytes appended: under sim its measurement is the file's SHA-256.
# A quorum (P1 of 1 provider, C1 and C2 of 2-of-3 customer) approves it; an approval of the
# provider alone is refused by the serving core; then nodes 3, 2 and 1 are replaced one by one,
# each joining by attestation through HAProxy while the stream keeps succeeding.
cp "$(dirname "$custos")/custos-enclave" "$dir/custos-enclave-v2"
printf 'custos rolling-upgrade test build\n' >>"$dir/custos-enclave-v2"
m1="$(sha256sum "$(dirname "$custos")/custos-enclave" | cut -d' ' -f1)"
m2="$(sha256sum "$dir/custos-enclave-v2" | cut -d' ' -f1)"
kdir="$dir/keepers"
approve() {  # KEEPER FILE
  "$custos" keeper policy approve --dir "$kdir/$1" --measurement "$m2" --tee sim --approval "$2" \
    --passphrase-file "$kdir/passphrase" 2>&1
}
out="$(approve P1 "$dir/approval-provider.json")" || fail "keeper P1 policy approve: $out"
[[ "$out" == *"provider 1 of 1, customer 0 of 2 (not yet in force"* ]] || fail "P1 alone: $out"
for k in P1 C1 C2; do out="$(approve "$k" "$dir/approval.json")" || fail "keeper $k policy approve: $out"; done
[[ "$out" == *"provider 1 of 1, customer 2 of 2 (in force)"* ]] || fail "P1, C1, C2: $out"
for k in P1 C1 C2; do
  grep -q "\"policy.approve\".*$m2\|$m2.*\"policy.approve\"" "$kdir/$k/audit.log" ||
    fail "keeper $k's audit log has no policy.approve of $m2"
  "$custos" keeper audit verify --dir "$kdir/$k" >/dev/null || fail "keeper $k's audit log does not verify"
done
echo "cluster: new core build $m2 approved by P1 (alone: not in force), then P1, C1, C2 (in force); audited"

status_of() { "$custos" operator status --server "$(sed -n 's/^CUSTOS_ENDPOINT=//p' "$dir/node-$1.env")" \
                --token-file "$dir/node-$1/data/admin.token" 2>/dev/null; }
root_key="$(status_of 2 | jq -r .root_key_id)"
[ -n "$root_key" ] && [ "$root_key" != null ] || fail "no root key id in node 2's status"
stop_node() {  # N: SIGTERM, and wait for it (and its trusted core) to end
  local pid t
  pid="$(sed -n "s/^node-$1 //p" "$dir/pids")"
  kill -TERM "$pid" 2>/dev/null
  for t in $(seq 150); do [ -e "/proc/$pid" ] || return 0; sleep 0.1; done
  fail "node $1 (pid $pid) did not stop within 15 s of SIGTERM"
}
start_upgraded() {  # N APPROVAL: the new core, joining through HAProxy with APPROVAL
  local cfg="$dir/node-$1/server.toml"
  grep -v '^join = \|^enclave_binary = \|^\[cluster\]\|^approval = ' "$cfg" |
    sed "s|^\[server\]\$|[server]\njoin = \"$haproxy_endpoint\"|; s|^\[tee\]\$|[tee]\nenclave_binary = \"$dir/custos-enclave-v2\"|" \
      >"$cfg.new"
  printf '[cluster]\napproval = "%s"\n' "$2" >>"$cfg.new"
  mv "$cfg.new" "$cfg"
  (cd "$dir/node-$1" && exec "$custos" server --config "$cfg" >>"$dir/node-$1/server.log" 2>&1) &
  sed -i "s/^node-$1 .*/node-$1 $!/" "$dir/pids"
}
serving() {  # N SECONDS: wait until node N serves on the new core and the cluster's root key
  local url st deadline=$((SECONDS + $2))
  url="$(sed -n 's/^CUSTOS_ENDPOINT=//p' "$dir/node-$1.env")"
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/v1/sys/health?strict")" = 200 ]; do
    [ "$SECONDS" -lt "$deadline" ] ||
      fail "upgraded node $1 does not serve after $2 s: $(status_of "$1" | jq -c .host.last_join_error)"
    sleep 0.2
  done
  st="$(status_of "$1")"
  [ "$(jq -r .measurement <<<"$st")" = "$m2" ] || fail "node $1 serves on measurement $(jq -r .measurement <<<"$st"), not $m2"
  [ "$(jq -r .root_key_id <<<"$st")" = "$root_key" ] || fail "node $1 has another root key"
}

rm -f "$dir/stream.stop"
env -i PATH=/usr/bin:/bin AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    AWS_EC2_METADATA_DISABLED=true PYTHONDONTWRITEBYTECODE=1 "$py" - "$dir" "$here" >"$dir/stream.out" 2>&1 <<'PY' &
import os, sys, time
sys.path.insert(0, sys.argv[2])
from cluster_kms import Stream
d = sys.argv[1]
stream = Stream(d)
while not os.path.exists(os.path.join(d, "stream.stop")): time.sleep(0.1)
stream.stop()
stream.check_all_decrypt()
gap = stream.longest_wait()
print(f"{len(stream.acked)} acknowledged, {len(stream.errors)} failed after retries, longest wait without an acknowledgement {gap:.2f} s")
assert gap < 3.0, f"the service stalled for {gap:.2f} s ({stream.errors[:3]})"
assert len(stream.errors) <= len(stream.acked) // 10, f"{len(stream.errors)} requests failed after retries: {stream.errors[:3]}"
PY
stream_pid=$!
t_upgrade=$SECONDS
sleep 1

# Node 3 on the new core with the provider's approval alone: its core refuses to start the join,
# naming the missing domain (a serving core refuses such an approval too when a compromised
# joiner sends it anyway: enclave test RollingUpgradeJoinNeedsApprovalOfBothDomains); node 3
# stays sealed and out of rotation while the others serve.
stop_node 3
start_upgraded 3 "$dir/approval-provider.json"
deadline=$((SECONDS + 20))
until [[ "$(status_of 3 | jq -r .host.last_join_error)" == *"customer 0 of 2 needed: both domains must approve"* ]]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "node 3 with a provider-only approval: $(status_of 3 | jq -c '{sealed, host}')"
  sleep 0.2
done
[ "$(status_of 3 | jq -r .sealed)" = true ] || fail "node 3 unsealed with a provider-only approval"
echo "cluster: a provider-only approval is refused: $(status_of 3 | jq -r .host.last_join_error)"

# The quorum's approval: nodes 3, 2, 1 in turn.
stop_node 3
start_upgraded 3 "$dir/approval.json"
serving 3 30
for n in 2 1; do
  stop_node "$n"
  start_upgraded "$n" "$dir/approval.json"
  serving "$n" 30
done
touch "$dir/stream.stop"
wait "$stream_pid" || { cat "$dir/stream.out" >&2; fail "the stream during the rolling upgrade"; }
echo "cluster: rolling upgrade $m1 -> $m2 of nodes 3, 2, 1 in $((SECONDS - t_upgrade)) s under load: $(cat "$dir/stream.out")"

# A whole-cluster restart on the new build: the keepers' release policies still list only the
# old measurement, so their auto-release to node 1 is refused ("measurement not allowed") and
# node 1 stays sealed (no unsealed node to join); restarted with the approval
# (--release-approval), they release to exactly that build and node 1 unseals, then nodes 2 and
# 3 join it.
for n in 1 2 3; do stop_node "$n"; done
p1_log_from=$(( $(stat -c %s "$kdir/P1.log") + 1 ))
(cd "$dir/node-1" && exec "$custos" server --config "$dir/node-1/server.toml" >>"$dir/node-1/server.log" 2>&1) &
sed -i "s/^node-1 .*/node-1 $!/" "$dir/pids"
deadline=$((SECONDS + 20))
until tail -c +"$p1_log_from" "$kdir/P1.log" | grep -q 'measurement not allowed'; do
  [ "$SECONDS" -lt "$deadline" ] || fail "keeper P1 did not refuse the new build without the approval: $(tail -n 3 "$kdir/P1.log")"
  sleep 0.2
done
[ "$(status_of 1 | jq -r .sealed)" = true ] || fail "node 1 unsealed on the new build without the keepers' approval"
for k in P1 C1 C2; do
  kpid="$(sed -n "s/^keeper-$k //p" "$dir/pids")"
  mapfile -d '' kargs <"/proc/$kpid/cmdline"
  kill -TERM "$kpid"
  for _ in $(seq 100); do [ -e "/proc/$kpid" ] || break; sleep 0.1; done
  "${kargs[@]}" --release-approval "$dir/approval.json" </dev/null >>"$kdir/$k.log" 2>&1 &
  sed -i "s/^keeper-$k .*/keeper-$k $!/" "$dir/pids"
done
serving 1 30
tail -n 50 "$dir/node-1/server.log" | grep -q '"msg":"keeper record accepted","state":"unsealed"' ||
  fail "node 1 serves on the new build, but not by the keepers' release"
for n in 2 3; do
  (cd "$dir/node-$n" && exec "$custos" server --config "$dir/node-$n/server.toml" >>"$dir/node-$n/server.log" 2>&1) &
  sed -i "s/^node-$n .*/node-$n $!/" "$dir/pids"
done
for n in 2 3; do serving "$n" 30; done
echo "cluster: whole-cluster restart on the new build: refused by the keepers' policy alone, unsealed once they honour the approval (--release-approval); nodes 2, 3 joined"

# Every node's audit chain in the shared database verifies.
store_url="$(sed -n 's/^url = "\(.*\)"$/\1/p' "$dir/node-1/server.toml")"
"$custos" audit verify --store-url "$store_url" >"$dir/audit.json" 2>"$dir/audit.err" ||
  { cat "$dir/audit.json" "$dir/audit.err" >&2; fail "custos audit verify --store-url"; }
logs="$("$py" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["intact"]; print(" ".join(sorted(l["log"] for l in r["logs"] if l["intact"])))' "$dir/audit.json")" ||
  fail "audit report"
[ "$logs" = "node-1 node-2 node-3" ] || fail "intact audit logs: '$logs', expected node-1 node-2 node-3"
echo "cluster: audit chains of node-1 node-2 node-3 verify"

# --stop ends every process DIR/pids names, and the trusted cores the nodes started.
pids="$(cut -d' ' -f2 "$dir/pids")"
cores=""
for p in $(sed -n 's/^node-[0-9]* //p' "$dir/pids"); do cores="$cores $(pgrep -P "$p")"; done
[ -n "${cores// /}" ] || fail "no trusted core under the nodes"
t1=$SECONDS
"$script" --stop "$dir" || fail "--stop exited $?"
echo "cluster: stopped in $((SECONDS - t1)) s"
for p in $pids $cores; do
  if [ -e "/proc/$p" ] && [ "$(sed 's/.*) //' "/proc/$p/stat" | cut -d' ' -f1)" != Z ]; then
    fail "process $p ($(tr '\0' ' ' <"/proc/$p/cmdline" | cut -c1-120)) still runs after --stop"
  fi
done
[ ! -e "$dir/dev.env" ] || fail "dev.env is left after --stop"
"$script" --stop "$dir" >/dev/null || fail "a second --stop exited $?"
echo "cluster: OK in $((SECONDS - t0)) s"
