#!/usr/bin/env bash
# The KMIP server (docs/kmip.md) driven by Debian's PyKMIP (tests/kmip/pykmip_test.py) at KMIP
# 1.2, 1.4 and 2.0 against `custos server --dev`: Discover Versions, Query, Create, Register,
# Get Attributes, Get Attribute List, Locate, Activate, Encrypt/Decrypt (AES-GCM, AES-CBC),
# MAC, Sign/Signature Verify, attribute changes, Revoke, Destroy, the refusals (Get of key
# material, wrong state, unknown object, foreign or missing client certificates, malformed
# TTLV), and a KMIP key used through the AWS KMS API with boto3. Then a second client
# certificate from `custos operator kmip-client create` works too; the audit log verifies,
# holds KMIP operations with each client's certificate name as principal, and never the
# plaintexts (nor does anything else in the data directory or the server's output).
#
#   tests/kmip/run.sh CUSTOS_BIN
set -uo pipefail
if [ $# -ne 1 ]; then echo "usage: $0 CUSTOS_BIN" >&2; exit 2; fi
custos="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
here="$(cd "$(dirname "$0")" && pwd)"
py=/usr/bin/python3  # Debian's, with python3-pykmip, python3-boto3, python3-cryptography
$py -c 'import kmip, boto3, cryptography' 2>/dev/null ||
  { echo "kmip test needs python3-pykmip, python3-boto3, python3-cryptography (scripts/install-deps.sh)" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "kmip test needs sqlite3" >&2; exit 2; }

work="$(mktemp -d /tmp/custos-kmip.XXXXXX)"
server_pid=""
cleanup() {
  local rc=$?
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [ "$rc" -ne 0 ] && { echo "---- server log ----" >&2; tail -n 30 "$work/server.err" >&2; }
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
fail() { echo "kmip: FAIL: $*" >&2; exit 1; }

"$custos" server --dev --listen 127.0.0.1:0 --data-dir "$work/dev" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 150); do [ -f "$work/dev/dev.env" ] && break; sleep 0.1; done
[ -f "$work/dev/dev.env" ] || fail "dev server did not start"
set -a; . "$work/dev/dev.env"; set +a
for v in CUSTOS_KMIP_HOST CUSTOS_KMIP_PORT CUSTOS_KMIP_CA CUSTOS_KMIP_CERT CUSTOS_KMIP_KEY CUSTOS_ENDPOINT; do
  [ -n "${!v:-}" ] || fail "dev.env has no $v"
done
[[ "$CUSTOS_KMIP_PORT" =~ ^[0-9]+$ ]] || fail "CUSTOS_KMIP_PORT=$CUSTOS_KMIP_PORT"
for f in "$CUSTOS_KMIP_CA" "$CUSTOS_KMIP_CERT" "$CUSTOS_KMIP_KEY"; do [ -s "$f" ] || fail "dev.env names $f, which is missing"; done

# cn CERT_FILE: the certificate's subject CN.
cn() { openssl x509 -in "$1" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= *//p'; }

# A second client certificate, as an operator makes one.
"$custos" operator kmip-client create --name bench --out "$work/client2" --server "$CUSTOS_ENDPOINT" \
  >"$work/create.out" 2>"$work/create.err" || fail "kmip-client create: $(cat "$work/create.err")"
for f in client.key client.crt ca.crt; do [ -s "$work/client2/$f" ] || fail "kmip-client create wrote no $f"; done
[ "$(cn "$work/client2/client.crt")" = bench ] || fail "client.crt is for CN $(cn "$work/client2/client.crt"), not bench"
[ "$(stat -c %a "$work/client2/client.key")" = 600 ] || fail "client.key is mode $(stat -c %a "$work/client2/client.key")"
openssl pkey -in "$work/client2/client.key" -pubout 2>/dev/null | cmp -s - <(openssl x509 -in "$work/client2/client.crt" -noout -pubkey) ||
  fail "client.key is not the key of client.crt"
echo "kmip: kmip-client create wrote client.key (0600), client.crt (CN bench), ca.crt"

# Every plaintext the tests send starts with this marker (30 bytes).
marker="kmip-e2e-plaintext-$(openssl rand -hex 6 | cut -c1-11)"
( cd "$here" &&
  CUSTOS_KMIP_TEST_PLAINTEXT="$marker" KMIP_EXTRA_CERT="$work/client2/client.crt" \
  KMIP_EXTRA_KEY="$work/client2/client.key" KMIP_EXTRA_CA="$work/client2/ca.crt" \
  timeout 150 $py pykmip_test.py -v ) >"$work/pykmip.log" 2>&1
rc=$?
cat "$work/pykmip.log"
[ "$rc" = 0 ] || fail "pykmip_test.py exited $rc"
grep -Eq '^test_extra_client_certificate .*\.\.\. ok$' "$work/pykmip.log" ||
  fail "the test with the kmip-client create certificate did not pass"
echo "kmip: PyKMIP tests passed, the kmip-client create certificate included"

kill -TERM "$server_pid"; wait "$server_pid"; rc=$?; server_pid=""
[ "$rc" = 0 ] || fail "the dev server exited $rc"
"$custos" audit verify --data-dir "$work/dev" >"$work/verify.json" 2>&1 || fail "audit verify: $(cat "$work/verify.json")"
db="$work/dev/server/custos.db"
[ -f "$db" ] || fail "no $db"
# audited OPERATION_SUBSTRING CN: KMIP entries whose operation holds the substring and whose
# principal is the certificate's name (alone or as the last segment of an ARN).
audited() {
  [[ "$2" =~ ^[A-Za-z0-9._-]+$ ]] || fail "unexpected CN '$2'"
  sqlite3 "$db" "SELECT count(*) FROM audit WHERE lower(json_extract(entry, '\$.operation')) LIKE '%kmip%'
    AND lower(json_extract(entry, '\$.operation')) LIKE '%$1%'
    AND (json_extract(entry, '\$.principal') = '$2' OR json_extract(entry, '\$.principal') LIKE '%/$2'
         OR json_extract(entry, '\$.principal') LIKE '%:$2')"
}
dev_cn="$(cn "$CUSTOS_KMIP_CERT")"
for op in create encrypt; do
  [ "$(audited "$op" "$dev_cn")" -ge 1 ] || fail "no audited KMIP $op with principal $dev_cn"
  [ "$(audited "$op" bench)" -ge 1 ] || fail "no audited KMIP $op with principal bench"
done
# The marker, raw, in base64 and in hex: never in the audit log, the data directory or the output.
b64="$(printf %s "$marker" | base64 -w0)"
hex="$(printf %s "$marker" | od -An -tx1 | tr -d ' \n')"
for s in "$marker" "$b64" "$hex" "${hex^^}"; do
  [ "$(sqlite3 "$db" "SELECT count(*) FROM audit WHERE entry LIKE '%$s%'")" = 0 ] || fail "a plaintext is in the audit log ($s)"
done
grep -rqaF "$marker" "$work/dev" && fail "a plaintext is stored in the data directory: $(grep -rlaF "$marker" "$work/dev")"
grep -qaF "$marker" "$work/server.out" "$work/server.err" && fail "a plaintext is in the server's output"
echo "kmip: OK (audit log intact; KMIP operations audited with each client's certificate name, no plaintext)"
