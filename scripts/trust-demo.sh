#!/usr/bin/env bash
# The README's trust flow through the real CLI, with checks: a vendor root, a delegated
# publisher, signing, install with health check, ask, update, rollback, and refusals
# (untrusted key, older version, a flipped byte, a failing health check that rolls back).
# Runs in a temporary store over the real store's models (use_temp_store), so nothing in the
# device's own store changes. Needs a release build and the models.
source "$(dirname "$0")/common.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
use_temp_store "$work/home"
cd "$work"
unset RUST_BACKTRACE
say() { printf '\n$ %s\n' "$*" >&2; }
ok() { say "$*"; "$@"; }
# Runs a command that must fail with output matching $1.
refused() {
    local want="$1"; shift
    say "$* (must be refused: $want)"
    local out
    if out="$("$@" 2>&1)"; then echo "FAIL: accepted: $*" >&2; exit 1; fi
    echo "$out" >&2
    grep -q -- "$want" <<<"$out" || { echo "FAIL: expected '$want'" >&2; exit 1; }
}

index=trust-demo-20
ok "$edgenlu" skill index --data "$datasets/snips/train.jsonl" --per-intent 20 --name "$index"

ok "$edgenlu" keygen vendor --dir keys
ok "$edgenlu" keygen acme --dir keys
ok "$edgenlu" trust add --root keys/vendor.pub
ok "$edgenlu" trust delegate --root-key keys/vendor.key --publisher acme --key keys/acme.pub \
    --model 'all-minilm-*' --model 'trust-demo-*' --days 90 -o acme.delegation.json
ok "$edgenlu" trust add acme.delegation.json

# A manifest for acme at a given version (from the dev-signed skill's manifest).
ok "$edgenlu" sign --dev-intents --index "$index" -o dev.wasm
refused "unknown signing key" "$edgenlu" verify dev.wasm
manifest() { "$edgenlu" inspect --manifest-only dev.wasm |
    sed "s/\"publisher\": \"edgenlu-dev\"/\"publisher\": \"acme\"/; s/\"version\": 1/\"version\": $1/"; }
for v in 1 2 3; do
    manifest "$v" >"m$v.json"
    ok "$edgenlu" sign dev.wasm --manifest "m$v.json" --key keys/acme.key -o "v$v.wasm"
done
sed 's/"intent": "PlayMusic"/"intent": "BookRestaurant"/' m3.json >m3-broken.json
ok "$edgenlu" sign dev.wasm --manifest m3-broken.json --key keys/acme.key -o v3-broken.wasm

ok "$edgenlu" verify v1.wasm
ok "$edgenlu" install v1.wasm | tee out && grep -q "health check passed (3 probes)" out
ok "$edgenlu" ask intents "what is the weather forecast for london" | tee out && grep -q '"GetWeather"' out
ok "$edgenlu" install v2.wasm
ok "$edgenlu" list | tee out && grep -q "version 2  previous 1" out
ok "$edgenlu" rollback intents
ok "$edgenlu" list | tee out && grep -q "version 1  previous 2" out
refused "older than version 2" "$edgenlu" install v1.wasm
ok "$edgenlu" rollback intents
python3 - <<'EOF'
data = bytearray(open("v2.wasm", "rb").read())
data[len(data) // 2] ^= 0x20
open("flipped.wasm", "wb").write(bytes(data))
EOF
refused "bad signature" "$edgenlu" verify flipped.wasm
refused "rolled back to version 2" "$edgenlu" install v3-broken.wasm
ok "$edgenlu" list | tee out && grep -q "intents  version 2" out
ok "$edgenlu" trust list
ok "$edgenlu" remove intents
echo "trust demo: all checks passed" >&2
