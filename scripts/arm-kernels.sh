#!/usr/bin/env bash
# Cross-builds the kernels crate for aarch64-unknown-linux-gnu and runs its tests under
# qemu-aarch64 with the NEON variant forced (EDGENLU_KERNELS=neon; the `forced_variant_is_active`
# test fails if NEON is not what runs). Idempotent; used by scripts/test.sh. The toolchain
# comes from scripts/arm-env.sh.
source "$(dirname "$0")/arm-env.sh"
export EDGENLU_KERNELS=neon

# Targets are given explicitly: doctests (the default with none) would need Debian's rustdoc
# too, and the crate has none.
run_tests() {
    cargo test --release --locked --manifest-path "$repo/Cargo.toml" -p edgenlu-kernels \
        --target "$arm_target" "${arm_build_std[@]}" "$@"
}
# qemu's default CPU has the dot-product extension: this runs the `sdot` kernels.
echo "== kernels on aarch64 (qemu, NEON with dotprod)" >&2
run_tests --lib --tests "$@"
# A Cortex-A53 has none: the same binaries then take the plain NEON kernels.
echo "== kernels on aarch64 (qemu -cpu cortex-a53, NEON without dotprod)" >&2
QEMU_CPU=cortex-a53 run_tests --test variants --test formats "$@"
