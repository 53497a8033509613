"""DJL Serving handler: Stable Diffusion on Inferentia2 from ahead-of-time compiled parts.

The model folder is the compile step's output (``option.model_id`` = its S3 URL;
DJL downloads it and passes the local path as ``model_id``): ``compiled_model/``
with ``text_encoder.pt``, ``unet.pt``, ``vae_decoder.pt`` and
``vae_post_quant_conv.pt``, the pipeline's configuration (scheduler, tokenizer,
component configs) and ``manifest.json`` (the compiled height and width).
No weights are read besides the four compiled files.

The UNet was compiled for batch 1; it is loaded with ``torch_neuronx.DataParallel``
on cores ``0 .. tensor_parallel_degree-1`` (dynamic batching off), so the two
halves of the classifier-free-guidance batch run on the two NeuronCores of an
inf2.xlarge at once. The other three parts load on one core. The optimised
attention (``neuron_attention.py`` of the compile step) is inside the compiled
graphs: no attention code runs in Python here.

Request (``application/json``)::

    {"prompt": "a photo of an astronaut", "parameters": {"num_inference_steps": 30,
     "guidance_scale": 7.5, "negative_prompt": "", "seed": 42, "height": 512, "width": 512}}

``parameters`` is optional. Steps 1-150 (default ``option.num_inference_steps``, else
50); ``guidance_scale`` above 1 and at most 30 (default 7.5: at 1 or below diffusers turns
classifier-free guidance off and the UNet gets a batch of 1, which DataParallel over two cores
with dynamic batching off refuses); ``height``/``width``, if given, must equal the compiled size
(the graphs have fixed shapes); prompt and negative prompt at most the tokenizer's length (77
CLIP tokens with the start and end tokens; diffusers would silently cut the rest). Response: the
image as PNG bytes, ``content-type: image/png`` (the same as DJL's built-in Stable Diffusion
handler, so clients work with both package variants).

Errors: a bad request gets HTTP 400 with ``{"error": "..."}``. A model failure on a valid request
gets HTTP 500 (``Output.set_code``: DJL Serving 0.24 sends the Output's code as the HTTP status,
InferenceRequestHandler.sendOutput), so the endpoint's 5XX alarms see it, and logs exactly one
line ``ml_platform.model_error <type>: <message>`` (the stack's metric filter counts it). Left to
DJL, an exception from ``handle`` would be a 424 (djl_python_engine.py: ``Output().error``).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Any, Callable

from djl_python import Input, Output

COMPILED_DIR = "compiled_model"
COMPILED_FILES = ("text_encoder.pt", "unet.pt", "vae_decoder.pt", "vae_post_quant_conv.pt")
MODEL_ERROR_TOKEN = "ml_platform.model_error"
logger = logging.getLogger("ml_platform.stable_diffusion")


class BadRequest(ValueError):
    """The request itself is wrong: answered with HTTP 400."""


def _neuron_data_parallel(module: Any, device_ids: list[int], set_dynamic_batching: bool) -> Any:
    import torch_neuronx

    return torch_neuronx.DataParallel(module, device_ids, set_dynamic_batching=set_dynamic_batching)


def _jit_load(path: str) -> Any:
    import torch

    return torch.jit.load(path)


def model_root(properties: dict[str, str]) -> Path:
    for key in ("model_id", "model_dir"):
        value = properties.get(key)
        if value and (Path(value) / COMPILED_DIR).is_dir():
            return Path(value)
    raise FileNotFoundError(
        f"no {COMPILED_DIR}/ folder in model_id={properties.get('model_id')!r} or model_dir="
        f"{properties.get('model_dir')!r}: point option.model_id at the compile step's output"
    )


def load_pipeline(
    properties: dict[str, str],
    *,
    jit_load: Callable[[str], Any] = _jit_load,
    data_parallel: Callable[..., Any] = _neuron_data_parallel,
) -> tuple[Any, dict[str, Any]]:
    import torch
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    try:
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput
    except ImportError:  # diffusers before 0.25, as in the DJL 0.22-0.25 Neuron images
        from diffusers.models.unet_2d_condition import UNet2DConditionOutput
    from transformers import CLIPTextConfig, CLIPTokenizer

    root = model_root(properties)
    compiled = root / COMPILED_DIR
    missing = [name for name in COMPILED_FILES if not (compiled / name).is_file()]
    if missing:
        raise FileNotFoundError(f"compiled files missing in {compiled}: {', '.join(missing)}")
    manifest = json.loads((root / "manifest.json").read_text())
    degree = int(properties.get("tensor_parallel_degree", 2))

    class CompiledPart(torch.nn.Module):
        """A traced graph plus the attributes the pipeline reads from the original module."""

        def __init__(self, traced: Any, config: Any, dtype: torch.dtype) -> None:
            super().__init__()
            self.traced, self.config, self._dtype = traced, config, dtype

        @property
        def dtype(self) -> torch.dtype:
            return self._dtype

        @property
        def device(self) -> torch.device:
            return torch.device("cpu")  # Neuron graphs take host tensors

    class NeuronUNet(CompiledPart):
        def forward(self, sample, timestep, encoder_hidden_states, **_ignored):
            # Traced with the timestep in the model dtype (compile.py, as DJL 0.24 expects).
            timestep = timestep.to(self._dtype).expand((sample.shape[0],))
            return UNet2DConditionOutput(sample=self.traced(sample, timestep, encoder_hidden_states)[0])

    class NeuronTextEncoder(CompiledPart):
        def forward(self, input_ids, attention_mask=None, **_ignored):
            return [self.traced(input_ids)["last_hidden_state"]]

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[manifest["dtype"]]
    unet_config = UNet2DConditionModel.load_config(root / "unet")
    unet = NeuronUNet(
        data_parallel(jit_load(str(compiled / "unet.pt")), list(range(degree)), set_dynamic_batching=False),
        _frozen(unet_config),
        dtype,
    )
    text_encoder = NeuronTextEncoder(
        jit_load(str(compiled / "text_encoder.pt")), CLIPTextConfig.from_pretrained(root / "text_encoder"), dtype
    )
    # The VAE's encoder is never used for text-to-image: no memory for it where torch
    # (2.0+) can create modules without storage.
    empty = torch.device("meta") if hasattr(torch.device, "__enter__") else contextlib.nullcontext()
    with empty:
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae"))
    vae.decoder = jit_load(str(compiled / "vae_decoder.pt"))
    vae.post_quant_conv = jit_load(str(compiled / "vae_post_quant_conv.pt"))
    vae.encoder = vae.quant_conv = None
    # diffusers' DiffusionPipeline.device asks the first module of a *set* of component names
    # (its order follows PYTHONHASHSEED) for .device, which ModelMixin finds from the first
    # parameter or buffer, raising StopIteration when there is none. Neuron-traced graphs hold
    # no parameters, so without this the VAE has none and about one start in three fails.
    vae.register_buffer("device_anchor", torch.empty(0), persistent=False)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=CLIPTokenizer.from_pretrained(root / "tokenizer"), unet=unet,
        scheduler=DPMSolverMultistepScheduler.from_pretrained(root / "scheduler"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    return pipe, manifest


def _frozen(config: dict[str, Any]) -> Any:
    from diffusers.configuration_utils import FrozenDict

    return FrozenDict(config)


def _check_length(name: str, text: str, tokenizer: Any) -> None:
    limit = tokenizer.model_max_length
    count = len(tokenizer(text).input_ids)  # with the start and end tokens, as the pipeline encodes it
    if count > limit:
        raise BadRequest(f"{name}: {count} tokens, allowed: at most {limit} (the text encoder's length; "
                         "the pipeline would silently cut the rest)")


def parse_request(body: bytes, manifest: dict[str, Any], default_steps: int,
                  tokenizer: Any = None) -> tuple[str, dict[str, Any]]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadRequest(f"request body is not valid JSON: {err}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("prompt"), str) or not payload["prompt"].strip():
        raise BadRequest('expected {"prompt": "non-empty text", "parameters": {...}}')
    params = payload.get("parameters", {})
    if not isinstance(params, dict):
        raise BadRequest('"parameters" must be an object')
    unknown = set(params) - {"num_inference_steps", "guidance_scale", "negative_prompt", "seed", "height", "width"}
    if unknown:
        raise BadRequest(f"unknown parameters: {', '.join(sorted(unknown))}")
    steps = params.get("num_inference_steps", default_steps)
    if not _is_int(steps) or not 1 <= steps <= 150:
        raise BadRequest(f"num_inference_steps: got {json.dumps(steps)}, allowed: an integer from 1 to 150")
    guidance = params.get("guidance_scale", 7.5)
    if not isinstance(guidance, (int, float)) or isinstance(guidance, bool) or not 1 < guidance <= 30:
        raise BadRequest(f"guidance_scale: got {json.dumps(guidance)}, allowed: a number above 1 and at most 30 "
                         "(the UNet runs one guidance half per NeuronCore)")
    for side in ("height", "width"):
        if side in params and params[side] != manifest[side]:
            raise BadRequest(f"{side}: got {json.dumps(params[side])}, allowed: {manifest[side]} (this endpoint was "
                             f"compiled for {manifest['height']}x{manifest['width']})")
    negative = params.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        raise BadRequest("negative_prompt must be text")
    if tokenizer is not None:
        _check_length("prompt", payload["prompt"], tokenizer)
        if negative:
            _check_length("negative_prompt", negative, tokenizer)
    seed = params.get("seed")
    if seed is not None and (not _is_int(seed) or seed < 0):
        raise BadRequest(f"seed: got {json.dumps(seed)}, allowed: an integer >= 0")
    kwargs: dict[str, Any] = {
        "num_inference_steps": steps, "guidance_scale": float(guidance), "negative_prompt": negative,
        "height": manifest["height"], "width": manifest["width"],
    }
    if seed is not None:
        import torch

        kwargs["generator"] = torch.Generator().manual_seed(seed)
    return payload["prompt"], kwargs


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Service:
    def __init__(self, loader: Callable[[dict[str, str]], tuple[Any, dict[str, Any]]] = load_pipeline) -> None:
        self.loader = loader
        self.pipe: Any = None
        self.manifest: dict[str, Any] = {}
        self.default_steps = 50

    def handle(self, inputs: Input) -> Output | None:
        if self.pipe is None:
            properties = inputs.get_properties()
            self.pipe, self.manifest = self.loader(properties)
            self.default_steps = int(properties.get("num_inference_steps", 50))
        if inputs.is_empty():
            return None
        try:
            prompt, kwargs = parse_request(inputs.get_as_bytes(), self.manifest, self.default_steps, self.pipe.tokenizer)
        except BadRequest as err:
            return _error(400, "Bad Request", str(err))
        try:
            image = self.pipe(prompt, **kwargs).images[0]
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
        except Exception as err:  # noqa: BLE001 - a valid request the model could not serve
            reason = f"{type(err).__name__}: {err}".replace("\n", " ")
            logger.error("%s %s", MODEL_ERROR_TOKEN, reason)
            return _error(500, "Internal Server Error", f"the model failed: {reason}")
        return Output().add_property("content-type", "image/png").add(buffer.getvalue())


def _error(code: int, message: str, error: str) -> Output:
    return (Output().set_code(code).set_message(message)
            .add_property("content-type", "application/json").add_as_json({"error": error}))


_service = Service()


def handle(inputs: Input) -> Output | None:
    return _service.handle(inputs)
