#!/usr/bin/env python3
"""Golden first-step logits of SmolLM2 from an independent numpy forward pass of the llama
architecture, to check both llama.cpp (llama_greedy.py) and the Rust decoder against.

Every weight of the GGUF is dequantized with the `gguf` package (gguf.quants.dequantize: Q4_1, Q4_K, Q6_K, Q5_0,
Q8_0, F32) and the forward runs in float64 over the whole sequence at once, no KV cache:
  - h = token_embd[ids]  (tied embeddings: the same Q8_0 matrix gives the logits);
  - per block: h += attn_output(attention(rms_norm(h) * attn_norm)),
               h += ffn_down(silu(ffn_gate(x)) * ffn_up(x)) with x = rms_norm(h) * ffn_norm;
  - rms_norm(x) = x / sqrt(mean(x^2) + eps);
  - attention: 9 query heads, 3 KV heads (query head h reads KV head h // 3), head_dim 64,
    causal softmax(q.k / sqrt(64)) v. RoPE is llama.cpp's "normal" mode (ggml mode 0):
    convert_hf_to_gguf.py permutes the rows of attn_q/attn_k so that RoPE rotates ADJACENT
    pairs (x[2i], x[2i+1]) by theta_i = pos * base^(-2i/64), base = llama.rope.freq_base;
    NOT Hugging Face's rotate_half over (x[i], x[i+32]);
  - logits = rms_norm(h) * output_norm @ token_embd^T.

Prompt ids are not tokenized here: they are read from llama_greedy.py's output (--greedy), so
both files use llama.cpp's tokenization and this script does not need llama-cpp-python. For
the first llama_prompts.FULL_LOGITS prompts it writes JSON Lines
{"prompt", "prompt_ids", "logits" (49152 floats, 5 decimals), "argmax"} for the last prompt
position (the first generation step). It also re-runs greedy decoding of the first prompt
("The capital of France is") for as many tokens as llama.cpp generated, recomputing the whole
sequence each step.

Checks, against llama_greedy.py's file:
  - llama.cpp on the float32 copy of the model (the `f32_*` fields, f32 KV cache) must agree:
    same argmax, its top-20 logits within 1e-3, and the same greedy continuation;
  - llama.cpp on the quantized model (`first_logits`, `generated_ids`) quantizes activations to
    q8 blocks and keeps an f16 KV cache, so it only agrees within noise: max |logit diff| must
    stay under --quantized-tolerance logit standard deviations (default 0.5: about 1.1 against
    a std of about 3.4 for SmolLM2-135M Q4_1; its Q4_K_M reaches 0.8 on two prompts, so
    scripts/test.sh passes 1.0 for it; a wrong RoPE pairing or KV-head mapping gives 6 to 27,
    2 to 8 std). Its argmax and
    greedy continuation are reported, not required to agree: near ties flip (the ChatML
    "capital of France" prompt starts "L" (60) in llama.cpp, "The" (504) here; "The capital
    of France is" continues " Paris.\n\nThe" then " answer is: 2018-..." here and with llama.cpp
    in f32, " United States has ..." with llama.cpp on Q4_1).
It exits non-zero when a required check fails. Output is generated, never committed.

    python3 scripts/golden/llama_reference.py \
        --gguf ~/.local/share/edgenlu/models/smollm2-135m-instruct.q4_1.gguf \
        --greedy golden/llama_greedy.jsonl --out golden/llama_reference.jsonl
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from llama_prompts import FULL_LOGITS, PROMPTS


class Llama:
    """The llama architecture in float64 numpy, weights dequantized from a GGUF."""

    def __init__(self, path: Path):
        from gguf import GGUFReader
        from gguf.quants import dequantize

        reader = GGUFReader(path)

        def field(key):
            return reader.fields[key].contents()

        arch = field("general.architecture")
        if arch != "llama":
            sys.exit(f"{path}: architecture {arch!r}, not 'llama'")
        self.n_layer = field("llama.block_count")
        self.dim = field("llama.embedding_length")
        self.n_head = field("llama.attention.head_count")
        self.n_kv_head = field("llama.attention.head_count_kv")
        self.head_dim = self.dim // self.n_head
        self.rope_base = float(field("llama.rope.freq_base"))
        self.eps = float(field("llama.attention.layer_norm_rms_epsilon"))
        self.w = {}
        for t in reader.tensors:
            # dequantize gives numpy's row-major (rows, cols): matrices are (out, in).
            self.w[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64)
        if "output.weight" in self.w:
            self.out = self.w["output.weight"]
        else:
            self.out = self.w["token_embd.weight"]  # tied embeddings
        self.vocab = self.w["token_embd.weight"].shape[0]

    def rms_norm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x):
        """x: (seq, heads, head_dim); rotates adjacent pairs (ggml rope mode 0)."""
        seq = x.shape[0]
        i = np.arange(self.head_dim // 2, dtype=np.float64)
        inv_freq = self.rope_base ** (-2.0 * i / self.head_dim)
        theta = np.arange(seq, dtype=np.float64)[:, None] * inv_freq[None, :]  # (seq, hd/2)
        cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out

    def attention(self, x, layer):
        seq, hd = x.shape[0], self.head_dim
        p = f"blk.{layer}."
        q = (x @ self.w[p + "attn_q.weight"].T).reshape(seq, self.n_head, hd)
        k = (x @ self.w[p + "attn_k.weight"].T).reshape(seq, self.n_kv_head, hd)
        v = (x @ self.w[p + "attn_v.weight"].T).reshape(seq, self.n_kv_head, hd)
        q, k = self.rope(q), self.rope(k)
        group = self.n_head // self.n_kv_head
        k = np.repeat(k, group, axis=1)  # query head h reads KV head h // group
        v = np.repeat(v, group, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd)
        scores = np.where(np.tril(np.ones((seq, seq), dtype=bool))[None], scores, -np.inf)
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        out = np.einsum("hqk,khd->qhd", probs, v).reshape(seq, self.dim)
        return out @ self.w[p + "attn_output.weight"].T

    def ffn(self, x, layer):
        p = f"blk.{layer}."
        gate = x @ self.w[p + "ffn_gate.weight"].T
        up = x @ self.w[p + "ffn_up.weight"].T
        return (gate / (1.0 + np.exp(-gate)) * up) @ self.w[p + "ffn_down.weight"].T

    def last_logits(self, ids):
        """Logits at the last position of `ids` (the next token's distribution)."""
        h = self.w["token_embd.weight"][np.asarray(ids)]
        for layer in range(self.n_layer):
            p = f"blk.{layer}."
            h = h + self.attention(self.rms_norm(h, self.w[p + "attn_norm.weight"]), layer)
            h = h + self.ffn(self.rms_norm(h, self.w[p + "ffn_norm.weight"]), layer)
        return self.rms_norm(h[-1], self.w["output_norm.weight"]) @ self.out.T


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", type=Path, required=True, help="SmolLM2 GGUF (llama architecture)")
    ap.add_argument("--greedy", type=Path, required=True, help="llama_greedy.py's JSON Lines output")
    ap.add_argument("--out", type=Path, required=True, help="JSON Lines output")
    ap.add_argument("--quantized-tolerance", type=float, default=0.5,
                    help="largest max |logit diff| against llama.cpp's quantized run, in logit std")
    args = ap.parse_args()

    with args.greedy.open(encoding="utf-8") as f:
        greedy = [json.loads(line) for line in f if line.strip()]
    if [g["prompt"] for g in greedy[:FULL_LOGITS]] != PROMPTS[:FULL_LOGITS]:
        sys.exit(f"{args.greedy}: its first prompts are not llama_prompts.PROMPTS[:{FULL_LOGITS}]")

    start = time.time()
    model = Llama(args.gguf)
    print(f"loaded {args.gguf.name}: {model.n_layer} layers, dim {model.dim}, "
          f"{model.n_head}/{model.n_kv_head} heads, vocab {model.vocab} ({time.time() - start:.1f} s)")

    ok = True

    def check(cond, message):
        nonlocal ok
        ok &= bool(cond)
        if not cond:
            print(f"  FAILED: {message}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        for g in greedy[:FULL_LOGITS]:
            logits = model.last_logits(g["prompt_ids"])
            argmax = int(np.argmax(logits))
            out.write(json.dumps({
                "prompt": g["prompt"],
                "prompt_ids": g["prompt_ids"],
                "logits": [round(float(x), 5) for x in logits],
                "argmax": argmax,
            }, ensure_ascii=False) + "\n")
            diff = np.abs(logits - np.asarray(g["first_logits"], dtype=np.float64))
            std = logits.std()
            print(f"{g['prompt']!r}: {len(g['prompt_ids'])} ids, argmax {argmax}, logit std {std:.4f}")
            print(f"  llama.cpp quantized: argmax {g['first_logits_argmax']}"
                  f"{'' if argmax == g['first_logits_argmax'] else ' (differs: near tie)'}, "
                  f"max |diff| {diff.max():.4f}, mean |diff| {diff.mean():.4f}")
            check(diff.max() < args.quantized_tolerance * std,
                  f"max |diff| against llama.cpp quantized is not under {args.quantized_tolerance} std")
            if "f32_first_logits_top" in g:
                top = np.asarray(g["f32_first_logits_top"], dtype=np.float64)
                f32_diff = np.abs(logits[top[:, 0].astype(int)] - top[:, 1]).max()
                print(f"  llama.cpp f32: argmax {g['f32_first_logits_argmax']}, "
                      f"max |diff| over its top {len(top)} {f32_diff:.6f}")
                check(argmax == g["f32_first_logits_argmax"], "argmax differs from llama.cpp f32")
                check(f32_diff < 1e-3, "top logits differ from llama.cpp f32 by 1e-3 or more")

    # Greedy continuation of the first prompt, recomputing everything each step.
    g = greedy[0]
    ids = list(g["prompt_ids"])
    for _ in range(len(g["generated_ids"])):
        ids.append(int(np.argmax(model.last_logits(ids))))
    generated = ids[len(g["prompt_ids"]):]

    def common(a, b):
        return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))

    print(f"greedy {g['prompt']!r}: numpy {generated}")
    print(f"  llama.cpp quantized {g['generated_ids']} ({g['generated_text']!r}): "
          f"first {common(generated, g['generated_ids'])} ids agree")
    if "f32_generated_ids" in g:
        print(f"  llama.cpp f32: first {common(generated, g['f32_generated_ids'])} ids agree")
        check(generated == g["f32_generated_ids"], "greedy continuation differs from llama.cpp f32")
    print(f"wrote {args.out} ({time.time() - start:.1f} s)")
    if not ok:
        sys.exit("the numpy reference disagrees with llama.cpp")

if __name__ == "__main__":
    main()
