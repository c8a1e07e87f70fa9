#!/usr/bin/env python3
"""Writes the small GGUF files `models/tests/gguf.rs` checks refusals with, by the `gguf`
package (PyPI), independent of edgenlu:
  * unsupported_type.gguf: a llama-architecture file holding a Q2_K tensor (a k-quant the host
    has no kernels for; raw bytes with a finite scale), which opening must refuse naming Q2_K;
  * unsupported_arch.gguf: a well-formed F32 file of architecture "mamba", which the llama
    forward pass must refuse naming the architecture.

Usage: pip install gguf==0.19.0 numpy
       python3 models/tests/data/unsupported.py
The files are a few hundred bytes and committed, so the test needs no Python.
"""
from pathlib import Path

import numpy as np
import gguf

HERE = Path(__file__).parent


def write(path, arch, tensors):
    writer = gguf.GGUFWriter(path, arch)
    writer.add_block_count(1)
    for name, data, raw_dtype in tensors:
        writer.add_tensor(name, data, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    q2_k = np.zeros((1, 84), dtype=np.uint8)  # one Q2_K block of 256 elements
    q2_k[0, 80:82] = np.array([0.5], dtype=np.float16).view(np.uint8)  # d
    write(HERE / "unsupported_type.gguf", "llama", [
        ("token_embd.weight", q2_k, gguf.GGMLQuantizationType.Q2_K),
    ])
    write(HERE / "unsupported_arch.gguf", "mamba", [
        ("token_embd.weight", np.ones((2, 32), dtype=np.float32), None),
    ])
    print("wrote", HERE / "unsupported_type.gguf", HERE / "unsupported_arch.gguf")


if __name__ == "__main__":
    main()
