#!/usr/bin/env python3
"""SmolLM2-135M as Q4_K_M, made by llama.cpp's own quantizer, for the k-quant tests.

Unpacks the store's SmolLM2 GGUF to float32 with the `gguf` package (llama_greedy.py's
write_f32_gguf, into a temporary file) and quantizes that with llama-cpp-python's
`llama_model_quantize`, ftype LLAMA_FTYPE_MOSTLY_Q4_K_M (1 thread). SmolLM2's hidden size, 576,
is not a multiple of 256, so llama.cpp keeps Q4_K/Q6_K only where a row is (ffn_down, 1536
columns) and falls back elsewhere (Q5_0 for most matrices, Q8_0 for some attn_v and the tied
embedding); the script lists the types it got and fails unless Q4_K and Q6_K are among them.
The file is generated (about 100 MB), never committed: scripts/test.sh writes it under golden/
and runs llama_greedy.py and llama_reference.py on it.

    python3 scripts/golden/kquant_gguf.py \
        --gguf ~/.local/share/edgenlu/models/smollm2-135m-instruct.q4_1.gguf \
        --out golden/smollm2-135m-instruct.q4_k_m.gguf
"""

import argparse
import collections
import ctypes
import sys
import tempfile
from pathlib import Path

from llama_greedy import write_f32_gguf


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", type=Path, required=True, help="SmolLM2 GGUF to unpack")
    ap.add_argument("--out", type=Path, required=True, help="the Q4_K_M GGUF to write")
    args = ap.parse_args()

    import gguf
    import llama_cpp

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        f32 = Path(tmp) / "f32.gguf"
        write_f32_gguf(args.gguf, f32)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
        params.nthread = 1
        rc = llama_cpp.llama_model_quantize(str(f32).encode(), str(args.out).encode(), ctypes.byref(params))
        if rc != 0:
            sys.exit(f"llama_model_quantize failed ({rc})")
    types = collections.Counter(t.tensor_type.name for t in gguf.GGUFReader(args.out).tensors)
    print(f"{args.out}: " + ", ".join(f"{n} x {t}" for t, n in sorted(types.items())))
    if not {"Q4_K", "Q6_K"} <= types.keys():
        sys.exit("no Q4_K or Q6_K tensors: not the Q4_K_M mix the tests need")


if __name__ == "__main__":
    main()
