#!/usr/bin/env bash
# CPU time per request of a server and of PostgreSQL, under wrk load.
#
#   bench/cpu-per-request.sh NAME PORT SCENARIO -- COMMAND...
#
# Starts COMMAND with BIND=127.0.0.1:PORT, waits for GET /products/1, runs
# the shared harness's wrk scenario SCENARIO (get, patch, create, ...) for a
# 2 s warm-up and a 10 s measurement (2 threads, 32 connections), and prints
# req/s and, per request served, the CPU time (user + system) of the server
# process, of all processes of the PostgreSQL 15 cluster, and of the whole
# machine. BENCH_DIR points at the harness (default ../shared/bench).
# MAX_ID (optional) narrows the ids the scenario picks from (the harness's
# get_cached uses 10000: the hot set the warm-up brings into the cache).
# Examples (the databases of bench/shop-vs-baseline.sh):
#   bench/cpu-per-request.sh baseline 18991 patch -- env DATABASE_URL=postgres://bench:bench@127.0.0.1:5432/bench ../shared/bench/target/release/axum-seaorm-peer
#   bench/cpu-per-request.sh shop 18992 patch -- env DATABASE_URL=postgres://bench:bench@127.0.0.1:5432/shop_bench RUST_LOG=warn KEEL_DB_MAX_CONNECTIONS=16 KEEL_CACHE=off "$CARGO_TARGET_DIR/release/shop"
set -euo pipefail
[ $# -ge 5 ] && [ "$4" = "--" ] || { sed -n 2,16p "$0" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=$(cd "${BENCH_DIR:-$ROOT/../shared/bench}" && pwd)
name=$1 port=$2 scenario=$3
shift 4
log=$(mktemp)
(export BIND=127.0.0.1:$port; exec "$@") > "$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/products/1" && break
  sleep 0.2
done
cd "$BENCH_DIR"
tick=$(getconf CLK_TCK)
proc_cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_cpu() {
  local sum=0 p
  for p in $(pgrep -f "postgres: 15/main" || true); do sum=$((sum + $(proc_cpu "$p"))); done
  echo "$sum"
}
busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
args=()
[ -n "${MAX_ID:-}" ] && args=(-- "$MAX_ID")
wrk -t2 -c32 -d2s -s "wrk/$scenario.lua" "http://127.0.0.1:$port" "${args[@]}" > /dev/null 2>&1 || true
s0=$(proc_cpu "$pid") p0=$(pg_cpu) b0=$(busy)
out=$(wrk -t2 -c32 -d10s -s "wrk/$scenario.lua" "http://127.0.0.1:$port" "${args[@]}" 2>&1)
s1=$(proc_cpu "$pid") p1=$(pg_cpu) b1=$(busy)
rps=$(awk '/Requests\/sec/{print $2}' <<< "$out")
n=$(awk '/requests in/{print $1}' <<< "$out")
awk -v name="$name" -v sc="$scenario" -v rps="$rps" -v n="$n" -v t="$tick" \
  -v s="$((s1 - s0))" -v p="$((p1 - p0))" -v b="$((b1 - b0))" 'BEGIN {
  printf "%s %s: %.0f req/s; CPU per request: server %.0f us, postgres %.0f us, whole machine %.0f us\n",
    name, sc, rps, s / t / n * 1e6, p / t / n * 1e6, b / t / n * 1e6 }'
