#!/usr/bin/env bash
# The tests: provision what they need (guest toolchain, build, models, Python references),
# generate the golden files from independent implementations, then run every test suite.
source "$(dirname "$0")/common.sh"
setup
step "python references ($(python3 --version))"
python3 -m pip install --quiet --disable-pip-version-check -r "$repo/scripts/golden/requirements.txt"
hf="$("$edgenlu" models root)/hf/all-minilm-l6-v2"
mkdir -p "$repo/golden"
step "golden: HF tokenizers ids for every dataset text, hostile strings, every code point"
python3 "$repo/scripts/golden/wordpiece_ids.py" --hf-dir "$hf" --datasets "$datasets" --all-code-points --out "$repo/golden/wordpiece_ids.jsonl"
step "golden: float64 numpy MiniLM embeddings"
python3 "$repo/scripts/golden/minilm_embeddings.py" --hf-dir "$hf" --datasets "$datasets" --out "$repo/golden/minilm_embeddings.jsonl"
step "golden: HF tokenizers byte-level BPE ids (SmolLM2's GGUF vocabulary and merges)"; python3 "$repo/scripts/golden/bpe_ids.py" --gguf "$("$edgenlu" models root)/models/smollm2-135m-instruct.q4_1.gguf" --datasets "$datasets" --all-code-points --out "$repo/golden/bpe_ids.jsonl"
step "host tests"
cargo test --release --locked --workspace --manifest-path "$repo/Cargo.toml"
step "trust: the CLI flow from the README, with refusals (scripts/trust-demo.sh)"
"$repo/scripts/trust-demo.sh"
step "guest library tests (native)"
EDGENLU_MINILM_DIR="$hf" EDGENLU_GOLDEN_DIR="$repo/golden" \
    cargo test --release --locked --manifest-path "$repo/guest/Cargo.toml" -p wordpiece -p bpe
step "fuzz smoke runs (30 s per target)"
"$repo/scripts/fuzz-smoke.sh" 30
step "kernels on aarch64 (cross-built, qemu-user, NEON forced)"; "$repo/scripts/arm-kernels.sh"
