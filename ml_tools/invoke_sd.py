"""Generate an image with the Stable Diffusion endpoint and save it.

Both package variants answer with PNG bytes (``image/png``); a JSON answer holding
a base64 image (``{"image": ...}`` or ``{"images": [...]}``) is accepted too.
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from ml_tools.cold_start import wrap
from ml_tools.invoke_async import add_async_arguments, run_async
from ml_tools.runtime import add_endpoint_arguments, invoke_json, runtime_client


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    parameters: dict[str, Any] = {"num_inference_steps": args.steps, "guidance_scale": args.guidance_scale}
    for name in ("negative_prompt", "seed", "height", "width"):
        if getattr(args, name) is not None:
            parameters[name] = getattr(args, name)
    return {"prompt": args.prompt, "parameters": parameters}


def image_bytes(content_type: str, body: bytes) -> bytes:
    if body.startswith(b"\x89PNG") or content_type.startswith("image/"):
        return body
    if "json" in content_type:
        payload = json.loads(body)
        encoded = payload.get("image") or (payload.get("images") or [None])[0]
        if encoded:
            return base64.b64decode(encoded)
    raise ValueError(f"the endpoint answered {content_type or 'no content type'} without an image: {body[:200]!r}")


def configure(parser: argparse.ArgumentParser) -> None:
    add_endpoint_arguments(parser)
    parser.add_argument("prompt")
    parser.add_argument("--output", type=Path, default=Path("image.png"), help="where to save (default image.png)")
    parser.add_argument("--steps", type=int, default=30, help="denoising steps (default 30)")
    parser.add_argument("--guidance-scale", type=float, default=7.5)
    parser.add_argument("--negative-prompt")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--height", type=int, help="must equal the compiled height, if given")
    parser.add_argument("--width", type=int, help="must equal the compiled width, if given")
    add_async_arguments(parser)  # --async, --input-location, --timeout (ml_tools/invoke_async.py)


def run(args: argparse.Namespace, *, client: Any = None) -> int:
    if getattr(args, "use_async", False):
        return run_async(args, request_body(args), image_bytes)
    client = wrap(client or runtime_client(args.region), args)  # waits out a cold start (ml_tools/cold_start.py)
    content_type, body = invoke_json(client, args.endpoint_name, request_body(args), accept="image/png, application/json")
    try:
        data = image_bytes(content_type, body)
    except ValueError as err:
        print(f"invoke-sd: {err}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(f"saved {args.output} ({len(data)} bytes)")
    return 0
