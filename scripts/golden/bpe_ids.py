#!/usr/bin/env python3
"""Golden byte-level BPE ids from Hugging Face `tokenizers`, for the BPE tokenizer component.

Builds a `tokenizers.Tokenizer` from a GGUF's `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`
configured as SmolLM2-135M-Instruct's tokenizer.json: BPE (no unknown token, no dropout),
pre-tokenizer Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False,
use_regex=True)], ByteLevel decoder and post-processor, and the control tokens
(`tokenizer.ggml.token_type` == 3) as special added tokens. Checks that "The capital of France
is Paris." encodes to 504,3575,282,4649,314,7042,30, then encodes:
  - every `text` of every .jsonl under --datasets (all splits, first occurrence order, no duplicates);
  - the strings of tests/data/hostile_strings.json ({"repeat": s, "times": n} stands for s
    repeated n times);
  - ChatML prompts (SmolLM2's chat template) around a sample of the dataset texts;
  - with --all-code-points, every Unicode scalar value in groups of 64, once joined by spaces
    and once run together, so each character's class (letter, number, space, other) matters.

Writes JSON Lines {"source", "text", "ids", "decoded", "lossless"}: `source` is datasets,
hostile, chat or code-points; `decoded` is
Hugging Face's decode(ids) with special tokens kept; `lossless` is false when the text has a
byte the vocabulary has no byte token for (SmolLM2 lacks 0x04, 0x06, 0x13, 0x14, 0x16, 0x1D and
the lead bytes of U+40000..U+BFFFF, besides bytes UTF-8 never uses), which BPE drops, so only
those texts cannot come back from decode(encode(text)). Output is generated, never committed.

    python3 scripts/golden/bpe_ids.py --gguf ~/.local/share/edgenlu/models/smollm2-135m-instruct.q4_1.gguf \
        --out golden/bpe_ids.jsonl --all-code-points
"""

import argparse
import json
import struct
import sys
from pathlib import Path

from texts import dataset_texts, hostile_texts

REPO = Path(__file__).resolve().parents[2]

# GGUF metadata value types (ggml's gguf.h).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def read_gguf_metadata(path: Path) -> dict:
    """The key/value metadata of a GGUF file (v2 or v3); tensors are not read."""
    with path.open("rb") as f:
        def unpack(fmt):
            size = struct.calcsize(fmt)
            return struct.unpack(fmt, f.read(size))[0]

        def string():
            return f.read(unpack("<Q")).decode("utf-8")

        def value(vtype):
            if vtype == _STRING:
                return string()
            if vtype == _ARRAY:
                etype, n = unpack("<I"), unpack("<Q")
                return [value(etype) for _ in range(n)]
            return unpack(_SCALARS[vtype])

        if f.read(4) != b"GGUF":
            sys.exit(f"{path} is not a GGUF file")
        version = unpack("<I")
        if version < 2:
            sys.exit(f"{path}: GGUF v{version} is not supported")
        unpack("<Q")  # tensor count
        kv_count = unpack("<Q")
        meta = {}
        for _ in range(kv_count):
            key = string()
            meta[key] = value(unpack("<I"))
        return meta


def build_tokenizer(meta: dict):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    if meta.get("tokenizer.ggml.model") != "gpt2":
        sys.exit(f"tokenizer.ggml.model is {meta.get('tokenizer.ggml.model')!r}, not 'gpt2'")
    tokens = meta["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, dropout=None, unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    types = meta.get("tokenizer.ggml.token_type", [])
    control = [tokens[i] for i, t in enumerate(types) if t == 3]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    tok.no_padding()
    tok.no_truncation()
    return tok, control


def byte_char(b: int) -> str:
    """GPT-2's byte-to-character table (bytes_to_unicode)."""
    printable = lambda x: 33 <= x <= 126 or 0xA1 <= x <= 0xAC or 0xAE <= x <= 0xFF
    if printable(b):
        return chr(b)
    return chr(256 + sum(1 for x in range(b) if not printable(x)))


SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml(messages, generation_prompt=True):
    """SmolLM2-Instruct's chat template (ChatML; a default system turn when none is given)."""
    if messages[0][0] != "system":
        messages = [("system", SYSTEM)] + list(messages)
    text = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in messages)
    return text + ("<|im_start|>assistant\n" if generation_prompt else "")


def chat_texts(samples, control):
    system = SYSTEM
    yield "The capital of France is Paris."
    yield "The capital of France is"
    yield chatml([("user", "What is the capital of France?")])
    yield chatml([("system", system), ("user", "What is the capital of France?")])
    yield chatml([("system", system), ("user", "Hi"), ("assistant", "Hello! How can I help?"), ("user", "2+2=?")], False)
    yield "".join(control)
    yield " ".join(control)
    yield "<|im_start|<|im_end|>>" + "<|im_start" + "|im_end|>"
    for text in samples:
        yield chatml([("system", system), ("user", text)])


def all_code_points(group: int = 64):
    chars = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    for i in range(0, len(chars), group):
        yield " ".join(chars[i : i + group])
        yield "".join(chars[i : i + group])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True, type=Path, help="SmolLM2's GGUF (vocabulary and merges)")
    ap.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--hostile", type=Path, default=REPO / "tests" / "data" / "hostile_strings.json")
    ap.add_argument("--all-code-points", action="store_true", help="also encode every code point")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()

    meta = read_gguf_metadata(args.gguf)
    tok, control = build_tokenizer(meta)
    france = tok.encode("The capital of France is Paris.").ids
    assert france == [504, 3575, 282, 4649, 314, 7042, 30], f"France example encodes to {france}"

    vocab = set(meta["tokenizer.ggml.tokens"])
    missing = {b for b in range(256) if byte_char(b) not in vocab}
    print(f"bytes without a byte token: {sorted(hex(b) for b in missing)}", file=sys.stderr)

    data = list(dataset_texts(args.datasets))
    sources = [
        ("datasets", data),
        ("hostile", hostile_texts(args.hostile)),
        ("chat", chat_texts(data[:: max(1, len(data) // 200)], control)),
    ]
    if args.all_code_points:
        sources.append(("code-points", all_code_points()))
    seen = set()
    texts = []
    for name, source in sources:
        for text in source:
            if text not in seen:
                seen.add(text)
                texts.append((name, text))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for start in range(0, len(texts), 1024):
            batch = texts[start : start + 1024]
            encs = tok.encode_batch([t for _, t in batch], add_special_tokens=True)
            for (source, text), enc in zip(batch, encs):
                row = {
                    "source": source,
                    "text": text,
                    "ids": enc.ids,
                    "decoded": tok.decode(enc.ids, skip_special_tokens=False),
                    "lossless": not missing.intersection(text.encode("utf-8")),
                }
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(args.out)
    print(f"{len(texts)} texts -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
