#!/usr/bin/env bash
# kill -9 at random instants of `install`, many times (the test suite does 200 per run):
# afterwards the skill store must load the old or the new version, never a mix or nothing.
# Usage: scripts/kill-install.sh [RUNS]   (default 1000; EDGENLU_KILL_RUNS works too)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-${EDGENLU_KILL_RUNS:-1000}}"
EDGENLU_KILL_RUNS="$runs" cargo test --release --locked --manifest-path "$repo/Cargo.toml" \
    -p edgenlu-tests --test trust -- --exact kill_9_at_any_instant_of_install_leaves_old_or_new --nocapture
