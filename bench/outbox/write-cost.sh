#!/usr/bin/env bash
# What the outbox costs a write: the shop's PATCH and POST with the outbox
# off (KEEL_EVENTS_SINK=none), feeding the in-process bus (bus), and
# publishing to NATS JetStream (nats, NATS_URL default
# nats://127.0.0.1:4222), CPU per request measured by
# bench/cpu-per-request.sh (server process, PostgreSQL, whole machine).
#
#   bench/outbox/write-cost.sh [DATABASE]
#
# DATABASE (default shop_outbox_cost, PostgreSQL on 127.0.0.1, user
# postgres) is made afresh with 100,000 products by the release shop
# ($SHOP_BIN, default $CARGO_TARGET_DIR/release/shop). BENCH_DIR: the
# shared harness's wrk scripts (default ../shared/bench). Two rounds, the
# modes interleaved.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DB=${1:-shop_outbox_cost}
SHOP=${SHOP_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/shop}
NATS=${NATS_URL:-nats://127.0.0.1:4222}
psql -h 127.0.0.1 -U postgres -Atqc "DROP DATABASE IF EXISTS $DB" >/dev/null
psql -h 127.0.0.1 -U postgres -Atqc "CREATE DATABASE $DB" >/dev/null
URL=postgres://postgres@127.0.0.1:5432/$DB
DATABASE_URL=$URL RUST_LOG=warn "$SHOP" seed --products 100000
psql -h 127.0.0.1 -U postgres -d "$DB" -q -c "VACUUM ANALYZE"
port=18995
for round in 1 2; do
  for scenario in patch create; do
    for mode in none bus nats; do
      port=$((port + 1))
      extra=()
      [ "$mode" = nats ] && extra=(NATS_URL="$NATS")
      "$ROOT/bench/cpu-per-request.sh" "outbox-$mode" "$port" "$scenario" -- \
        env DATABASE_URL="$URL" RUST_LOG=warn KEEL_DB_MAX_CONNECTIONS=16 KEEL_CACHE=off \
        KEEL_EVENTS_SINK="$mode" "${extra[@]}" "$SHOP"
    done
  done
done
psql -h 127.0.0.1 -U postgres -d "$DB" -Atc \
  "SELECT 'outbox rows: ' || count(*) || ', pending: ' || count(*) FILTER (WHERE state = 0) FROM keel_outbox"
