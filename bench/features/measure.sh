#!/usr/bin/env bash
# What keel's cargo features save a user: the clean release build time and
# the binary size of a minimal application (bench/features/app: the
# quickstart, one SQLite resource, no Redis), with keel's default features
# and with `sqlite` alone.
#
#   bash bench/features/measure.sh            # both, once each
#   ROUNDS=2 bash bench/features/measure.sh
#
# Each build starts from an empty target directory (dependencies compiled
# from scratch, the crates' sources already downloaded), on all cores.
set -euo pipefail
cd "$(dirname "$0")/app"
rounds=${ROUNDS:-1}
cargo fetch --quiet
printf '%-8s %-6s %10s %12s %12s %6s\n' set round "build (s)" "binary (B)" "stripped (B)" crates
for round in $(seq 1 "$rounds"); do
  for set in minimal default; do
    target=$(mktemp -d)
    flags=()
    [ "$set" = default ] && flags=(--features full)
    start=$(date +%s.%N)
    CARGO_TARGET_DIR="$target" cargo build --quiet --release "${flags[@]}"
    end=$(date +%s.%N)
    bin="$target/release/minimal"
    strip -o "$target/stripped" "$bin"
    crates=$(cargo tree --quiet -e normal,build --prefix none -f '{p}' "${flags[@]}" | sed 's/ (\*)//' | sort -u | wc -l)
    printf '%-8s %-6s %10.1f %12d %12d %6d\n' "$set" "$round" "$(echo "$end - $start" | bc)" \
      "$(stat -c %s "$bin")" "$(stat -c %s "$target/stripped")" "$crates"
    rm -rf "$target"
  done
done
