#!/usr/bin/env bash
# The XKS proxy API (docs/xks.md) driven as AWS KMS drives it, with curl's own SigV4 signer
# (`curl --aws-sigv4 "aws:amz:REGION:kms-xks-proxy"`, Appendix D of the spec) against
# `custos server --dev`: GetHealthStatus, GetKeyMetadata by key id and by alias name, Encrypt
# with AAD and a CDIV checked independently (openssl dgst over the decoded fields), Decrypt, a
# tampered tag and another AAD refused, GET answered 405, a wrong secret 401, an unknown key
# 404; credential rotation with `custos operator xks-credential create|list|delete` (both work,
# then the old one is refused at once); the audit log verifies and holds the requests'
# kmsRequestId and never the plaintext.
#
#   tests/xks/run.sh CUSTOS_BIN
set -uo pipefail
if [ $# -ne 1 ]; then echo "usage: $0 CUSTOS_BIN" >&2; exit 2; fi
custos="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
curl --version | head -1 | grep -q . || { echo "xks test needs curl" >&2; exit 2; }

work="$(mktemp -d /tmp/custos-xks.XXXXXX)"
server_pid=""
cleanup() {
  local rc=$?
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [ "$rc" -ne 0 ] && { echo "---- server log ----" >&2; tail -n 20 "$work/server.err" >&2; }
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
fail() { echo "xks: FAIL: $*" >&2; exit 1; }

"$custos" server --dev --listen 127.0.0.1:0 --data-dir "$work/dev" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 150); do [ -f "$work/dev/dev.env" ] && break; sleep 0.1; done
[ -f "$work/dev/dev.env" ] || fail "dev server did not start"
set -a; . "$work/dev/dev.env"; set +a
for v in CUSTOS_XKS_ENDPOINT CUSTOS_XKS_URI_PREFIX CUSTOS_XKS_ACCESS_KEY_ID CUSTOS_XKS_SECRET_ACCESS_KEY; do
  [ -n "${!v:-}" ] || fail "dev.env has no $v"
done
[[ "$CUSTOS_XKS_URI_PREFIX" == */kms/xks/v1 ]] || fail "CUSTOS_XKS_URI_PREFIX does not end in /kms/xks/v1"
base="$CUSTOS_XKS_ENDPOINT$CUSTOS_XKS_URI_PREFIX"

# xks ID SECRET PATH BODY: one signed XKS request; prints the body, then the status on a line.
xks() {
  curl -s --aws-sigv4 "aws:amz:eu-west-1:kms-xks-proxy" --user "$1:$2" -X POST \
    -H 'Content-Type: application/json' --data "$4" -w '\n%{http_code}' "$base$3"
}
call() { xks "$CUSTOS_XKS_ACCESS_KEY_ID" "$CUSTOS_XKS_SECRET_ACCESS_KEY" "$@"; }
body() { sed '$d' <<<"$1"; }
code() { tail -n1 <<<"$1"; }
expect() {  # RESPONSE STATUS [ERROR_NAME] WHAT
  local r="$1" want="$2" name="${3:-}" what="$4"
  [ "$(code "$r")" = "$want" ] || fail "$what: HTTP $(code "$r"), expected $want: $(body "$r")"
  [ -z "$name" ] || [ "$(body "$r" | jq -r .errorName)" = "$name" ] || fail "$what: $(body "$r"), expected $name"
}
meta='"requestMetadata":{"awsPrincipalArn":"arn:aws:iam::123456789012:user/Alice","kmsKeyArn":"arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab","kmsOperation":"Encrypt","kmsRequestId":"xks-e2e-4112f4d6","kmsViaService":"ebs"}'

# A key and an alias through the KMS API, signed by curl too (service kms).
kms() {
  curl -s --aws-sigv4 "aws:amz:$AWS_REGION:kms" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -X POST \
    -H 'Content-Type: application/x-amz-json-1.1' -H "X-Amz-Target: TrentService.$1" --data "$2" "$CUSTOS_ENDPOINT/"
}
key="$(kms CreateKey '{"Description":"xks e2e"}' | jq -r .KeyMetadata.KeyId)"
[ -n "$key" ] && [ "$key" != null ] || fail "CreateKey through the KMS API"
kms CreateAlias "{\"AliasName\":\"alias/xks-e2e\",\"TargetKeyId\":\"$key\"}" >/dev/null

r="$(call /health '{"requestMetadata":{"kmsRequestId":"h-1","kmsOperation":"CreateCustomKeyStore"}}')"
expect "$r" 200 "" "GetHealthStatus"
[ "$(body "$r" | jq -r '.ekmFleetDetails[0].healthStatus')" = ACTIVE ] || fail "health: $(body "$r")"
for ext in "$key" xks-e2e; do
  r="$(call "/keys/$ext/metadata" "{$meta}")"
  expect "$r" 200 "" "GetKeyMetadata $ext"
  [ "$(body "$r" | jq -c .)" = '{"keySpec":"AES_256","keyStatus":"ENABLED","keyUsage":["ENCRYPT","DECRYPT"]}' ] ||
    fail "metadata: $(body "$r")"
done
echo "xks: GetHealthStatus ACTIVE; GetKeyMetadata by key id and by alias name"

aad="$(printf 'project=nile,department=marketing' | base64 -w0)"
pt="$(printf 'Hello World!' | base64 -w0)"
r="$(call "/keys/xks-e2e/encrypt" "{$meta,\"plaintext\":\"$pt\",\"encryptionAlgorithm\":\"AES_GCM\",\"additionalAuthenticatedData\":\"$aad\",\"ciphertextDataIntegrityValueAlgorithm\":\"SHA_256\"}")"
expect "$r" 200 "" "Encrypt"
enc="$(body "$r")"
# The CDIV, recomputed here: SHA-256 over aad || ciphertextMetadata || iv || ciphertext || tag.
want="$( { for f in aad ciphertextMetadata initializationVector ciphertext authenticationTag; do
             if [ "$f" = aad ]; then printf %s "$aad"; else jq -r ".$f" <<<"$enc"; fi | base64 -d; done; } |
         openssl dgst -sha256 -binary | base64 -w0)"
[ "$(jq -r .ciphertextDataIntegrityValue <<<"$enc")" = "$want" ] || fail "CDIV: $(jq -r .ciphertextDataIntegrityValue <<<"$enc"), recomputed $want"
[ "$(jq -r .initializationVector <<<"$enc" | base64 -d | wc -c)" = 12 ] || fail "IV is not 12 bytes"
[ "$(jq -r .authenticationTag <<<"$enc" | base64 -d | wc -c)" = 16 ] || fail "tag is not 16 bytes"
dec() {  # AAD_B64 TAG_B64
  call "/keys/$key/decrypt" "{$meta,\"ciphertext\":$(jq .ciphertext <<<"$enc"),\"ciphertextMetadata\":$(jq .ciphertextMetadata <<<"$enc"),\"initializationVector\":$(jq .initializationVector <<<"$enc"),\"authenticationTag\":\"$2\",\"encryptionAlgorithm\":\"AES_GCM\",\"additionalAuthenticatedData\":\"$1\"}"
}
tag="$(jq -r .authenticationTag <<<"$enc")"
r="$(dec "$aad" "$tag")"
expect "$r" 200 "" "Decrypt"
[ "$(body "$r" | jq -r .plaintext)" = "$pt" ] || fail "Decrypt gave $(body "$r")"
bad_tag="$(/usr/bin/python3 -c 'import base64,sys; b=bytearray(base64.b64decode(sys.argv[1])); b[0]^=1; print(base64.b64encode(bytes(b)).decode())' "$tag")"
expect "$(dec "$aad" "$bad_tag")" 400 InvalidCiphertextException "Decrypt with a tampered tag"
expect "$(dec "$(printf other | base64 -w0)" "$tag")" 400 InvalidCiphertextException "Decrypt with another AAD"
echo "xks: Encrypt (CDIV recomputed with openssl), Decrypt; tampered tag and other AAD refused"

r="$(curl -s -X GET -w '\n%{http_code}' "$base/keys/$key/encrypt")"
expect "$r" 405 "" "GET"
expect "$(xks "$CUSTOS_XKS_ACCESS_KEY_ID" "wrong$CUSTOS_XKS_SECRET_ACCESS_KEY" "/keys/$key/encrypt" "{$meta}")" 401 AuthenticationFailedException "a wrong secret"
expect "$(call /keys/no-such-key/metadata "{$meta}")" 404 KeyNotFoundException "an unknown key"
expect "$(call /keys/$key/rotate "{$meta}")" 404 InvalidUriPathException "an unknown operation"
echo "xks: GET 405, wrong secret 401, unknown key 404, unknown path 404"

# Rotation: a second credential for the same prefix; both sign; the old one is deleted.
prefix="${CUSTOS_XKS_URI_PREFIX%/kms/xks/v1}"
new="$("$custos" operator xks-credential create --prefix "$prefix" --name rotated --server "$CUSTOS_ENDPOINT" 2>"$work/create.err")" ||
  fail "xks-credential create: $(cat "$work/create.err")"
[ "$(jq -r .XksProxyUriPath <<<"$new")" = "$CUSTOS_XKS_URI_PREFIX" ] || fail "create printed $new"
new_id="$(jq -r .XksProxyAuthenticationCredential.AccessKeyId <<<"$new")"
new_secret="$(jq -r .XksProxyAuthenticationCredential.RawSecretAccessKey <<<"$new")"
[[ "$new_id" =~ ^[A-Z2-7]{20,30}$ ]] || fail "access key id $new_id is not 20-30 of A-Z 2-7"
[[ "$new_secret" =~ ^[A-Za-z0-9+/=]{43,64}$ ]] || fail "the secret is not 43-64 of base64"
expect "$(call "/keys/$key/metadata" "{$meta}")" 200 "" "the old credential, before the rotation"
expect "$(xks "$new_id" "$new_secret" "/keys/$key/metadata" "{$meta}")" 200 "" "the new credential"
[ "$("$custos" operator xks-credential list --server "$CUSTOS_ENDPOINT" | jq length)" = 2 ] || fail "list does not show 2"
"$custos" operator xks-credential delete --access-key-id "$CUSTOS_XKS_ACCESS_KEY_ID" --server "$CUSTOS_ENDPOINT" ||
  fail "xks-credential delete"
expect "$(call "/keys/$key/metadata" "{$meta}")" 401 AuthenticationFailedException "the deleted credential"
expect "$(xks "$new_id" "$new_secret" "/keys/$key/metadata" "{$meta}")" 200 "" "the new credential after the rotation"
echo "xks: credential rotated: both signed, the old one refused once deleted"

kill -TERM "$server_pid"; wait "$server_pid"; rc=$?; server_pid=""
[ "$rc" = 0 ] || fail "the dev server exited $rc"
"$custos" audit verify --data-dir "$work/dev" >"$work/verify.json" 2>/dev/null || fail "audit verify: $(cat "$work/verify.json")"
n="$(sqlite3 "$work/dev/server/custos.db" "SELECT count(*) FROM audit WHERE entry LIKE '%\"operation\":\"XksEncrypt\"%' AND entry LIKE '%xks-e2e-4112f4d6%'")"
[ "$n" -ge 1 ] || fail "no audited XksEncrypt with the kmsRequestId"
[ "$(sqlite3 "$work/dev/server/custos.db" "SELECT count(*) FROM audit WHERE entry LIKE '%$pt%'")" = 0 ] ||
  fail "the plaintext is in the audit log"
echo "xks: OK (audit log intact; XKS requests audited with their kmsRequestId, no plaintext)"
