#!/usr/bin/env bash
# Upload and download time of encrypted objects against the plain design (the KMSGX evaluation:
# encrypted object upload/download durations vs a system without encryption).
#
#   scripts/bench_objects.sh [BUILD_DIR]          (default: build; runs BUILD_DIR/custos)
#
# Everything runs on loopback under one mktemp work directory:
#   - s3rver (tests/s3; `npm ci --prefix tests/s3` first if it is not installed), bucket "bench";
#   - `custos server --dev`, the appliance, with one KMS key under alias/bench;
#   - four keepers (provider P1 1-of-1, customer C1..C3 2-of-3) and a DKG for dual control.
# For each size in BENCH_OBJECT_SIZES a random file is made once; for each method
#   plain      custos put/get --plain                       (no encryption: the baseline design)
#   appliance  custos put --key alias/bench, custos get     (data key from the appliance KMS)
#   dual       custos put --custody, get --client-key       (data key under the co-custody key)
#   awscli     /usr/bin/aws s3 cp                           (a stock S3 client, for scale)
# hyperfine times the upload (put of the file to the same key) and the download (get to a file
# that --prepare removes first). The methods are interleaved: each round runs every method once
# (hyperfine --runs 1, order rotating per round) and the rounds' times are merged, so that load
# from other processes on a shared machine spreads over all methods rather than skewing the one
# measured while it lasted. After the download rounds, the file left by the last one is
# compared with the source (cmp); for the encrypted methods the stored object must start with the
# CUSTOSOB header and for the others have the source's size. Any failure stops the script (exit 1)
# with the command and its error output.
#
# Prints a table (median ± stddev of both directions, ratios vs plain and vs awscli) and the verdict
# for the target "appliance-mode overhead <= 5 % for objects >= 16 MiB" (the worst size counts),
# with the client's CPU time per download, plain vs appliance (less sensitive to other load), and
# the machine's: the client's plus what the services (s3rver, the appliance and its trusted core,
# the keepers) spent during that method's downloads, from /proc/PID/task/*/schedstat. The run also
# times AES-256-GCM with `openssl speed`, and prints what decrypting each size costs at that rate
# as a share of the plain download's machine CPU: when every core is busy (the script prints how
# busy they were), that share is what the decryption alone adds to the wall time, other things
# equal (they are not quite: the two paths write and read differently).
# Writes BENCH_OUT/results.csv, BENCH_OUT/results.md and BENCH_OUT/hyperfine/*.json, and draws
# the chart from the CSV with scripts/plot_objects.gp. Timings are never asserted: a MISSED
# verdict still exits 0.
#
# Environment:
#   BENCH_OBJECT_SIZES  sizes, B/KiB/MiB/GiB suffixes   (default "1KiB 1MiB 16MiB 256MiB 1GiB")
#   BENCH_RUNS          timed runs per measurement      (default 21 up to 16 MiB, 5 up to 256 MiB, 3 above)
#   BENCH_OUT           result directory                (default docs/bench-objects)
#   BENCH_PNG           chart                           (default docs/objects-bench.png when
#                                                        BENCH_OUT is the default, else
#                                                        BENCH_OUT/objects-bench.png)
#   BENCH_DIR           parent of the work directory    (default /dev/shm if it has 14 GiB free, else /var/tmp)
#   BENCH_KEEP=1        keep the work directory (logs, s3rver data, hyperfine output)
# Needs hyperfine, gnuplot (pngcairo), /usr/bin/aws, node/npm, curl, python3.
# The default run took 6.5 minutes on 2 shared cores with 7 rounds up to 16 MiB (most of it the
# 1 GiB rounds); the 21 rounds add about 1.5 minutes (41 rounds of 16 MiB alone took 85 s). It
# moves ~30 GiB through loopback and needs ~12 GiB free under BENCH_DIR.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
if [ $# -gt 1 ] || [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  echo "usage: $0 [BUILD_DIR]   (default: $repo/build)" >&2
  exit 2
fi
build="$(cd "${1:-$repo/build}" 2>/dev/null && pwd)" || { echo "bench_objects: no directory ${1:-$repo/build}" >&2; exit 2; }
custos="$build/custos"
[ -x "$custos" ] && [ -s "$custos" ] || { echo "bench_objects: not an executable: $custos" >&2; exit 2; }

sizes_spec="${BENCH_OBJECT_SIZES:-1KiB 1MiB 16MiB 256MiB 1GiB}"
default_out="$repo/docs/bench-objects"
out_dir="${BENCH_OUT:-$default_out}"
if [ -n "${BENCH_PNG:-}" ]; then
  png="$BENCH_PNG"
elif [ "$(cd "$out_dir" 2>/dev/null && pwd)" = "$default_out" ] || [ -z "${BENCH_OUT:-}" ]; then
  png="$repo/docs/objects-bench.png"
else
  png="$out_dir/objects-bench.png"
fi
aws=/usr/bin/aws
py=/usr/bin/python3
[ -x "$py" ] || py=python3
s3rver="$repo/tests/s3/node_modules/.bin/s3rver"

for tool in hyperfine gnuplot curl cmp node; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench_objects: $tool is missing (scripts/install-deps.sh)" >&2; exit 2; }
done
[ -x "$aws" ] || { echo "bench_objects: $aws is missing (Debian awscli)" >&2; exit 2; }
gnuplot -e 'set terminal' 2>&1 | grep -q pngcairo || { echo "bench_objects: gnuplot has no pngcairo terminal" >&2; exit 2; }
if [ -n "${BENCH_RUNS:-}" ] && ! [[ "$BENCH_RUNS" =~ ^[1-9][0-9]*$ ]]; then
  echo "bench_objects: BENCH_RUNS must be a positive integer" >&2; exit 2
fi

# to_bytes 16MiB -> 16777216 (B, KiB, MiB, GiB, or a bare number of bytes).
to_bytes() {
  [[ "$1" =~ ^([0-9]+)(B|KiB|MiB|GiB)?$ ]] || return 1
  local n="${BASH_REMATCH[1]}"
  case "${BASH_REMATCH[2]}" in
    KiB) echo $((n << 10)) ;; MiB) echo $((n << 20)) ;; GiB) echo $((n << 30)) ;; *) echo "$n" ;;
  esac
}
size_labels=() size_bytes=()
for s in $sizes_spec; do
  b="$(to_bytes "$s")" && [ "$b" -gt 0 ] || { echo "bench_objects: bad size '$s' (e.g. 1KiB, 16MiB, 1GiB)" >&2; exit 2; }
  size_labels+=("$s"); size_bytes+=("$b")
done
[ ${#size_labels[@]} -gt 0 ] || { echo "bench_objects: BENCH_OBJECT_SIZES is empty" >&2; exit 2; }
methods=(plain appliance dual awscli)

# Default: tmpfs (/dev/shm) when it has room, so that disk writeback (the destination's fsync,
# s3rver's files) does not add seconds of noise to runs that measure the transfer path.
if [ -z "${BENCH_DIR:-}" ]; then
  BENCH_DIR=/var/tmp
  shm_free=$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $4}')
  [ -n "$shm_free" ] && [ "$shm_free" -gt $((14 << 20)) ] && BENCH_DIR=/dev/shm
fi
work="$(mktemp -d "$BENCH_DIR/custos-bench-objects.XXXXXX")" || exit 2
s3_pid="" server_pid="" keeper_pids=()
. "$here/lib/dev_server.sh"  # start_dev_server, export_dev_env, stop_pid

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${keeper_pids[@]}"; do stop_pid "$p"; done
  stop_pid "$server_pid"
  stop_pid "$s3_pid"
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench_objects: kept $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "bench_objects: FAIL: $*" >&2
  exit 1
}
free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_http URL PID LOG WHAT: until URL answers any HTTP status (30 s), or PID died.
wait_http() {
  local deadline=$((SECONDS + 30)) code
  while :; do
    code="$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$1" 2>/dev/null)"
    [ -n "$code" ] && [ "$code" != 000 ] && return 0
    if ! kill -0 "$2" 2>/dev/null; then tail -n 30 "$3" >&2; fail "$4 exited at start"; fi
    [ $SECONDS -lt $deadline ] || { tail -n 30 "$3" >&2; fail "$4 does not answer on $1 within 30 s"; }
    sleep 0.1
  done
}

# No user AWS configuration, no proxy for loopback.
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_CA_BUNDLE \
  AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL_KMS AWS_DATA_PATH \
  CUSTOS_ENDPOINT CUSTOS_ACCESS_KEY_ID CUSTOS_SECRET_ACCESS_KEY CUSTOS_REGION
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
export AWS_PAGER="" AWS_CLI_AUTO_PROMPT=off NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export PYTHONDONTWRITEBYTECODE=1
cd "$work" || exit 2
mkdir -p data out json logs
# A snapshot of the binaries: a rebuild during the run must not swap them between measurements.
# The appliance starts its trusted core from custos-enclave beside the custos executable.
custos_src="$custos"
mkdir -p "$work/bin"
cp "$custos_src" "$work/bin/custos" || fail "copying $custos_src"
[ -x "$build/custos-enclave" ] || fail "no $build/custos-enclave (the appliance's trusted core)"
cp "$build/custos-enclave" "$work/bin/custos-enclave" || fail "copying $build/custos-enclave"
custos="$work/bin/custos"
custos_sha="$(sha256sum "$custos" | cut -c1-12)"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores online, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "load before: $load_before"
echo "work dir: $work ($(stat -f -c %T "$work"))"
echo "custos: $custos_src (sha256 $custos_sha...), run from a copy in the work dir"

# ---- s3rver --------------------------------------------------------------------------------
if [ ! -x "$s3rver" ]; then
  echo "s3rver: npm ci --prefix tests/s3"
  npm ci --prefix "$repo/tests/s3" >"$work/logs/npm.log" 2>&1 || { tail -n 20 "$work/logs/npm.log" >&2; fail "npm ci --prefix tests/s3"; }
fi
s3_port="$(free_port)"
"$s3rver" -d "$work/s3" -a 127.0.0.1 -p "$s3_port" --silent --configure-bucket bench >"$work/logs/s3rver.log" 2>&1 &
s3_pid=$!
s3="http://127.0.0.1:$s3_port"
wait_http "$s3/" "$s3_pid" "$work/logs/s3rver.log" s3rver
s3rver_version="$(node -p 'require(process.argv[1]).version' "$repo/tests/s3/node_modules/s3rver/package.json" 2>/dev/null)"
echo "s3rver ${s3rver_version:-?}: $s3 (pid $s3_pid)"

# ---- the dev appliance and its KMS key -----------------------------------------------------
start_dev_server "$custos" "$work/dev" "$work/logs/server.log" 120 || fail "no dev appliance"
declare -A devenv=()
while IFS= read -r line; do
  if [[ "$line" =~ ^([A-Z_][A-Z0-9_]*)=(.*)$ ]]; then devenv["${BASH_REMATCH[1]}"]="${BASH_REMATCH[2]}"; fi
done <"$work/dev/dev.env"
# The appliance credentials go to custos as CUSTOS_*: AWS_* are s3rver's.
export CUSTOS_ENDPOINT="${devenv[CUSTOS_ENDPOINT]}"
export CUSTOS_ACCESS_KEY_ID="${devenv[AWS_ACCESS_KEY_ID]}"
export CUSTOS_SECRET_ACCESS_KEY="${devenv[AWS_SECRET_ACCESS_KEY]}"
export CUSTOS_REGION="${devenv[AWS_REGION]}"
echo "appliance: $CUSTOS_ENDPOINT (pid $server_pid)"
kms_aws() {
  AWS_ACCESS_KEY_ID="$CUSTOS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$CUSTOS_SECRET_ACCESS_KEY" \
    AWS_DEFAULT_REGION="$CUSTOS_REGION" AWS_REGION="$CUSTOS_REGION" \
    "$aws" --endpoint-url "$CUSTOS_ENDPOINT" kms "$@"
}
key_id="$(kms_aws create-key --description "bench_objects" --query KeyMetadata.KeyId --output text 2>"$work/logs/kms.err")" ||
  { cat "$work/logs/kms.err" >&2; fail "aws kms create-key"; }
kms_aws create-alias --alias-name alias/bench --target-key-id "$key_id" 2>"$work/logs/kms.err" ||
  { cat "$work/logs/kms.err" >&2; fail "aws kms create-alias"; }
echo "KMS key: $key_id (alias/bench)"

# ---- keepers and the co-custody key -------------------------------------------------------
export CUSTOS_KEEPER_PASSPHRASE="bench_objects at-rest passphrase"
mkdir -p "$work/dual"
"$custos" client init --out "$work/dual/app.key" >"$work/logs/dual-setup.log" 2>&1 || { cat "$work/logs/dual-setup.log" >&2; fail "custos client init"; }
declare -A keeper_url=()
for k in P1 C1 C2 C3; do
  domain=customer
  [ "$k" = P1 ] && domain=provider
  "$custos" keeper init --dir "$work/dual/$k" --domain "$domain" --id "$k" --kdf-memory-kib 8192 --kdf-iterations 2 \
    >>"$work/logs/dual-setup.log" 2>&1 || { tail -n 20 "$work/logs/dual-setup.log" >&2; fail "custos keeper init $k"; }
  "$custos" keeper allow --dir "$work/dual/$k" --client "$work/dual/app.key.pub" \
    >>"$work/logs/dual-setup.log" 2>&1 || { tail -n 20 "$work/logs/dual-setup.log" >&2; fail "custos keeper allow $k"; }
  [ -e "$work/dual/admin.key" ] || "$custos" client init --out "$work/dual/admin.key" >>"$work/logs/dual-setup.log" 2>&1
  "$custos" keeper allow --dir "$work/dual/$k" --client "$work/dual/admin.key.pub" --role admin \
    >>"$work/logs/dual-setup.log" 2>&1 || { tail -n 20 "$work/logs/dual-setup.log" >&2; fail "custos keeper allow admin $k"; }
  port="$(free_port)"
  "$custos" keeper serve --dir "$work/dual/$k" --listen "127.0.0.1:$port" --insecure-http >"$work/logs/keeper-$k.log" 2>&1 &
  keeper_pids+=($!)
  keeper_url[$k]="http://127.0.0.1:$port"
done
i=0
for k in P1 C1 C2 C3; do
  wait_http "${keeper_url[$k]}/v1/keeper" "${keeper_pids[$i]}" "$work/logs/keeper-$k.log" "keeper $k"
  i=$((i + 1))
done
custody="$work/dual/custody.json"
client_key="$work/dual/app.key"
"$custos" ceremony dkg --provider "${keeper_url[P1]}" --provider-threshold 1 \
  --customer "${keeper_url[C1]},${keeper_url[C2]},${keeper_url[C3]}" --customer-threshold 2 --out "$custody" \
  --client-key "$work/dual/admin.key" \
  >>"$work/logs/dual-setup.log" 2>&1 || { tail -n 20 "$work/logs/dual-setup.log" >&2; fail "custos ceremony dkg"; }
echo "keepers: P1 (provider, 1-of-1) + C1..C3 (customer, 2-of-3) at ${keeper_url[P1]} ${keeper_url[C1]} ${keeper_url[C2]} ${keeper_url[C3]}; custody.json written"

# ---- S3 client settings: s3rver's fixed credentials ----------------------------------------
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
export AWS_REGION="$CUSTOS_REGION" AWS_DEFAULT_REGION="$CUSTOS_REGION"

hyperfine_version="$(hyperfine --version | awk '{ print $2 }')"
aws_version="$("$aws" --version 2>&1 | awk '{ print $1 }')"
echo "tools: hyperfine $hyperfine_version, $aws_version, $(gnuplot --version)"
echo

# ---- data files ----------------------------------------------------------------------------
for idx in "${!size_labels[@]}"; do
  head -c "${size_bytes[$idx]}" /dev/urandom >"$work/data/${size_labels[$idx]}.bin" ||
    fail "writing $work/data/${size_labels[$idx]}.bin"
done
echo "data: ${size_labels[*]} (random, $(du -sh "$work/data" | cut -f1) in total)"

# ---- measurements --------------------------------------------------------------------------
# commands METHOD SRC URI DEST: sets up_cmd and down_cmd (arrays) for one method.
commands() {
  local method="$1" src="$2" uri="$3" dest="$4"
  case "$method" in
    plain)
      up_cmd=("$custos" put "$src" "$uri" --plain --endpoint "$s3" --quiet)
      down_cmd=("$custos" get "$uri" "$dest" --plain --endpoint "$s3" --quiet) ;;
    appliance)
      up_cmd=("$custos" put "$src" "$uri" --key alias/bench --endpoint "$s3" --quiet)
      down_cmd=("$custos" get "$uri" "$dest" --endpoint "$s3" --quiet) ;;
    dual)
      up_cmd=("$custos" put "$src" "$uri" --custody "$custody" --endpoint "$s3" --quiet)
      down_cmd=("$custos" get "$uri" "$dest" --custody "$custody" --client-key "$client_key" --endpoint "$s3" --quiet) ;;
    awscli)
      up_cmd=("$aws" s3 cp "$src" "$uri" --endpoint-url "$s3" --only-show-errors --no-progress)
      down_cmd=("$aws" s3 cp "$uri" "$dest" --endpoint-url "$s3" --only-show-errors --no-progress) ;;
  esac
}
quote() { local a s=""; for a in "$@"; do s+="${s:+ }$(printf '%q' "$a")"; done; printf '%s' "$s"; }

# timed NAME JSON RUNS WARMUP PREPARE CMD...: hyperfine (no shell) of one command. If it fails,
# the command runs once more outside hyperfine so that its error output can be shown.
timed() {
  local name="$1" json="$2" runs="$3" warmup="$4" prepare="$5"
  shift 5
  local args=(-N --style basic --runs "$runs" --warmup "$warmup" --export-json "$json" --command-name "$name")
  [ -n "$prepare" ] && args+=(--prepare "$prepare")
  echo "\$ hyperfine ${args[*]} '$(quote "$@")'" >>"$work/logs/hyperfine.log"
  if ! hyperfine "${args[@]}" "$(quote "$@")" >>"$work/logs/hyperfine.log" 2>&1; then
    tail -n 5 "$work/logs/hyperfine.log" >&2
    [ -n "$prepare" ] && $prepare
    echo "bench_objects: the command, once more outside hyperfine: $(quote "$@")" >&2
    "$@" >"$work/logs/rerun.out" 2>&1
    local rc=$?
    cat "$work/logs/rerun.out" >&2
    fail "$name failed (rerun exit status $rc)"
  fi
}

# stored_check METHOD KEY BYTES: the object as s3rver holds it.
stored_check() {
  local method="$1" key="$2" bytes="$3" len
  len="$("$aws" s3api head-object --bucket bench --key "$key" --endpoint-url "$s3" --query ContentLength --output text 2>"$work/logs/head.err")" ||
    { cat "$work/logs/head.err" >&2; fail "head-object $key"; }
  case "$method" in
    plain|awscli)
      [ "$len" = "$bytes" ] || fail "$method: s3://bench/$key holds $len bytes, the source $bytes" ;;
    *)
      [ "$len" -gt "$bytes" ] || fail "$method: s3://bench/$key holds $len bytes, no more than the $bytes-byte plaintext"
      "$aws" s3api get-object --bucket bench --key "$key" --range bytes=0-7 --endpoint-url "$s3" "$work/out/magic" \
        >/dev/null 2>"$work/logs/head.err" || { cat "$work/logs/head.err" >&2; fail "get-object --range of $key"; }
      [ "$(cat "$work/out/magic")" = CUSTOSOB ] || fail "$method: s3://bench/$key does not start with the CUSTOSOB header"
      rm -f "$work/out/magic" ;;
  esac
  echo "$len"
}

# service_cpu_ns: CPU time so far of the services every method talks to (s3rver, the appliance and
# its trusted core, the keepers), summed over their threads, in nanoseconds (schedstat's first
# field; finer than the 10 ms ticks of /proc/PID/stat).
service_cpu_ns() {
  local p pids=("$s3_pid" "$server_pid" $(pgrep -P "$server_pid" 2>/dev/null) "${keeper_pids[@]}")
  for p in "${pids[@]}"; do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done | awk '{ t += $1 } END { printf "%.0f\n", t }'
}
declare -A service_ns=() service_runs=()

results="$work/results.tsv"
: >"$results"
fmt_ms() { awk -v m="$1" -v s="$2" 'BEGIN { m *= 1000; s *= 1000; if (m < 100) printf "%8.1f ± %5.1f ms", m, s; else printf "%8.0f ± %5.0f ms", m, s }'; }
json_stats() {  # json_stats FILE: "median stddev min max runs" in seconds
  # The median, not the mean: on a shared VM one stalled run (s3rver's garbage collector, page
  # cache writeback) otherwise decides a ratio.
  "$py" -c 'import json, sys, statistics
r = json.load(open(sys.argv[1]))["results"][0]
print(statistics.median(r["times"]), r["stddev"] or 0.0, r["min"], r["max"], len(r["times"]))' "$1"
}

# merge_runs OUT NAME ROUND_JSON...: one hyperfine-style JSON (all run times, their mean, stddev,
# median, min, max) from the single-run exports of the rounds.
merge_runs() {
  "$py" - "$@" <<'PY'
import json, statistics, sys
out, name, files = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = [json.load(open(f))["results"][0] for f in files]
times = [t for r in runs for t in r["times"]]
codes = [c for r in runs for c in r.get("exit_codes", [0] * len(r["times"]))]
merged = {"command": name, "mean": statistics.fmean(times),
          "stddev": statistics.stdev(times) if len(times) > 1 else None,
          "median": statistics.median(times), "min": min(times), "max": max(times),
          "user": statistics.fmean(r["user"] for r in runs), "system": statistics.fmean(r["system"] for r in runs),
          "times": times, "exit_codes": codes,
          "note": "interleaved: one hyperfine run per round, the methods in rotating order"}
json.dump({"results": [merged]}, open(out, "w"), indent=2)
PY
}

# Methods are interleaved: each round times every method once (hyperfine --runs 1), the order
# rotating from round to round, so that load from elsewhere on a shared machine drifts across
# all methods alike instead of landing on whichever was measured during it. The warm-up run of a
# method directly precedes its first timed run.
started=$SECONDS
nm=${#methods[@]}
for idx in "${!size_labels[@]}"; do
  label="${size_labels[$idx]}" bytes="${size_bytes[$idx]}"
  src="$work/data/$label.bin"
  if [ -n "${BENCH_RUNS:-}" ]; then runs="$BENCH_RUNS"; elif [ "$bytes" -le $((16 << 20)) ]; then runs=21; elif [ "$bytes" -le $((256 << 20)) ]; then runs=5; else runs=3; fi
  warmup=0
  [ "$bytes" -le $((16 << 20)) ] && warmup=1
  echo "$label ($bytes bytes): $runs interleaved rounds, $warmup warm-up"
  for op in upload download; do
    for r in $(seq 1 "$runs"); do
      w=0
      [ "$r" = 1 ] && w=$warmup
      for j in $(seq 0 $((nm - 1))); do
        method="${methods[$(((j + r - 1) % nm))]}"
        dest="$work/out/$label-$method.bin"
        commands "$method" "$src" "s3://bench/objects/$label/$method" "$dest"
        if [ "$op" = upload ]; then
          timed "$label $method upload" "$work/json/$label-$method-upload.r$r.json" 1 "$w" "" "${up_cmd[@]}"
        else
          c0="$(service_cpu_ns)"
          timed "$label $method download" "$work/json/$label-$method-download.r$r.json" 1 "$w" "rm -f $dest" "${down_cmd[@]}"
          c1="$(service_cpu_ns)"
          service_ns[$label/$method]=$(( ${service_ns[$label/$method]:-0} + c1 - c0 ))
          service_runs[$label/$method]=$(( ${service_runs[$label/$method]:-0} + 1 + w ))
        fi
      done
    done
    if [ "$op" = upload ]; then
      declare -A stored=()
      for method in "${methods[@]}"; do
        stored[$method]="$(stored_check "$method" "objects/$label/$method" "$bytes")" || exit 1
      done
    fi
  done
  for method in "${methods[@]}"; do
    dest="$work/out/$label-$method.bin"
    commands "$method" "$src" "s3://bench/objects/$label/$method" "$dest"
    [ -f "$dest" ] || fail "$method: the download of $label left no file $dest ($(quote "${down_cmd[@]}"))"
    cmp -s "$src" "$dest" || fail "$method: the download of $label differs from the source ($(quote "${down_cmd[@]}"); cmp: $(cmp "$src" "$dest" 2>&1 | head -n1))"
    rm -f "$dest"
    for op in upload download; do
      merge_runs "$work/json/$label-$method-$op.json" "$label $method $op" $(seq -f "$work/json/$label-$method-$op.r%g.json" 1 "$runs") ||
        fail "merging the runs of $label $method $op"
      rm -f "$work/json/$label-$method-$op".r*.json
    done
    read -r um us umin umax ur <<<"$(json_stats "$work/json/$label-$method-upload.json")"
    read -r dm ds dmin dmax dr <<<"$(json_stats "$work/json/$label-$method-download.json")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$bytes" "$idx" "$method" \
      "$um" "$us" "$umin" "$umax" "$ur" "$dm" "$ds" "$dmin" "$dmax" "$dr" "${stored[$method]}" \
      "$(awk -v t="${service_ns[$label/$method]}" -v n="${service_runs[$label/$method]}" 'BEGIN { printf "%.6f", t / n / 1e9 }')" >>"$results"
    printf '  %-9s upload %s   download %s   verified (cmp), stored %s bytes\n' "$method" "$(fmt_ms "$um" "$us")" "$(fmt_ms "$dm" "$ds")" "${stored[$method]}"
  done
  # The big objects are not needed any more: free s3rver's disk for the next size.
  for method in "${methods[@]}"; do
    "$custos" rm "s3://bench/objects/$label/$method" --endpoint "$s3" --quiet >/dev/null 2>&1
  done
  rm -f "$src"
done
elapsed=$((SECONDS - started))
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "measured in ${elapsed} s; load after: $load_after"
# The reference for AES-GCM's share: OpenSSL's AES-256-GCM decryption of 64 KiB blocks (the
# default chunk), on one core, after the downloads so that it disturbs none of them.
gcm_rate="$(openssl speed -decrypt -evp aes-256-gcm -bytes 65536 -seconds 2 2>/dev/null |
  awk '$1 == "AES-256-GCM" { v = $NF; sub(/k$/, "", v); printf "%.0f", v * 1000 }')"
[ -n "$gcm_rate" ] && [ "$gcm_rate" -gt 0 ] || fail "openssl speed -decrypt -evp aes-256-gcm printed no rate"
echo "AES-256-GCM decryption, openssl speed, 64 KiB blocks: $((gcm_rate / 1000000)) MB/s ($(openssl version | cut -d' ' -f1-2))"
echo

# ---- report --------------------------------------------------------------------------------
mkdir -p "$out_dir/hyperfine" || fail "mkdir $out_dir"
rm -f "$out_dir"/hyperfine/*-upload.json "$out_dir"/hyperfine/*-download.json
cp "$work"/json/*.json "$out_dir/hyperfine/"
commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')"
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no -- src 2>/dev/null)" ]; then commit+=" (src/ modified)"; fi
meta="custos ${commit} ($custos_src, sha256 $custos_sha...), s3rver ${s3rver_version:-?} on loopback, hyperfine $hyperfine_version, $aws_version; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; load $load_before before, $load_after after; $(date -u '+%Y-%m-%d %H:%M UTC')"

"$py" - "$results" "$out_dir/results.csv" "$out_dir/results.md" "$meta" "$png" "$gcm_rate" <<'PY' || fail "report"
import csv, json, os, sys

tsv, csv_path, md_path, meta, png = sys.argv[1:6]
gcm_rate = float(sys.argv[6])  # bytes per second, openssl speed in this run
METHODS = ["plain", "appliance", "dual", "awscli"]
rows = []
for line in open(tsv):
    f = line.rstrip("\n").split("\t")
    rows.append({
        "size": f[0], "size_bytes": int(f[1]), "size_index": int(f[2]), "method": f[3],
        "up": float(f[4]), "up_sd": float(f[5]), "up_min": float(f[6]), "up_max": float(f[7]), "up_runs": int(f[8]),
        "down": float(f[9]), "down_sd": float(f[10]), "down_min": float(f[11]), "down_max": float(f[12]), "down_runs": int(f[13]),
        "stored": int(f[14]), "service_cpu": float(f[15]),
    })
by = {(r["size"], r["method"]): r for r in rows}
sizes = []
for r in rows:
    if r["size"] not in sizes:
        sizes.append(r["size"])

def ratio(r, base, d):
    b = by.get((r["size"], base))
    return r[d] / b[d] if b and b[d] > 0 else float("nan")

def ms(m, s):
    m, s = m * 1e3, s * 1e3
    return f"{m:.1f} ± {s:.1f} ms" if m < 100 else f"{m:.0f} ± {s:.0f} ms"

def x(v):
    return f"{v:.2f}x" if v == v else "-"

with open(csv_path, "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["size", "size_bytes", "size_index", "method",
                "upload_median_s", "upload_stddev_s", "upload_min_s", "upload_max_s", "upload_runs",
                "download_median_s", "download_stddev_s", "download_min_s", "download_max_s", "download_runs",
                "upload_mib_s", "download_mib_s", "stored_bytes",
                "upload_vs_plain", "download_vs_plain", "upload_vs_awscli", "download_vs_awscli",
                "download_service_cpu_s"])
    for r in rows:
        mib = r["size_bytes"] / 1048576
        w.writerow([r["size"], r["size_bytes"], r["size_index"], r["method"],
                    f"{r['up']:.6f}", f"{r['up_sd']:.6f}", f"{r['up_min']:.6f}", f"{r['up_max']:.6f}", r["up_runs"],
                    f"{r['down']:.6f}", f"{r['down_sd']:.6f}", f"{r['down_min']:.6f}", f"{r['down_max']:.6f}", r["down_runs"],
                    f"{mib / r['up']:.2f}", f"{mib / r['down']:.2f}", r["stored"],
                    f"{ratio(r, 'plain', 'up'):.4f}", f"{ratio(r, 'plain', 'down'):.4f}",
                    f"{ratio(r, 'awscli', 'up'):.4f}", f"{ratio(r, 'awscli', 'down'):.4f}",
                    f"{r['service_cpu']:.6f}"])

head = ["size", "method", "upload", "download", "up/plain", "down/plain", "up/awscli", "down/awscli"]
table = []
for r in rows:
    table.append([r["size"], r["method"], ms(r["up"], r["up_sd"]), ms(r["down"], r["down_sd"]),
                  x(ratio(r, "plain", "up")), x(ratio(r, "plain", "down")),
                  x(ratio(r, "awscli", "up")), x(ratio(r, "awscli", "down"))])
widths = [max(len(head[i]), *(len(t[i]) for t in table)) for i in range(len(head))]
right = {2, 3, 4, 5, 6, 7}
def line(cells):
    return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()
print(line(head))
prev = None
for t in table:
    if prev is not None and t[0] != prev:
        print()
    print(line(t))
    prev = t[0]

# Verdict: the worst appliance/plain ratio over the sizes of at least 16 MiB, each direction.
big = [s for s in sizes if by.get((s, "plain")) and by[(s, "plain")]["size_bytes"] >= 16 << 20 and by.get((s, "appliance"))]
details = []
if big:
    up = {s: (by[(s, "appliance")]["up"] / by[(s, "plain")]["up"] - 1) * 100 for s in big}
    down = {s: (by[(s, "appliance")]["down"] / by[(s, "plain")]["down"] - 1) * 100 for s in big}
    wu, wd = max(up, key=up.get), max(down, key=down.get)
    ok = up[wu] <= 5 and down[wd] <= 5
    verdict = (f"appliance-mode overhead <= 5 % for objects >= 16 MiB: {'MET' if ok else 'MISSED'} "
               f"(upload {up[wu]:+.1f} %, download {down[wd]:+.1f} %)")
    details.append("worst size per direction: upload " + wu + ", download " + wd + "; per size: " +
                   ", ".join(f"{s} {up[s]:+.1f} % / {down[s]:+.1f} %" for s in big))
    # The client's CPU time (user + system, hyperfine's mean over the rounds) is much less
    # sensitive than wall time to load from other processes: on a shared machine it shows what
    # the encryption costs even when the wall-time ratio is noise.
    def cpu_ms(size, method):
        try:
            with open(os.path.join(os.path.dirname(md_path), "hyperfine", f"{size}-{method}-download.json")) as f:
                r = json.load(f)["results"][0]
            return (r["user"] + r["system"]) * 1e3
        except (OSError, KeyError, IndexError, TypeError, ValueError):
            return None
    cpu = [(s, cpu_ms(s, "plain"), cpu_ms(s, "appliance")) for s in big]
    if all(p is not None and a is not None for _, p, a in cpu):
        details.append("client CPU per download (user + system, mean), plain / appliance: " +
                       ", ".join(f"{s} {p:.0f} / {a:.0f} ms ({a - p:+.0f} ms)" for s, p, a in cpu))
        # The machine's CPU per download: the client's and the services' (s3rver, the appliance,
        # its core, the keepers) during that method's downloads. When the cores are all busy,
        # wall time follows this sum, and AES-GCM's share of it is what the decryption alone adds
        # (other things equal, which they are not quite: see the header).
        machine = {s: (p + by[(s, "plain")]["service_cpu"] * 1e3, a + by[(s, "appliance")]["service_cpu"] * 1e3)
                   for s, p, a in cpu}
        ncpu = os.cpu_count() or 1
        details.append("machine CPU per download (client + s3rver + appliance + keepers), plain / appliance: " +
                       ", ".join(f"{s} {mp:.0f} / {ma:.0f} ms ({ma - mp:+.0f} ms)" for s, (mp, ma) in machine.items()) +
                       f"; cores busy during the plain downloads (machine CPU / ({ncpu} cores x median wall)): " +
                       ", ".join(f"{s} {machine[s][0] / 1e3 / (ncpu * by[(s, 'plain')]['down']):.2f}" for s in big))
        details.append(f"AES-256-GCM decryption at openssl speed's {gcm_rate / 1e6:.0f} MB/s in this run, as a share of the "
                       "plain download's machine CPU (what the decryption alone adds to the wall time while every core is busy, "
                       "other things equal; the two paths also differ in how they write and read): " +
                       ", ".join(f"{s} {by[(s, 'plain')]['size_bytes'] / gcm_rate * 1e3:.1f} ms = "
                                 f"{by[(s, 'plain')]['size_bytes'] / gcm_rate * 1e3 / machine[s][0] * 100:.1f} %" for s in big))
    dual_up = {s: (by[(s, "dual")]["up"] / by[(s, "plain")]["up"] - 1) * 100 for s in big if by.get((s, "dual"))}
    dual_down = {s: (by[(s, "dual")]["down"] / by[(s, "plain")]["down"] - 1) * 100 for s in big if by.get((s, "dual"))}
    if dual_up:
        details.append("dual control (for comparison, no target), upload / download: " +
                       ", ".join(f"{s} {dual_up[s]:+.1f} % / {dual_down[s]:+.1f} %" for s in dual_up))
else:
    verdict = "appliance-mode overhead <= 5 % for objects >= 16 MiB: NOT MEASURED (no size >= 16 MiB in BENCH_OBJECT_SIZES)"
print()
print(verdict)
for d in details:
    print("  " + d)

with open(md_path, "w") as fh:
    fh.write("# Encrypted object upload and download (scripts/bench_objects.sh)\n\n")
    fh.write(meta + ".\n\n")
    fh.write("Median ± standard deviation of the wall time of one `custos put` / `custos get` (or `aws s3 cp`) "
             "process, measured with hyperfine, the methods interleaved round by round; ratios are of the medians. "
             "The work directory (sources, s3rver's storage, downloads) is in BENCH_DIR (tmpfs by default). plain = `--plain` (no encryption), "
             "appliance = `--key alias/bench` (data key from the dev appliance), dual = `--custody` "
             "(co-custody key; the download asks the keepers), awscli = `/usr/bin/aws s3 cp`. "
             "Every download was compared with its source (cmp).\n\n")
    fh.write("| " + " | ".join(head) + " |\n")
    fh.write("|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|\n")
    for t in table:
        fh.write("| " + " | ".join(t) + " |\n")
    fh.write("\n**" + verdict + "**\n")
    for d in details:
        fh.write("\n" + d[0].upper() + d[1:] + ".\n")
    rel = os.path.relpath(os.path.abspath(png), os.path.dirname(os.path.abspath(md_path)))
    fh.write(f"\n![upload and download time per size and method]({rel})\n")
PY

mkdir -p "$(dirname "$png")"
gnuplot -e "csv='$out_dir/results.csv'; out='$png'; subtitle='$(printf '%s' "$meta" | sed "s/'/ /g" | cut -d';' -f1)'" \
  "$here/plot_objects.gp" >"$work/logs/gnuplot.log" 2>&1 || { cat "$work/logs/gnuplot.log" >&2; fail "gnuplot"; }
[ -s "$png" ] || fail "gnuplot wrote no $png"
echo
echo "results: $out_dir/results.csv, $out_dir/results.md, $out_dir/hyperfine/; chart: $png"
exit 0
