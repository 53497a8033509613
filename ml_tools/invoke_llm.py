"""Generate text with an LLM endpoint.

Both runtime profiles take ``{"inputs": ..., "parameters": {"max_new_tokens": ..., ...}}``.
By default each prompt is its own request: LMI's vLLM handler (profile ``current``) batches
concurrent requests itself and answers ``{"generated_text": ...}`` for one prompt. ``--batch``
sends every prompt in one request, as the DeepSpeed handler (profile ``seed``) generates them
together and answers ``[{"generated_text": ...}, ...]``. Either handler refuses a request past
the endpoint's limits (max new tokens, batch size) with HTTP 400 naming the limit.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ml_tools.cold_start import wrap
from ml_tools.runtime import add_endpoint_arguments, invoke_json, runtime_client


def configure(parser: argparse.ArgumentParser) -> None:
    add_endpoint_arguments(parser)
    parser.add_argument("prompts", nargs="+", help="one or more prompts")
    parser.add_argument("--batch", action="store_true",
                        help="send all prompts in one request (the seed profile's DeepSpeed handler)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-p", type=float)


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    found: dict[str, Any] = {"max_new_tokens": args.max_new_tokens, "do_sample": args.do_sample}
    for name in ("temperature", "top_p"):
        if getattr(args, name) is not None:
            found[name] = getattr(args, name)
    return found


def request_bodies(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.batch:
        return [{"inputs": args.prompts, "parameters": parameters(args)}]
    return [{"inputs": prompt, "parameters": parameters(args)} for prompt in args.prompts]


def texts_of(body: bytes) -> list[str]:
    """``generated_text`` of a list answer (seed) or of a single object (LMI); raises on anything else."""
    answer = json.loads(body)
    items = answer if isinstance(answer, list) else [answer]
    return [item["generated_text"] for item in items]


def run(args: argparse.Namespace, *, client: Any = None) -> int:
    client = wrap(client or runtime_client(args.region), args)  # waits out a cold start (ml_tools/cold_start.py)
    texts: list[str] = []
    for request in request_bodies(args):
        _content_type, body = invoke_json(client, args.endpoint_name, request)
        try:
            texts += texts_of(body)
        except (ValueError, TypeError, KeyError):
            print(f"invoke-llm: unexpected answer: {body[:300]!r}", file=sys.stderr)
            return 1
    if len(texts) != len(args.prompts):
        print(f"invoke-llm: {len(args.prompts)} prompts sent, {len(texts)} answers received", file=sys.stderr)
        return 1
    for prompt, text in zip(args.prompts, texts, strict=True):
        print(f"--- {prompt}\n{text}")
    return 0
