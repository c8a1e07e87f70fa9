#!/usr/bin/env bash
# Checks release binaries the way a vendor receives them: each copied alone into an empty
# directory (no repository, no target folder beside it) runs the SNIPS demo's utterances
# through the device pipeline — the aarch64 one under qemu-user on its NEON kernels — against
# a store with the real store's models linked read only and the demo skill's datastore
# (indexed by the x86-64 binary); both must give the same skills and intents. Used by scripts/release.sh.
#
# Usage: scripts/release-check.sh X86_64_BINARY AARCH64_BINARY
source "$(dirname "$0")/common.sh"
[ $# -eq 2 ] || { echo "usage: $0 X86_64_BINARY AARCH64_BINARY" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
utterances=(
    "add this song to my workout playlist"
    "will it snow in Chicago tomorrow"
    "book a table for four at an italian restaurant tonight"
    "play the latest album by Adele"
    "rate this novel five out of six stars"
    "find the movie schedule at the nearest cinema"
    "show me the creative work called The Dark Knight"
)
# The models come from the invoking user's store, fetched by the release binary itself if
# missing (no test build is needed beside a release).
"$1" -q models fetch >/dev/null
real="$("$1" models root)"

# run_alone NAME BINARY [RUNNER...]: the binary alone in $work/NAME, answering the utterances.
run_alone() {
    local name="$1" binary="$2"
    shift 2
    mkdir -p "$work/$name/bin"
    cp "$binary" "$work/$name/bin/edgenlu"
    (
        cd "$work/$name/bin"
        export EDGENLU_HOME="$work/home"
        "$@" ./edgenlu --version >&2
        "$@" ./edgenlu run "${utterances[@]}" > "$work/$name.jsonl"
    )
    python3 - "$work/$name.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)["response"]
    print(f'{r["skill"]:14} {r["intent"]:22} {r["path"]:9} {r["reply"] or ""}', file=sys.stderr)
PY
}

step "a store for both: the real store's models linked, the demo's datastore (50 SNIPS examples per intent) indexed by the x86-64 release binary"
mkdir -p "$work/home"
EDGENLU_HOME="$work/home" "$1" models link --from "$real" >/dev/null
EDGENLU_HOME="$work/home" "$1" -q skill index --data "$datasets/snips/train.jsonl" --per-intent 50 --name snips-intents >/dev/null

step "x86-64 binary alone"
run_alone x86_64 "$1"
step "aarch64 binary alone, under qemu-user (NEON kernels; phrasing takes a while emulated)"
command -v qemu-aarch64-static >/dev/null || source "$repo/scripts/arm-env.sh"
EDGENLU_WASM_MEMORY_RESERVATION_MIB=64 run_alone aarch64 "$2" qemu-aarch64-static -L /usr/aarch64-linux-gnu

step "the two agree on every utterance's skill and intent"
python3 - "$work/x86_64.jsonl" "$work/aarch64.jsonl" <<'PY'
import json, sys
def answers(path):
    return [(r["skill"], r["intent"]) for r in (json.loads(l)["response"] for l in open(path))]
a, b = answers(sys.argv[1]), answers(sys.argv[2])
if len(a) != 7 or a != b:
    sys.exit(f"error: the binaries disagree:\n x86_64  {a}\n aarch64 {b}")
print(f"agree on {len(a)} utterances: {', '.join(i for _, i in a)}")
PY
