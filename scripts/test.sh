#!/usr/bin/env bash
# Runs every test against the binaries in build dir $1: the Criterion unit
# tests (through ctest), then the integration, scenario and browser tests
# (node --test), which start their own redis-server and services on free
# loopback ports and stop them when they end, pass or fail.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
export PR_BIN_DIR="$PWD/$build/bin"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== unit tests ($build)"
ctest --test-dir "$build" --output-on-failure -j 2
unit=$?

echo "== integration tests ($build)"
files=$(ls tests/integration/*.test.mjs 2>/dev/null)
integ=0
if [ -n "$files" ]; then
  node --test --test-concurrency=1 --test-reporter=spec $files
  integ=$?
else
  echo "no integration tests"
fi
[ $unit -eq 0 ] || echo "== unit tests FAILED ($build): see the ctest output above"
[ $unit -eq 0 ] && [ $integ -eq 0 ]
