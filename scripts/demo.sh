#!/usr/bin/env bash
# `make demo`: a narrated local demo of co-custody with real keeper processes on loopback.
# 1 provider keeper + 3 customer keepers (threshold 2): DKG, dual-control encryption, decryption
# with both domains, refusals for one side alone, the attested appliance (init, sealed restart,
# keeper policy refusal, quorum unseal), escrow + recovery, resharing.
set -euo pipefail
CUSTOS=${1:-build/custos}
CUSTOS=$(cd "$(dirname "$CUSTOS")" && pwd)/$(basename "$CUSTOS")
WORK=${CUSTOS_DEMO_DIR:-$(mktemp -d /tmp/custos-demo-XXXXXX)}
mkdir -p "$WORK"
cd "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

export CUSTOS_KEEPER_PASSPHRASE="demo at-rest passphrase (use a real secret in production)"
KDF=(--kdf-memory-kib 8192 --kdf-iterations 2)   # lighter than the RFC 9106 default, for speed
BASE=$((20000 + RANDOM % 20000))
port() { echo $((BASE + $1)); }

start_keeper() {  # name port
  "$CUSTOS" keeper serve --dir "$1" --listen "127.0.0.1:$2" --insecure-http >"$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$2/v1/keeper" >/dev/null 2>&1 && return; sleep 0.05; done
  echo "keeper $1 did not start"; cat "$1.log"; exit 1
}

say "Working in $WORK"
say "A requester (an application of the customer) gets a signing key"
run "$CUSTOS" client init --out app.key

say "Four keepers: P1 for the cloud provider, C1..C3 for the customer company"
run "$CUSTOS" keeper init --dir P1 --domain provider --id P1 "${KDF[@]}"
for i in 1 2 3; do run "$CUSTOS" keeper init --dir C$i --domain customer --id C$i "${KDF[@]}"; done
for k in P1 C1 C2 C3; do run "$CUSTOS" keeper allow --dir $k --client app.key.pub; done
say "Operators' admin keys: a keeper joins a DKG or deals in a reshare only with its operator's approval"
run "$CUSTOS" client init --out operator.key
run "$CUSTOS" keeper allow --dir P1 --client operator.key.pub --role admin
run "$CUSTOS" client init --out officer.key
for k in C1 C2 C3; do run "$CUSTOS" keeper allow --dir $k --client officer.key.pub --role admin; done
start_keeper P1 "$(port 0)"
for i in 1 2 3; do start_keeper C$i "$(port $i)"; done

say "Dealerless key generation: provider 1-of-1 AND customer 2-of-3; nobody ever holds the key"
run "$CUSTOS" ceremony dkg --provider "http://127.0.0.1:$(port 0)" --provider-threshold 1 \
  --customer "http://127.0.0.1:$(port 1),http://127.0.0.1:$(port 2),http://127.0.0.1:$(port 3)" \
  --customer-threshold 2 --out custody.json --client-key operator.key,officer.key
run "$CUSTOS" custody verify --custody custody.json

say "Encrypt a file: no keeper is contacted, only the joint public key is used"
head -c 5000000 /dev/urandom > report.bin
run "$CUSTOS" encrypt --custody custody.json --in report.bin --out report.bin.cus

say "Decrypt with the provider and customers C1, C3"
run "$CUSTOS" decrypt --custody custody.json --client-key app.key --in report.bin.cus --out out.bin --keepers P1,C1,C3
cmp report.bin out.bin && echo "byte-identical"

say "The provider alone cannot decrypt"
if "$CUSTOS" decrypt --custody custody.json --client-key app.key --in report.bin.cus --out no.bin --keepers P1; then exit 1; fi
say "All customer keepers without the provider cannot decrypt"
if "$CUSTOS" decrypt --custody custody.json --client-key app.key --in report.bin.cus --out no.bin --keepers C1,C2,C3; then exit 1; fi
[ ! -e no.bin ] && echo "no output file was written"

say "The attested appliance: a server whose trusted core (own process, sim TEE) generates the root key"
printf '[server]\nlisten = "127.0.0.1:%s"\ndata_dir = "appliance"\ncustody = "custody.json"\ninsecure_http = true\n' "$(port 9)" > server.toml
cat server.toml
start_server() {
  "$CUSTOS" server --config server.toml >>server.log 2>&1 &
  SERVER_PID=$!; PIDS+=($SERVER_PID)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$(port 9)/v1/sys/health" >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server did not start"; cat server.log; exit 1
}
start_server
run "$CUSTOS" operator init --server "http://127.0.0.1:$(port 9)" --token-file appliance/admin.token
say "Restart: the enclave starts sealed; its root key exists nowhere else"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
start_server
curl -s "http://127.0.0.1:$(port 9)/v1/sys/health"; echo
say "Each keeper checks the enclave's evidence against its policy (pinned measurement) before releasing"
MEASUREMENT=$(sha256sum "$(dirname "$CUSTOS")/custos-enclave" | cut -d' ' -f1)   # the binary you deploy
echo "{\"allow_sim\": true, \"measurements\": [\"$MEASUREMENT\"]}" > policy.json
cat policy.json
say "A keeper whose policy pins another measurement refuses"
echo '{"allow_sim": true, "measurements": ["00000000000000000000000000000000000000000000000000000000000000aa"]}' > other-policy.json
if "$CUSTOS" keeper release --dir C3 --server "http://127.0.0.1:$(port 9)" --policy other-policy.json; then exit 1; fi
say "Customer keepers alone do not unseal it"
run "$CUSTOS" keeper release --dir C1 --dir C2 --server "http://127.0.0.1:$(port 9)" --policy policy.json
curl -s "http://127.0.0.1:$(port 9)/v1/sys/health"; echo
say "With the provider keeper too, the enclave unseals"
run "$CUSTOS" keeper release --dir P1 --server "http://127.0.0.1:$(port 9)" --policy policy.json
run "$CUSTOS" operator status --server "http://127.0.0.1:$(port 9)" --token-file appliance/admin.token | grep -E '"(sealed|keeper|root_key_id|seccomp)"'
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

say "C2 deposits a passphrase-sealed recovery fragment with the provider"
echo "correct horse battery staple" > recovery.pass
run "$CUSTOS" keeper escrow export --dir C2 --to "http://127.0.0.1:$(port 0)" --passphrase-file recovery.pass "${KDF[@]}" --insecure-test-kdf

say "C2's machine is lost; a new machine restores it from the fragment"
kill "${PIDS[2]}"; rm -rf C2
run "$CUSTOS" keeper recover --dir C2-new --from "http://127.0.0.1:$(port 0)" --passphrase-file recovery.pass --custody custody.json "${KDF[@]}"
echo "(the allowlist is local policy and is not part of the fragment: allow the client again)"
run "$CUSTOS" keeper allow --dir C2-new --client app.key.pub
run "$CUSTOS" keeper allow --dir C2-new --client officer.key.pub --role admin
start_keeper C2-new "$(port 2)"
run "$CUSTOS" decrypt --custody custody.json --client-key app.key --in report.bin.cus --out out2.bin --keepers P1,C2,C3
cmp report.bin out2.bin && echo "byte-identical"

say "Reshare the customer domain to C1, C2 and a new keeper C4, threshold 2 (C3 leaves)"
run "$CUSTOS" keeper init --dir C4 --domain customer --id C4 "${KDF[@]}"
run "$CUSTOS" keeper allow --dir C4 --client app.key.pub
start_keeper C4 "$(port 4)"
CUSTOS_CLIENT_KEY=officer.key run "$CUSTOS" ceremony reshare --custody custody.json --domain customer \
  --keepers "http://127.0.0.1:$(port 1),http://127.0.0.1:$(port 2),http://127.0.0.1:$(port 4)" \
  --threshold 2 --out custody2.json
say "The old file decrypts with the new set; the public key did not change"
run "$CUSTOS" decrypt --custody custody2.json --client-key app.key --in report.bin.cus --out out3.bin --keepers P1,C2,C4
cmp report.bin out3.bin && echo "byte-identical"

say "Every keeper's audit log verifies"
for k in P1 C1 C2-new C4; do run "$CUSTOS" keeper audit verify --dir $k; done
say "Demo complete. Files in $WORK"
