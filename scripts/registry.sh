#!/usr/bin/env bash
# The OCI registry the fleet tests push to and pull from: Debian's `docker-registry` package
# (CNCF distribution v2, 2.8.x), unpacked without installing it (`apt-get download` + `dpkg -x`)
# under ~/.cache/edgenlu/registry (EDGENLU_REGISTRY_DIR). Idempotent: a complete earlier unpack
# (marked `.complete`, binary present and runnable) is reused. Prints the binary's path; the
# tests find it through EDGENLU_REGISTRY_BIN, else at that path.
set -euo pipefail
dir="${EDGENLU_REGISTRY_DIR:-$HOME/.cache/edgenlu/registry}"
root="$dir/debian"
bin="$root/usr/bin/docker-registry"

if [ -f "$root/.complete" ] && [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    echo "$bin"
    exit 0
fi

command -v apt-get >/dev/null || { echo "error: apt-get is needed to fetch docker-registry" >&2; exit 1; }
command -v dpkg >/dev/null || { echo "error: dpkg is needed to unpack docker-registry" >&2; exit 1; }
work="$(mktemp -d "${TMPDIR:-/tmp}/edgenlu-registry.XXXXXX")"
trap 'rm -rf "$work"' EXIT
(
    cd "$work"
    # A machine that never ran `apt-get update` has no package lists: update once and retry.
    if ! apt-get download docker-registry >&2; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update >&2
        else
            echo "error: apt-get download docker-registry failed; run apt-get update" >&2
            exit 1
        fi
        apt-get download docker-registry >&2
    fi
)
deb="$(ls "$work"/docker-registry_*.deb)"
rm -rf "$root.new"
mkdir -p "$root.new"
dpkg -x "$deb" "$root.new"
"$root.new/usr/bin/docker-registry" --version >&2
touch "$root.new/.complete"
rm -rf "$root"
mv "$root.new" "$root"
echo "$bin"
