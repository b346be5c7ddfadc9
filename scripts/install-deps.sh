#!/usr/bin/env bash
# Installs every Debian package custos needs to build, test, fuzz and benchmark.
# Idempotent and quick when everything is already present.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config git ca-certificates openssl
  libssl-dev libboost-dev libboost-system-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev libargon2-dev libsqlite3-dev
  libcurl4-openssl-dev libseccomp-dev libtomlplusplus-dev clang libclang-rt-14-dev hyperfine curl
  # The custos binary's allocator (src/cli/CMakeLists.txt); the fibers' stack switch (src/net/fiber.cc).
  libjemalloc-dev libboost-context-dev
  # KMS API conformance clients (tests/conformance): the AWS CLI, boto3, cryptography.
  awscli python3-boto3 python3-cryptography python3-pykmip
  # GNU time: the e2e tests measure a command's own peak memory with it.
  time
  # The sqlite3 shell: the e2e audit test edits a database with it, operators back up with it.
  sqlite3
  # The PostgreSQL store (libpq) and the server its tests start privately (initdb, pg_ctl).
  libpq-dev postgresql
  # The operations guide's walkthrough (tests/guide) reads JSON answers with jq.
  jq
  # The local cluster (scripts/dev-cluster.sh, tests/cluster): HAProxy in front of the nodes.
  haproxy
  # KMS throughput benchmark (scripts/bench_kms.sh): the load generator and the nginx reference.
  wrk nginx-light
  # Objects (custos put/get): S3 XML answers; the benchmark chart (scripts/bench_objects.sh).
  libtinyxml2-dev gnuplot-nox
  # The protocol model (model/custody.pml, make verify): the Spin model checker (pan is built with gcc).
  spin
)
# Node.js and npm for the AWS SDK for JavaScript conformance suite: Debian's only where no
# node/npm is installed already (another distribution's nodejs conflicts with Debian's npm).
if ! command -v node >/dev/null 2>&1; then PKGS+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then PKGS+=(npm); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
