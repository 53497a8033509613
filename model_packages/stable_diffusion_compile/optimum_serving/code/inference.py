"""Stable Diffusion on Inferentia2 with optimum-neuron, for the Hugging Face Neuron inference container.

SageMaker copies the compile step's output (the exported pipeline, this file under ``code/``) to
/opt/ml/model; the Hugging Face inference toolkit calls ``model_fn`` once and ``transform_fn`` per
request (sagemaker-huggingface-inference-toolkit 2.x, handler_service.py). The UNet is loaded on
both NeuronCores of an inf2.xlarge (``data_parallel_mode="unet"``), everything else on one.

Request (``application/json``)::

    {"prompt": "a photo of an astronaut", "parameters": {"num_inference_steps": 30,
     "guidance_scale": 7.5, "negative_prompt": "", "seed": 42}}

Response: the image as PNG bytes (``image/png``), as the seed profile's packages answer, so
clients work with both. A bad request raises ValueError, which the toolkit answers with HTTP 400.
"""
from __future__ import annotations

import io
import json
from typing import Any

ALLOWED = {"num_inference_steps", "guidance_scale", "negative_prompt", "seed"}


def model_fn(model_dir: str, context: Any = None) -> Any:
    # Exactly (model_dir, context): the toolkit counts a handler's parameters to decide whether
    # to pass the context (handler_service.py, function_extra_arg); a third one fails the start.
    from optimum.neuron import NeuronStableDiffusionPipeline

    return NeuronStableDiffusionPipeline.from_pretrained(model_dir, data_parallel_mode="unet")


def parse(body: bytes | str) -> tuple[str, dict[str, Any]]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"request body is not valid JSON: {err}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("prompt"), str) or not payload["prompt"].strip():
        raise ValueError('expected {"prompt": "non-empty text", "parameters": {...}}')
    params = dict(payload.get("parameters") or {})
    unknown = set(params) - ALLOWED
    if unknown:
        raise ValueError(f"unknown parameters: {', '.join(sorted(unknown))}")
    steps = params.get("num_inference_steps", 30)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= 150:
        raise ValueError(f"num_inference_steps: got {json.dumps(steps)}, allowed: an integer from 1 to 150")
    params["num_inference_steps"] = steps
    seed = params.pop("seed", None)
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed: got {json.dumps(seed)}, allowed: an integer >= 0")
        import torch

        params["generator"] = torch.Generator().manual_seed(seed)
    return payload["prompt"], params


def transform_fn(model: Any, input_data: bytes | str, content_type: str, accept: str, context: Any = None) -> bytes:
    if content_type and not content_type.startswith("application/json"):
        raise ValueError(f"content type {content_type!r} is not supported; send application/json")
    prompt, params = parse(input_data)
    image = model(prompt, **params).images[0]
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
