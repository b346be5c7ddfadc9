#!/usr/bin/env bash
# The local cluster of scripts/dev-cluster.sh (issue 15, item 7): it starts (PostgreSQL primary
# and standby, keepers, three nodes, HAProxy) in a fresh directory; through HAProxy boto3
# creates a key, node 1 encrypts under it and node 3 decrypts (each through its own endpoint
# from node-N.env), a altered ciphertext is refused; then `--stop` ends every process DIR/pids
# named (and the nodes' trusted cores), and a second `--stop` is a no-op.
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

# A key through HAProxy, encrypt through node 1, decrypt through node 3.
env -i PATH=/usr/bin:/bin AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    AWS_EC2_METADATA_DISABLED=true "$py" - "$dir" <<'PY' || fail "KMS calls across the nodes"
import os, sys
import boto3, botocore.config, botocore.exceptions

d = sys.argv[1]

def env_file(name):
    out = {}
    with open(os.path.join(d, name)) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            out[k] = v
    return out

def kms(name):
    e = env_file(name)
    return boto3.client("kms", endpoint_url=e["CUSTOS_ENDPOINT"], region_name=e["AWS_REGION"],
                        aws_access_key_id=e["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=e["AWS_SECRET_ACCESS_KEY"],
                        config=botocore.config.Config(retries={"mode": "standard"}))

via_haproxy, node1, node3 = kms("dev.env"), kms("node-1.env"), kms("node-3.env")
key_id = via_haproxy.create_key(Description="cluster test")["KeyMetadata"]["KeyId"]
plaintext = os.urandom(100)
blob = node1.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]
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
print(f"cluster: key {key_id}: created through HAProxy, encrypted by node 1, decrypted by node 3")
PY

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
