# The two entry points (README): `make run` and `make test`. Both install what they need.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 10
# DEV_DIR is where `make run` (custos server --dev) keeps its state between runs.
DEV_DIR ?= .custos-dev

.PHONY: test-deps deps build build-asan build-fuzz test test-fast test-asan fuzz-smoke fuzz bench run demo clean

deps:
	@scripts/install-deps.sh

# test-deps: npm packages the tests start themselves (s3rver, pinned by tests/s3/package-lock.json).
test-deps: deps
	npm ci --prefix tests/s3 --no-audit --no-fund --loglevel=error

build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCUSTOS_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

build-fuzz: deps
	CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCUSTOS_FUZZ=ON >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

# test: the full CI run: unit + end-to-end tests, the same under ASan+UBSan, and a short
# smoke run of every fuzz target.
test: test-fast test-asan fuzz-smoke

test-fast: build test-deps
	ctest --test-dir $(BUILD) --output-on-failure

test-asan: build-asan test-deps
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  CUSTOS_E2E_LARGE_MIB=8 ctest --test-dir $(ASAN_BUILD) --output-on-failure

fuzz-smoke: build-fuzz
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# fuzz: long fuzzing run (FUZZ_SECONDS per target), not part of CI.
fuzz: FUZZ_SECONDS=600
fuzz: build-fuzz
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

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
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
