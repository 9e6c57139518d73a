#!/usr/bin/env bash
# Regenerates api/*.txt, the public surface of keel and keel-axum (every
# feature on), from rustdoc's JSON output. CI regenerates them and fails
# when they differ from what is committed, so a change to the public API
# shows in review as a change to these files: run this script and commit
# its output with the change.
#
# rustdoc's JSON output is unstable; RUSTC_BOOTSTRAP lets the one stable
# toolchain CI has emit it (for this listing only, never for a build).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
# package:library (the core is the package keel-rs, its library keel).
for crate in keel-rs:keel keel-axum:keel_axum; do
  package=${crate%%:*} lib=${crate##*:}
  RUSTC_BOOTSTRAP=1 cargo rustdoc --quiet -p "$package" --all-features --lib -- \
    -Z unstable-options --output-format json
  python3 api/surface.py "$target/doc/$lib.json" > "api/$package.txt"
  echo "api/$package.txt: $(wc -l < "api/$package.txt") items"
done
