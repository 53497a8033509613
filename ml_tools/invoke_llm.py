"""Generate text with an LLM endpoint (the DeepSpeed package's request format)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ml_tools.cold_start import wrap
from ml_tools.runtime import add_endpoint_arguments, invoke_json, runtime_client


def configure(parser: argparse.ArgumentParser) -> None:
    add_endpoint_arguments(parser)
    parser.add_argument("prompts", nargs="+", help="one or more prompts, generated as one batch")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-p", type=float)


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    parameters: dict[str, Any] = {"max_new_tokens": args.max_new_tokens, "do_sample": args.do_sample}
    for name in ("temperature", "top_p"):
        if getattr(args, name) is not None:
            parameters[name] = getattr(args, name)
    return {"inputs": args.prompts, "parameters": parameters}


def run(args: argparse.Namespace, *, client: Any = None) -> int:
    client = wrap(client or runtime_client(args.region), args)  # waits out a cold start (ml_tools/cold_start.py)
    _content_type, body = invoke_json(client, args.endpoint_name, request_body(args))
    try:
        texts = [item["generated_text"] for item in json.loads(body)]
    except (ValueError, TypeError, KeyError):
        print(f"invoke-llm: unexpected answer: {body[:300]!r}", file=sys.stderr)
        return 1
    if len(texts) != len(args.prompts):
        print(f"invoke-llm: {len(args.prompts)} prompts sent, {len(texts)} answers received", file=sys.stderr)
        return 1
    for prompt, text in zip(args.prompts, texts, strict=True):
        print(f"--- {prompt}\n{text}")
    return 0
