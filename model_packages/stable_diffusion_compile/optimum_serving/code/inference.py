"""Stable Diffusion on Inferentia2 with optimum-neuron, for the Hugging Face Neuron inference container.

SageMaker copies the compile step's output (the exported pipeline, this file under ``code/``) to
/opt/ml/model; the Hugging Face inference toolkit calls ``model_fn`` once and ``transform_fn`` per
request (sagemaker-huggingface-inference-toolkit 2.x, handler_service.py). The UNet is loaded on
both NeuronCores of an inf2.xlarge (``data_parallel_mode="unet"``), everything else on one.

Request (``application/json``)::

    {"prompt": "a photo of an astronaut", "parameters": {"num_inference_steps": 30,
     "guidance_scale": 7.5, "negative_prompt": "", "seed": 42, "height": 512, "width": 512}}

The request contract (docs/stable-diffusion.md, "Request contract"): prompt and negative prompt
within the tokenizer's length (77 CLIP tokens); steps 1-150; ``guidance_scale`` above 1 and at most
30 (at 1 or below the pipeline turns classifier-free guidance off and the UNet, data-parallel over
two cores with dynamic batching off, gets a batch of 1, which fails); ``height``/``width`` only the
compiled size (optimum-neuron would silently ignore any other); ``seed`` an integer >= 0.

Response: ``Accept: image/png`` -> the PNG bytes; ``application/json`` (also what the toolkit passes
when Accept is absent or ``*/*``) -> ``{"image": "<base64 PNG>"}``. The toolkit answers with the
request's Accept as the content type verbatim, so any other Accept is refused.

Errors: the toolkit answers every exception from this file with HTTP 400 and the exception's text
(handler_service.py ``handle``: ``PredictionException(str(e), 400)``), so a failing model cannot
answer 5XX here. A bad request raises ValueError with the reason; a model failure on a valid request
logs exactly one line ``ml_platform.model_error <type>: <message>`` (the stack's metric filter and
alarm count it) and raises an error whose text does not repeat the token.
"""
from __future__ import annotations

import base64
import io
import json
import logging
from typing import Any

ALLOWED = {"num_inference_steps", "guidance_scale", "negative_prompt", "seed", "height", "width"}
ACCEPTS = ("image/png", "application/json")
MODEL_ERROR_TOKEN = "ml_platform.model_error"
logger = logging.getLogger("ml_platform.stable_diffusion")


def model_fn(model_dir: str, context: Any = None) -> Any:
    # Exactly (model_dir, context): the toolkit counts a handler's parameters to decide whether
    # to pass the context (handler_service.py, function_extra_arg); a third one fails the start.
    from optimum.neuron import NeuronStableDiffusionPipeline

    return NeuronStableDiffusionPipeline.from_pretrained(model_dir, data_parallel_mode="unet")


def compiled_size(pipe: Any) -> tuple[int, int]:
    """(height, width) the pipeline was exported for: what optimum-neuron 0.4.1's ``__call__`` uses
    whatever the request says (modeling_diffusion.py: ``unet.config.neuron["static_height"] *
    vae_scale_factor``)."""
    neuron = pipe.unet.config.neuron
    return neuron["static_height"] * pipe.vae_scale_factor, neuron["static_width"] * pipe.vae_scale_factor


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_length(name: str, text: str, tokenizer: Any) -> None:
    limit = tokenizer.model_max_length
    count = len(tokenizer(text).input_ids)  # with the start and end tokens, as the pipeline encodes it
    if count > limit:
        raise ValueError(f"{name}: {count} tokens, allowed: at most {limit} (the text encoder's length; "
                         "the pipeline would silently cut the rest)")


def parse(body: bytes | str, pipe: Any) -> tuple[str, dict[str, Any]]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"request body is not valid JSON: {err}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("prompt"), str) or not payload["prompt"].strip():
        raise ValueError('expected {"prompt": "non-empty text", "parameters": {...}}')
    params = payload.get("parameters") or {}
    if not isinstance(params, dict):
        raise ValueError('"parameters" must be an object')
    params = dict(params)
    unknown = set(params) - ALLOWED
    if unknown:
        raise ValueError(f"unknown parameters: {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(ALLOWED))}")
    steps = params.get("num_inference_steps", 30)
    if not _is_int(steps) or not 1 <= steps <= 150:
        raise ValueError(f"num_inference_steps: got {json.dumps(steps)}, allowed: an integer from 1 to 150")
    guidance = params.get("guidance_scale", 7.5)
    if not isinstance(guidance, (int, float)) or isinstance(guidance, bool) or not 1 < guidance <= 30:
        raise ValueError(f"guidance_scale: got {json.dumps(guidance)}, allowed: a number above 1 and at most 30 "
                         "(the UNet runs one guidance half per NeuronCore)")
    height, width = compiled_size(pipe)
    for side, size in (("height", height), ("width", width)):
        if side in params and params.pop(side) != size:
            raise ValueError(f"{side}: got {json.dumps(payload['parameters'][side])}, allowed: {size} "
                             f"(this endpoint was compiled for {height}x{width})")
    negative = params.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        raise ValueError("negative_prompt must be text")
    _check_length("prompt", payload["prompt"], pipe.tokenizer)
    if negative:
        _check_length("negative_prompt", negative, pipe.tokenizer)
    params.update(num_inference_steps=steps, guidance_scale=float(guidance))
    seed = params.pop("seed", None)
    if seed is not None:
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"seed: got {json.dumps(seed)}, allowed: an integer >= 0")
        import torch

        params["generator"] = torch.Generator().manual_seed(seed)
    return payload["prompt"], params


def transform_fn(model: Any, input_data: bytes | str, content_type: str, accept: str, context: Any = None) -> bytes:
    if content_type and not content_type.startswith("application/json"):
        raise ValueError(f"content type {content_type!r} is not supported; send application/json")
    if accept not in ACCEPTS:
        raise ValueError(f"Accept {accept!r} is not supported; send one of {', '.join(ACCEPTS)}")
    prompt, params = parse(input_data, model)
    try:
        image = model(prompt, **params).images[0]
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    except Exception as err:  # noqa: BLE001 - a valid request the model could not serve
        reason = f"{type(err).__name__}: {err}".replace("\n", " ")
        logger.error("%s %s", MODEL_ERROR_TOKEN, reason)
        raise RuntimeError(f"the model failed: {reason}") from None
    if accept == "application/json":
        return json.dumps({"image": base64.b64encode(buffer.getvalue()).decode("ascii")}).encode()
    return buffer.getvalue()
