#!/usr/bin/env bash
# `make bench`: every performance figure of issue 2, then one summary table with each target
# and "meets"/"BELOW" (docs/benchmarks.md explains each figure and the latest measured run).
#
#   BUILD_DIR/threshold_bench   partials/s, keeper /v1/partial handling, DKG crypto (in process)
#   BUILD_DIR/attestation_bench DCAP quote (real Intel vectors) and sim evidence checks/s
#   scripts/bench_stream.sh     STREAM encrypt/decrypt vs `openssl speed -evp aes-256-gcm`
#   BUILD_DIR/ecall_bench       one host<->enclave call (sim backend, real custos-enclave)
#   scripts/bench_unseal.sh     appliance unseal latency, 1 provider + 2-of-3 customers
#   scripts/bench_e2e.sh        DKG ceremony and `custos decrypt` with real keepers on loopback
#   scripts/bench_kms.sh        KMS API req/s and p50/p99 with signed requests vs nginx (wrk)
#   scripts/bench_objects.sh    custos put/get through s3rver: encrypted (both modes) vs --plain vs aws s3 cp
#
# Usage: scripts/bench.sh [BUILD_DIR]   (default: build). Figures are CPU-bound: run on an idle
# machine; the load average is printed with the results. Benchmarks only print, never assert.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
python=/usr/bin/python3
[ -x "$python" ] || python=python3
for b in threshold_bench attestation_bench ecall_bench stream_bench custos custos-enclave; do
  [ -x "$build/$b" ] || { echo "bench: $build/$b is missing (build it first: make build)" >&2; exit 1; }
done

out=$(mktemp -d /tmp/custos-bench-XXXXXX)
trap 'rm -rf "$out"' EXIT

echo "== machine"
echo "cpu:   $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores online)"
echo "load:  $(uptime)"
echo "openssl: $(openssl version)"

echo
echo "== reference: openssl speed -seconds 3 ecdhp256 (one variable-base P-256 multiplication each)"
openssl speed -seconds 3 ecdhp256 2>/dev/null | tee "$out/ecdh.txt" | grep -i 'ecdh (nistp256)' || true

echo
echo "== threshold_bench (in process)"
"$build/threshold_bench" --benchmark_out="$out/threshold.json" --benchmark_out_format=json

echo
echo "== attestation_bench (in process)"
"$build/attestation_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

echo
echo "== scripts/bench_stream.sh"
"$root/scripts/bench_stream.sh" "$build/stream_bench" | tee "$out/stream.txt"

echo
echo "== ecall_bench (host<->enclave call, target <= 20 us)"
"$build/ecall_bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
echo "== scripts/bench_unseal.sh (appliance unseal, target <= 100 ms)"
"$root/scripts/bench_unseal.sh" "$build/custos"

echo "== scripts/bench_e2e.sh (real keeper processes on loopback)"
"$root/scripts/bench_e2e.sh" "$build/custos" "$out/e2e.json"

echo "== scripts/bench_kms.sh (KMS API, signed requests, vs nginx; target Encrypt@64 >= 0.4 x nginx, p99 <= 5 ms)"
"$root/scripts/bench_kms.sh" "$build/custos" "$out/kms_bench.txt"

echo "== scripts/bench_objects.sh (encrypted objects via s3rver; target appliance overhead <= 5 % from 16 MiB)"
BENCH_OUT="$out/objects" "$root/scripts/bench_objects.sh" "$build"

echo
echo "== summary (load now: $(cut -d' ' -f1-3 /proc/loadavg))"
"$python" - "$out/threshold.json" "$out/stream.txt" "$out/e2e.json" "$out/ecdh.txt" <<'EOF'
import json, re, sys

tb = {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("run_type", "iteration") == "iteration":
        tb[b["name"].split("/min_time")[0]] = b
stream = open(sys.argv[2]).read()
e2e = json.load(open(sys.argv[3]))

rows = []
def row(what, value, target, verdict):
    rows.append((what, value, target, verdict))

def per_s(name):
    b = tb.get(name)
    return None if b is None or "items_per_second" not in b else float(b["items_per_second"])

def ms(name):
    b = tb.get(name)
    if b is None:
        return None
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
    return float(b["real_time"]) * scale

v = ms("BM_DkgInMemory_1p_3of5")
row("(a) DKG crypto, 1P + 3-of-5C, in memory", f"{v:.1f} ms" if v else "n/a", "report", "-")
d = e2e["dkg_1p_3of5_ms"]
row("(a) DKG ceremony, 1P + 3-of-5C, loopback", f"{d['mean']:.0f} ms (median {d['median']:.0f})",
    "report", "-")
for label, name in (("(b) partial + DLEQ proof, crypto only", "BM_PartialDecryptWithProof"),
                    ("(b) keeper /v1/partial, audit on tmpfs", "BM_KeeperPartialRequest/audit_on_shm"),
                    ("(b) keeper /v1/partial, audit on disk", "BM_KeeperPartialRequest/audit_on_disk")):
    # items/s is per CPU second; a keeper that blocks in fsync also loses wall time, so the
    # verdict takes the lower of the CPU rate and the wall-clock rate.
    r, wall_ms = per_s(name), ms(name)
    if r is None or not wall_ms:
        row(label, "n/a", ">= 5000/s", "n/a")
    else:
        wall = 1000.0 / wall_ms
        rate = min(r, wall)
        row(label, f"{r:,.0f}/s CPU, {wall:,.0f}/s wall", ">= 5000/s",
            "meets" if rate >= 5000 else "BELOW")
# A partial with proof needs two variable-base multiplications (x*R and k*R) plus one by G,
# so OpenSSL's own ECDH rate / 2 bounds what any implementation gets from one core.
mt = re.search(r"ecdh \(nistp256\)\s+[0-9.]+s\s+([0-9.]+)", open(sys.argv[4]).read())
if mt:
    row("    ceiling: openssl ecdhp256 ops/s / 2", f"{float(mt.group(1)) / 2:,.0f}/s", "report", "-")
r = per_s("BM_VerifyPartial")
row("    requester: verify one proof", f"{r:,.0f}/s" if r else "n/a", "report", "-")
m = e2e["decrypt_1p2c_ms"]
row("(c) decrypt 100 B, 1P + 2C, loopback", f"{m['mean']:.1f} ms (p95 {m['p95']:.1f})",
    "<= 20 ms", "meets" if m["mean"] <= 20.0 else "BELOW")
m = e2e["decrypt_1p3of5_ms"]
row("    decrypt 100 B, 1P + 3 of 5 C", f"{m['mean']:.1f} ms (p95 {m['p95']:.1f})", "report", "-")
for what in ("encrypt", "decrypt"):
    mt = re.search(rf"stream {what}: *([0-9.]+) of openssl .*?; *([0-9.]+) of the AES\+copy bound",
                   stream)
    if mt:
        ratio = float(mt.group(1))
        row(f"(d) STREAM {what} / openssl 16 KiB", f"{ratio:.2f} ({mt.group(2)} of AES+copy)",
            ">= 0.70", "meets" if ratio >= 0.7 else "BELOW")
    else:
        row(f"(d) STREAM {what} / openssl 16 KiB", "n/a", ">= 0.70", "n/a")
mt = re.search(r"best possible stream \(AES \+ copy\).*ratio to openssl *([0-9.]+)", stream)
if mt:
    row("    ceiling: AES + memfd copy / openssl", mt.group(1), "report", "-")

w = [max(len(r[i]) for r in rows) for i in range(4)]
print(f"{'figure':{w[0]}s}  {'measured':{w[1]}s}  {'target':{w[2]}s}  verdict")
for r in rows:
    print(f"{r[0]:{w[0]}s}  {r[1]:{w[1]}s}  {r[2]:{w[2]}s}  {r[3]}")
EOF
