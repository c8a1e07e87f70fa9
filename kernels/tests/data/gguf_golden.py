#!/usr/bin/env python3
"""Writes kernels/tests/data/gguf_golden.bin: the reference the `gguf_golden` test checks.

Records, all produced by ggml's own code, independent of edgenlu: the `gguf` package from PyPI
(ggml's Python implementation) and, for what it lacks, ggml's C library as llama-cpp-python
ships it (`libggml-base`, `libggml-cpu`, called through ctypes):
  * rows of real tensors of SmolLM2-135M's GGUF (q4_1 blocks, the q8_0 embedding) and of its
    Q4_K_M quantization by llama.cpp (q4_K, q6_K, q5_0 blocks; --kquant-gguf) as stored, with
    what `gguf.quants.dequantize` makes of them;
  * pseudo-random f32 rows quantized by `gguf.quants.quantize` to q4_0, q4_1, q8_0, q5_0 and
    q5_1, with the source values, the bytes and their dequantization;
  * pseudo-random f32 rows quantized by ggml's `quantize_row_q{4,5,6}_K_ref` (gguf-py cannot
    quantize k-quants) and random bytes as q4_K/q5_K/q6_K blocks (every bit pattern of the
    packed scales), dequantized by gguf-py;
  * q8_K activation rows (ggml type 15): source values, `quantize_row_q8_K_ref`'s bytes and
    `dequantize_row_q8_K`'s values;
  * for the random k-quant and q5 rows, ggml's own dot product (`vec_dot` of
    `ggml_get_type_traits_cpu`, the activations quantized by its `from_float` to q8_K / q8_0 /
    q8_1) of each row with an activation row `x`, which the test compares with edgenlu's scalar
    kernels (within float rounding: ggml sums in another order).

Usage: pip install gguf==0.19.0 numpy llama-cpp-python (requirements-llama.txt)
       python3 kernels/tests/data/gguf_golden.py --gguf <store>/models/smollm2-135m-instruct.q4_1.gguf \
           --kquant-gguf golden/smollm2-135m-instruct.q4_k_m.gguf
(`edgenlu models root` prints <store>; scripts/golden/kquant_gguf.py makes the Q4_K_M file.)
The output is small (about 300 KB) and committed, so the test needs neither Python nor the
models.
"""
import argparse
import ctypes
import struct
from pathlib import Path

import numpy as np
import gguf
from gguf import quants

T = gguf.GGMLQuantizationType
Q8_K = 15  # ggml's activation type for k-quant dot products; not in gguf-py's enum


class Ggml:
    """ggml's C quantizers and CPU dot products, from llama-cpp-python's shared libraries."""

    def __init__(self):
        import llama_cpp

        lib = Path(llama_cpp.__file__).parent / "lib"
        self.base = ctypes.CDLL(str(lib / "libggml-base.so"))
        self.cpu = ctypes.CDLL(str(lib / "libggml-cpu.so"))
        self.cpu.ggml_cpu_init()
        self.cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(TraitsCpu)

    def quantize_ref(self, name, x, row_bytes):
        """`quantize_row_<name>_ref` of each row of x (a whole number of blocks)."""
        fn = getattr(self.base, f"quantize_row_{name}_ref")
        out = []
        for row in np.ascontiguousarray(x, dtype=np.float32):
            buf = ctypes.create_string_buffer(row_bytes)  # zeroed: q8_K leaves a zero block's bsums unset
            fn(row.ctypes.data_as(ctypes.c_void_p), buf, ctypes.c_int64(row.size))
            out.append(np.frombuffer(buf.raw, dtype=np.uint8))
        return np.stack(out)

    def dequantize_q8_k(self, raw, cols):
        out = np.zeros((raw.shape[0], cols), dtype=np.float32)
        for r in range(raw.shape[0]):
            self.base.dequantize_row_q8_K(np.ascontiguousarray(raw[r]).ctypes.data_as(ctypes.c_void_p),
                                          out[r].ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(cols))
        return out

    def vec_dot(self, qtype, raw, x):
        """ggml's CPU dot product of each weight row in `raw` with the f32 row `x`, quantized
        as ggml quantizes activations for that weight type."""
        traits = self.cpu.ggml_get_type_traits_cpu(int(qtype)).contents
        act = self.cpu.ggml_get_type_traits_cpu(traits.vec_dot_type).contents
        base = self.base.ggml_get_type_traits
        base.restype = ctypes.POINTER(TraitsBase)
        act_base = base(traits.vec_dot_type).contents
        n = x.size
        xq = ctypes.create_string_buffer(n // act_base.blck_size * act_base.type_size)
        x = np.ascontiguousarray(x, dtype=np.float32)
        act.from_float(x.ctypes.data_as(ctypes.c_void_p), xq, ctypes.c_int64(n))
        out = []
        for row in raw:
            row = np.ascontiguousarray(row)
            s = ctypes.c_float()
            traits.vec_dot(n, ctypes.byref(s), 0, row.ctypes.data_as(ctypes.c_void_p), 0, xq, 0, 1)
            out.append(s.value)
        return np.asarray(out, dtype=np.float32)


FromFloat = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
VecDot = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
                          ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


class TraitsCpu(ctypes.Structure):
    """ggml-cpu.h's `struct ggml_type_traits_cpu`."""
    _fields_ = [("from_float", FromFloat), ("vec_dot", VecDot), ("vec_dot_type", ctypes.c_int),
                ("nrows", ctypes.c_int64)]


class TraitsBase(ctypes.Structure):
    """The leading fields of ggml.h's `struct ggml_type_traits`."""
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t)]


def record(out, name, qtype, rows, cols, raw, deq, src=None, dot=None):
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
    if dot is None:
        out.write(b"\0")
    else:
        x, dots = dot
        out.write(b"\1" + np.ascontiguousarray(x, dtype="<f4").tobytes()
                  + np.ascontiguousarray(dots, dtype="<f4").tobytes())


def real_rows(prefix, path, picks):
    """Records `prefix:<tensor>` of the rows `picks` ([(tensor name, [row])]) of the GGUF at `path`."""
    reader = gguf.GGUFReader(path)
    by_name = {t.name: t for t in reader.tensors}
    recs = []
    for name, rows in picks:
        t = by_name[name]
        raw = np.asarray(t.data)[rows]
        cols = int(t.shape[0])
        deq = quants.dequantize(raw, t.tensor_type)
        recs.append((f"{prefix}:{name}", t.tensor_type, len(rows), cols, raw, deq, None))
    return recs


def kquant_records(ggml, rng, kquant_gguf):
    """Real, ggml-quantized and random-byte k-quant rows, q8_K rows, and q5 rows with dots."""
    reader = gguf.GGUFReader(kquant_gguf)
    picks, seen = [], set()
    for t in reader.tensors:
        if t.tensor_type in (T.Q4_K, T.Q6_K, T.Q5_0) and t.tensor_type not in seen:
            seen.add(t.tensor_type)
            picks.append((t.name, [0, 1, int(t.shape[1]) - 1]))
    if seen != {T.Q4_K, T.Q6_K, T.Q5_0}:
        raise SystemExit(f"{kquant_gguf}: expected q4_K, q6_K and q5_0 tensors, found {seen}")
    recs = [r + (None,) for r in real_rows("smollm2-q4_k_m", kquant_gguf, picks)]
    cols = 512
    for qtype, name in ((T.Q4_K, "q4_K"), (T.Q5_K, "q5_K"), (T.Q6_K, "q6_K")):
        row_bytes = cols // 256 * quants.GGML_QUANT_SIZES[qtype][1]
        for scale in (1e-3, 1.0, 300.0):
            src = (rng.standard_normal((3, cols)) * scale).astype(np.float32)
            src[0, :256] = 0.0  # an all-zero block
            src[1, 256:] = np.abs(src[1, 256:])  # a one-signed block
            raw = ggml.quantize_ref(name, src, row_bytes)
            x = rng.standard_normal(cols).astype(np.float32)
            dots = ggml.vec_dot(qtype, raw, x)
            recs.append((f"ggml:{name}:{scale}", qtype, 3, cols, raw,
                         quants.dequantize(raw, qtype), None, (x, dots)))
        raw = rng.integers(0, 256, size=(4, row_bytes), dtype=np.uint8)
        # Finite f16 super-block scales (d, and dmin for q4_K/q5_K), anywhere else in the block.
        halves = rng.uniform(-2.0, 2.0, size=(4, cols // 256, 2)).astype(np.float16).view(np.uint8)
        blocks = raw.reshape(4, cols // 256, -1)
        if qtype == T.Q6_K:
            blocks[:, :, -2:] = halves[:, :, :2]
        else:
            blocks[:, :, :4] = halves.reshape(4, cols // 256, 4)
        x = rng.standard_normal(cols).astype(np.float32)
        recs.append((f"random-bytes:{name}", qtype, 4, cols, raw, quants.dequantize(raw, qtype),
                     None, (x, ggml.vec_dot(qtype, raw, x))))
    for scale in (1e-3, 1.0, 300.0):
        src = (rng.standard_normal((3, cols)) * scale).astype(np.float32)
        src[0, :256] = 0.0
        src[1, 256:] = -np.abs(src[1, 256:])
        src[2, 7] = src[2, 9] = -np.abs(src[2]).max()  # ties for the largest magnitude
        raw = ggml.quantize_ref("q8_K", src, cols // 256 * 292)
        recs.append((f"ggml:q8_K:{scale}", Q8_K, 3, cols, raw, ggml.dequantize_q8_k(raw, cols), src, None))
    for qtype in (T.Q5_0, T.Q5_1):
        src = (rng.standard_normal((3, 96))).astype(np.float32)
        raw = quants.quantize(src, qtype)
        x = rng.standard_normal(96).astype(np.float32)
        recs.append((f"random-dot:{qtype.name}", qtype, 3, 96, raw, quants.dequantize(raw, qtype),
                     None, (x, ggml.vec_dot(qtype, raw, x))))
    return recs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--kquant-gguf", required=True, help="SmolLM2 Q4_K_M from llama.cpp's quantizer")
    ap.add_argument("--out", default="kernels/tests/data/gguf_golden.bin")
    args = ap.parse_args()
    picks = [
        ("token_embd.weight", [0, 1, 100, 49151]),
        ("blk.0.attn_q.weight", [0, 1, 2, 575]),
        ("blk.0.ffn_down.weight", [0, 7, 575]),
        ("blk.29.ffn_up.weight", [0, 1535]),
    ]
    recs = [r + (None,) for r in real_rows("smollm2", args.gguf, picks)]
    rng = np.random.default_rng(20261123)
    for qtype in (T.Q4_0, T.Q4_1, T.Q8_0, T.Q5_0, T.Q5_1):
        for scale in (1e-3, 1.0, 300.0):
            src = (rng.standard_normal((3, 96)) * scale).astype(np.float32)
            src[0, :32] = 0.0  # an all-zero block
            src[1, 32:64] = np.abs(src[1, 32:64])  # a one-signed block
            raw = quants.quantize(src, qtype)
            deq = quants.dequantize(raw, qtype)
            recs.append((f"random:{qtype.name}:{scale}", qtype, 3, 96, raw, deq, src, None))
    recs += kquant_records(Ggml(), rng, args.kquant_gguf)
    with open(args.out, "wb") as out:
        out.write(b"EKG2" + struct.pack("<I", len(recs)))
        for r in recs:
            record(out, *r)
    print(f"{args.out}: {len(recs)} records")


if __name__ == "__main__":
    main()
