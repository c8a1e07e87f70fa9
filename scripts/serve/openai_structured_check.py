#!/usr/bin/env python3
"""Asks an `edgenlu serve` for a reply under a JSON schema with the official `openai` client's
`response_format` (type `json_schema`, strict) and prints the reply's text, for
tests/tests/serve.rs to parse and validate:

    python3 scripts/serve/openai_structured_check.py --base-url http://127.0.0.1:8080/v1 \\
        --schema '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}'
"""

import argparse
import json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--schema", required=True, help="the JSON schema, as JSON text")
    args = ap.parse_args()
    import openai

    client = openai.OpenAI(base_url=args.base_url, api_key="unused-on-device", max_retries=0, timeout=120)
    chat = client.chat.completions.create(
        model="smollm2-135m-instruct.q4_1",
        messages=[{"role": "user", "content": "Name a European capital and its landmarks, as JSON."}],
        max_tokens=200,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": json.loads(args.schema), "strict": True},
        },
    )
    print(chat.choices[0].message.content)


if __name__ == "__main__":
    main()
