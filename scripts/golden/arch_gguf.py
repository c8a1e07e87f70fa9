#!/usr/bin/env python3
"""Golden logits of the decoder families beyond llama (qwen2, qwen3, gemma3) from llama.cpp
(llama-cpp-python), for tests/tests/architectures.rs.

For each family, writes a small random-weight GGUF with the `gguf` package, laid out as
llama.cpp's converter writes that family (tensor names, `<arch>.*` metadata, NeoX-order q/k
rows), with realistic ratios at small sizes: a few layers, grouped-query attention, a head size
other than dim / heads where the family allows it (qwen3, gemma3, as in Qwen3 and Gemma 3
270M), qwen2's q/k/v biases, tied (qwen2, gemma3) and untied (qwen3) output, and for gemma3 seven
layers with a sliding window of 4 positions, so that both its sliding layers (rope base 10 000)
and its global layer 5 (rope base 1e6) see sequences longer than the window. The vocabulary is
a byte-level BPE one (tokenizer.ggml.model gpt2: the 256 byte tokens, 63 merges, an end of text
token) that llama.cpp loads; the tests feed token ids, never text. Weights are f32 (and a q8_0
copy of every matrix), drawn from a fixed seed at a scale that spreads the logits (std about 3),
so greedy choices are not near-ties.

Then runs llama.cpp on fixed token sequences (5, 9 and 13 ids): the first step's logits (all of
them) and --steps greedy tokens (argmax of the raw logits, KV cache, positions past the
window), on the f32 file with an f32 KV cache and on the q8_0 file with llama.cpp's defaults.

Writes <out>/arch_<family>.f32.gguf, <out>/arch_<family>.q8_0.gguf and <out>/arch_logits.jsonl:
one line per (family, weights, sequence) {"architecture", "weights" ("f32" or "q8_0"), "gguf"
(file name), "prompt_ids", "first_logits", "greedy_ids", "last_logits" (after the prompt and
every greedy token: one decode step through the cache)}. Output is generated, never committed.
Takes a few seconds.

    python3 scripts/golden/arch_gguf.py --out golden
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from llama_greedy import greedy

SEED = 20251203
SEQUENCE_LENGTHS = (5, 9, 13)
CONTEXT = 256

# Hyperparameters per family: small, with the ratios of the real models.
FAMILIES = {
    # Qwen2.5-0.5B: 896 dims, 14 heads of 64, 2 kv heads, FFN 4864, tied.
    "qwen2": dict(layers=3, dim=128, heads=4, kv_heads=2, head_dim=32, ffn=352,
                  rope_base=1e6, eps=1e-6, tied=True),
    # Qwen3-0.6B: 1024 dims, 16 heads of 128 (2048 > dim), 8 kv heads, FFN 3072.
    "qwen3": dict(layers=3, dim=128, heads=4, kv_heads=2, head_dim=48, ffn=384,
                  rope_base=1e6, eps=1e-6, tied=False),
    # Gemma 3 270M: 640 dims, 4 heads of 256 (1024 > dim), 1 kv head, FFN 2048, tied,
    # sliding window 512 on five layers of six.
    "gemma3": dict(layers=7, dim=96, heads=4, kv_heads=1, head_dim=32, ffn=256,
                   rope_base=1e6, eps=1e-6, tied=True, sliding_window=4),
}


def byte_tokens():
    """GPT-2's printable stand-ins for the 256 bytes, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return [chars[b] for b in range(256)]


def vocabulary():
    """(tokens, token types, merges): bytes, 63 merges of letter pairs, <|endoftext|>."""
    tokens = byte_tokens()
    letters = "etaoinshrdlu"
    merges = []
    for a in letters:
        for b in letters:
            if len(merges) < 63 and a + b not in tokens:
                merges.append(f"{a} {b}")
                tokens.append(a + b)
    types = [1] * len(tokens)
    tokens.append("<|endoftext|>")
    types.append(3)
    return tokens, types, merges


def weights(family, h, vocab, rng):
    """The family's tensors {name: f32 array}, as llama.cpp's converter names them."""
    dim, q_cols, kv_cols, ffn = h["dim"], h["heads"] * h["head_dim"], h["kv_heads"] * h["head_dim"], h["ffn"]

    def matrix(rows, cols, gain=1.0):
        return (rng.standard_normal((rows, cols)) * gain / np.sqrt(cols)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    t = {"token_embd.weight": (rng.standard_normal((vocab, dim)) * 0.3).astype(np.float32)}
    for i in range(h["layers"]):
        b = f"blk.{i}."
        t[b + "attn_norm.weight"] = norm(dim)
        t[b + "attn_q.weight"] = matrix(q_cols, dim, 2.0)
        t[b + "attn_k.weight"] = matrix(kv_cols, dim, 2.0)
        t[b + "attn_v.weight"] = matrix(kv_cols, dim)
        # Blocks that add much to the residual stream: with tied embeddings, a stream still
        # close to the last token's embedding would make every greedy step repeat it.
        t[b + "attn_output.weight"] = matrix(dim, q_cols, 4.0)
        t[b + "ffn_norm.weight"] = norm(dim)
        t[b + "ffn_gate.weight"] = matrix(ffn, dim)
        t[b + "ffn_up.weight"] = matrix(ffn, dim)
        t[b + "ffn_down.weight"] = matrix(dim, ffn, 4.0)
        if family == "qwen2":
            for what, n in (("attn_q", q_cols), ("attn_k", kv_cols), ("attn_v", kv_cols)):
                t[b + what + ".bias"] = (0.5 * rng.standard_normal(n)).astype(np.float32)
        if family in ("qwen3", "gemma3"):
            # Normed q and k score about N(0, 1) per pair; larger norm weights sharpen the
            # attention so that what a position sees (its window) shows in the logits.
            t[b + "attn_q_norm.weight"] = 2.0 * norm(h["head_dim"])
            t[b + "attn_k_norm.weight"] = 2.0 * norm(h["head_dim"])
        if family == "gemma3":
            t[b + "post_attention_norm.weight"] = 4.0 * norm(dim)
            t[b + "post_ffw_norm.weight"] = 4.0 * norm(dim)
    t["output_norm.weight"] = norm(dim)
    if not h["tied"]:
        t["output.weight"] = (rng.standard_normal((vocab, dim)) * 0.3).astype(np.float32)
    return t


def write_gguf(path, family, h, tensors, tokenizer, q8_0):
    import gguf

    w = gguf.GGUFWriter(path, family)
    w.add_name(f"edgenlu golden {family}")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if q8_0 else gguf.LlamaFileType.ALL_F32)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(h["dim"])
    w.add_block_count(h["layers"])
    w.add_feed_forward_length(h["ffn"])
    w.add_head_count(h["heads"])
    w.add_head_count_kv(h["kv_heads"])
    w.add_key_length(h["head_dim"])
    w.add_value_length(h["head_dim"])
    w.add_rope_dimension_count(h["head_dim"])
    w.add_rope_freq_base(h["rope_base"])
    w.add_layer_norm_rms_eps(h["eps"])
    if "sliding_window" in h:
        w.add_sliding_window(h["sliding_window"])
    tokens, types, merges = tokenizer
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(len(tokens) - 1)
    w.add_bos_token_id(len(tokens) - 1)
    w.add_add_bos_token(False)
    for name, data in tensors.items():
        if q8_0 and data.ndim == 2:
            from gguf.quants import quantize

            qtype = gguf.GGMLQuantizationType.Q8_0
            w.add_tensor(name, quantize(data, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def run(llama_cpp, path, sequences, steps, f32_cache):
    """[(greedy ids, first-step logits, last step's logits)] of llama.cpp on each sequence."""
    kv = dict(type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32) if f32_cache else {}
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_threads=2, n_threads_batch=2, seed=SEED,
                          logits_all=True, verbose=False, **kv)
    out = []
    for ids in sequences:
        generated, first = greedy(llm, ids, steps)
        # After the greedy steps every generated token is in the cache: these are the logits
        # of the decode step of the last one, at position len(ids) + steps - 1.
        out.append((generated, first, np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="directory for the GGUFs and arch_logits.jsonl")
    ap.add_argument("--steps", type=int, default=8, help="greedy tokens per sequence")
    args = ap.parse_args()

    import llama_cpp

    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer = vocabulary()
    vocab = len(tokenizer[0])
    rng = np.random.default_rng(SEED)
    sequences = [[int(t) for t in rng.integers(0, vocab - 1, n)] for n in SEQUENCE_LENGTHS]
    rows = []
    for family, h in FAMILIES.items():
        tensors = weights(family, h, vocab, rng)
        for kind in ("f32", "q8_0"):
            name = f"arch_{family}.{kind}.gguf"
            write_gguf(args.out / name, family, h, tensors, tokenizer, kind == "q8_0")
            results = run(llama_cpp, args.out / name, sequences, args.steps, kind == "f32")
            for ids, (generated, first, last) in zip(sequences, results):
                if first.shape != (vocab,):
                    sys.exit(f"{name}: logits of shape {first.shape}, not ({vocab},)")
                top2 = np.sort(first)[-2:]
                print(f"{name} {len(ids)} ids: logit std {first.std():.2f}, top-2 gap "
                      f"{top2[1] - top2[0]:.3f}, greedy {generated}")
                rows.append({
                    "architecture": family,
                    "weights": kind,
                    "gguf": name,
                    "prompt_ids": ids,
                    "first_logits": [round(float(x), 5) for x in first],
                    "greedy_ids": generated,
                    "last_logits": [round(float(x), 5) for x in last],
                })
    with open(args.out / "arch_logits.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(f"wrote {len(rows)} rows to {args.out / 'arch_logits.jsonl'}")


if __name__ == "__main__":
    main()
