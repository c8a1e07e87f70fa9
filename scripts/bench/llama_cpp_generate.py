#!/usr/bin/env python3
"""Times llama.cpp (llama-cpp-python) on the exact prompts `edgenlu bench generate` runs, for a
side-by-side ratio in the same run. `edgenlu bench generate` embeds this script and feeds it
on stdin; it can also be run by hand:

    python3 scripts/bench/llama_cpp_generate.py --gguf MODEL.gguf --threads 1 --tokens 64 \
        --prompt-ids '[[504, 3575, 282, 4649, 314]]'

For each prompt (a list of token ids, so both runtimes see the same tokens): prefill the prompt
in one batch, then decode `--tokens` tokens greedily (argmax of the logits, no sampler), timing
every step. Prints one JSON object: prefill tokens/s, decode tokens/s, per-token latencies
(ms), and the llama-cpp-python version. Prints {"error": ...} if llama_cpp cannot be imported.
"""

import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--prompt-ids", required=True, help="JSON list of lists of token ids")
    args = ap.parse_args()
    try:
        import llama_cpp
        import numpy as np
    except ImportError as e:
        print(json.dumps({"error": f"llama-cpp-python is not installed: {e}"}))
        return
    prompts = json.loads(args.prompt_ids)
    ctx = max(len(p) for p in prompts) + args.tokens + 8
    llm = llama_cpp.Llama(
        model_path=args.gguf,
        n_ctx=ctx,
        n_batch=ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    prefill_tokens = prefill_s = decode_tokens = decode_s = 0.0
    steps = []
    for ids in prompts:
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        prefill_s += time.perf_counter() - t0
        prefill_tokens += len(ids)
        for _ in range(args.tokens):
            t0 = time.perf_counter()
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            llm.eval([nxt])
            dt = time.perf_counter() - t0
            steps.append(dt * 1e3)
            decode_s += dt
            decode_tokens += 1
    print(json.dumps({
        "version": llama_cpp.__version__,
        "prefill_tokens_per_s": prefill_tokens / prefill_s,
        "decode_tokens_per_s": decode_tokens / decode_s,
        "step_ms": steps,
    }))


if __name__ == "__main__":
    sys.exit(main())
