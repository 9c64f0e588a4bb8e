#!/usr/bin/env bash
# Builds the libFuzzer targets of the parsers (tests/fuzz/fuzz_*.c) with clang
# and runs each for FUZZ_SECONDS (default 15) from its seed corpus
# (tests/fuzz/corpus/<name>/). New inputs found go to build-fuzz/corpus/, not
# to the repository. Usage: scripts/fuzz.sh [name...]  (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-15}
out=build-fuzz
mkdir -p "$out"
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -Icommon -Iproto)
build() {
  case "$1" in
    http) clang "${flags[@]}" tests/fuzz/fuzz_http.c common/http_*.c common/base_*.c \
            -luv -lhttp_parser -lpthread -o "$out/fuzz_http" ;;
    proto) clang "${flags[@]}" tests/fuzz/fuzz_proto.c proto/*.c common/base_alloc.c \
             common/base_buf.c common/base_err.c -lmsgpackc -o "$out/fuzz_proto" ;;
    ws) clang "${flags[@]}" tests/fuzz/fuzz_ws.c common/ws_codec.c common/ws_utf8.c \
          -lcrypto -o "$out/fuzz_ws" ;;
    *) echo "fuzz: unknown target $1" >&2; exit 2 ;;
  esac
}
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(http proto ws)
for n in "${names[@]}"; do
  build "$n"
  mkdir -p "$out/corpus/$n"
  echo "== fuzz_$n for ${secs}s"
  set +e
  "$out/fuzz_$n" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$out/$n-" \
    "$out/corpus/$n" "tests/fuzz/corpus/$n" >"$out/fuzz_$n.log" 2>&1
  rc=$?
  set -e
  grep -E "^stat::(number_of_executed_units|new_units_added)" "$out/fuzz_$n.log" || true
  if [ $rc -ne 0 ]; then # libFuzzer found a failing input (written as $out/$n-crash-...)
    tail -40 "$out/fuzz_$n.log"
    echo "fuzz_$n FAILED: see $out/fuzz_$n.log"
    exit 1
  fi
done
