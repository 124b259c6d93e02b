#!/bin/bash
# The cluster benchmark of BENCHMARKS.md: NODES `switchboard serve` processes on one fresh
# PostgreSQL schema (and Redis for the shared limits), then `switchboard loadtest` against every
# node at once, then each process's CPU seconds (from /proc) and the rows committed.
#
#   benches/cluster.sh NODES [--mock] LOADTEST-ARGS...
#   benches/cluster.sh 3 --calls 0 --sms-rate 2000 --duration 20      # SMS, local model
#   benches/cluster.sh 3 --mock --calls 300 --ramp 10 --duration 30   # calls, emulator process
#
# B (default target/release/switchboard), TEST_DATABASE_URL (default this machine kind's
# postgres://postgres@127.0.0.1:5432/test) and BENCH_REDIS (default redis://127.0.0.1:6379;
# empty = no Redis, each node limits alone) can be set. Needs psql, redis-cli, curl and bc.
# Each node's PUBLIC_URL is its own address, so streams stay on the node that answered.
set -u
B=${B:-target/release/switchboard}
N=$1; shift
MOCK=0; if [ "${1:-}" = "--mock" ]; then MOCK=1; shift; fi
DB=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
W=$(mktemp -d); mkdir -p "$W/config"
printf '[limits]\nper_ip_per_second = 1000000\nmax_conversations = 200000\nmax_calls = 5000\n' \
  > "$W/config/switchboard.toml"
SCHEMA=sb_bench_$$
export PGOPTIONS='-c client_min_messages=warning'
psql "$DB" -qc "CREATE SCHEMA $SCHEMA" || exit 1
export DATABASE_URL="$DB?options=-c%20search_path%3D$SCHEMA"
export REDIS_URL=${BENCH_REDIS-redis://127.0.0.1:6379} SWITCHBOARD_REDIS_PREFIX=bench:$SCHEMA RUST_LOG=warn
[ -z "$REDIS_URL" ] && unset REDIS_URL
unset TWILIO_AUTH_TOKEN OPENAI_API_KEY SWITCHBOARD_CONFIG
pids=(); targets=()
if [ $MOCK = 1 ]; then
  $B mock-openai --bind 127.0.0.1:9190 > "$W/mock.log" 2>&1 & MOCKPID=$!
  export OPENAI_BASE_URL=http://127.0.0.1:9190/v1 OPENAI_API_KEY=sk-bench
fi
for i in $(seq 1 "$N"); do
  port=$((8190 + i))
  SWITCHBOARD_NODE_ID=n$i PUBLIC_URL=http://127.0.0.1:$port $B serve --bind 127.0.0.1:$port \
    --config "$W/config/switchboard.toml" --data-dir "$W/n$i" > "$W/n$i.log" 2>&1 &
  pids+=($!); targets+=("http://127.0.0.1:$port")
done
for t in "${targets[@]}"; do
  for _ in $(seq 1 300); do curl -sf "$t/health" > /dev/null && break; sleep 0.1; done
done
cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2> /dev/null || echo 0; }
pgcpu() { local s=0; for p in $(pgrep -u postgres); do s=$((s + $(cpu "$p"))); done; echo $s; }
tck=$(getconf CLK_TCK)
secs() { echo "scale=2; $1 / $tck" | bc; }
declare -A before
for p in "${pids[@]}"; do before[$p]=$(cpu "$p"); done
redis=$(pgrep -x redis-server | head -1)
# The database's transactions and WAL flushes (the whole server's counters: other users of
# the same PostgreSQL during the run are counted too).
pgstat() {
  psql "$DB" -Atc "SELECT (SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database),
                          (SELECT wal_sync FROM pg_stat_wal), (SELECT wal_write FROM pg_stat_wal)" |
    tr '|' ' '
}
read -r tx0 sync0 write0 <<< "$(pgstat)"
pg0=$(pgcpu); rd0=$(cpu "${redis:-0}"); [ $MOCK = 1 ] && mk0=$(cpu $MOCKPID)
$B loadtest --target "$(IFS=,; echo "${targets[*]}")" "$@"
for i in "${!pids[@]}"; do
  p=${pids[$i]}
  echo "node n$((i + 1)): CPU $(secs $(($(cpu "$p") - before[$p]))) s, RSS $(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$p/status") MiB"
done
echo "postgres: CPU $(secs $(($(pgcpu) - pg0))) s (every backend of the server)"
read -r tx1 sync1 write1 <<< "$(pgstat)"
echo "postgres: $((tx1 - tx0)) transactions, $((sync1 - sync0)) WAL flushes, $((write1 - write0)) WAL writes (the server's counters)"
[ -n "$redis" ] && echo "redis: CPU $(secs $(($(cpu "$redis") - rd0))) s"
[ $MOCK = 1 ] && echo "emulator: CPU $(secs $(($(cpu $MOCKPID) - mk0))) s"
echo "turns committed: $(psql "$DB" -Atc "SELECT count(*) FROM $SCHEMA.turns")"
for p in "${pids[@]}"; do kill "$p"; done
[ $MOCK = 1 ] && kill $MOCKPID
wait 2> /dev/null
psql "$DB" -qc "DROP SCHEMA $SCHEMA CASCADE"
redis-cli --scan --pattern "bench:$SCHEMA:*" | xargs -r redis-cli del > /dev/null
rm -rf "$W"
