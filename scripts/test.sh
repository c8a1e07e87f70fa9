#!/usr/bin/env bash
# The tests: provision what they need (guest toolchain, build, models, Python references),
# generate the golden files from independent implementations, then run every test suite.
source "$(dirname "$0")/common.sh"
setup
python_env
step "python references ($(python3 --version))"
python3 -m pip install --quiet --disable-pip-version-check -r "$repo/scripts/golden/requirements.txt" \
    -r "$repo/scripts/serve/requirements.txt"
hf="$("$edgenlu" models root)/hf/all-minilm-l6-v2"
mkdir -p "$repo/golden"
step "golden: HF tokenizers ids for every dataset text, hostile strings, every code point"
golden "$repo/golden/wordpiece_ids.jsonl" -- \
    python3 "$repo/scripts/golden/wordpiece_ids.py" --hf-dir "$hf" --datasets "$datasets" --all-code-points --out "$repo/golden/wordpiece_ids.jsonl"
step "golden: float64 numpy MiniLM embeddings"
golden "$repo/golden/minilm_embeddings.jsonl" -- \
    python3 "$repo/scripts/golden/minilm_embeddings.py" --hf-dir "$hf" --datasets "$datasets" --out "$repo/golden/minilm_embeddings.jsonl"
step "golden: HF tokenizers byte-level BPE ids (SmolLM2's GGUF vocabulary and merges)"
golden "$repo/golden/bpe_ids.jsonl" -- \
    python3 "$repo/scripts/golden/bpe_ids.py" --gguf "$("$edgenlu" models root)/models/smollm2-135m-instruct.q4_1.gguf" --datasets "$datasets" --all-code-points --out "$repo/golden/bpe_ids.jsonl"
step "llama-cpp-python from source (GGML_NATIVE=OFF: the native build crashes on AMX; pip caches the wheel)"
CMAKE_ARGS="-DGGML_NATIVE=OFF" python3 -m pip install --quiet --disable-pip-version-check -r "$repo/scripts/golden/requirements-llama.txt"
smollm2="$("$edgenlu" models root)/models/smollm2-135m-instruct.q4_1.gguf"
step "golden: llama.cpp greedy continuations and first-step logits of SmolLM2 (Q4_1 and a float32 copy)"
golden "$repo/golden/llama_greedy.jsonl" -- \
    python3 "$repo/scripts/golden/llama_greedy.py" --gguf "$smollm2" --out "$repo/golden/llama_greedy.jsonl"
step "golden: float64 numpy llama forward of SmolLM2, checked against llama.cpp"
golden "$repo/golden/llama_reference.jsonl" -- \
    python3 "$repo/scripts/golden/llama_reference.py" --gguf "$smollm2" --greedy "$repo/golden/llama_greedy.jsonl" --out "$repo/golden/llama_reference.jsonl"
kquant="$repo/golden/smollm2-135m-instruct.q4_k_m.gguf"
step "golden: SmolLM2 as Q4_K_M by llama.cpp's quantizer (Q4_K, Q6_K, Q5_0, Q8_0), its llama.cpp greedy continuations and first-step logits, and the numpy forward on it"
golden "$kquant" -- python3 "$repo/scripts/golden/kquant_gguf.py" --gguf "$smollm2" --out "$kquant"
golden "$repo/golden/llama_greedy_q4_k_m.jsonl" -- \
    python3 "$repo/scripts/golden/llama_greedy.py" --gguf "$kquant" --out "$repo/golden/llama_greedy_q4_k_m.jsonl" \
    --france $' Paris.\n\nThe answer is'
golden "$repo/golden/llama_reference_q4_k_m.jsonl" -- \
    python3 "$repo/scripts/golden/llama_reference.py" --gguf "$kquant" --greedy "$repo/golden/llama_greedy_q4_k_m.jsonl" \
    --out "$repo/golden/llama_reference_q4_k_m.jsonl" --quantized-tolerance 1.0
step "golden: random-weight qwen2, qwen3 and gemma3 GGUFs (f32 and q8_0) and llama.cpp's first-step logits and greedy tokens on them"
python3 "$repo/scripts/golden/arch_gguf.py" --out "$repo/golden"
step "host tests"
cargo test --release --locked --workspace --manifest-path "$repo/Cargo.toml"
variants="$(cargo run --quiet --release --locked -p edgenlu-kernels --example variants --manifest-path "$repo/Cargo.toml")"
step "decoder and encoder parity once per kernel variant: this CPU runs $(echo $variants), not $(printf '%s\n' scalar neon avx2 avx512 | grep -vxF "$variants" | xargs) (the host tests above ran the best, $(echo "$variants" | tail -1))"
for variant in $(echo "$variants" | head -n -1); do
    step "parity with EDGENLU_KERNELS=$variant"
    # The decoder's first-step logits over every golden prompt and the encoder's embeddings;
    # greedy decoding (minutes on the scalar kernels) adds nothing a variant could change
    # that the first step does not show.
    # --workspace: the same feature set as the host tests, so their test binaries are reused.
    EDGENLU_KERNELS="$variant" cargo test --release --locked --workspace --test generate --test parity \
        --manifest-path "$repo/Cargo.toml" -- --nocapture first_step embeddings
    # The decoder families against llama.cpp: seconds, greedy tokens included.
    EDGENLU_KERNELS="$variant" cargo test --release --locked --workspace --test architectures \
        --manifest-path "$repo/Cargo.toml" -- --nocapture
done
step "runtime examples (host/runtime/examples, on a temporary store with a 20-per-intent SNIPS datastore)"
(
    use_temp_store "$repo/target/examples-home"
    "$edgenlu" skill index --data "$datasets/snips/train.jsonl" --per-intent 20 --name examples-snips-20
    cargo run --release --locked -q --manifest-path "$repo/Cargo.toml" -p edgenlu --example ask_skill -- examples-snips-20 "will it rain in paris tomorrow"
    cargo run --release --locked -q --manifest-path "$repo/Cargo.toml" -p edgenlu --example stream_generation
    cargo run --release --locked -q --manifest-path "$repo/Cargo.toml" -p edgenlu --example budgets
)
step "trust: the CLI flow from the README, with refusals (scripts/trust-demo.sh)"
"$repo/scripts/trust-demo.sh"
step "guest library tests (native)"
EDGENLU_MINILM_DIR="$hf" EDGENLU_GOLDEN_DIR="$repo/golden" \
    cargo test --release --locked --manifest-path "$repo/guest/Cargo.toml" -p wordpiece -p bpe -p edgenlu-sdk -p skill-chat -p flow-clarify
for example in "$repo"/guest/examples/*/; do
    CARGO_TARGET_DIR="$repo/guest/target" cargo test --release --locked --manifest-path "$example/Cargo.toml"
done
step "serve: bounded load test (4 clients, 20 s, SNIPS utterances and chat; any error fails)"
(
    use_temp_store "$repo/target/serve-load-home"
    "$edgenlu" skill index --data "$datasets/snips/train.jsonl" --per-intent 20 --name serve-load-snips
    python3 "$repo/scripts/serve/load_test.py" --edgenlu "$edgenlu" --clients 4 --seconds 20 \
        --index serve-load-snips
)
step "Debian package of the test build: files, systemd units and their command lines (scripts/release.sh makes the release ones)"
deb="$(EDGENLU_DEB_COMPRESSION=none "$repo/scripts/package-deb.sh" "$edgenlu" amd64 0.0.0-test "$repo/target/package-check")"
"$repo/scripts/check-package.sh" "$deb"
step "offline fine-tuning script compiles (it runs on a vendor's machine with torch, not here)"
python3 -m py_compile "$repo/scripts/finetune/finetune.py" "$repo/scripts/bench/minilm_onnx_dynamic.py"
step "fuzz smoke runs (20 s per target)"
"$repo/scripts/fuzz-smoke.sh" 20
step "kernels on aarch64 (cross-built, qemu-user, NEON forced)"; "$repo/scripts/arm-kernels.sh"
# A quarter of SNIPS test, every intent: under qemu the utterances are most of the check's time
# once the cross build is done, and the rest shows nothing these do not (scripts/arm-check.sh
# alone runs all 700).
step "the same components on aarch64: cross-built host under qemu vs x86-64, 25 SNIPS test utterances per intent (scripts/arm-check.sh --per-intent 25)"
"$repo/scripts/arm-check.sh" --per-intent 25
