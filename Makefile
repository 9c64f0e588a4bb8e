# Presence: the developer's entry points. CMake does the building; this file
# wraps it so that one command sets up, builds and runs or tests everything.
#   make            build everything into build/
#   make run        install what is missing, build, start the local stack (Ctrl-C stops it)
#   make test       install what is missing, build with -Werror, run every test
#   make sanitize   the same tests against an ASan+UBSan build (build-san/)
#   make fuzz       build the parsers' libFuzzer targets and run each briefly (FUZZ_SECONDS)
#   make bench      run the benchmarks (figures only; they never fail on a time)
#   make format     apply .clang-format to every C file
BUILD ?= build
SAN_BUILD ?= build-san
JOBS ?= $(shell nproc)

.PHONY: all deps build test sanitize fuzz run bench format clean

all: build

deps:
	@scripts/deps.sh

build:
	@cmake -S . -B $(BUILD) -DPR_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: deps build
	@scripts/test.sh $(BUILD)

sanitize: deps
	@cmake -S . -B $(SAN_BUILD) -DPR_WERROR=ON -DPR_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(SAN_BUILD) -j $(JOBS)
	@PR_SANITIZED=1 scripts/test.sh $(SAN_BUILD)

fuzz: deps
	@scripts/fuzz.sh

run: deps build
	@scripts/run.sh $(BUILD)

bench: deps build
	@bench/run.sh $(BUILD)

format:
	@find common proto services clients bench tests -name '*.[ch]' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
