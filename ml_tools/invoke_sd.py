"""Generate an image with the Stable Diffusion endpoint and save it.

The request contract (docs/stable-diffusion.md, "Request contract") is checked here before anything
is sent, as far as a client can know it: a prompt that is not empty and not certainly over the text
encoder's 77 tokens, steps 1-150, ``guidance_scale`` above 1 and at most 30, a size Neuron can have
been compiled for, and no ``seed`` for ``--serving-mode no-code`` (DJL 0.24's handler passes it to
diffusers 0.16, which has no such parameter). The endpoint checks the rest (the compiled size, the
exact token count) and answers 400 with the reason.

Every package variant answers ``Accept: image/png`` with PNG bytes and ``Content-Type: image/png``
(the Hugging Face toolkit of runtime "current" echoes the Accept as the content type, so exactly one
type is sent); anything else is reported, not saved.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ml_tools.cold_start import wrap
from ml_tools.invoke_async import add_async_arguments, run_async
from ml_tools.runtime import add_endpoint_arguments, invoke_json, runtime_client

ACCEPT = "image/png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SERVING_MODES = ("optimum-neuron", "byo-script", "no-code")
# CLIP's text encoder takes 77 tokens, two of them the start and end markers; every word is at
# least one token, so more words than this is too long whatever the tokenizer makes of them.
MAX_PROMPT_WORDS = 75


def request_problems(args: argparse.Namespace) -> list[str]:
    """What the request contract refuses, one line each, naming the option, the value and what is allowed."""
    found = []
    if not args.prompt.strip():
        found.append("prompt: empty, allowed: some text")
    for option, text in (("prompt", args.prompt), ("--negative-prompt", args.negative_prompt or "")):
        if len(text.split()) > MAX_PROMPT_WORDS:
            found.append(f"{option}: {len(text.split())} words, allowed: at most 77 CLIP tokens with the start and end "
                         f"tokens (at most {MAX_PROMPT_WORDS} words; the endpoint counts the tokens)")
    if not 1 <= args.steps <= 150:
        found.append(f"--steps: got {args.steps}, allowed: 1 to 150")
    if not 1 < args.guidance_scale <= 30:
        found.append(f"--guidance-scale: got {args.guidance_scale}, allowed: above 1 and at most 30 (the UNet runs "
                     "one guidance half per NeuronCore)")
    for option, value in (("--height", args.height), ("--width", args.width)):
        if value is not None and (value % 8 or not 64 <= value <= 2048):
            found.append(f"{option}: got {value}, allowed: the endpoint's compiled size (a multiple of 8 from 64 to "
                         "2048), or leave it out")
    if args.seed is not None and args.seed < 0:
        found.append(f"--seed: got {args.seed}, allowed: an integer >= 0")
    if args.seed is not None and args.serving_mode == "no-code":
        found.append("--seed: not accepted with --serving-mode no-code (DJL 0.24's handler passes it to diffusers, "
                     "which answers 424); leave it out, or serve with byo-script or optimum-neuron")
    return found


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    parameters: dict[str, Any] = {"num_inference_steps": args.steps, "guidance_scale": args.guidance_scale}
    for name in ("negative_prompt", "seed", "height", "width"):
        if getattr(args, name) is not None:
            parameters[name] = getattr(args, name)
    return {"prompt": args.prompt, "parameters": parameters}


def image_bytes(content_type: str, body: bytes) -> bytes:
    """The PNG of an ``image/png`` answer; ValueError naming what came instead."""
    if content_type.split(";")[0].strip() == ACCEPT and body.startswith(PNG_SIGNATURE):
        return body
    raise ValueError(f"expected {ACCEPT}, the endpoint answered {content_type or 'no content type'}: {body[:200]!r}")


def stored_image_bytes(content_type: str, body: bytes) -> bytes:
    """An asynchronous result: S3 keeps SageMaker's content type, not necessarily the model's."""
    return image_bytes(ACCEPT if body.startswith(PNG_SIGNATURE) else content_type, body)


def configure(parser: argparse.ArgumentParser) -> None:
    add_endpoint_arguments(parser)
    parser.add_argument("prompt")
    parser.add_argument("--output", type=Path, default=Path("image.png"), help="where to save (default image.png)")
    parser.add_argument("--steps", type=int, default=30, help="denoising steps, 1-150 (default 30)")
    parser.add_argument("--guidance-scale", type=float, default=7.5, help="above 1, at most 30 (default 7.5)")
    parser.add_argument("--negative-prompt")
    parser.add_argument("--seed", type=int, help="not with --serving-mode no-code")
    parser.add_argument("--height", type=int, help="must equal the compiled height, if given")
    parser.add_argument("--width", type=int, help="must equal the compiled width, if given")
    parser.add_argument("--serving-mode", choices=SERVING_MODES,
                        help="the endpoint's stable_diffusion.serving_mode, for the checks that depend on it")
    add_async_arguments(parser)  # --async, --input-location, --timeout (ml_tools/invoke_async.py)


def run(args: argparse.Namespace, *, client: Any = None) -> int:
    problems = request_problems(args)
    if problems:
        for problem in problems:
            print(f"invoke-sd: {problem}", file=sys.stderr)
        return 2
    if getattr(args, "use_async", False):
        return run_async(args, request_body(args), stored_image_bytes, accept=ACCEPT)
    client = wrap(client or runtime_client(args.region), args)  # waits out a cold start (ml_tools/cold_start.py)
    content_type, body = invoke_json(client, args.endpoint_name, request_body(args), accept=ACCEPT)
    try:
        data = image_bytes(content_type, body)
    except ValueError as err:
        print(f"invoke-sd: {err}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(f"saved {args.output} ({len(data)} bytes)")
    return 0
