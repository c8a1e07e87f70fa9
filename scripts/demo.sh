#!/usr/bin/env bash
# The demo: from a fresh clone, provision the guest toolchain, build, fetch the models, build
# the SNIPS intents datastore with the skill itself, and answer a few utterances.
source "$(dirname "$0")/common.sh"
setup
if ! "$edgenlu" models list | grep -q ' snips-intents$'; then
    step "datastore: all 13,784 SNIPS training examples, embedded by the skill (about 2 minutes)"
    "$edgenlu" skill index --data "$datasets/snips/train.jsonl"
fi
step "answers"
"$edgenlu" run \
    "add this song to my workout playlist" \
    "will it snow in Chicago tomorrow" \
    "book a table for four at an italian restaurant tonight" \
    "play the latest album by Adele" \
    "rate this novel five out of six stars" \
    "find the movie schedule at the nearest cinema" \
    "show me the creative work called The Dark Knight"
step "generation: SmolLM2-135M-Instruct driven by the chat skill component"
"$edgenlu" generate --chat --max-tokens 64 "Give me three tips for a good night's sleep."
