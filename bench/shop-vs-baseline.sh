#!/usr/bin/env bash
# The shop beside the hand-written axum + sea-orm + redis baseline of the
# shared benchmark harness, in the same run (its compare.sh: interleaved
# rounds, ratios within a round).
#
#   bench/shop-vs-baseline.sh                 # ROUNDS=3 DURATION=10s
#   ROUNDS=1 DURATION=5s bench/shop-vs-baseline.sh
#
# BENCH_DIR points at the harness (default ../shared/bench beside the
# repository). The shop gets databases of its own: PostgreSQL `shop_bench`
# (owned by the harness's `bench` role) and an SQLite file under the
# harness's run/, migrated and loaded with `shop seed --products 100000`.
# compare.sh reseeds the baseline's tables before every scenario; its
# RESEED_HOOK does the same to the shop's (products and audit rows emptied,
# 100,000 products written again), so every server starts each scenario
# from the same fresh rows. Servers measured:
#   axum-pg        the baseline, no cache
#   axum-pg-audit  the baseline writing an audit row in the same statement
#                  (AUDIT=1): the equal-work comparison for PATCH and POST
#   axum-pg-redis  the baseline with its Redis cache-aside on GET by id
#   shop-pg        the shop with reads not cached (KEEL_CACHE=off): GET by id,
#                  list, count, PATCH, POST through the whole service
#   shop-pg-redis  the shop as it ships: in-process + Redis cache
#   axum-sqlite / shop-sqlite  the same pair on SQLite (GET, PATCH, POST;
#                  reported, no target), the shop with KEEL_CACHE=off
# Both shop servers run with RUST_LOG=warn (no per-operation log line; the
# baseline logs nothing) and a pool of 16 connections, as the baseline.
# Every server is a release build with the system allocator.
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
mkdir -p "$BENCH_DIR/run"
SHOP_SQLITE_FILE=$BENCH_DIR/run/shop-bench.sqlite
rm -f "$SHOP_SQLITE_FILE" "$SHOP_SQLITE_FILE-wal" "$SHOP_SQLITE_FILE-shm"
SHOP_SQLITE="sqlite://$SHOP_SQLITE_FILE?mode=rwc"
echo "# migrating the shop's databases" >&2
DATABASE_URL=$SHOP_DB RUST_LOG=warn "$SHOP_BIN" migrate >&2
DATABASE_URL=$SHOP_SQLITE RUST_LOG=warn "$SHOP_BIN" migrate >&2

# Run by compare.sh after each reseed of the baseline (and once before the
# servers start): the shop's tables emptied and 100,000 products written.
HOOK=$BENCH_DIR/run/shop-reseed.sh
cat > "$HOOK" <<HOOK
#!/usr/bin/env bash
set -euo pipefail
psql "$SHOP_DB" -XAtqc "TRUNCATE products, keel_audit RESTART IDENTITY CASCADE"
DATABASE_URL="$SHOP_DB" RUST_LOG=warn "$SHOP_BIN" seed --products 100000
# As the harness's seed.sh leaves the baseline's table: vacuumed (its
# visibility map set, so counts can read an index alone) and analysed.
psql "$SHOP_DB" -XAtqc "VACUUM ANALYZE products"
python3 - "$SHOP_SQLITE_FILE" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
db.execute("PRAGMA foreign_keys = OFF")
for table in ("order_lines", "orders", "products", "keel_audit"):
    db.execute(f"DELETE FROM {table}")
if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
    db.execute("DELETE FROM sqlite_sequence WHERE name IN ('order_lines', 'orders', 'products', 'keel_audit')")
db.commit()
PY
DATABASE_URL="$SHOP_SQLITE" RUST_LOG=warn "$SHOP_BIN" seed --products 100000
HOOK
chmod +x "$HOOK"
export RESEED_HOOK="$HOOK"

SERVERS=$BENCH_DIR/run/shop-servers.tsv
common="RUST_LOG=warn KEEL_DB_MAX_CONNECTIONS=16 KEEL_PAGE_TOKEN_SECRET=bench-secret-bench-secret-bench-secret"
{
  printf 'axum-pg\tpg\t0\tget,list,count,patch,create\texec target/release/axum-seaorm-peer\n'
  printf 'axum-pg-audit\tpg\t0\tpatch,create\tAUDIT=1 exec target/release/axum-seaorm-peer\n'
  printf 'axum-pg-redis\tpg\t1\tget_cached\texec target/release/axum-seaorm-peer\n'
  printf 'shop-pg\tpg\t0\tget,list,count,patch,create\tDATABASE_URL=%s %s KEEL_CACHE=off exec %s\n' "$SHOP_DB" "$common" "$SHOP_BIN"
  printf 'shop-pg-redis\tpg\t1\tget_cached,count\tDATABASE_URL=%s %s exec %s\n' "$SHOP_DB" "$common" "$SHOP_BIN"
  printf 'axum-sqlite\tsqlite\t0\tget,patch,create\texec target/release/axum-seaorm-peer\n'
  # db "pg" only so that compare.sh leaves the file alone: the shop reads
  # its own SQLite file, reseeded by the hook.
  printf 'shop-sqlite\tpg\t0\tget,patch,create\tDATABASE_URL=%s %s KEEL_CACHE=off exec %s\n' "$SHOP_SQLITE" "$common" "$SHOP_BIN"
} > "$SERVERS"

OUT=${OUT:-$BENCH_DIR/results/shop-$(date -u +%Y%m%dT%H%M%SZ)}
export OUT ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10s}
"$BENCH_DIR/compare.sh" "$SERVERS"
echo "# results in $OUT" >&2
