#!/usr/bin/env python3
"""Vendor-side fine-tuning of all-MiniLM-L6-v2 for one NLU task (offline, never on device).

The device keeps its pipeline unchanged: a frozen encoder, then a linear softmax intent head
on the mean-pooled, L2-normalised sentence embedding and a linear BIO tagger on the last
hidden states, both trained in Rust (`edgenlu skill train`). So we fine-tune the encoder
with heads of exactly that shape, and ship only the encoder: once its weights have learned
to separate the task's intents (and slot tokens) linearly, the device's own heads, retrained
on the frozen fine-tuned encoder, recover that separation.

Output: a Hugging Face BERT folder (config, tokenizer files, model.safetensors with the
original tensor names and dtypes) that `edgenlu models import` converts to GGUF. The heads
trained here are thrown away on purpose: the device trains its own.

Run with Debian's torch (python3-torch) and a venv that adds `tokenizers` (see README.md).
"""

import argparse
import json
import math
import os
import random
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
from tokenizers import Tokenizer

# The files an HF BERT folder needs besides the weights; copied unchanged so the device's
# WordPiece tokenizer (built from tokenizer.json / vocab.txt) sees the original vocabulary.
COPIED_FILES = [
    "config.json",
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
]

OOS = "oos"


# --- safetensors: names, dtypes and the metadata block stay exactly as the original file has
# them (the importer looks tensors up by name).


def read_safetensors(path):
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
    return load_file(path), meta


def write_safetensors(path, tensors, meta):
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, path)


# --- BERT, post-LN, as the device runs it (and as HF's BertModel does).


class Layer(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, ff = cfg["hidden_size"], cfg["intermediate_size"]
        self.heads = cfg["num_attention_heads"]
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d) for _ in range(4))
        self.ln1 = torch.nn.LayerNorm(d, eps=cfg["layer_norm_eps"])
        self.up, self.down = torch.nn.Linear(d, ff), torch.nn.Linear(ff, d)
        self.ln2 = torch.nn.LayerNorm(d, eps=cfg["layer_norm_eps"])
        self.drop = torch.nn.Dropout(cfg["hidden_dropout_prob"])
        self.attn_drop = torch.nn.Dropout(cfg["attention_probs_dropout_prob"])

    def forward(self, x, bias):
        b, n, d = x.shape
        split = lambda t: t.view(b, n, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + bias
        ctx = (self.attn_drop(scores.softmax(-1)) @ v).transpose(1, 2).reshape(b, n, d)
        x = self.ln1(x + self.drop(self.o(ctx)))
        # erf GELU, as the original BERT and the device's `gelu` kernel.
        return self.ln2(x + self.drop(self.down(F.gelu(self.up(x)))))


class Bert(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        self.word = torch.nn.Embedding(cfg["vocab_size"], d)
        self.pos = torch.nn.Embedding(cfg["max_position_embeddings"], d)
        self.token_type = torch.nn.Embedding(cfg["type_vocab_size"], d)
        self.ln = torch.nn.LayerNorm(d, eps=cfg["layer_norm_eps"])
        self.drop = torch.nn.Dropout(cfg["hidden_dropout_prob"])
        self.layers = torch.nn.ModuleList(Layer(cfg) for _ in range(cfg["num_hidden_layers"]))

    def forward(self, ids, mask):
        n = ids.shape[1]
        # The device always uses token type 0 (single sentences).
        x = self.word(ids) + self.pos.weight[:n] + self.token_type.weight[0]
        x = self.drop(self.ln(x))
        bias = (1.0 - mask[:, None, None, :].float()) * -1e4
        for layer in self.layers:
            x = layer(x, bias)
        return x

    def hf_names(self):
        """Our parameter → the original safetensors name (the importer's contract)."""
        names = {
            "word.weight": "embeddings.word_embeddings.weight",
            "pos.weight": "embeddings.position_embeddings.weight",
            "token_type.weight": "embeddings.token_type_embeddings.weight",
            "ln.weight": "embeddings.LayerNorm.weight",
            "ln.bias": "embeddings.LayerNorm.bias",
        }
        parts = {
            "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
            "o": "attention.output.dense", "ln1": "attention.output.LayerNorm",
            "up": "intermediate.dense", "down": "output.dense", "ln2": "output.LayerNorm",
        }
        for i in range(len(self.layers)):
            for ours, theirs in parts.items():
                for p in ("weight", "bias"):
                    names[f"layers.{i}.{ours}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
        return names


def sentence_embedding(hidden, mask):
    """Mean over the real tokens ([CLS] and [SEP] included), then L2 norm: the device's
    `mean_pool` + `l2_normalize`, so the intent head trains on what the device will see."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)


# --- data


def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def bio_tags(slot_names):
    """"O", then B-/I- per slot name, sorted: the same tag set the device's tagger uses."""
    return ["O"] + [f"{p}-{n}" for n in sorted(slot_names) for p in ("B", "I")]


def encode(examples, tok, intents, tags, max_len):
    """Token ids, intent label and per-token BIO labels (-100: not learned).

    Token labels follow the device's `bio_labels` (host/train/src/slots.rs): a token is inside a
    slot only if it lies wholly within the span; the first such token is B-, the rest I-;
    [CLS]/[SEP] are not learned. `tokenizers` reports character offsets for a str, and the
    datasets give character spans, so no byte conversion is needed here."""
    tag_ix = {t: i for i, t in enumerate(tags)} if tags else {}
    out = []
    for ex, enc in zip(examples, tok.encode_batch([e["text"] for e in examples])):
        ids, offsets, special = enc.ids[:max_len], enc.offsets[:max_len], enc.special_tokens_mask[:max_len]
        if len(enc.ids) > max_len:  # keep the closing [SEP], as the device's truncation does
            ids[-1], offsets[-1], special[-1] = enc.ids[-1], (0, 0), 1
        labels = [-100] * len(ids)
        if tags:
            spans = [s for s in ex.get("slots", []) if s["start"] < s["end"]]
            started = [False] * len(spans)
            for t, ((a, b), sp) in enumerate(zip(offsets, special)):
                if sp or a == b:
                    continue
                labels[t] = tag_ix["O"]
                for i, s in enumerate(spans):
                    if a >= s["start"] and b <= s["end"]:
                        prefix = "I" if started[i] else "B"
                        started[i] = True
                        labels[t] = tag_ix.get(f"{prefix}-{s['slot']}", tag_ix["O"])
                        break
        out.append((ids, intents.index(ex["intent"]), labels))
    return out


def batches(data, size, rng, shuffle):
    """Batches of similar length (padding is most of the cost on short utterances): shuffle,
    sort within windows of 50 batches by length, then shuffle the batches themselves."""
    order = list(range(len(data)))
    if shuffle:
        rng.shuffle(order)
    window = size * 50
    out = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w : w + window], key=lambda i: len(data[i][0]))
        out += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    if shuffle:
        rng.shuffle(out)
    return out


def collate(data, idx):
    n = max(len(data[i][0]) for i in idx)
    ids = torch.zeros(len(idx), n, dtype=torch.long)
    mask = torch.zeros(len(idx), n, dtype=torch.long)
    labels = torch.full((len(idx), n), -100, dtype=torch.long)
    for r, i in enumerate(idx):
        t, _, lab = data[i]
        ids[r, : len(t)] = torch.tensor(t)
        mask[r, : len(t)] = 1
        labels[r, : len(t)] = torch.tensor(lab)
    intents = torch.tensor([data[i][1] for i in idx])
    return ids, mask, intents, labels


# --- training


class Heads(torch.nn.Module):
    """Training-only heads. Intent: scaled cosine (logits = scale · Ŵ·e). On unit-norm
    embeddings this pulls each class into a tight cone around its own direction, which a
    plain linear softmax (the device's head) separates easily. Slots: a linear layer on the
    raw last hidden states, the same function class as the device's tagger."""

    def __init__(self, dim, n_intents, n_tags, scale):
        super().__init__()
        self.intent = torch.nn.Parameter(torch.randn(n_intents, dim) * 0.02)
        self.scale = scale
        self.slots = torch.nn.Linear(dim, n_tags) if n_tags else None

    def forward(self, hidden, mask):
        e = sentence_embedding(hidden, mask)
        intent_logits = self.scale * e @ F.normalize(self.intent, dim=-1).T
        slot_logits = self.slots(hidden) if self.slots is not None else None
        return intent_logits, slot_logits


@torch.no_grad()
def evaluate(bert, heads, data, intents, batch):
    """Intent accuracy on in-scope examples, how often `oos` is predicted for oos ones, and
    slot-token accuracy on tokens inside slots (a quick signal; the real scores come from
    `edgenlu eval` on device)."""
    bert.eval()
    oos = intents.index(OOS) if OOS in intents else -1
    ok = n = oos_ok = oos_n = slot_ok = slot_n = 0
    for idx in batches(data, batch, None, shuffle=False):
        ids, mask, y, labels = collate(data, idx)
        hidden = bert(ids, mask)
        il, sl = heads(hidden, mask)
        pred = il.argmax(-1)
        ins = y != oos
        ok += int((pred[ins] == y[ins]).sum())
        n += int(ins.sum())
        oos_ok += int((pred[~ins] == oos).sum())
        oos_n += int((~ins).sum())
        if sl is not None:
            inside = labels > 0  # tag 0 is "O"
            slot_ok += int((sl.argmax(-1)[inside] == labels[inside]).sum())
            slot_n += int(inside.sum())
    bert.train()
    r = {"intent_acc": ok / max(n, 1)}
    if oos_n:
        r["oos_predicted"] = oos_ok / oos_n
    if slot_n:
        r["slot_token_acc"] = slot_ok / slot_n
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True, help="JSONL: text, intent[, slots]")
    ap.add_argument("--val", help="JSONL scored after each epoch (never trained on)")
    ap.add_argument("--hf-dir", required=True, help="the original HF BERT folder")
    ap.add_argument("--out", required=True, help="new HF folder for the fine-tuned encoder")
    ap.add_argument("--epochs", type=float, default=3, help="may be fractional (e.g. 0.05 to time a run)")
    ap.add_argument("--lr", type=float, default=8e-5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-len", type=int, default=64, help="tokens incl. [CLS]/[SEP]")
    ap.add_argument("--scale", type=float, default=20.0, help="cosine logit scale (1/temperature)")
    ap.add_argument("--warmup", type=float, default=0.06, help="fraction of steps")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--slots", action="store_true", help="also train a BIO tagger (joint loss)")
    ap.add_argument("--no-oos-class", action="store_true",
                    help="drop `oos` training rows instead of learning them as one more class")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    # Determinism: fixed seeds, one thread, deterministic kernels (CPU).
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)

    cfg = json.load(open(os.path.join(args.hf_dir, "config.json")))
    tok = Tokenizer.from_file(os.path.join(args.hf_dir, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()  # we truncate ourselves, keeping [SEP]

    train = load_jsonl(args.train)
    if args.no_oos_class:
        train = [e for e in train if e["intent"] != OOS]
    val = load_jsonl(args.val) if args.val else []
    intents = sorted({e["intent"] for e in train})
    tags = bio_tags({s["slot"] for e in train for s in e.get("slots", [])}) if args.slots else []
    train_data = encode(train, tok, intents, tags, args.max_len)
    # Validation intents unseen in training (oos when it is not a class) count as misses.
    val = [e for e in val if e["intent"] in intents or e["intent"] == OOS]
    intents_v = intents + ([OOS] if OOS not in intents else [])
    val_data = encode(val, tok, intents_v, tags, args.max_len) if val else []
    lens = [len(d[0]) for d in train_data]
    print(f"{len(train_data)} train examples, {len(intents)} intents, {len(tags)} tags, "
          f"tokens mean {np.mean(lens):.1f} max {max(lens)}; {len(val_data)} val", flush=True)

    bert = Bert(cfg)
    original, meta = read_safetensors(os.path.join(args.hf_dir, "model.safetensors"))
    names = bert.hf_names()
    state = {ours: torch.from_numpy(original[theirs].copy()) for ours, theirs in names.items()}
    bert.load_state_dict(state, strict=True)
    heads = Heads(cfg["hidden_size"], len(intents), len(tags), args.scale)

    # No weight decay on biases and LayerNorm gains, as in BERT's own recipe; the heads
    # get a higher rate since they start from scratch.
    decay, no_decay = [], []
    for n, p in bert.named_parameters():
        (no_decay if p.ndim == 1 else decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
            {"params": heads.parameters(), "weight_decay": 0.0, "lr": args.lr * 20},
        ],
        lr=args.lr,
    )
    per_epoch = math.ceil(len(train_data) / args.batch)
    total = max(1, int(round(args.epochs * per_epoch)))
    warmup = max(1, int(args.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )

    rng = random.Random(args.seed)
    history, step, bert_epoch = [], 0, 0
    bert.train()
    while step < total:
        t0 = time.time()
        loss_sum = 0.0
        done = 0
        for idx in batches(train_data, args.batch, rng, shuffle=True):
            if step >= total:
                break
            ids, mask, y, labels = collate(train_data, idx)
            hidden = bert(ids, mask)
            il, sl = heads(hidden, mask)
            loss = F.cross_entropy(il, y)
            if sl is not None:
                loss = loss + F.cross_entropy(sl.reshape(-1, sl.shape[-1]), labels.reshape(-1), ignore_index=-100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(bert.parameters()) + list(heads.parameters()), 1.0)
            opt.step()
            sched.step()
            step += 1
            done += 1
            loss_sum += loss.item()
            if step % 50 == 0:
                print(f"  step {step}/{total} loss {loss_sum / done:.4f} "
                      f"{(time.time() - t0) / done:.2f} s/step", flush=True)
        bert_epoch += 1
        secs = time.time() - t0
        rec = {"epoch": bert_epoch, "steps": done, "loss": loss_sum / max(done, 1), "seconds": round(secs, 1)}
        if val_data:
            rec["val"] = evaluate(bert, heads, val_data, intents_v, 64)
        history.append(rec)
        print(json.dumps(rec), flush=True)

    # Encoder only, every tensor under its original name and dtype; tensors we do not train
    # (position_ids, the pooler, unused by mean pooling) are passed through unchanged.
    os.makedirs(args.out, exist_ok=True)
    trained = bert.state_dict()
    tensors = dict(original)
    for ours, theirs in names.items():
        tensors[theirs] = trained[ours].detach().numpy().astype(original[theirs].dtype)
    write_safetensors(os.path.join(args.out, "model.safetensors"), tensors, meta)
    for f in COPIED_FILES:
        src = os.path.join(args.hf_dir, f)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(args.out, f))
    with open(os.path.join(args.out, "finetune.json"), "w") as f:
        json.dump({"args": vars(args), "intents": intents, "tags": tags, "history": history,
                   "argv": sys.argv}, f, indent=1)
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
