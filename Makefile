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
test: deps all
	TL_BUILD_DIR=$(BUILD) tests/harness/with-servers ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

demo: deps all
	$(BUILD)/tasklock demo

test-asan:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DTL_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug"

test-tsan:
	$(MAKE) test BUILD=build-tsan CMAKE_FLAGS="-DTL_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug"

# What CI runs: warnings as errors, the plain build and both sanitizer builds.
check:
	bash .ci/run

install: all
	cmake --install $(BUILD)

clean:
	rm -rf build build-asan build-tsan build-fuzz
