#!/usr/bin/env python3
"""Writes kernels/tests/data/gguf_golden.bin: the reference the `gguf_golden` test checks.

Two kinds of records, all produced by the `gguf` package from PyPI (ggml's own Python
implementation, independent of edgenlu):
  * rows of real tensors of SmolLM2-135M's GGUF (q4_1 blocks, the q8_0 embedding) as stored,
    with what `gguf.quants.dequantize` makes of them;
  * pseudo-random f32 rows quantized by `gguf.quants.quantize` to q4_0, q4_1 and q8_0, with the
    source values, the bytes and their dequantization.

Usage: pip install gguf==0.19.0 numpy
       python3 kernels/tests/data/gguf_golden.py --gguf <store>/models/smollm2-135m-instruct.q4_1.gguf
(`edgenlu models root` prints <store>.) The output is small (tens of KB) and committed, so the
test needs neither Python nor the model.
"""
import argparse
import struct

import numpy as np
import gguf
from gguf import quants

T = gguf.GGMLQuantizationType


def record(out, name, qtype, rows, cols, raw, deq, src=None):
    raw = np.ascontiguousarray(raw, dtype=np.uint8).tobytes()
    deq = np.ascontiguousarray(deq, dtype="<f4").reshape(rows, cols)
    name_b = name.encode()
    out.write(struct.pack("<I", len(name_b)) + name_b)
    out.write(struct.pack("<IIII", int(qtype), rows, cols, len(raw)))
    out.write(raw)
    out.write(deq.tobytes())
    if src is None:
        out.write(b"\0")
    else:
        out.write(b"\1" + np.ascontiguousarray(src, dtype="<f4").tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", default="kernels/tests/data/gguf_golden.bin")
    args = ap.parse_args()
    reader = gguf.GGUFReader(args.gguf)
    by_name = {t.name: t for t in reader.tensors}
    picks = [
        ("token_embd.weight", [0, 1, 100, 49151]),
        ("blk.0.attn_q.weight", [0, 1, 2, 575]),
        ("blk.0.ffn_down.weight", [0, 7, 575]),
        ("blk.29.ffn_up.weight", [0, 1535]),
    ]
    recs = []
    for name, rows in picks:
        t = by_name[name]
        raw = np.asarray(t.data)[rows]
        cols = int(t.shape[0])
        deq = quants.dequantize(raw, t.tensor_type)
        recs.append(("smollm2:" + name, t.tensor_type, len(rows), cols, raw, deq, None))
    rng = np.random.default_rng(20261123)
    for qtype in (T.Q4_0, T.Q4_1, T.Q8_0):
        for scale in (1e-3, 1.0, 300.0):
            src = (rng.standard_normal((3, 96)) * scale).astype(np.float32)
            src[0, :32] = 0.0  # an all-zero block
            src[1, 32:64] = np.abs(src[1, 32:64])  # a one-signed block
            raw = quants.quantize(src, qtype)
            deq = quants.dequantize(raw, qtype)
            recs.append((f"random:{qtype.name}:{scale}", qtype, 3, 96, raw, deq, src))
    with open(args.out, "wb") as out:
        out.write(b"EKG1" + struct.pack("<I", len(recs)))
        for r in recs:
            record(out, *r)
    print(f"{args.out}: {len(recs)} records")


if __name__ == "__main__":
    main()
