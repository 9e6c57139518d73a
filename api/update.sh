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
for crate in keel keel-axum; do
  RUSTC_BOOTSTRAP=1 cargo rustdoc --quiet -p "$crate" --all-features --lib -- \
    -Z unstable-options --output-format json
  python3 api/surface.py "$target/doc/${crate//-/_}.json" > "api/$crate.txt"
  echo "api/$crate.txt: $(wc -l < "api/$crate.txt") items"
done
