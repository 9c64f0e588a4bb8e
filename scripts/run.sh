#!/usr/bin/env bash
# `make run`: the whole system on this machine, no Docker. Starts its own
# redis-server (port and data under the build tree, never the system one), one
# presence-send, two presence-fanout and two presence-receive, seeds a demo
# graph, prints where to look, and stops everything on Ctrl-C.
# Ports can be moved with PRESENCE_PORT_BASE (default 8080: send 8080,
# receive 8081 and 8083, fanout admin 8082 and 8084), PRESENCE_REDIS_PORT
# (16379) and PRESENCE_NNG_PORT_BASE (17100: receive's nng at +1 and +2).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
bin="$build/bin"
base=${PRESENCE_PORT_BASE:-8080}
redis_port=${PRESENCE_REDIS_PORT:-16379}
nng=${PRESENCE_NNG_PORT_BASE:-17100}
secret=${PRESENCE_JWT_SECRET:-dev-secret-change-me}
export PRESENCE_JWT_SECRET=$secret
run="$build/run"
mkdir -p "$run/redis" "$run/logs"
parts=64

port_busy() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
for p in $redis_port $base $((base + 1)) $((base + 2)) $((base + 3)) $((base + 4)) $((nng + 1)) $((nng + 2)); do
  if port_busy "$p"; then
    echo "make run: port $p is in use (set PRESENCE_PORT_BASE / PRESENCE_REDIS_PORT)" >&2
    exit 1
  fi
done

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  echo "stopped; logs are in $run/logs"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() { # name logfile command...
  local name=$1 log=$2
  shift 2
  "$@" >"$run/logs/$log" 2>&1 &
  pids+=($!)
  echo "  started $name (pid $!)"
}

wait_http() { # url
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "make run: $1 did not become ready; see $run/logs" >&2
  exit 1
}

echo "Presence: starting the local stack"
start redis redis.log redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$run/redis" \
  --save '' --appendonly no
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
R=127.0.0.1:$redis_port
common=(--redis "$R" --partitions "$parts")

start send send.log "$bin/presence-send" "${common[@]}" --listen "127.0.0.1:$base"
for i in 1 2; do
  start "fanout-$i" "fanout-$i.log" "$bin/presence-fanout" "${common[@]}" \
    --admin-listen "127.0.0.1:$((base + 2 * i))" --worker-id "fanout-$i"
done
for i in 1 2; do
  start "receive-$i" "receive-$i.log" "$bin/presence-receive" "${common[@]}" \
    --listen "127.0.0.1:$((base + 2 * i - 1))" --nng-listen "tcp://127.0.0.1:$((nng + i))" \
    --instance-id "receive-$i" --static-dir "$PWD/web"
done
wait_http "http://127.0.0.1:$base/readyz"
for i in 1 2; do wait_http "http://127.0.0.1:$((base + 2 * i - 1))/readyz"; done
for i in 1 2; do wait_http "http://127.0.0.1:$((base + 2 * i))/readyz"; done

"$bin/presencectl" "${common[@]}" graph import scripts/demo-graph.txt >/dev/null

tok() { "$bin/presencectl" token --user "$1" --ttl 86400; }
cat <<MSG

Presence is running (Ctrl-C stops everything).

  Demo page      alice: http://127.0.0.1:$((base + 1))/?token=$(tok alice)
                 bob:   http://127.0.0.1:$((base + 3))/?token=$(tok bob)
                 (two tabs, two users, two receive instances; change alice's status and watch bob's tab)
  HTTP API       http://127.0.0.1:$base/v1/...   (docs/api.md)
  Metrics        http://127.0.0.1:$base/metrics  send
                 http://127.0.0.1:$((base + 1))/metrics  http://127.0.0.1:$((base + 3))/metrics  receive
                 http://127.0.0.1:$((base + 2))/metrics  http://127.0.0.1:$((base + 4))/metrics  fanout
  Redis          redis-cli -p $redis_port
  Logs           $run/logs/

Try the API:
  export PRESENCE_JWT_SECRET=$secret
  TOKEN=\$($bin/presencectl token --user alice)
  curl -i -X POST -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$base/v1/heartbeat -d '{"status":"online"}'
  curl -s -H "Authorization: Bearer \$($bin/presencectl token --user bob)" "http://127.0.0.1:$base/v1/presence?users=alice"

Demo users: alice, bob, carol, dave, erin (group "team"); "town" is a large group.
MSG

# Wait until Ctrl-C, or until a service dies.
while true; do
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "make run: process $pid exited; see $run/logs" >&2
      exit 1
    fi
  done
  sleep 1
done
