# The two entry points (README): `make run` and `make test`. Both install what they need.
BUILD ?= build
# SAN_BUILD: the one build `make test` uses: clang, AddressSanitizer + UndefinedBehaviorSanitizer,
# libFuzzer coverage instrumentation, -O1; it holds the tests and the fuzz targets alike.
SAN_BUILD ?= build-san
JOBS ?= $(shell nproc)
# TEST_JOBS: ctest entries run side by side. The long ones (end-to-end, conformance, guide) mostly
# wait on the processes they start, so one more than the CPUs keeps both cores busy.
TEST_JOBS ?= $(shell echo $$(( $$(nproc) + 1 )))
FUZZ_SECONDS ?= 5
# DEV_DIR is where `make run` (custos server --dev) keeps its state between runs.
DEV_DIR ?= .custos-dev
# CLUSTER_DIR, NODES: `make cluster` (scripts/dev-cluster.sh) builds its cluster of NODES nodes there.
CLUSTER_DIR ?= .custos-cluster
NODES ?= 3
SAN_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 CUSTOS_E2E_LARGE_MIB=8
# MODEL_OUT: where `make verify` leaves each model-checking run (pan's report; the counterexample
# trails of the mutants and probes) and summary.txt.
MODEL_OUT ?= build-model

.PHONY: test-deps deps build build-san build-san-only build-release build-release-only build-asan build-fuzz test test-fast \
  test-san test-san-only test-release test-release-only build-matrix test-asan fuzz-smoke fuzz-smoke-only fuzz bench bench-kmip run cluster demo clean \
  verify verify-only

deps:
	@scripts/install-deps.sh

# test-deps: npm packages the tests start themselves (s3rver, pinned by tests/s3/package-lock.json).
test-deps: deps
	npm ci --prefix tests/s3 --no-audit --no-fund --loglevel=error

# ccache when present (never required): repeated CI builds on one machine then cost little.
LAUNCHER := $(if $(shell command -v ccache 2>/dev/null),-DCMAKE_CXX_COMPILER_LAUNCHER=ccache,)
# REL_BUILD: `make test` (and `make test-release`) runs the tests against it too: GCC, Release
# (-O3, no debug info), warnings as errors, with the benchmarks (compiled, not run).
REL_BUILD ?= build-release

# build: the release build (RelWithDebInfo) that `make run`, `make demo` and `make bench` use.
build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(LAUNCHER) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-san: deps build-san-only
build-san-only:
	CXX=clang++ cmake -S . -B $(SAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -gline-tables-only" -DCUSTOS_SANITIZE=ON -DCUSTOS_FUZZ=ON \
	  -DCUSTOS_BENCH=OFF $(LAUNCHER) >/dev/null
	cmake --build $(SAN_BUILD) -j $(JOBS)
build-asan build-fuzz: build-san

build-release: deps build-release-only
build-release-only:
	CXX=g++ cmake -S . -B $(REL_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(LAUNCHER) >/dev/null
	cmake --build $(REL_BUILD) -j $(JOBS)

# test: the CI run (.ci/run), in phases, each timed (the table is printed at the end; the
# measured budget is in docs/benchmarks.md "CI time"): packages; the protocol model (make
# verify-only); one clang build with ASan+UBSan
# and libFuzzer instrumentation; every test (unit, end-to-end, conformance with the AWS CLI,
# boto3 and the AWS SDK for JavaScript, the operations guide, compatibility fixtures, layout)
# under the sanitizers; a short smoke run of every fuzz target from that build; the GCC Release
# build (-O3, -Werror, benchmarks compiled) and the same tests against it.
test:
	@scripts/ci-test.sh

test-san: build-san test-deps test-san-only
test-san-only:
	$(SAN_ENV) ctest --test-dir $(SAN_BUILD) -j $(TEST_JOBS) --output-on-failure
test-asan: test-san

test-release: build-release test-deps test-release-only
test-release-only:
	ctest --test-dir $(REL_BUILD) -j $(TEST_JOBS) --output-on-failure

# build-matrix: Release, RelWithDebInfo and Debug with GCC and with clang, warnings as errors
# (-Werror is always on), each in build-matrix/COMPILER-TYPE. Not part of CI (six full builds).
build-matrix: deps
	for cc in g++ clang++; do for t in Release RelWithDebInfo Debug; do \
	  CXX=$$cc cmake -S . -B build-matrix/$$cc-$$t -G Ninja -DCMAKE_BUILD_TYPE=$$t $(LAUNCHER) >/dev/null && \
	  cmake --build build-matrix/$$cc-$$t -j $(JOBS) || exit 1; done; done

# test-fast: the same tests against the RelWithDebInfo build (not part of CI).
test-fast: build test-deps
	ctest --test-dir $(BUILD) -j $(TEST_JOBS) --output-on-failure

# verify: the Spin model of the appliance protocols (model/custody.pml, docs/verification.md): a
# full search of the real protocol in each configuration must find no violation, and every mutant
# (a check removed) and reachability probe must fail with its expected property; part of `make test`.
verify: deps verify-only
verify-only:
	model/run.sh $(MODEL_OUT)

fuzz-smoke: build-san fuzz-smoke-only
fuzz-smoke-only:
	scripts/fuzz.sh $(SAN_BUILD) $(FUZZ_SECONDS)

# fuzz: long fuzzing run (FUZZ_SECONDS per target), not part of CI.
fuzz: FUZZ_SECONDS=600
fuzz: build-san
	scripts/fuzz.sh $(SAN_BUILD) $(FUZZ_SECONDS)

bench: build
	scripts/bench.sh $(BUILD)

# bench-kmip: KMIP Encrypt (AES-GCM, 64 B) req/s and latency at 1 and 16 connections, custos
# against PyKMIP's own server (scripts/bench_kmip.sh, docs/benchmarks.md "KMIP"), from the GCC
# Release build (only custos, its trusted core and bench/kmip_load.cc are built). Not part of
# `make test`: about a minute of load on the whole machine.
bench-kmip: deps
	CXX=g++ cmake -S . -B $(REL_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCUSTOS_BENCH=ON $(LAUNCHER) >/dev/null
	cmake --build $(REL_BUILD) -j $(JOBS) --target custos custos-enclave kmip_load
	scripts/bench_kmip.sh $(REL_BUILD)/custos $(REL_BUILD)/kmip_load

# run: the dev mode (docs/operations.md "Dev mode"): keepers, DKG, appliance, unseal and an
# access key in one foreground process; prints the endpoint and credentials. Ctrl-C stops it.
run: build
	$(BUILD)/custos server --dev --data-dir $(DEV_DIR)

# cluster: PostgreSQL primary and standby, keepers, NODES nodes and HAProxy on loopback, in the
# background (docs/operations.md "A cluster of nodes"); returns once all serve and writes
# $(CLUSTER_DIR)/dev.env. scripts/dev-cluster.sh --stop $(CLUSTER_DIR) stops it.
cluster: build
	scripts/dev-cluster.sh $(BUILD)/custos $(CLUSTER_DIR) $(NODES)

# demo: the narrated walk through co-custody and the appliance with separate processes.
demo: build
	scripts/demo.sh $(BUILD)/custos

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(REL_BUILD) build-matrix build-asan build-fuzz $(MODEL_OUT)
