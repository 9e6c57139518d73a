#!/usr/bin/env bash
# The shop beside the hand-written axum + sea-orm + redis baseline of the
# shared benchmark harness, in the same run (its compare.sh: interleaved
# rounds, ratios within a round).
#
#   bench/shop-vs-baseline.sh                 # ROUNDS=3 DURATION=10s
#   ROUNDS=1 DURATION=5s bench/shop-vs-baseline.sh
#
# BENCH_DIR points at the harness (default ../shared/bench beside the
# repository). The shop gets a PostgreSQL database of its own (`shop_bench`,
# owned by the harness's `bench` role), migrated and loaded with
# `shop seed --products 100000`; the baseline uses the harness's `bench`
# database, which compare.sh reseeds. Servers measured:
#   axum-pg        the baseline, no cache
#   axum-pg-redis  the baseline with its Redis cache-aside on GET by id
#   shop-pg        the shop with reads not cached (KEEL_CACHE=off): GET by id,
#                  list, count, PATCH, POST through the whole service
#   shop-pg-redis  the shop as it ships: in-process + Redis cache
# Both shop servers run with RUST_LOG=warn (no per-operation log line; the
# baseline logs nothing) and a pool of 16 connections, as the baseline.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$ROOT/../shared/bench}
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SHOP_DB=${SHOP_DB:-postgres://bench:bench@127.0.0.1:5432/shop_bench}

echo "# building the shop (release) and the baseline" >&2
(cd "$ROOT" && cargo build --release --quiet -p shop)
# The harness builds into its own target/ (its .cargo/config.toml).
(cd "$BENCH_DIR/peers/axum-seaorm" && env -u CARGO_TARGET_DIR cargo build --release --quiet)
SHOP_BIN=$TARGET/release/shop

"$BENCH_DIR/services.sh" >&2
su postgres -c "psql -XAtqc \"select 1 from pg_database where datname='shop_bench'\"" | grep -q 1 &&
  su postgres -c "dropdb shop_bench"
su postgres -c "createdb -O bench shop_bench"
echo "# seeding the shop's database" >&2
DATABASE_URL=$SHOP_DB RUST_LOG=warn "$SHOP_BIN" seed --products 100000 >&2

mkdir -p "$BENCH_DIR/run"
SERVERS=$BENCH_DIR/run/shop-servers.tsv
common="DATABASE_URL=$SHOP_DB RUST_LOG=warn KEEL_DB_MAX_CONNECTIONS=16 KEEL_PAGE_TOKEN_SECRET=bench-secret-bench-secret-bench-secret"
{
  printf 'axum-pg\tpg\t0\tget,list,count,patch,create\texec target/release/axum-seaorm-peer\n'
  printf 'axum-pg-redis\tpg\t1\tget_cached,patch\texec target/release/axum-seaorm-peer\n'
  printf 'shop-pg\tpg\t0\tget,list,count,patch,create\t%s KEEL_CACHE=off exec %s\n' "$common" "$SHOP_BIN"
  printf 'shop-pg-redis\tpg\t1\tget_cached,count,patch\t%s exec %s\n' "$common" "$SHOP_BIN"
} > "$SERVERS"

OUT=${OUT:-$BENCH_DIR/results/shop-$(date -u +%Y%m%dT%H%M%SZ)}
export OUT ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10s}
"$BENCH_DIR/compare.sh" "$SERVERS"
echo "# results in $OUT" >&2
