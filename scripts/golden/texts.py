"""Texts the golden scripts feed to reference tokenizers: every dataset text and the hostile
strings (shared by wordpiece_ids.py and bpe_ids.py)."""

import json
import sys
from pathlib import Path


def dataset_texts(root: Path):
    """Every `text` of every .jsonl under `root`, files in sorted order."""
    files = sorted(root.rglob("*.jsonl"))
    if not files:
        sys.exit(f"no .jsonl files under {root}")
    for path in files:
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)["text"]


def hostile_texts(path: Path):
    """tests/data/hostile_strings.json, with {"repeat": s, "times": n} expanded."""
    for entry in json.loads(path.read_text(encoding="utf-8")):
        if isinstance(entry, dict):
            yield entry["repeat"] * entry["times"]
        else:
            yield entry
