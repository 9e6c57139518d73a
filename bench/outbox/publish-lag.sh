#!/usr/bin/env bash
# How long after its commit an event is acknowledged by NATS JetStream: the
# shop (release build) on PostgreSQL with NATS_URL, PATCHes sent one at a
# time (500) and then by wrk with 2 connections (10 s); the relay's
# keel_outbox_publish_lag_seconds histogram read from /metrics after each.
#
#   bench/outbox/publish-lag.sh [DATABASE]
#
# DATABASE: a PostgreSQL database the shop has seeded (default
# shop_outbox_cost, which bench/outbox/write-cost.sh leaves); its outbox
# is emptied first.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DB=${1:-shop_outbox_cost}
SHOP=${SHOP_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/shop}
BENCH_DIR=$(cd "${BENCH_DIR:-$ROOT/../shared/bench}" && pwd)
port=18990
# Start from an empty outbox: an older backlog would be measured too.
psql -h 127.0.0.1 -U postgres -d "$DB" -qc "TRUNCATE keel_outbox"
(export BIND=127.0.0.1:$port DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB RUST_LOG=warn \
  NATS_URL=${NATS_URL:-nats://127.0.0.1:4222} KEEL_CACHE=off; exec "$SHOP") > /dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/products/1" && break; sleep 0.2; done
lag() { # label
  curl -s "http://127.0.0.1:$port/metrics" | python3 -c '
import sys, re
label = sys.argv[1]
buckets, count, total = [], 0, 0.0
for line in sys.stdin:
    m = re.match(r"keel_outbox_publish_lag_seconds_bucket\{le=\"([^\"]+)\"\} (\S+)", line)
    if m: buckets.append((float("inf") if m[1] == "+Inf" else float(m[1]), float(m[2])))
    elif line.startswith("keel_outbox_publish_lag_seconds_count"): count = float(line.split()[1])
    elif line.startswith("keel_outbox_publish_lag_seconds_sum"): total = float(line.split()[1])
def q(p):
    for le, c in buckets:
        if c >= p * count: return le
print(f"{label}: {int(count)} events, mean {total / count * 1000:.2f} ms, p50 <= {q(0.5) * 1000:g} ms, p99 <= {q(0.99) * 1000:g} ms")
' "$1"
}
for i in $(seq 500); do
  curl -s -o /dev/null -X PATCH "http://127.0.0.1:$port/products/$((i % 1000 + 1))" \
    -H 'content-type: application/json' -d "{\"price_cents\": $((RANDOM * 32 + i))}"
done
sleep 1
lag "one at a time (500 PATCHes)"
cd "$BENCH_DIR"
wrk -t1 -c2 -d10s -s wrk/patch.lua "http://127.0.0.1:$port" > /dev/null
sleep 2
lag "one at a time and then wrk -c2 for 10 s (cumulative)"
