#!/usr/bin/env bash
# Cross-builds the kernels crate for aarch64-unknown-linux-gnu and runs its tests under
# qemu-aarch64 with the NEON variant forced (EDGENLU_KERNELS=neon; the `forced_variant_is_active`
# test fails if NEON is not what runs). Idempotent; used by scripts/test.sh.
#
# Toolchain (DESIGN.md, "Toolchain facts"): Debian's rustc-web with its library source, as
# scripts/wasm-toolchain.sh provisions it, builds std for aarch64 with -Zbuild-std; Debian's
# gcc-aarch64-linux-gnu links, libc6-dev-arm64-cross supplies the target libc, and
# qemu-user-static runs the test binaries.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
target=aarch64-unknown-linux-gnu

need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "error: install ${need[*]} (Debian packages) to cross-test the kernels" >&2
        exit 1
    fi
    echo "installing ${need[*]}" >&2
    if ! apt-get install -y --no-install-recommends "${need[@]}" >&2; then
        apt-get update >&2
        apt-get install -y --no-install-recommends "${need[@]}" >&2
    fi
fi

# shellcheck disable=SC1090
source "$("$repo/scripts/wasm-toolchain.sh")"
if [ -z "${RUSTC:-}" ]; then
    # rustup provides the wasm target, so there is no Debian rustc to borrow; use rustup's
    # aarch64 std if it is installed.
    build_std=()
else
    build_std=(-Zbuild-std=std,panic_unwind,test)
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
export EDGENLU_KERNELS=neon
# A target directory of its own: a different rustc must not invalidate the host build's.
export CARGO_TARGET_DIR="$repo/target/arm-kernels"

# Targets are given explicitly: doctests (the default with none) would need Debian's rustdoc
# too, and the crate has none.
run_tests() {
    cargo test --release --locked --manifest-path "$repo/Cargo.toml" -p edgenlu-kernels \
        --target "$target" "${build_std[@]}" "$@"
}
# qemu's default CPU has the dot-product extension: this runs the `sdot` kernels.
echo "== kernels on aarch64 (qemu, NEON with dotprod)" >&2
run_tests --lib --tests "$@"
# A Cortex-A53 has none: the same binaries then take the plain NEON kernels.
echo "== kernels on aarch64 (qemu -cpu cortex-a53, NEON without dotprod)" >&2
QEMU_CPU=cortex-a53 run_tests --test variants --test formats "$@"
