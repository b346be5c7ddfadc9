#!/usr/bin/env bash
# Compares the STREAM layer's throughput (bench/stream_bench.cc) with raw OpenSSL AES-256-GCM
# (`openssl speed`, 16 KiB blocks) and prints the ratios; the target for whole-stream encrypt and
# decrypt is >= 0.7 of the OpenSSL figure.
#
# The fd benchmarks read and write memfd (tmpfs) files; on a machine where moving 256 MiB through
# tmpfs costs as much as encrypting it, no streaming layer can reach 0.7 of a pure in-cache
# cipher loop. BM_CopyStream measures that I/O floor, and the script also reports each stream
# figure against the best a layer can do on top of it (cipher time + copy time, 1/(1/a + 1/b)).
#
# Usage: scripts/bench_stream.sh [path/to/stream_bench]   (default: build-h2/stream_bench)
# Run it on an otherwise idle machine: the figures are CPU-bound and shared cores skew them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench=${1:-"$root/build-h2/stream_bench"}
python=/usr/bin/python3
[ -x "$python" ] || python=python3
[ -x "$bench" ] || { echo "bench_stream: no benchmark binary at $bench" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "bench_stream: openssl speed -evp aes-256-gcm -bytes 16384 -seconds 3" >&2
openssl speed -evp aes-256-gcm -bytes 16384 -seconds 3 >"$work/openssl.txt" 2>/dev/null
echo "bench_stream: $bench" >&2
"$bench" --benchmark_format=json >"$work/bench.json"

"$python" - "$work/openssl.txt" "$work/bench.json" <<'EOF'
import json, re, sys

openssl_txt, bench_json = sys.argv[1], sys.argv[2]

# `openssl speed` prints e.g. "AES-256-GCM    3497384.72k": thousands of bytes per second.
openssl_bps = None
for line in open(openssl_txt):
    m = re.match(r"\s*aes-256-gcm\s+([0-9.]+)k\s*$", line, re.IGNORECASE)
    if m:
        openssl_bps = float(m.group(1)) * 1000.0
if openssl_bps is None:
    sys.exit("bench_stream: no aes-256-gcm line in the openssl speed output")

doc = json.load(open(bench_json))
rates = {}
for b in doc["benchmarks"]:
    if b.get("run_type", "iteration") != "iteration" or "bytes_per_second" not in b:
        continue
    name = b["name"].split("/min_time")[0]
    rates[name] = float(b["bytes_per_second"])

def need(name):
    if name not in rates:
        sys.exit(f"bench_stream: benchmark {name} missing from the JSON output")
    return rates[name]

def mbs(bps):
    return f"{bps / 1e6:9.1f} MB/s"

print(f"openssl aes-256-gcm (16 KiB)      {mbs(openssl_bps)}")
for name in sorted(rates):
    print(f"{name:33s} {mbs(rates[name])}   ratio to openssl {rates[name] / openssl_bps:5.2f}")

copy = need("BM_CopyStream/65536")
floor = 1.0 / (1.0 / openssl_bps + 1.0 / copy)
print()
print(f"I/O floor (memfd read+write copy) {mbs(copy)}")
print(f"best possible stream (AES + copy) {mbs(floor)}   ratio to openssl {floor / openssl_bps:5.2f}")
for what, name in (("encrypt", "BM_EncryptStream/65536"), ("decrypt", "BM_DecryptStream/65536")):
    r = need(name)
    ratio = r / openssl_bps
    verdict = "meets" if ratio >= 0.7 else "BELOW"
    print(f"stream {what}: {ratio:5.2f} of openssl ({verdict} target 0.70); "
          f"{r / floor:5.2f} of the AES+copy bound")
EOF
