"""Generate text with an LLM endpoint.

Both runtime profiles take ``{"inputs": ..., "parameters": {"max_new_tokens": ..., ...}}``.
By default each prompt is its own request: LMI's vLLM handler (profile ``current``) batches
concurrent requests itself and answers ``{"generated_text": ...}`` for one prompt. ``--batch``
sends every prompt in one request, as the DeepSpeed handler (profile ``seed``) generates them
together and answers ``[{"generated_text": ...}, ...]``.

Before sending, each prompt plus ``--max-new-tokens`` must fit the model's context (the
endpoint's ``max_model_len``, 2048 for both built-in models): vLLM refuses such a request
before anything caps it, and LMI 20 then answers 424 with an unrelated message (docs/llm.md,
"What the endpoint answers"), so the tool refuses it here, naming the limit. With
``--tokenizer`` (the staged snapshot's folder or its ``tokenizer.json``) the prompt's tokens are
counted exactly, as the endpoint counts them; without it the tool counts the prompt's UTF-8 bytes
plus ``SPECIAL_TOKENS``, an upper bound for byte-level BPE tokenizers (BLOOM's and OPT's: every
token covers at least one byte), so it may refuse a prompt that would fit but never sends one
that cannot. The seed handler also answers 400 past its own limits (max new tokens, batch size).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from ml_tools.cold_start import wrap
from ml_tools.runtime import add_endpoint_arguments, invoke_json, runtime_client


def configure(parser: argparse.ArgumentParser) -> None:
    add_endpoint_arguments(parser)
    parser.add_argument("prompts", nargs="+", help="one or more prompts")
    parser.add_argument("--batch", action="store_true",
                        help="send all prompts in one request (the seed profile's DeepSpeed handler)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--context-length", type=int,
                        help="the model's context, prompt plus new tokens (default: --env/--model-name's "
                        f"llm.models.<name>.context_length, else {DEFAULT_CONTEXT}, both built-in models')")
    parser.add_argument("--tokenizer", type=Path,
                        help="the model's tokenizer.json (or the snapshot folder holding it) to count prompt tokens "
                        "exactly; without it the count is an upper bound from the prompt's bytes")
    parser.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-p", type=float)


DEFAULT_CONTEXT = 2048  # BLOOM-176B and OPT-30B (config/llm.py MODEL_CATALOGUE)
# Added to a byte count: the special tokens a tokenizer may put around a prompt (OPT's tokenizer
# starts every prompt with </s>; BLOOM's adds none).
SPECIAL_TOKENS = 2


def context_length(args: argparse.Namespace) -> int:
    if args.context_length is not None:
        return args.context_length
    if getattr(args, "env", None) and getattr(args, "model_name", None):
        from config import load_config  # pure Python: no CDK runtime

        models = {m.name: m for m in load_config(args.env, env_source="--env").llm.resolved_models()}
        if args.model_name in models:
            return models[args.model_name].context_length
    return DEFAULT_CONTEXT


def token_counter(path: Path | None) -> Callable[[str], int] | str:
    """Counts a prompt's tokens as the endpoint's tokenizer does, or a problem for the user."""
    if path is None:
        return lambda prompt: len(prompt.encode("utf-8")) + SPECIAL_TOKENS
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        return f"--tokenizer: {file} not found (give the staged snapshot folder or its tokenizer.json)"
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return "--tokenizer needs the tokenizers package (pip install tokenizers), or leave it out to count bytes"
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as err:  # noqa: BLE001 - the library's own message names what is wrong
        return f"--tokenizer: {file} is not a tokenizer.json the tokenizers library reads: {err}"
    return lambda prompt: len(tokenizer.encode(prompt).ids)  # with special tokens, as vLLM's default


def over_context(prompt_tokens: int, max_new_tokens: int, context: int) -> bool:
    """Whether vLLM refuses the request: prompt plus requested tokens beyond max_model_len
    (contract_tests/llm/test_vllm_limits.py checks this against vLLM 0.15.1's own validation)."""
    return prompt_tokens + max_new_tokens > context


def limit_problems(args: argparse.Namespace) -> list[str]:
    """Prompts that cannot fit the context with --max-new-tokens, named with the limit (nothing is sent)."""
    context, wanted = context_length(args), args.max_new_tokens
    if wanted < 1:
        return [f"--max-new-tokens: got {wanted}, allowed: 1 to {context - 1}"]
    if wanted >= context:
        return [f"--max-new-tokens: got {wanted}, allowed: at most {context - 1} (the model's context is {context} "
                "tokens, prompt included)"]
    count = token_counter(args.tokenizer)
    if isinstance(count, str):
        return [count]
    unit = "tokens" if args.tokenizer else "tokens at most (UTF-8 bytes + special tokens; --tokenizer counts exactly)"
    found = []
    for number, prompt in enumerate(args.prompts, start=1):
        tokens = count(prompt)
        if over_context(tokens, wanted, context):
            found.append(f"prompt {number}: {tokens} {unit} + --max-new-tokens {wanted} = {tokens + wanted}, over "
                         f"the model's context of {context} tokens (the endpoint's max_model_len); allowed: "
                         f"--max-new-tokens at most {max(context - tokens, 0)}, or a prompt of at most "
                         f"{context - wanted} tokens")
    return found


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
    problems = limit_problems(args)
    for problem in problems:
        print(f"invoke-llm: {problem}", file=sys.stderr)
    if problems:
        return 2
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
