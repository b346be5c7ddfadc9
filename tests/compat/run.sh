#!/usr/bin/env bash
# Compatibility with what users already have on disk (issue 13, "nothing changes for users"):
# every fixture directory tests/compat/v*/ was written by an earlier custos (see its README.md)
# and is opened here by the binary under test, which must return the same plaintexts:
#
#   - the keeper directories (dev/keepers/*: sealed shares, allow-lists, audit logs), served by
#     `custos keeper serve`, release partials for a dual-control file (`custos decrypt`) and a
#     dual-control object in a directory store (`custos get`);
#   - the appliance data directory (dev/server: envelope, origin evidence, SQLite store, sim key)
#     unseals under `custos server --dev`, which reuses it: the KMS key decrypts the fixture's
#     ciphertext (AWS CLI) and an appliance-mode object opens (`custos get`);
#   - refusals: a dual-control file with one byte changed, and the KMS ciphertext under another
#     encryption context, are refused.
#
#   tests/compat/run.sh CUSTOS_BIN
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 1 ]; then echo "usage: $0 CUSTOS_BIN" >&2; exit 2; fi
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
AWS=/usr/bin/aws
[ -x "$AWS" ] || { echo "compat test needs the AWS CLI at $AWS (scripts/install-deps.sh)" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/custos-compat.XXXXXX")"
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  if [ "$rc" -ne 0 ]; then
    for log in "$work"/*/*.log; do [ -e "$log" ] && { echo "---- $log ----" >&2; tail -n 8 "$log" >&2; }; done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() { echo "compat: FAIL: $*" >&2; exit 1; }
port_free() { ! (: < "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }
free_port() {
  local p
  for _ in $(seq 100); do
    p=$(( 10000 + RANDOM % 20000 ))
    port_free "$p" && { echo "$p"; return 0; }
  done
  return 1
}
wait_port() {
  for _ in $(seq 300); do port_free "$1" || return 0; sleep 0.1; done
  return 1
}

export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
export AWS_PAGER="" AWS_MAX_ATTEMPTS=1 NO_PROXY=127.0.0.1 no_proxy=127.0.0.1
unset CUSTOS_CA_FILE AWS_CA_BUNDLE CUSTOS_ENDPOINT CUSTOS_CLIENT_KEY

fixtures=("$HERE"/v*/)
[ -d "${fixtures[0]}" ] || fail "no fixture directories in $HERE"
for src in "${fixtures[@]}"; do
  name=$(basename "$src")
  fx="$work/$name"
  cp -r "$src" "$fx"
  chmod -R go-rwx "$fx"
  mkdir -p "$fx/out"
  echo "compat: $name"

  # 1. Keeper directories: serve them, decrypt the dual-control file and object.
  urls=()
  for id in P1 C1 C2 C3; do
    port=$(free_port) || fail "no free port"
    "$BIN" keeper serve --dir "$fx/dev/keepers/$id" --listen "127.0.0.1:$port" \
      --passphrase-file "$fx/dev/keepers/passphrase" --insecure-http > "$fx/out/keeper-$id.log" 2>&1 &
    pids+=($!)
    wait_port "$port" || fail "keeper $id from $name did not start: $(tail -n 3 "$fx/out/keeper-$id.log")"
    urls+=(--keeper-url "$id=http://127.0.0.1:$port")
  done
  "$BIN" decrypt --custody "$fx/dev/custody.json" --client-key "$fx/dev/keepers/admin.key" "${urls[@]}" \
    --in "$fx/dual-control.cdc" --out "$fx/out/dual-control.txt" 2> "$fx/out/decrypt.log" \
    || fail "$name: dual-control file: $(tail -n 2 "$fx/out/decrypt.log")"
  cmp -s "$fx/plain.txt" "$fx/out/dual-control.txt" || fail "$name: dual-control file decrypted to other bytes"
  echo "compat:   dual-control file: same plaintext"

  "$BIN" get -q --custody "$fx/dev/custody.json" --client-key "$fx/dev/keepers/admin.key" "${urls[@]}" "file://$fx/objects/dual.obj" \
    "$fx/out/dual.txt" 2> "$fx/out/get-dual.log" || fail "$name: dual-control object: $(tail -n 2 "$fx/out/get-dual.log")"
  cmp -s "$fx/plain.txt" "$fx/out/dual.txt" || fail "$name: dual-control object decrypted to other bytes"
  echo "compat:   dual-control object: same plaintext"

  cp "$fx/dual-control.cdc" "$fx/out/tampered.cdc"
  size=$(stat -c %s "$fx/out/tampered.cdc")
  printf '\x5a' | dd of="$fx/out/tampered.cdc" bs=1 seek=$((size - 20)) conv=notrunc status=none
  if "$BIN" decrypt --custody "$fx/dev/custody.json" --client-key "$fx/dev/keepers/admin.key" "${urls[@]}" \
       --in "$fx/out/tampered.cdc" --out "$fx/out/tampered.txt" 2> "$fx/out/tampered.log"; then
    fail "$name: a dual-control file with one byte changed was decrypted"
  fi
  echo "compat:   tampered file refused: $(tail -n 1 "$fx/out/tampered.log" | cut -c1-120)"

  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  pids=()

  # 2. The appliance data directory under dev mode (which reuses D/server and D/keepers).
  "$BIN" server --dev --listen 127.0.0.1:0 --data-dir "$fx/dev" > "$fx/out/dev.stdout" 2> "$fx/out/dev.log" &
  pids+=($!)
  for _ in $(seq 600); do [ -f "$fx/dev/dev.env" ] && break; kill -0 "${pids[-1]}" 2>/dev/null || break; sleep 0.1; done
  [ -f "$fx/dev/dev.env" ] || fail "$name: dev server did not come up: $(tail -n 3 "$fx/out/dev.log")"
  set -a; . "$fx/dev/dev.env"; set +a
  grep -q "\"$AWS_ACCESS_KEY_ID\"" "$fx/dev/dev-credentials" \
    || fail "$name: dev mode made new credentials instead of reusing the data directory's"

  key_id=$(cat "$fx/key_id.txt")
  base64 -d "$fx/kms_ciphertext.b64" > "$fx/out/kms.bin"
  "$AWS" --endpoint-url "$CUSTOS_ENDPOINT" kms decrypt --ciphertext-blob "fileb://$fx/out/kms.bin" \
    --encryption-context purpose=compat --query '[KeyId,Plaintext]' --output text > "$fx/out/kms.txt" \
    2> "$fx/out/kms.log" || fail "$name: KMS Decrypt: $(tail -n 2 "$fx/out/kms.log")"
  read -r got_key got_b64 < "$fx/out/kms.txt"
  [[ "$got_key" == *"$key_id" ]] || fail "$name: KMS Decrypt named key $got_key, not $key_id"
  echo "$got_b64" | base64 -d > "$fx/out/kms_plain.txt"
  cmp -s "$fx/kms_plain.txt" "$fx/out/kms_plain.txt" || fail "$name: KMS ciphertext decrypted to other bytes"
  echo "compat:   KMS ciphertext: same plaintext under key $key_id"

  if "$AWS" --endpoint-url "$CUSTOS_ENDPOINT" kms decrypt --ciphertext-blob "fileb://$fx/out/kms.bin" \
       --encryption-context purpose=other > /dev/null 2> "$fx/out/kms-ctx.log"; then
    fail "$name: KMS ciphertext decrypted under another encryption context"
  fi
  grep -q InvalidCiphertextException "$fx/out/kms-ctx.log" || fail "$name: wrong context: $(cat "$fx/out/kms-ctx.log")"
  echo "compat:   other encryption context refused (InvalidCiphertextException)"

  "$BIN" get -q "file://$fx/objects/appliance.obj" "$fx/out/appliance.txt" 2> "$fx/out/get-appliance.log" \
    || fail "$name: appliance object: $(tail -n 2 "$fx/out/get-appliance.log")"
  cmp -s "$fx/plain.txt" "$fx/out/appliance.txt" || fail "$name: appliance object decrypted to other bytes"
  echo "compat:   appliance-mode object: same plaintext"

  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  pids=()
  unset CUSTOS_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
done
echo "compat: ${#fixtures[@]} fixture set(s) opened"
