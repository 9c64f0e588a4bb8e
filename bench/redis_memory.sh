#!/usr/bin/env bash
# Redis memory per online user: runs the store's real heartbeat script for N
# users (each with one HTTP device and a record, a deadline entry) on a
# redis-server of its own, and reads INFO memory before and after. Writes
# bench/results/redis-memory-<time>.json, which `presencectl plan` reads.
# Usage: bench/redis_memory.sh [build-dir] [users]   (default: build 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
users=${2:-100000}
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >"$dir/log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
mem() { redis-cli -p "$port" info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'; }
sha=$("$build/bin/presence-bench" script-body heartbeat | redis-cli -p "$port" -x script load)
before=$(mem)
# Users u0..u(N-1), spread over 1024 partitions like the services do is not
# needed for memory: one tag per 1000 users keeps the keys realistic in size.
python3 - "$users" "$sha" <<'PY' | redis-cli -p "$port" --pipe | grep -q "errors: 0" || { echo "redis_memory: the heartbeat script failed" >&2; exit 1; }
import sys
n, sha = int(sys.argv[1]), sys.argv[2]
def cmd(*a):
    out = [f"*{len(a)}\r\n"]
    for x in a:
        x = str(x)
        out.append(f"${len(x.encode())}\r\n{x}\r\n")
    return "".join(out)
w = sys.stdout.write
for i in range(n):
    p = i % 1024
    u = f"user{i:07d}"
    w(cmd("EVALSHA", sha, 4, f"pr:{{p{p}}}:{u}", f"dl:{{p{p}}}", f"ev:{{p{p}}}",
          f"hb:{{p{p}}}:{u}/phone", u, "phone", 60000, "online", 0, 0))
PY
after=$(mem)
per=$(( (after - before) / users ))
mkdir -p bench/results
out="bench/results/redis-memory-$(date +%Y%m%d-%H%M%S).json"
printf '{"scenario":"redis-memory","users":%d,"used_memory_before":%d,"used_memory_after":%d,"bytes_per_online_user":%d,"redis":"%s"}\n' \
  "$users" "$before" "$after" "$per" "$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')" >"$out"
echo "redis memory: $per bytes per online user ($users users, one HTTP device each) -> $out"
