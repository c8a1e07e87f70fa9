#!/usr/bin/env bash
# Several skills on one device: SNIPS split into five per-domain skills plus a CLINC150 skill,
# each built from its own training data only (`edgenlu skill train`), then SNIPS test + CLINC150
# test (out-of-scope queries included) answered through the router and the default policy.
# Usage: scripts/router-eval.sh [extra `edgenlu eval` options, e.g. --json or --limit 500]
source "$(dirname "$0")/common.sh"
setup
work="${EDGENLU_ROUTER_WORK:-$(mktemp -d)}"
mkdir -p "$work"
# domain skill = SNIPS intents it owns
python3 - "$datasets" "$work" <<'PY'
import json, sys
datasets, work = sys.argv[1], sys.argv[2]
domains = {
    "snips-music": {"AddToPlaylist", "PlayMusic"},
    "snips-restaurant": {"BookRestaurant"},
    "snips-weather": {"GetWeather"},
    "snips-books": {"RateBook"},
    "snips-media": {"SearchCreativeWork", "SearchScreeningEvent"},
}
out = {d: open(f"{work}/{d}.train.jsonl", "w") for d in domains}
for line in open(f"{datasets}/snips/train.jsonl"):
    intent = json.loads(line)["intent"]
    for d, intents in domains.items():
        if intent in intents:
            out[d].write(line)
with open(f"{work}/device.test.jsonl", "w") as f:
    for name in ("snips/test.jsonl", "clinc150/test.jsonl"):
        f.writelines(open(f"{datasets}/{name}"))
PY
skills=()
for d in snips-music snips-restaurant snips-weather snips-books snips-media; do
    if ! "$edgenlu" models list | grep -q " $d\$"; then
        step "skill $d: trained on its own SNIPS domain"
        "$edgenlu" skill train --train "$work/$d.train.jsonl" --name "$d"
    fi
    skills+=(--index "$d")
done
if ! "$edgenlu" models list | grep -q ' clinc150$'; then
    step "skill clinc150: trained on CLINC150 train, tuned on val"
    "$edgenlu" skill train --train "$datasets/clinc150/train.jsonl" \
        --val "$datasets/clinc150/val.jsonl" --name clinc150
fi
skills+=(--index clinc150)
step "SNIPS test + CLINC150 test through the router (${#skills[@]} / 2 skills)"
"$edgenlu" eval --data "$work/device.test.jsonl" "${skills[@]}" "$@"
