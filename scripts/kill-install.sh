#!/usr/bin/env bash
# kill -9 at random instants of `install`, many times (the test suite does 200 per run):
# afterwards the skill store must load the old or the new version, never a mix or nothing.
# Then kills during a checked install whose health check fails (the suite does 40): every
# load afterwards must end on the old version.
# Usage: scripts/kill-install.sh [RUNS]   (default 1000; the checked kills get RUNS/5)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-${EDGENLU_KILL_RUNS:-1000}}"
EDGENLU_KILL_RUNS="$runs" EDGENLU_KILL_CHECKED_RUNS="$((runs / 5))" \
    cargo test --release --locked --manifest-path "$repo/Cargo.toml" -p edgenlu-tests --test trust \
    -- kill_9 --nocapture
