# The two entry points (README): `make run` and `make test`. Both install what they need.
BUILD ?= build
# SAN_BUILD: the one build `make test` uses: clang, AddressSanitizer + UndefinedBehaviorSanitizer,
# libFuzzer coverage instrumentation, -O1; it holds the tests and the fuzz targets alike.
SAN_BUILD ?= build-san
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 5
# DEV_DIR is where `make run` (custos server --dev) keeps its state between runs.
DEV_DIR ?= .custos-dev
SAN_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 CUSTOS_E2E_LARGE_MIB=8

.PHONY: test-deps deps build build-san build-asan build-fuzz test test-fast test-san test-asan fuzz-smoke fuzz bench run demo clean

deps:
	@scripts/install-deps.sh

# test-deps: npm packages the tests start themselves (s3rver, pinned by tests/s3/package-lock.json).
test-deps: deps
	npm ci --prefix tests/s3 --no-audit --no-fund --loglevel=error

# build: the release build (RelWithDebInfo) that `make run`, `make demo` and `make bench` use.
build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-san: deps
	CXX=clang++ cmake -S . -B $(SAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -gline-tables-only" -DCUSTOS_SANITIZE=ON -DCUSTOS_FUZZ=ON >/dev/null
	cmake --build $(SAN_BUILD) -j $(JOBS)
build-asan build-fuzz: build-san

# test: the CI run (.ci/run): one sanitized build; unit, end-to-end, conformance (AWS CLI, boto3,
# AWS SDK for JavaScript) and operations-guide tests under ASan+UBSan; then a short smoke run of
# every fuzz target from the same build.
test: test-san fuzz-smoke

test-san: build-san test-deps
	$(SAN_ENV) ctest --test-dir $(SAN_BUILD) --output-on-failure
test-asan: test-san

# test-fast: the same tests against the release build (not part of CI).
test-fast: build test-deps
	ctest --test-dir $(BUILD) --output-on-failure

fuzz-smoke: build-san
	scripts/fuzz.sh $(SAN_BUILD) $(FUZZ_SECONDS)

# fuzz: long fuzzing run (FUZZ_SECONDS per target), not part of CI.
fuzz: FUZZ_SECONDS=600
fuzz: build-san
	scripts/fuzz.sh $(SAN_BUILD) $(FUZZ_SECONDS)

bench: build
	scripts/bench.sh $(BUILD)

# run: the dev mode (docs/operations.md "Dev mode"): keepers, DKG, appliance, unseal and an
# access key in one foreground process; prints the endpoint and credentials. Ctrl-C stops it.
run: build
	$(BUILD)/custos server --dev --data-dir $(DEV_DIR)

# demo: the narrated walk through co-custody and the appliance with separate processes.
demo: build
	scripts/demo.sh $(BUILD)/custos

clean:
	rm -rf $(BUILD) $(SAN_BUILD) build-asan build-fuzz
