#!/usr/bin/env bash
# The demo: from a fresh clone, provision the guest toolchain, build, fetch the models, train
# the SNIPS skill's intent head and slot tagger on its own encodings, and answer a few
# utterances through the device pipeline (skill, vendor policy, reply phrased by SmolLM2).
source "$(dirname "$0")/common.sh"
setup
if ! "$edgenlu" models list | grep -q ' snips-intents$'; then
    step "skill data: intent head and slot tagger on all 13,784 SNIPS training examples (about 5 minutes)"
    "$edgenlu" skill train --train "$datasets/snips/train.jsonl"
fi
step "answers: intent, slots, the policy's verdict, a phrased reply (JSON per utterance)"
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
