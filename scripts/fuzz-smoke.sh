#!/usr/bin/env bash
# A short run of every fuzz target (default 30 s each), for CI; see fuzz/README.md.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-30}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$repo/fuzz"
for target in $(cargo +nightly fuzz list); do
    mkdir -p "$work/$target"
    log="$work/$target.log"
    if ! cargo +nightly fuzz run -O "$target" "$work/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz target $target failed" >&2
        exit 1
    fi
    echo "$target: $(grep -E '^Done' "$log" || tail -n 1 "$log")"
done
