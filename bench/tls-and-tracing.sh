#!/usr/bin/env bash
# What TLS (to PostgreSQL and Redis) and OpenTelemetry tracing (at 100% and
# 1% sampling) cost the shop, against the same build without them, in one
# run of the shared harness's compare.sh (interleaved rounds, ratios within
# a round): GET by id and PATCH with reads not cached, cached GET with
# Redis. A shop built from REVISION_BEFORE_TRACING (the commit before
# tracing was added), with tracing not configured, is measured beside them:
# what Keel's spans cost when nothing collects them.
#
#   bench/tls-and-tracing.sh                 # ROUNDS=3 DURATION=10s
#   ROUNDS=1 DURATION=5s bench/tls-and-tracing.sh
#
# Servers (all release builds, RUST_LOG=warn, a pool of 16):
#   shop-plain          sslmode=disable to PostgreSQL, no tracing
#   shop-before-tracing the same, built from REVISION_BEFORE_TRACING
#   shop-tls            sslmode=verify-ca to PostgreSQL (TLS 1.3, its
#                       certificate verified), and for get_cached rediss://
#                       to a TLS-only redis-server started here (--tls-port,
#                       --port 0, a test CA)
#   shop-otel-100       no TLS; traces to an OTLP/HTTP sink started here,
#                       OTEL_TRACES_SAMPLER=always_on
#   shop-otel-1         the same with traceidratio 0.01
# each twice: KEEL_CACHE=off for get and patch, with Redis for get_cached.
# BENCH_DIR points at the harness (default ../shared/bench).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$ROOT/../shared/bench}
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
REVISION_BEFORE_TRACING=${REVISION_BEFORE_TRACING:-95b7318}
PG=postgres://bench:bench@127.0.0.1:5432/shop_bench
TLS_REDIS_PORT=${TLS_REDIS_PORT:-16390}
SINK_PORT=${SINK_PORT:-14318}
RUN=$BENCH_DIR/run/tls-tracing
mkdir -p "$RUN"

echo "# building the shop before tracing ($REVISION_BEFORE_TRACING) and now (release)" >&2
before=$RUN/src-before
if [ ! -x "$RUN/shop-before-tracing" ]; then
  rm -rf "$before"
  git -C "$ROOT" worktree add --force --detach "$before" "$REVISION_BEFORE_TRACING" >&2
  (cd "$before" && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet -p shop)
  cp "$TARGET/release/shop" "$RUN/shop-before-tracing"
  git -C "$ROOT" worktree remove --force "$before"
fi
(cd "$ROOT" && cargo build --release --quiet -p shop)
SHOP=$TARGET/release/shop

"$BENCH_DIR/services.sh" >&2
su postgres -c "psql -XAtqc \"select 1 from pg_database where datname='shop_bench'\"" | grep -q 1 &&
  su postgres -c "dropdb shop_bench"
su postgres -c "createdb -O bench shop_bench"
DATABASE_URL="$PG?sslmode=disable" RUST_LOG=warn "$SHOP" migrate >&2

# A TLS-only redis-server with a CA of its own.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench-ca" \
  -keyout "$RUN/ca.key" -out "$RUN/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$RUN/redis.key" -out "$RUN/redis.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$RUN/san.ext"
openssl x509 -req -in "$RUN/redis.csr" -CA "$RUN/ca.pem" -CAkey "$RUN/ca.key" \
  -CAcreateserial -days 2 -extfile "$RUN/san.ext" -out "$RUN/redis.pem" 2>/dev/null
redis-server --port 0 --tls-port "$TLS_REDIS_PORT" --bind 127.0.0.1 \
  --tls-cert-file "$RUN/redis.pem" --tls-key-file "$RUN/redis.key" \
  --tls-ca-cert-file "$RUN/ca.pem" --tls-auth-clients no \
  --save "" --appendonly no --daemonize yes --pidfile "$RUN/redis-tls.pid" \
  --logfile "$RUN/redis-tls.log"
tls_cli() { redis-cli --tls --cacert "$RUN/ca.pem" -h 127.0.0.1 -p "$TLS_REDIS_PORT" "$@"; }
for _ in $(seq 50); do tls_cli ping >/dev/null 2>&1 && break; sleep 0.1; done

# An OTLP/HTTP sink: takes every export, counts requests and bytes.
python3 - "$SINK_PORT" "$RUN/sink.txt" <<'PY' &
import http.server, sys, threading
port, out = int(sys.argv[1]), sys.argv[2]
lock, seen = threading.Lock(), {"requests": 0, "bytes": 0}
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        self.rfile.read(n)
        with lock:
            seen["requests"] += 1
            seen["bytes"] += n
            open(out, "w").write(f"{seen['requests']} exports, {seen['bytes']} bytes\n")
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()
PY
sink_pid=$!
cleanup() {
  kill "$sink_pid" 2>/dev/null || true
  [ -f "$RUN/redis-tls.pid" ] && kill "$(cat "$RUN/redis-tls.pid")" 2>/dev/null || true
}
trap cleanup EXIT

HOOK=$RUN/reseed.sh
cat > "$HOOK" <<HOOK
#!/usr/bin/env bash
set -euo pipefail
psql "$PG" -XAtqc "TRUNCATE products, keel_audit, keel_outbox RESTART IDENTITY CASCADE"
DATABASE_URL="$PG?sslmode=disable" RUST_LOG=warn "$SHOP" seed --products 100000
psql "$PG" -XAtqc "VACUUM ANALYZE products"
redis-cli --tls --cacert "$RUN/ca.pem" -h 127.0.0.1 -p $TLS_REDIS_PORT FLUSHALL >/dev/null
HOOK
chmod +x "$HOOK"
export RESEED_HOOK="$HOOK"

common="RUST_LOG=warn KEEL_DB_MAX_CONNECTIONS=16 KEEL_PAGE_TOKEN_SECRET=bench-secret-bench-secret-bench-secret OTEL_SERVICE_NAME=shop-bench"
plain="DATABASE_URL=$PG?sslmode=disable"
# PostgreSQL's own (self-signed) certificate as the authority of its URL;
# the test CA for Redis (KEEL_TLS_CA_FILE: connections whose URL names none).
tls_db="DATABASE_URL='$PG?sslmode=verify-ca&sslrootcert=/etc/ssl/certs/ssl-cert-snakeoil.pem'"
tls_redis="REDIS_URL=rediss://127.0.0.1:$TLS_REDIS_PORT KEEL_TLS_CA_FILE=$RUN/ca.pem"
otel="OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SINK_PORT"
SERVERS=$RUN/servers.tsv
{
  for cache in off on; do
    if [ $cache = off ]; then
      suffix= redis=0 scen=get,patch nocache="KEEL_CACHE=off" tls="$tls_db"
    else
      suffix=-redis redis=1 scen=get_cached nocache= tls="$tls_db $tls_redis"
    fi
    printf 'shop-plain%s\tpg\t%s\t%s\t%s %s %s exec %s\n' "$suffix" $redis $scen "$plain" "$common" "$nocache" "$SHOP"
    printf 'shop-before-tracing%s\tpg\t%s\t%s\t%s %s %s exec %s\n' "$suffix" $redis $scen "$plain" "$common" "$nocache" "$RUN/shop-before-tracing"
    printf 'shop-tls%s\tpg\t%s\t%s\t%s %s %s exec %s\n' "$suffix" $redis $scen "$common" "$nocache" "$tls" "$SHOP"
    printf 'shop-otel-100%s\tpg\t%s\t%s\t%s %s %s %s OTEL_TRACES_SAMPLER=always_on exec %s\n' "$suffix" $redis $scen "$plain" "$common" "$nocache" "$otel" "$SHOP"
    printf 'shop-otel-1%s\tpg\t%s\t%s\t%s %s %s %s OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01 exec %s\n' "$suffix" $redis $scen "$plain" "$common" "$nocache" "$otel" "$SHOP"
  done
} > "$SERVERS"

OUT=${OUT:-$BENCH_DIR/results/tls-tracing-$(date -u +%Y%m%dT%H%M%SZ)}
export OUT ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10s} ORDER=${ORDER:-get get_cached patch}
"$BENCH_DIR/compare.sh" "$SERVERS"
cp "$RUN/sink.txt" "$OUT/otlp-sink.txt" 2>/dev/null || true
echo "# results in $OUT (the OTLP sink received: $(cat "$RUN/sink.txt" 2>/dev/null))" >&2
