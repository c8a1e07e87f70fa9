# Sourced by scripts/arm-kernels.sh and scripts/arm-check.sh: everything cross-building for
# aarch64-unknown-linux-gnu and running the result under qemu-aarch64 needs.
#
# Toolchain (DESIGN.md, "Toolchain facts"): Debian's rustc-web with its library source, as
# scripts/wasm-toolchain.sh provisions it, builds std for aarch64 with -Zbuild-std; Debian's
# gcc-aarch64-linux-gnu links, libc6-dev-arm64-cross supplies the target libc, and
# qemu-user-static runs the binaries. Sets: repo, arm_target, arm_build_std (cargo arguments),
# arm_run (a command prefix running an aarch64 binary), CARGO_TARGET_DIR (target/arm).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
arm_target=aarch64-unknown-linux-gnu

need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "error: install ${need[*]} (Debian packages) to cross-build for aarch64" >&2
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
    arm_build_std=()
else
    arm_build_std=(-Zbuild-std=std,panic_unwind,test)  # `test` for the kernels crate's tests
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
arm_run=(qemu-aarch64-static -L /usr/aarch64-linux-gnu)
# A target directory of its own: a different rustc must not invalidate the host build's.
export CARGO_TARGET_DIR="$repo/target/arm"
