#!/usr/bin/env python3
"""Calls an `edgenlu serve` with the official `openai` Python client (PyPI `openai`, pinned in
scripts/serve/requirements.txt): embeddings, a chat completion, a streamed one, and one that
continues a conversation (an earlier user and assistant turn). Prints one
JSON object with what came back, for tests/tests/serve.rs to check:

    python3 scripts/serve/openai_client_check.py --base-url http://127.0.0.1:8080/v1
"""

import argparse
import json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    args = ap.parse_args()
    import openai

    client = openai.OpenAI(base_url=args.base_url, api_key="unused-on-device", max_retries=0, timeout=120)
    emb = client.embeddings.create(model="all-minilm-l6-v2.q8_0", input=["play some jazz", "hello"])
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    chat = client.chat.completions.create(model="smollm2-135m-instruct.q4_1", messages=messages, max_tokens=12)
    pieces, finish = [], None
    for chunk in client.chat.completions.create(
        model="smollm2-135m-instruct.q4_1", messages=messages, max_tokens=12, stream=True
    ):
        choice = chunk.choices[0]
        if choice.delta.content:
            pieces.append(choice.delta.content)
        finish = choice.finish_reason or finish
    conversation = messages + [
        {"role": "assistant", "content": "The capital of France is Paris."},
        {"role": "user", "content": "And what about Italy?"},
    ]
    multi = client.chat.completions.create(model="smollm2-135m-instruct.q4_1", messages=conversation, max_tokens=4)
    models = [m.id for m in client.models.list().data]
    print(json.dumps({
        "openai_version": openai.__version__,
        "embedding_count": len(emb.data),
        "embedding_dims": len(emb.data[0].embedding),
        "embedding_tokens": emb.usage.prompt_tokens,
        "chat_text": chat.choices[0].message.content,
        "chat_finish": chat.choices[0].finish_reason,
        "chat_completion_tokens": chat.usage.completion_tokens,
        "chat_prompt_tokens": chat.usage.prompt_tokens,
        "multi_turn_prompt_tokens": multi.usage.prompt_tokens,
        "stream_text": "".join(pieces),
        "stream_finish": finish,
        "models": models,
    }))


if __name__ == "__main__":
    main()
