#!/usr/bin/env bash
# Conformance of custos's KMS API with the AWS CLI: every operation the appliance serves, and
# the error each misuse must raise, as the CLI reports it ("An error occurred (Code) ...").
#
# Run by tests/conformance/run.sh (alone: `tests/conformance/run.sh build/custos cli`), which
# exports CUSTOS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, the principals
# CONF_{A,B}_{ACCESS_KEY_ID,SECRET_ACCESS_KEY,PRINCIPAL_ARN}, and AWS_BIN (the aws to use).
# Stops at the first failure, naming the command and what it printed; closes with
# "cli: N passed, M failed".
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
AWS_BIN="${AWS_BIN:-aws}"
for v in CUSTOS_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION \
  CONF_A_ACCESS_KEY_ID CONF_A_SECRET_ACCESS_KEY CONF_A_PRINCIPAL_ARN \
  CONF_B_ACCESS_KEY_ID CONF_B_SECRET_ACCESS_KEY CONF_B_PRINCIPAL_ARN; do
  if [ -z "${!v:-}" ]; then echo "$v not set (run through tests/conformance/run.sh)" >&2; exit 2; fi
done
export AWS_PAGER="" AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard AWS_DEFAULT_REGION="$AWS_REGION"

W="$(mktemp -d "${TMPDIR:-/tmp}/custos-cli.XXXXXX")"
PASSED=0
FAILED=0
STEP="start"
finish() {
  rm -rf "$W"
  echo "cli: $PASSED passed, $FAILED failed"
}
trap finish EXIT

# Debian 12's aws (2.9) predates RotateKeyOnDemand and ListKeyRotations: give it the two
# operations through the model extras beside this script (botocore merges them).
if ! "$AWS_BIN" kms list-key-rotations --generate-cli-skeleton input >/dev/null 2>&1; then
  export AWS_DATA_PATH="$HERE/models${AWS_DATA_PATH:+:$AWS_DATA_PATH}"
fi

echo "client: $("$AWS_BIN" --version 2>&1)"
RUN="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"

fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL [$STEP]: $*" >&2
  exit 1
}
ok() {
  PASSED=$((PASSED + 1))
  echo "ok $PASSED - $STEP${1:+: $1}"
}

# kms OP ARGS...: runs `aws kms OP`, as the dev principal unless AS=A|B, leaving its JSON
# output in $OUT; any failure fails the suite with the command and its output.
OUT=""
kms() {
  local op="$1" id="$AWS_ACCESS_KEY_ID" secret="$AWS_SECRET_ACCESS_KEY" err
  shift
  case "${AS:-}" in
    A) id="$CONF_A_ACCESS_KEY_ID"; secret="$CONF_A_SECRET_ACCESS_KEY" ;;
    B) id="$CONF_B_ACCESS_KEY_ID"; secret="$CONF_B_SECRET_ACCESS_KEY" ;;
  esac
  if ! OUT="$(AWS_ACCESS_KEY_ID="$id" AWS_SECRET_ACCESS_KEY="$secret" \
      "$AWS_BIN" --endpoint-url "$CUSTOS_ENDPOINT" --region "$AWS_REGION" --output json kms "$op" "$@" 2>"$W/err")"; then
    err="$(cat "$W/err")"
    fail "aws kms $op $* (as ${AS:-dev}) failed: $err"
  fi
}
# jp PATH: the field PATH (dot-separated, list indexes as numbers) of $OUT, "" when absent;
# booleans as true/false, lists and objects as compact sorted JSON.
jp() {
  "${JSON_PY:-python3}" -c '
import json, sys
v = json.loads(sys.argv[1])
for part in sys.argv[2].split("."):
    if part == "": continue
    if isinstance(v, list): v = v[int(part)] if int(part) < len(v) else None
    elif isinstance(v, dict): v = v.get(part)
    else: v = None
if v is None: print("")
elif isinstance(v, bool): print("true" if v else "false")
elif isinstance(v, (dict, list)): print(json.dumps(v, sort_keys=True))
else: print(v)
' "$OUT" "$1"
}

# expect_err CODE OP ARGS...: `aws kms OP` must fail with "An error occurred (CODE)".
expect_err() {
  local code="$1" op="$2" id="$AWS_ACCESS_KEY_ID" secret="$AWS_SECRET_ACCESS_KEY" out rc
  shift 2
  case "${AS:-}" in
    A) id="$CONF_A_ACCESS_KEY_ID"; secret="$CONF_A_SECRET_ACCESS_KEY" ;;
    B) id="$CONF_B_ACCESS_KEY_ID"; secret="$CONF_B_SECRET_ACCESS_KEY" ;;
    WRONG) secret="${AWS_SECRET_ACCESS_KEY%?}$([ "${AWS_SECRET_ACCESS_KEY: -1}" = A ] && echo B || echo A)" ;;
    UNKNOWN) id="AKIA$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)" ;;
  esac
  out="$(AWS_ACCESS_KEY_ID="$id" AWS_SECRET_ACCESS_KEY="$secret" \
    "$AWS_BIN" --endpoint-url "$CUSTOS_ENDPOINT" --region "$AWS_REGION" --output json kms "$op" "$@" 2>&1)"
  rc=$?
  if [ $rc -eq 0 ]; then fail "aws kms $op $* (as ${AS:-dev}): expected $code, but it succeeded: $out"; fi
  if ! grep -q "An error occurred ($code)" <<<"$out"; then
    fail "aws kms $op $* (as ${AS:-dev}): expected $code, got (exit $rc): $out"
  fi
  ok "$op -> $code"
}

# eq WHAT GOT WANT
eq() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3' (last output: $OUT)"; }
b64file() { base64 -d >"$1"; }  # b64file FILE < base64 text
days_until() {  # days_until TIMESTAMP (ISO 8601 or epoch seconds)
  local t="$1" s
  if [[ "$t" =~ ^[0-9]+(\.[0-9]+)?$ ]]; then s="${t%.*}"; else s="$(date -d "$t" +%s)" || return 1; fi
  echo $(( (s - $(date +%s)) / 3600 ))  # hours, to compare with N*24
}

# -------------------------------------------------------------------------------------------
STEP="CreateKey SYMMETRIC_DEFAULT with Description and Tags"
kms create-key --description "conformance symmetric key" --tags TagKey=suite,TagValue=cli TagKey=purpose,TagValue=test
SYM="$(jp KeyMetadata.KeyId)"; SYM_ARN="$(jp KeyMetadata.Arn)"
[[ "$SYM" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] || fail "KeyId '$SYM' is not a UUID"
ACCOUNT="$(cut -d: -f5 <<<"$SYM_ARN")"
eq Arn "$SYM_ARN" "arn:aws:kms:$AWS_REGION:$ACCOUNT:key/$SYM"
[[ "$ACCOUNT" =~ ^[0-9]{12}$ ]] || fail "account '$ACCOUNT' in $SYM_ARN"
eq KeyState "$(jp KeyMetadata.KeyState)" Enabled
eq Enabled "$(jp KeyMetadata.Enabled)" true
eq KeyUsage "$(jp KeyMetadata.KeyUsage)" ENCRYPT_DECRYPT
eq KeySpec "$(jp KeyMetadata.KeySpec)" SYMMETRIC_DEFAULT
eq Description "$(jp KeyMetadata.Description)" "conformance symmetric key"
eq EncryptionAlgorithms "$(jp KeyMetadata.EncryptionAlgorithms)" '["SYMMETRIC_DEFAULT"]'
ok "$SYM"

STEP="CreateKey HMAC_256"
kms create-key --key-spec HMAC_256 --key-usage GENERATE_VERIFY_MAC
HMAC="$(jp KeyMetadata.KeyId)"
eq KeySpec "$(jp KeyMetadata.KeySpec)" HMAC_256
eq MacAlgorithms "$(jp KeyMetadata.MacAlgorithms)" '["HMAC_SHA_256"]'
ok

STEP="CreateKey ECC_NIST_P256"
kms create-key --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY
ECC="$(jp KeyMetadata.KeyId)"; ECC_ARN="$(jp KeyMetadata.Arn)"
eq KeyUsage "$(jp KeyMetadata.KeyUsage)" SIGN_VERIFY
eq SigningAlgorithms "$(jp KeyMetadata.SigningAlgorithms)" '["ECDSA_SHA_256"]'
ok

STEP="CreateKey with Policy"
cat >"$W/create-policy.json" <<EOF
{"Version": "2012-10-17", "Id": "conformance-cli", "Statement": [{"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::$ACCOUNT:root"}, "Action": "kms:*", "Resource": "*"}]}
EOF
kms create-key --policy "file://$W/create-policy.json" --description "with policy"
WP="$(jp KeyMetadata.KeyId)"
kms get-key-policy --key-id "$WP" --policy-name default
POLICY="$(jp Policy)"
"${JSON_PY:-python3}" -c 'import json,sys; sys.exit(json.loads(sys.argv[1]) != json.load(open(sys.argv[2])))' \
  "$POLICY" "$W/create-policy.json" || fail "GetKeyPolicy returned $POLICY"
ok

STEP="DescribeKey by id and ARN"
for ref in "$SYM" "$SYM_ARN"; do
  kms describe-key --key-id "$ref"
  eq "DescribeKey($ref).KeyId" "$(jp KeyMetadata.KeyId)" "$SYM"
done
ok

STEP="ListKeys with --limit and --marker"
seen=""; marker=""; pages=0
while :; do
  if [ -n "$marker" ]; then kms list-keys --no-paginate --limit 2 --marker "$marker"; else kms list-keys --no-paginate --limit 2; fi
  pages=$((pages + 1))
  n="$("${JSON_PY:-python3}" -c 'import json,sys; print(len(json.loads(sys.argv[1])["Keys"]))' "$OUT")"
  [ "$n" -le 2 ] || fail "ListKeys --limit 2 returned $n keys"
  seen="$seen $("${JSON_PY:-python3}" -c 'import json,sys; print(" ".join(k["KeyId"] for k in json.loads(sys.argv[1])["Keys"]))' "$OUT")"
  [ "$(jp Truncated)" = true ] || break
  marker="$(jp NextMarker)"
  [ -n "$marker" ] || fail "ListKeys Truncated without NextMarker: $OUT"
  [ $pages -lt 1000 ] || fail "ListKeys does not end"
done
[ $pages -ge 2 ] || fail "4 keys with --limit 2 took $pages page(s)"
for k in "$SYM" "$HMAC" "$ECC" "$WP"; do grep -qw "$k" <<<"$seen" || fail "ListKeys pages miss $k"; done
ok "$pages pages"

STEP="CreateAlias / DescribeKey by alias / ListAliases / UpdateAlias / DeleteAlias"
ALIAS="alias/conformance-cli-$RUN"
ALIAS_ARN="arn:aws:kms:$AWS_REGION:$ACCOUNT:$ALIAS"
kms create-alias --alias-name "$ALIAS" --target-key-id "$SYM"
for ref in "$ALIAS" "$ALIAS_ARN"; do
  kms describe-key --key-id "$ref"
  eq "DescribeKey($ref).KeyId" "$(jp KeyMetadata.KeyId)" "$SYM"
done
kms list-aliases
"${JSON_PY:-python3}" -c '
import json, sys
a = [x for x in json.loads(sys.argv[1])["Aliases"] if x["AliasName"] == sys.argv[2]]
sys.exit(not (len(a) == 1 and a[0]["AliasArn"] == sys.argv[3] and a[0]["TargetKeyId"] == sys.argv[4]))
' "$OUT" "$ALIAS" "$ALIAS_ARN" "$SYM" || fail "ListAliases lacks $ALIAS -> $SYM: $OUT"
kms list-aliases --key-id "$SYM"
eq "ListAliases --key-id" "$(jp Aliases.0.AliasName)|$(jp Aliases.1.AliasName)" "$ALIAS|"
ok "create, describe, list"
expect_err AlreadyExistsException create-alias --alias-name "$ALIAS" --target-key-id "$HMAC"
kms create-key --description "alias target 2"
SYM2="$(jp KeyMetadata.KeyId)"; SYM2_ARN="$(jp KeyMetadata.Arn)"
kms update-alias --alias-name "$ALIAS" --target-key-id "$SYM2"
kms describe-key --key-id "$ALIAS"
eq "DescribeKey after UpdateAlias" "$(jp KeyMetadata.KeyId)" "$SYM2"
ok "update"
kms delete-alias --alias-name "$ALIAS"
expect_err NotFoundException describe-key --key-id "$ALIAS"

STEP="Encrypt / Decrypt"
head -c 100 /dev/urandom >"$W/plain.bin"
kms encrypt --key-id "$SYM" --plaintext "fileb://$W/plain.bin"
eq "Encrypt KeyId" "$(jp KeyId)" "$SYM_ARN"
eq EncryptionAlgorithm "$(jp EncryptionAlgorithm)" SYMMETRIC_DEFAULT
jp CiphertextBlob | b64file "$W/ct.bin"
kms decrypt --ciphertext-blob "fileb://$W/ct.bin"   # no --key-id
jp Plaintext | b64file "$W/back.bin"
cmp -s "$W/plain.bin" "$W/back.bin" || fail "Decrypt returned other bytes"
eq "Decrypt KeyId" "$(jp KeyId)" "$SYM_ARN"
ok

STEP="Encrypt / Decrypt with encryption context"
printf 'secret' >"$W/s.bin"
kms encrypt --key-id "$SYM" --plaintext "fileb://$W/s.bin" --encryption-context project=alpha,purpose=conformance
jp CiphertextBlob | b64file "$W/ctx.bin"
kms decrypt --ciphertext-blob "fileb://$W/ctx.bin" --encryption-context purpose=conformance,project=alpha
eq Plaintext "$(jp Plaintext | base64 -d)" secret
ok
expect_err InvalidCiphertextException decrypt --ciphertext-blob "fileb://$W/ctx.bin" --encryption-context project=beta,purpose=conformance

STEP="tampered ciphertext"
cp "$W/ct.bin" "$W/bad.bin"
last=$(( $(stat -c %s "$W/bad.bin") - 1 ))
byte="$(od -An -j "$last" -N1 -tu1 "$W/bad.bin" | tr -d ' ')"
printf "$(printf '\\%03o' $(( byte ^ 1 )))" | dd of="$W/bad.bin" bs=1 seek="$last" conv=notrunc status=none
cmp -s "$W/ct.bin" "$W/bad.bin" && fail "could not flip a byte"
expect_err InvalidCiphertextException decrypt --ciphertext-blob "fileb://$W/bad.bin"

STEP="Decrypt naming another key"
expect_err IncorrectKeyException decrypt --ciphertext-blob "fileb://$W/ct.bin" --key-id "$SYM2"

STEP="ReEncrypt"
kms re-encrypt --ciphertext-blob "fileb://$W/ctx.bin" --source-encryption-context project=alpha,purpose=conformance \
  --destination-key-id "$SYM2" --destination-encryption-context b=2
eq SourceKeyId "$(jp SourceKeyId)" "$SYM_ARN"
eq KeyId "$(jp KeyId)" "$SYM2_ARN"
jp CiphertextBlob | b64file "$W/re.bin"
kms decrypt --ciphertext-blob "fileb://$W/re.bin" --encryption-context b=2
eq Plaintext "$(jp Plaintext | base64 -d)" secret
eq "Decrypt KeyId" "$(jp KeyId)" "$SYM2_ARN"
ok

STEP="GenerateDataKey"
kms generate-data-key --key-id "$SYM" --key-spec AES_256
eq "Plaintext bytes" "$(jp Plaintext | base64 -d | wc -c)" 32
jp Plaintext >"$W/dk.b64"
jp CiphertextBlob | b64file "$W/dk.bin"
kms decrypt --ciphertext-blob "fileb://$W/dk.bin"
eq "decrypted data key" "$(jp Plaintext)" "$(cat "$W/dk.b64")"
kms generate-data-key --key-id "$SYM" --number-of-bytes 64
eq "Plaintext bytes" "$(jp Plaintext | base64 -d | wc -c)" 64
ok

STEP="GenerateDataKeyWithoutPlaintext"
kms generate-data-key-without-plaintext --key-id "$SYM" --key-spec AES_256 --encryption-context x=y
eq Plaintext "$(jp Plaintext)" ""
jp CiphertextBlob | b64file "$W/dkw.bin"
kms decrypt --ciphertext-blob "fileb://$W/dkw.bin" --encryption-context x=y
eq "Plaintext bytes" "$(jp Plaintext | base64 -d | wc -c)" 32
ok

STEP="GenerateRandom"
kms generate-random --number-of-bytes 32
eq "random bytes" "$(jp Plaintext | base64 -d | wc -c)" 32
ok
expect_err ValidationException generate-random --number-of-bytes 2000

STEP="NotFoundException"
expect_err NotFoundException describe-key --key-id "$(cat /proc/sys/kernel/random/uuid)"

STEP="InvalidKeyUsageException"
expect_err InvalidKeyUsageException sign --key-id "$SYM" --message "fileb://$W/s.bin" --message-type RAW --signing-algorithm ECDSA_SHA_256
expect_err InvalidKeyUsageException encrypt --key-id "$HMAC" --plaintext "fileb://$W/s.bin"

STEP="DisableKey / EnableKey"
kms disable-key --key-id "$SYM2"
kms describe-key --key-id "$SYM2"
eq KeyState "$(jp KeyMetadata.KeyState)" Disabled
eq Enabled "$(jp KeyMetadata.Enabled)" false
ok
expect_err DisabledException encrypt --key-id "$SYM2" --plaintext "fileb://$W/s.bin"
kms enable-key --key-id "$SYM2"
ok "enabled again"

STEP="ScheduleKeyDeletion / CancelKeyDeletion"
kms schedule-key-deletion --key-id "$SYM2" --pending-window-in-days 7
eq KeyId "$(jp KeyId)" "$SYM2_ARN"
eq KeyState "$(jp KeyState)" PendingDeletion
h="$(days_until "$(jp DeletionDate)")" || fail "DeletionDate '$(jp DeletionDate)'"
[ "$h" -ge $((6 * 24)) ] && [ "$h" -le $((8 * 24)) ] || fail "DeletionDate $(jp DeletionDate) is $h h away, want ~7 days"
kms describe-key --key-id "$SYM2"
eq KeyState "$(jp KeyMetadata.KeyState)" PendingDeletion
[ -n "$(jp KeyMetadata.DeletionDate)" ] || fail "DescribeKey has no DeletionDate: $OUT"
ok
expect_err KMSInvalidStateException encrypt --key-id "$SYM2" --plaintext "fileb://$W/s.bin"
kms cancel-key-deletion --key-id "$SYM2"
eq KeyId "$(jp KeyId)" "$SYM2_ARN"
kms describe-key --key-id "$SYM2"
eq "KeyState after CancelKeyDeletion" "$(jp KeyMetadata.KeyState)" Disabled
eq "DeletionDate after CancelKeyDeletion" "$(jp KeyMetadata.DeletionDate)" ""
ok "cancelled"

STEP="key rotation"
kms enable-key-rotation --key-id "$SYM"
kms get-key-rotation-status --key-id "$SYM"
eq KeyRotationEnabled "$(jp KeyRotationEnabled)" true
kms disable-key-rotation --key-id "$SYM"
kms get-key-rotation-status --key-id "$SYM"
eq KeyRotationEnabled "$(jp KeyRotationEnabled)" false
ok "enable, disable, status"
kms rotate-key-on-demand --key-id "$SYM"
for _ in $(seq 1 20); do  # AWS rotates asynchronously
  kms list-key-rotations --key-id "$SYM"
  [ -n "$(jp Rotations.0.RotationType)" ] && break
  sleep 0.5
done
eq RotationType "$(jp Rotations.0.RotationType)" ON_DEMAND
eq "second rotation" "$(jp Rotations.1)" ""
kms decrypt --ciphertext-blob "fileb://$W/ct.bin"
jp Plaintext | b64file "$W/back2.bin"
cmp -s "$W/plain.bin" "$W/back2.bin" || fail "ciphertext from before the rotation decrypts to other bytes"
ok "rotate on demand, old ciphertext decrypts"

STEP="GetPublicKey / Sign / Verify"
kms get-public-key --key-id "$ECC"
eq KeyId "$(jp KeyId)" "$ECC_ARN"
eq KeySpec "$(jp KeySpec)" ECC_NIST_P256
jp PublicKey | b64file "$W/pub.der"
openssl pkey -pubin -inform DER -in "$W/pub.der" -out "$W/pub.pem" 2>"$W/err" || fail "SPKI does not parse: $(cat "$W/err")"
printf 'conformance message %s' "$RUN" >"$W/msg.bin"
openssl dgst -sha256 -binary "$W/msg.bin" >"$W/digest.bin"
kms sign --key-id "$ECC" --message "fileb://$W/msg.bin" --message-type RAW --signing-algorithm ECDSA_SHA_256
eq SigningAlgorithm "$(jp SigningAlgorithm)" ECDSA_SHA_256
jp Signature | b64file "$W/sig-raw.der"
kms sign --key-id "$ECC" --message "fileb://$W/digest.bin" --message-type DIGEST --signing-algorithm ECDSA_SHA_256
jp Signature | b64file "$W/sig-digest.der"
for sig in sig-raw sig-digest; do  # a DIGEST signature of SHA-256(msg) is a signature of msg
  openssl dgst -sha256 -verify "$W/pub.pem" -signature "$W/$sig.der" "$W/msg.bin" >"$W/err" 2>&1 \
    || fail "openssl rejects the $sig signature: $(cat "$W/err")"
done
kms verify --key-id "$ECC" --message "fileb://$W/msg.bin" --message-type RAW --signature "fileb://$W/sig-digest.der" --signing-algorithm ECDSA_SHA_256
eq "SignatureValid (DIGEST-made signature, RAW message)" "$(jp SignatureValid)" true
kms verify --key-id "$ECC" --message "fileb://$W/digest.bin" --message-type DIGEST --signature "fileb://$W/sig-raw.der" --signing-algorithm ECDSA_SHA_256
eq "SignatureValid (RAW-made signature, DIGEST message)" "$(jp SignatureValid)" true
ok
printf 'other message' >"$W/other.bin"
expect_err KMSInvalidSignatureException verify --key-id "$ECC" --message "fileb://$W/other.bin" --message-type RAW \
  --signature "fileb://$W/sig-raw.der" --signing-algorithm ECDSA_SHA_256

STEP="GenerateMac / VerifyMac"
kms generate-mac --key-id "$HMAC" --message "fileb://$W/msg.bin" --mac-algorithm HMAC_SHA_256
eq MacAlgorithm "$(jp MacAlgorithm)" HMAC_SHA_256
jp Mac | b64file "$W/mac.bin"
eq "Mac bytes" "$(wc -c <"$W/mac.bin")" 32
kms verify-mac --key-id "$HMAC" --message "fileb://$W/msg.bin" --mac "fileb://$W/mac.bin" --mac-algorithm HMAC_SHA_256
eq MacValid "$(jp MacValid)" true
ok
expect_err KMSInvalidMacException verify-mac --key-id "$HMAC" --message "fileb://$W/other.bin" --mac "fileb://$W/mac.bin" --mac-algorithm HMAC_SHA_256

STEP="TagResource / UntagResource / ListResourceTags"
kms list-resource-tags --key-id "$SYM"
tags() { "${JSON_PY:-python3}" -c 'import json,sys; print(",".join(sorted(t["TagKey"]+"="+t["TagValue"] for t in json.loads(sys.argv[1])["Tags"])))' "$OUT"; }
eq "tags from CreateKey" "$(tags)" "purpose=test,suite=cli"
kms tag-resource --key-id "$SYM" --tags TagKey=team,TagValue=kms TagKey=suite,TagValue=cli2 TagKey=gone,TagValue=soon
kms untag-resource --key-id "$SYM" --tag-keys purpose gone
kms list-resource-tags --key-id "$SYM"
eq "tags after TagResource and UntagResource" "$(tags)" "suite=cli2,team=kms"
ok

STEP="GetKeyPolicy (default) / PutKeyPolicy: AccessDeniedException for another principal"
kms get-key-policy --key-id "$SYM" --policy-name default
grep -q "arn:aws:iam::$ACCOUNT:root" <<<"$(jp Policy)" || fail "default policy does not name the account root: $(jp Policy)"
AS=A kms create-key --description "only A"
ONLY_A="$(jp KeyMetadata.KeyId)"
AS=B kms encrypt --key-id "$ONLY_A" --plaintext "fileb://$W/s.bin"  # the default policy lets B in
cat >"$W/only-a.json" <<EOF
{"Version": "2012-10-17", "Statement": [{"Sid": "OnlyA", "Effect": "Allow", "Principal": {"AWS": "$CONF_A_PRINCIPAL_ARN"}, "Action": "kms:*", "Resource": "*"}]}
EOF
AS=A kms put-key-policy --key-id "$ONLY_A" --policy-name default --policy "file://$W/only-a.json"
ok
AS=B expect_err AccessDeniedException encrypt --key-id "$ONLY_A" --plaintext "fileb://$W/s.bin"

STEP="policy with a kms:EncryptionContext:project condition"
AS=A kms create-key --description "context-bound"
CTXKEY="$(jp KeyMetadata.KeyId)"
cat >"$W/ctx-policy.json" <<EOF
{"Version": "2012-10-17", "Statement": [
 {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "$CONF_A_PRINCIPAL_ARN"}, "Action": "kms:*", "Resource": "*"},
 {"Sid": "UseInProjectAlpha", "Effect": "Allow", "Principal": {"AWS": "$CONF_B_PRINCIPAL_ARN"}, "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
  "Condition": {"StringEquals": {"kms:EncryptionContext:project": "alpha"}}}]}
EOF
AS=A kms put-key-policy --key-id "$CTXKEY" --policy-name default --policy "file://$W/ctx-policy.json"
AS=B kms encrypt --key-id "$CTXKEY" --plaintext "fileb://$W/s.bin" --encryption-context project=alpha
ok "allowed with project=alpha"
AS=B expect_err AccessDeniedException encrypt --key-id "$CTXKEY" --plaintext "fileb://$W/s.bin" --encryption-context project=beta

STEP="credentials"
AS=WRONG expect_err InvalidSignatureException list-keys
AS=UNKNOWN expect_err UnrecognizedClientException list-keys
