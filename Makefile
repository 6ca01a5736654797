# Short commands for people; CMake does the work. `make test` and `make demo` are the README's
# quick start: they install missing Debian packages first when run as root.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps test demo test-asan test-tsan check torture bench fuzz lint install clean

all: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/install-deps

$(BUILD)/CMakeCache.txt:
	@scripts/install-deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

# Every test, with Redis, PostgreSQL and the GitHub test server started on 127.0.0.1.
# CTEST_ARGS: more ctest options (the sanitizer builds leave out the "browser" label: the page
# in chromium and Prometheus, which test no C code of their own; test_serve covers the server;
# and the "slow" label: the etcd cluster's leader kills and the longest fault scenarios, which
# the plain build runs).
CTEST_ARGS ?=
test: deps all
	TL_BUILD_DIR=$(BUILD) tests/harness/with-servers ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) $(CTEST_ARGS)

demo: deps all
	$(BUILD)/tasklock demo

# The same suite under AddressSanitizer+UBSan, and under ThreadSanitizer (separate builds: the
# two cannot share one). Any report fails the test that triggered it.
test-asan:
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	$(MAKE) test BUILD=build-asan CTEST_ARGS="-LE 'browser|slow' $(CTEST_ARGS)" \
	    CMAKE_FLAGS="-DTL_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)"

test-tsan:
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	$(MAKE) test BUILD=build-tsan CTEST_ARGS="-LE 'browser|slow' $(CTEST_ARGS)" \
	    CMAKE_FLAGS="-DTL_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)"

# Fuzzing with clang's libFuzzer: each target for FUZZ_SECONDS, then every input kept in
# fuzz/regressions/. Longer runs: make fuzz FUZZ_SECONDS=600.
FUZZ_SECONDS ?= 20
fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DTL_FUZZ=ON -DTL_FUZZ_SECONDS=$(FUZZ_SECONDS) \
	    -DTL_BUILD_TESTS=OFF -DTL_WITH_GITHUB=OFF -DTL_WITH_REDIS=OFF -DTL_WITH_POSTGRES=OFF \
	    -DTL_WITH_ETCD=OFF
	cmake --build build-fuzz -j $(JOBS) --target tl_fuzz
	ctest --test-dir build-fuzz -L fuzz --output-on-failure -j $(JOBS)

# The long torture runs (docs/reliability.md): every scenario on every store, thousands of
# cycles, many faults; the short versions run with `make test`.
torture: deps all
	tests/torture/run-long.sh $(BUILD)

# Benchmarks against what users would pick instead: installs the --bench packages and the npm
# anchor, builds $(BENCH_BUILD) (Release), starts every server on 127.0.0.1, measures (about
# 11 minutes on 2 cores), regenerates docs/performance.md and bench/results/*.csv.
# BENCH_QUICK=1 for a short trial.
BENCH_BUILD ?= build-bench
bench:
	BUILD=$(BENCH_BUILD) BENCH_COMMAND="make bench" bench/run.sh

# Style: clang-format, clang-tidy and the exported symbols of the shared library.
lint: all
	scripts/lint $(BUILD)

# What CI runs: warnings as errors, the plain build and both sanitizer builds.
check:
	bash .ci/run

install: all
	cmake --install $(BUILD)

clean:
	rm -rf build build-asan build-tsan build-fuzz build-bench
