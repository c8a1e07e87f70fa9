#!/usr/bin/env bash
# Release builds: the `edgenlu` binary for x86-64 and aarch64 (the `dist` profile: fat LTO, one
# codegen unit, stripped, size-optimized except the kernels, the forward passes and the
# runtime's host calls; the components embedded), a Debian package of each with the systemd
# units of `serve` and `agent`, their SHA-256 sums, and a release manifest signed by the
# vendor's key (`edgenlu release verify` checks it). Then checks what it made: the manifest
# verifies, and each binary copied alone to an empty directory runs the SNIPS demo (the
# aarch64 one under qemu-user, on its NEON kernels).
#
# Usage: scripts/release.sh [--key VENDOR.key] [--out DIR] [--no-check]
#   --key  the vendor's secret key (`edgenlu keygen`); without it a throwaway key is made in
#          DIR/keys and the release is signed with that (fine for a trial, not for devices)
#   --out  where the release goes (default target/release-dist)
# Needs what scripts/arm-check.sh needs (it installs the Debian cross toolchain as root).
source "$(dirname "$0")/common.sh"
key="" out="$repo/target/release-dist" check=1
while [ $# -gt 0 ]; do
    case "$1" in
        --key) key="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --no-check) check=0; shift ;;
        -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml")"
commit="$(git -C "$repo" rev-parse --short=12 HEAD)"
git -C "$repo" diff --quiet HEAD || commit="$commit-dirty"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
SECONDS=0

step "guest toolchain (wasm32-unknown-unknown)"
"$repo/scripts/wasm-toolchain.sh" >/dev/null

step "x86-64 (profile dist)"
cargo build --profile dist --locked -p edgenlu-cli --manifest-path "$repo/Cargo.toml"
x86_bin="$repo/target/dist/edgenlu"
x86_secs=$SECONDS

step "aarch64 (profile dist, cross-built as scripts/arm-check.sh does)"
arm_bin="$(
    source "$repo/scripts/arm-env.sh"
    cargo build --profile dist --locked -p edgenlu-cli --manifest-path "$repo/Cargo.toml" \
        --target "$arm_target" "${arm_build_std[@]}" >&2
    echo "$CARGO_TARGET_DIR/$arm_target/dist/edgenlu"
)"
arm_secs=$((SECONDS - x86_secs))

step "files: binaries, Debian packages, SHA256SUMS"
rm -f "$out"/edgenlu-* "$out"/edgenlu_*.deb "$out/SHA256SUMS" "$out/release.json"
cp "$x86_bin" "$out/edgenlu-$version-x86_64-linux"
cp "$arm_bin" "$out/edgenlu-$version-aarch64-linux"
"$repo/scripts/package-deb.sh" "$x86_bin" amd64 "$version" "$out" >/dev/null
"$repo/scripts/package-deb.sh" "$arm_bin" arm64 "$version" "$out" >/dev/null
files=("$out/edgenlu-$version-x86_64-linux" "$out/edgenlu-$version-aarch64-linux"
    "$out/edgenlu_${version}_amd64.deb" "$out/edgenlu_${version}_arm64.deb")
(cd "$out" && sha256sum "${files[@]##*/}" > SHA256SUMS)

step "release manifest, signed"
if [ -z "$key" ]; then
    mkdir -p "$out/keys"
    [ -f "$out/keys/release-trial.key" ] || "$x86_bin" keygen release-trial --dir "$out/keys" >/dev/null
    key="$out/keys/release-trial.key"
    echo "note: no --key: signed with the throwaway key $key (a trial release, not for devices)" >&2
fi
"$x86_bin" release sign --key "$key" --version "$version" --commit "$commit" \
    -o "$out/release.json" "${files[@]}" >/dev/null
"$x86_bin" release verify "$out/release.json" --key "${key%.key}.pub"

if [ "$check" = 1 ]; then
    "$repo/scripts/release-check.sh" "$out/edgenlu-$version-x86_64-linux" "$out/edgenlu-$version-aarch64-linux"
fi

step "sizes (goal: each binary at most 20 MB)"
for f in "${files[@]}"; do
    stat -c '%s %n' "$f" | awk '{ n = split($2, p, "/"); printf "%-40s %6.1f MB  (%d bytes)\n", p[n], $1 / 1e6, $1 }'
done
echo "built in ${x86_secs} s (x86-64) and ${arm_secs} s (aarch64); release in $out"
