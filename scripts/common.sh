# Shared by scripts/demo.sh and scripts/test.sh: repository paths and the one-time setup
# both need (guest toolchain, release build, models in the store).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
datasets="${EDGENLU_DATASETS:-$repo/../shared/datasets}"
edgenlu="$repo/target/release/edgenlu"

step() { printf '\n== %s\n' "$*" >&2; }

setup() {
    step "guest toolchain (wasm32-unknown-unknown)"
    "$repo/scripts/wasm-toolchain.sh" >/dev/null
    step "build (release)"
    cargo build --release --locked -p edgenlu --manifest-path "$repo/Cargo.toml"
    step "models (PyPI packages -> GGUF model store)"
    "$edgenlu" models fetch
}
