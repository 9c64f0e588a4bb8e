#!/usr/bin/env bash
# bench/run.sh: the whole benchmark in one go. Starts its own redis-server and
# the services on free loopback ports (its own, never make run's), runs the
# scenarios and the baselines (bench-epoll-hold, redis-benchmark on the
# heartbeat script, wrk on /healthz), prints the ratios, and stops everything
# it started, by pid.
#   bench/run.sh [--quick|--full] [--repeat N] [build-dir]     (default --quick, build-bench)
# Results: bench/results/*.json and *.svg, the log of this run in bench/results/run-<stamp>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=quick
repeat=1
build=build-bench
while [ $# -gt 0 ]; do
  case $1 in
    --quick) mode=quick ;;
    --full) mode=full; repeat=3 ;;
    --repeat) repeat=$2; shift ;;
    *) build=$1 ;;
  esac
  shift
done
bin="$PWD/$build/bin"
out="$PWD/bench/results"
base=${BENCH_PORT_BASE:-18280}
redis_port=${BENCH_REDIS_PORT:-18379}
secret=bench-secret-$$
export PRESENCE_JWT_SECRET=$secret
run="$PWD/$build/bench-run"
rm -rf "$run"
mkdir -p "$run/logs" "$out"
stamp=$(date +%Y%m%d-%H%M%S)
log="$out/run-$mode-$stamp.log"
parts=64

if [ "$mode" = quick ]; then
  conns=5000; procs=2; dur=3; http_k=32; pipe=16; ws_conns=1000
  fan_users=1000; fan_watchers=1000; fan_k=20; fan_rates="1000,2500,5000"; off_users=500
else
  conns=15000; procs=3; dur=5; http_k=32; pipe=16; ws_conns=4000
  fan_users=2000; fan_watchers=4000; fan_k=50; fan_rates="500,1000,2000,3000,4000,6000"
  off_users=2000
fi

port_busy() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
for p in $redis_port $(seq "$base" $((base + 11))) 18501 18502; do
  if port_busy "$p"; then
    echo "bench/run.sh: port $p is in use (set BENCH_PORT_BASE / BENCH_REDIS_PORT)" >&2
    exit 1
  fi
done

pids=()
cleanup() {
  trap - INT TERM EXIT
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  echo "bench/run.sh: stopped everything; service logs in $run/logs"
}
trap cleanup INT TERM EXIT

start() { # name command...
  local name=$1
  shift
  "$@" >"$run/logs/$name.log" 2>&1 &
  pids+=($!)
  eval "pid_${name//-/_}=$!"
}
wait_http() {
  for _ in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "bench/run.sh: $1 did not become ready; see $run/logs" >&2
  exit 1
}

exec > >(tee "$log") 2>&1
echo "== Presence bench ($mode), $(date -Is)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), $(redis-server --version | cut -d' ' -f3)"

start redis redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$run" --save '' \
  --appendonly no --maxclients 20000
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
R=127.0.0.1:$redis_port
common=(--redis "$R" --partitions "$parts" --log-level warn)
start send "$bin/presence-send" "${common[@]}" --listen "127.0.0.1:$base" --max-connections 20000
start send-ttl1 "$bin/presence-send" "${common[@]}" --listen "127.0.0.1:$((base + 5))" \
  --heartbeat-ttl-ms 1000
for i in 1 2; do
  start "fanout-$i" "$bin/presence-fanout" "${common[@]}" --worker-id "bench-fanout-$i" \
    --admin-listen "127.0.0.1:$((base + 5 + 2 * i))"
done
for i in 1 2; do
  start "receive-$i" "$bin/presence-receive" "${common[@]}" --instance-id "bench-recv-$i" \
    --listen "127.0.0.1:$((base + 2 * i - 1))" --nng-listen "tcp://127.0.0.1:$((18500 + i))" \
    --rate-limit 1000000 --rate-burst 1000000 --heartbeat-ms 3600000 --max-connections 100000
done
wait_http "http://127.0.0.1:$base/readyz"
wait_http "http://127.0.0.1:$((base + 5))/readyz"
for i in 1 2; do wait_http "http://127.0.0.1:$((base + 2 * i - 1))/readyz"; done
for i in 1 2; do wait_http "http://127.0.0.1:$((base + 5 + 2 * i))/readyz"; done
echo "stack up: redis $R, send :$base (ttl 1 s: :$((base + 5))), receive :$((base + 1)) :$((base + 3))"

B=("$bin/presence-bench" --redis "$R" --partitions "$parts" --out "$out")
recv1=127.0.0.1:$((base + 1))
recvs=$recv1,127.0.0.1:$((base + 3))
latest() { ls -t "$out"/"$1"-*.json 2>/dev/null | head -1; }
# Waits until Redis runs no more scripts (a backlog left by one scenario must
# not slow the baseline that follows).
quiesce() {
  local a b
  for _ in $(seq 100); do
    a=$(redis-cli -p "$redis_port" INFO commandstats | grep -o 'cmdstat_evalsha:calls=[0-9]*' | cut -d= -f2 || true)
    sleep 0.3
    b=$(redis-cli -p "$redis_port" INFO commandstats | grep -o 'cmdstat_evalsha:calls=[0-9]*' | cut -d= -f2 || true)
    if [ "$((${b:-0} - ${a:-0}))" -lt 30 ]; then return 0; fi
  done
  return 0
}
# A fresh receive-1 for each connections round: memory is measured on a new
# process (a used one keeps freed memory in its allocator and reads +0).
restart_receive1() {
  kill -TERM "$pid_receive_1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid_receive_1" 2>/dev/null || break; sleep 0.1; done
  start receive-1 "$bin/presence-receive" "${common[@]}" --instance-id "bench-recv-1" \
    --listen "127.0.0.1:$((base + 1))" --nng-listen "tcp://127.0.0.1:18501" \
    --rate-limit 1000000 --rate-burst 1000000 --heartbeat-ms 3600000 --max-connections 100000
  wait_http "http://127.0.0.1:$((base + 1))/readyz"
  sleep 4 # leave grace (3 s): the previous round's devices are gone from ic:<id>
}

for r in $(seq "$repeat"); do
  echo; echo "== round $r of $repeat"
  echo; echo "-- connections: $conns to receive-1"
  [ "$r" -gt 1 ] && restart_receive1
  "${B[@]}" connections --receive "$recv1" --receive-pid "$pid_receive_1" --connections "$conns" \
    --processes "$procs" || echo "(connections did not reach every connection)"
  conn_json=$(latest connections)

  echo; echo "-- baseline: bench-epoll-hold, the same $conns connections"
  start "epoll-hold-$r" "$bin/bench-epoll-hold" $((base + 11))
  eh_pid=${pids[-1]}
  for _ in $(seq 50); do port_busy $((base + 11)) && break; sleep 0.1; done
  "${B[@]}" connections --receive "127.0.0.1:$((base + 11))" --receive-pid "$eh_pid" \
    --connections "$conns" --processes "$procs" --registration-check=false --label epoll \
    || echo "(baseline did not reach every connection)"
  kill -TERM "$eh_pid" 2>/dev/null || true
  eh_json=$(latest connections-epoll)

  echo; echo "-- ingest: HTTP heartbeats ($http_k connections x $pipe) and WebSocket status frames"
  "${B[@]}" ingest --send "127.0.0.1:$base" --receive "$recvs" --http-conns "$http_k" \
    --pipeline "$pipe" --processes 2 --duration-s "$dur" --connections "$ws_conns" --ws-rate 20
  ingest_json=$(latest ingest)

  quiesce
  echo; echo "-- baseline: redis-benchmark, the heartbeat script by EVALSHA, -c $http_k -P $pipe"
  "${B[@]}" script-body heartbeat >"$run/heartbeat.lua"
  sha=$(redis-cli -p "$redis_port" SCRIPT LOAD "$(cat "$run/heartbeat.lua")")
  # keys pr, dl, ev, hb of one user in partition 7; args as the store passes them
  rb=$(redis-benchmark -p "$redis_port" -c "$http_k" -P "$pipe" -n $((200000 * dur / 3)) -q \
    EVALSHA "$sha" 4 'pr:{p7}:rbu' 'dl:{p7}' 'ev:{p7}' 'hb:{p7}:rbu/hb' rbu hb 60000 online 0 0 \
    2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
  echo "redis-benchmark EVALSHA heartbeat: $rb requests/s"
  echo "{\"baseline\":\"redis-benchmark\",\"script\":\"heartbeat\",\"clients\":$http_k,\"pipeline\":$pipe,\"requests_per_s\":$rb}" \
    >"$out/baseline-redis-$(date +%Y%m%d-%H%M%S).json"

  echo; echo "-- baseline: wrk on presence-send /healthz (no work), $http_k connections"
  wk=$(wrk -t2 -c"$http_k" -d"${dur}s" "http://127.0.0.1:$base/healthz" | awk '/Requests\/sec/{print $2}')
  echo "wrk /healthz: $wk requests/s"
  echo "{\"baseline\":\"wrk\",\"path\":\"/healthz\",\"connections\":$http_k,\"requests_per_s\":$wk}" \
    >"$out/baseline-wrk-$(date +%Y%m%d-%H%M%S).json"

  echo; echo "-- fanout: $fan_users users x $fan_k watchers ($fan_watchers connections), rates $fan_rates"
  "${B[@]}" fanout --send "127.0.0.1:$base" --receive "$recvs" --users "$fan_users" \
    --watchers "$fan_watchers" --per-user "$fan_k" --rates "$fan_rates" --duration-s "$dur" \
    --http-conns 16 --pipeline 64 || echo "(fanout failed)"
  fan_json=$(latest fanout)

  echo; echo "-- offline: $off_users HTTP devices, ttl 1 s"
  "${B[@]}" offline --send "127.0.0.1:$((base + 5))" --receive "$recvs" --users "$off_users" \
    --watchers 100 --ttl-ms 1000 || echo "(offline: not every offline frame arrived)"
  off_json=$(latest offline)

  echo; echo "== ratios, round $r"
  hb=$(jq .heartbeats_per_s "$ingest_json")
  awk -v hb="$hb" -v rb="$rb" -v wk="$wk" 'BEGIN {
    printf "  heartbeats/s %.0f / redis-benchmark %.0f = %.2f (goal >= 0.8)\n", hb, rb, hb / rb
    printf "  heartbeats/s %.0f / wrk /healthz %.0f = %.2f\n", hb, wk, hb / wk }'
  pc=$(jq .bytes_per_conn "$conn_json"); pe=$(jq .bytes_per_conn "$eh_json")
  echo "  receive bytes/conn $pc vs epoll floor $pe (goal <= 1024); connect rate $(jq .connect_rate "$conn_json")/s (goal >= 10000)"
  jq -r '.steps[] | "  fanout \(.target_changes_per_s)/s: \(.deliveries_per_s|floor) deliveries/s p99 \(.p99_ms) ms"' "$fan_json" || true
  jq -r '"  offline lag p99 \(.lag_ms.p99) ms after the deadline (goal <= 500)"' "$off_json" || true
done
echo; echo "log: $log"
