#!/usr/bin/env bash
# Provides a Rust toolchain that can build wasm32-unknown-unknown guests, idempotently.
#
# 1. If the rustup toolchain already has the wasm32-unknown-unknown target, use it.
# 2. Otherwise (no internet for rustup, as on our build machines) unpack Debian's rustc-web 1.96
#    with its library source into a cache folder outside git, and build std with -Zbuild-std.
#
# Writes "$EDGENLU_WASM_TOOLCHAIN/env.sh"; `source` it to get WASM_CARGO_ARGS and the env vars
# (RUSTC, RUSTC_BOOTSTRAP, LD_LIBRARY_PATH, linker) a guest build needs. Prints the env file's path.
set -euo pipefail

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}"
dir="${EDGENLU_WASM_TOOLCHAIN:-$cache_root/edgenlu/wasm-toolchain}"
env_file="$dir/env.sh"
mkdir -p "$dir"

write_env() { # $1: contents
    printf '%s\n' "$1" >"$env_file.tmp"
    mv "$env_file.tmp" "$env_file"
}

if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    write_env '# rustup provides wasm32-unknown-unknown
export WASM_CARGO_ARGS=""'
    echo "$env_file"
    exit 0
fi

root="$dir/debian"
version=1.96.0
if [ ! -x "$root/usr/bin/rustc" ] || [ ! -e "$root/.complete" ]; then
    if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
        echo "error: wasm32-unknown-unknown is not installed for rustup, and this is not a Debian" >&2
        echo "system where rustc-web can be fetched. Install the target with" >&2
        echo "  rustup target add wasm32-unknown-unknown" >&2
        exit 1
    fi
    echo "provisioning Debian rustc-web $version for wasm32 guests into $root" >&2
    debs="$dir/debs"
    rm -rf "$root" "$debs"
    mkdir -p "$root" "$debs"
    pkgs=(rustc-web libstd-rust-web-dev libstd-rust-web-1.96 rust-web-src libllvm22 lld-22)
    if ! (cd "$debs" && apt-get download "${pkgs[@]}" >&2); then
        # A fresh machine may have no package lists yet.
        if [ "$(id -u)" = 0 ]; then apt-get update >&2; fi
        if ! (cd "$debs" && apt-get download "${pkgs[@]}" >&2); then
            echo "error: could not download ${pkgs[*]} with apt-get, and rustup has no" >&2
            echo "wasm32-unknown-unknown target. Either run 'rustup target add wasm32-unknown-unknown'" >&2
            echo "or make Debian's bookworm-backports packages reachable." >&2
            exit 1
        fi
    fi
    for deb in "$debs"/*.deb; do dpkg -x "$deb" "$root"; done
    src="$(cd "$root/usr/src" && ls -d rustc-1.96*/ | head -n 1)"
    mkdir -p "$root/usr/lib/rustlib/src"
    ln -sfn "$root/usr/src/${src%/}" "$root/usr/lib/rustlib/src/rust"
    rm -rf "$debs"
    touch "$root/.complete"
fi

lib="$root/usr/lib:$root/usr/lib/x86_64-linux-gnu:$root/usr/lib/llvm-22/lib"
write_env "# Debian rustc-web $version, std built from source with -Zbuild-std
export RUSTC=\"$root/usr/bin/rustc\"
export RUSTC_BOOTSTRAP=1
export LD_LIBRARY_PATH=\"$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=\"$root/usr/lib/llvm-22/bin/wasm-ld\"
export WASM_CARGO_ARGS=\"-Zbuild-std=std,panic_abort\""

# Smoke check: the compiler runs.
(
    # shellcheck source=/dev/null
    source "$env_file"
    "$RUSTC" --version >&2
)
echo "$env_file"
