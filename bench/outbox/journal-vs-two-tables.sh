#!/usr/bin/env bash
# One row or two: the PostgreSQL cost of a one-statement PATCH that writes
# its audit entry only (outbox off), its audit entry and its outbox row (two
# tables, what Keel does), or one row of a journal table serving both.
#
#   bench/outbox/journal-vs-two-tables.sh [DATABASE]
#
# DATABASE (default shop_outbox_bench, PostgreSQL on 127.0.0.1, user
# postgres) is made afresh: the shop's schema (`shop migrate`) and 100,000
# products (`shop seed`), with the release build of the shop
# ($CARGO_TARGET_DIR/release/shop, default target/release/shop). pgbench,
# 8 clients, 2 threads, prepared statements, 15 s per run, the three
# scripts in turn, three rounds; prints each run's transactions per second.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DB=${1:-shop_outbox_bench}
SHOP=${SHOP_BIN:-${CARGO_TARGET_DIR:-$HERE/../../target}/release/shop}
psql -h 127.0.0.1 -U postgres -Atqc "DROP DATABASE IF EXISTS $DB" >/dev/null
psql -h 127.0.0.1 -U postgres -Atqc "CREATE DATABASE $DB" >/dev/null
URL=postgres://postgres@127.0.0.1:5432/$DB
DATABASE_URL=$URL RUST_LOG=warn "$SHOP" seed --products 100000
psql -h 127.0.0.1 -U postgres -d "$DB" -q -f "$HERE/journal.ddl.sql"
psql -h 127.0.0.1 -U postgres -d "$DB" -q -c "VACUUM ANALYZE"
for round in 1 2 3; do
  for script in audit-only audit-and-outbox journal; do
    tps=$(pgbench -h 127.0.0.1 -U postgres -n -M prepared -c 8 -j 2 -T 15 -f "$HERE/$script.sql" "$DB" 2>&1 |
      awk '/^tps/{print $3; exit}')
    echo "round $round $script: $tps tps"
  done
done
