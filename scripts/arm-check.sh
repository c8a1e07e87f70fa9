#!/usr/bin/env bash
# The same skill bytes on ARM64: cross-builds the host for aarch64-unknown-linux-gnu, records
# what the bundled components compute (`edgenlu conformance run`: SNIPS test utterances
# through both tokenizers and the intents skill, greedy SmolLM2 continuations of fixed chat
# prompts) natively on x86-64 and under qemu-aarch64, and compares the two records
# (`edgenlu conformance compare`: same component and model SHA-256, identical token ids and
# intents, embeddings within tolerance, greedy tokens identical or parting only at a near-tie).
# Fails on any disagreement. Extra arguments go to both `conformance run`s (e.g. --per-intent 50).
# Records and the comparison land in target/arm-check/. Used by scripts/test.sh.
source "$(dirname "$0")/common.sh"
setup
out="$repo/target/arm-check"
mkdir -p "$out"
index=arm-check-snips

step "datastore: 100 SNIPS training examples per intent (in a store of its own)"
use_temp_store "$out/home"
"$edgenlu" skill index --data "$datasets/snips/train.jsonl" --per-intent 100 --name "$index"

step "cross-build the host for aarch64 (Debian rustc-web, -Zbuild-std)"
# In a subshell: the cross toolchain's RUSTC and target dir must not leak into x86 builds.
arm_edgenlu="$(
    source "$repo/scripts/arm-env.sh"
    cargo build --release --locked -p edgenlu-cli --manifest-path "$repo/Cargo.toml" \
        --target "$arm_target" "${arm_build_std[@]}" >&2
    echo "$CARGO_TARGET_DIR/$arm_target/release/edgenlu"
)"

run_args=(conformance run --data "$datasets/snips/test.jsonl" --index "$index" "$@")
step "record on x86-64 (native)"
"$edgenlu" "${run_args[@]}" --out "$out/x86_64.json"
step "record on aarch64 (qemu-aarch64, the NEON kernels its CPU supports)"
# qemu-user makes reserving 4 GiB per linear memory slow: a small reservation (DESIGN.md).
EDGENLU_WASM_MEMORY_RESERVATION_MIB=64 qemu-aarch64-static -L /usr/aarch64-linux-gnu \
    "$arm_edgenlu" "${run_args[@]}" --out "$out/aarch64.json"
if ! grep -q '"kernels":"neon' "$out/aarch64.json"; then
    echo "error: the aarch64 record did not run the NEON kernels" >&2
    exit 1
fi

step "compare"
"$edgenlu" conformance compare "$out/x86_64.json" "$out/aarch64.json" | tee "$out/compare.txt"
