#!/usr/bin/env bash
# Build time of a crate with 30 entities: plain sea-orm vs #[derive(Service, Audit)],
# debug and release, median of 3 rebuilds of the crate alone (dependencies
# built beforehand), and the lines the derives generate per entity.
#
#   bash bench/derive-build/run.sh [N]        (from the repository root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
n=${1:-30}
work=${WORK:-$(mktemp -d)}
export CARGO_TARGET_DIR="$work/target"
python3 "$here/gen.py" "$work/crates" "$root/crates/keel" "$n"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for profile in dev release; do
  flag=$([ "$profile" = release ] && echo --release || true)
  for kind in plain derived; do
    dir="$work/crates/$kind"
    cargo build -q $flag --manifest-path "$dir/Cargo.toml" # dependencies and a first build
    times=()
    for _ in 1 2 3; do
      touch "$dir/src/lib.rs"
      start=$(date +%s.%N)
      cargo build -q $flag --manifest-path "$dir/Cargo.toml"
      end=$(date +%s.%N)
      times+=("$(echo "$end - $start" | bc)")
    done
    m=$(printf '%s\n' "${times[@]}" | median)
    printf '%s\t%s\t%s\t%s\n' "$profile" "$kind" "$m" "${times[*]}"
  done
done

# Generated lines: the expanded source of both crates (rustc's -Zunpretty,
# allowed on the stable compiler by RUSTC_BOOTSTRAP for this one command).
for kind in plain derived; do
  dir="$work/crates/$kind"
  RUSTC_BOOTSTRAP=1 cargo rustc -q --manifest-path "$dir/Cargo.toml" --lib -- -Zunpretty=expanded > "$work/$kind.expanded.rs"
  printf 'expanded\t%s\t%s lines\n' "$kind" "$(grep -cv '^\s*$' "$work/$kind.expanded.rs")"
done
echo "work directory: $work"
