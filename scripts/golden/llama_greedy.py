#!/usr/bin/env python3
"""Golden greedy continuations and first-step logits of SmolLM2 from llama.cpp
(llama-cpp-python), for the Rust decoder.

Loads the GGUF with llama-cpp-python (n_ctx 512, 2 threads, fixed seed, logits for every
position, quiet) and, for every prompt of llama_prompts.PROMPTS (plain completions, digits,
code, non-ASCII, emoji and ChatML chat prompts):
  - tokenizes it with llama.cpp (add_bos=False, as the GGUF's tokenizer.ggml.add_bos_token;
    special=True, so ChatML control tokens such as <|im_start|> are single ids);
  - decodes GREEDILY exactly --steps tokens (32) with the low-level eval: argmax of the raw
    logits at each step, no sampler (so no repetition penalty, temperature or top-k/p), and no
    stop at end-of-generation tokens (<|endoftext|>, <|im_end|>): `first_eog` is the index in
    `generated_ids` of the first one, or null.
Checks that "The capital of France is" continues with --france (default " Paris.\\n\\nThe United
States has", llama.cpp's continuation on the Q4_1 model).

llama.cpp's quantized matmuls also quantize the activations (q8_1/q8_0 blocks) and its KV cache
is f16, so its logits differ from a float forward of the same weights by up to about 1 (logit
std about 3.5), enough to flip near-tied argmaxes. Unless --no-f32, the same is then run on a
float32 copy of the model (every tensor dequantized with the `gguf` package into a temporary
GGUF) with an f32 KV cache, which agrees with the float64 numpy reference of
llama_reference.py to about 3e-5: the `f32_*` fields.

Writes JSON Lines {"prompt", "prompt_ids", "generated_ids", "generated_text", "first_eog",
"first_logits_top" ([[id, logit]] x 20, the top of the first step's logits, best first),
"first_logits_argmax", "f32_generated_ids", "f32_first_logits_top" (5 decimals),
"f32_first_logits_argmax"}, plus "first_logits" (all 49152 first-step logits, 4 decimals) for the
first llama_prompts.FULL_LOGITS prompts. `generated_text` is llama.cpp's detokenization with
special tokens rendered (bytes decoded as UTF-8, a cut character replaced by U+FFFD).
llama_reference.py reads this file. Output is generated, never committed.

Needs requirements-llama.txt, built with CMAKE_ARGS="-DGGML_NATIVE=OFF".

    python3 scripts/golden/llama_greedy.py \
        --gguf ~/.local/share/edgenlu/models/smollm2-135m-instruct.q4_1.gguf \
        --out golden/llama_greedy.jsonl
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from llama_prompts import FULL_LOGITS, PROMPTS

SEED = 1234
TOP = 20
FRANCE = ("The capital of France is", " Paris.\n\nThe United States has")


def greedy(llm, ids, steps):
    """(generated ids, first step's logits): argmax decoding of `steps` tokens after `ids`."""
    llm.reset()
    llm.eval(ids)
    first = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    logits, out = first, []
    for _ in range(steps):
        token = int(np.argmax(logits))
        out.append(token)
        llm.eval([token])
        logits = llm.scores[llm.n_tokens - 1]
    return out, first


def write_f32_gguf(src: Path, dst: Path):
    """A copy of the GGUF at `src` with every tensor dequantized to float32."""
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(src)
    writer = gguf.GGUFWriter(dst, reader.fields["general.architecture"].contents())
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value = 0 if name == "general.file_type" else field.contents()  # 0: all f32
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, value, vtype, sub_type=sub)
    for t in reader.tensors:
        writer.add_tensor(t.name, dequantize(t.data, t.tensor_type).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def top(logits, decimals):
    return [[int(t), round(float(logits[t]), decimals)] for t in np.argsort(-logits, kind="stable")[:TOP]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", type=Path, required=True, help="SmolLM2 GGUF")
    ap.add_argument("--out", type=Path, required=True, help="JSON Lines output")
    ap.add_argument("--steps", type=int, default=32, help="tokens generated per prompt")
    ap.add_argument("--no-f32", action="store_true", help="skip the float32 copy's f32_* fields")
    ap.add_argument("--france", default=FRANCE[1],
                    help="how llama.cpp must continue 'The capital of France is' on this model")
    args = ap.parse_args()

    import llama_cpp

    start = time.time()
    params = dict(n_ctx=512, n_threads=2, n_threads_batch=2, seed=SEED, logits_all=True, verbose=False)
    llm = llama_cpp.Llama(model_path=str(args.gguf), **params)
    vocab = llm.n_vocab()

    def is_eog(token):
        return bool(llama_cpp.llama_vocab_is_eog(llm._model.vocab, token))

    rows = []
    for n, prompt in enumerate(PROMPTS):
        ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        if len(ids) + args.steps > 512:
            sys.exit(f"prompt {n} is too long for n_ctx 512")
        generated, logits = greedy(llm, ids, args.steps)
        if logits.shape != (vocab,):
            sys.exit(f"logits have shape {logits.shape}, not ({vocab},)")
        text = llm.detokenize(generated, special=True).decode("utf-8", errors="replace")
        eog = next((i for i, t in enumerate(generated) if is_eog(t)), None)
        row = {
            "prompt": prompt,
            "prompt_ids": ids,
            "generated_ids": generated,
            "generated_text": text,
            "first_eog": eog,
            "first_logits_top": top(logits, 4),
            "first_logits_argmax": int(np.argmax(logits)),
        }
        if n < FULL_LOGITS:
            row["first_logits"] = [round(float(x), 4) for x in logits]
        rows.append(row)
        print(f"{prompt!r} ({len(ids)} ids) -> {text!r}" + ("" if eog is None else f" [eog at {eog}]"))
        if prompt == FRANCE[0] and not text.startswith(args.france):
            sys.exit(f"{prompt!r} continued with {text!r}, not {args.france!r}")

    if not args.no_f32:
        with tempfile.TemporaryDirectory() as tmp:
            f32_path = Path(tmp) / "f32.gguf"
            write_f32_gguf(args.gguf, f32_path)
            f32 = llama_cpp.Llama(model_path=str(f32_path), type_k=llama_cpp.GGML_TYPE_F32,
                                  type_v=llama_cpp.GGML_TYPE_F32, **params)
            same = 0
            for row in rows:
                generated, logits = greedy(f32, row["prompt_ids"], args.steps)
                row["f32_generated_ids"] = generated
                row["f32_first_logits_top"] = top(logits, 5)
                row["f32_first_logits_argmax"] = int(np.argmax(logits))
                same += generated == row["generated_ids"]
            f32.close()
        print(f"float32 copy: same {args.steps} greedy ids as the quantized run for {same}/{len(rows)} prompts")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(PROMPTS)} prompts to {args.out} ({time.time() - start:.1f} s)")


if __name__ == "__main__":
    main()
