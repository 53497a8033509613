"""Stand-in for DJL Serving v0.24.0's no-code Stable Diffusion handler on Neuron.

Written from deepjavalibrary/djl-serving tag v0.24.0,
engines/python/setup/djl_python/stable_diffusion_inf2.py (StableDiffusionService.initialize,
load_compiled, inference; NeuronTextEncoder, UNetWrap, NeuronUNet) and
engines/python/setup/djl_python/transformers_neuronx.py (``handle`` picks it when
``use_stable_diffusion`` is among the properties). It keeps the calls whose shapes broke:

* the pipeline is ``StableDiffusionPipeline.from_pretrained(model_id, torch_dtype=dtype)`` (the
  weights must be next to ``compiled_model/``), scheduler swapped for DPM-Solver;
* ``NeuronTextEncoder.forward`` returns ``[traced(emb)['last_hidden_state']]``: the traced text
  encoder must return a mapping with that key;
* ``NeuronUNet.forward`` calls the traced UNet with ``timestep.to(sample.dtype).expand((batch,))``;
* the UNet runs under ``torch_neuronx.DataParallel(..., set_dynamic_batching=False)`` over
  ``tensor_parallel_degree`` cores; the VAE keeps its encoder, the decoder and post_quant_conv are
  replaced by the traced files;
* ``inference`` with ``application/json``: ``pipeline(prompt, **parameters)``, the first image as
  PNG; any exception becomes ``Output.error`` (code 424, "prediction failure").

Left out: the runtime-compile path (not used with compiled_model/), the
``CrossAttention.get_attention_scores`` patch (it changes only modules that the compiled graphs
replace) and the image-to-image branch. ``jit_load`` and ``data_parallel`` are injected: the
Neuron runtime is not on this machine (neuron_standin.py models it).
"""
from __future__ import annotations

import io
import os
from typing import Any, Callable

import torch
from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
from diffusers.models.unet_2d_condition import UNet2DConditionOutput


class Output:
    """djl_python.outputs.Output (v0.24.0) as far as this handler uses it."""

    def __init__(self) -> None:
        self.code, self.message, self.properties, self.content = 200, "OK", {}, []

    def add(self, value: bytes) -> "Output":
        self.content.append(value)
        return self

    def add_property(self, key: str, value: str) -> "Output":
        self.properties[key] = value
        return self

    def error(self, error: str, code: int = 424, message: str = "prediction failure") -> "Output":
        self.code, self.message = code, message
        self.properties["content-type"] = "application/json"
        self.content.append({"code": code, "message": message, "error": error})
        return self


class UNetWrap(torch.nn.Module):
    def __init__(self, unet: Any) -> None:
        super().__init__()
        self.unet = unet


class NeuronUNet(torch.nn.Module):
    def __init__(self, unetwrap: UNetWrap) -> None:
        super().__init__()
        self.unetwrap = unetwrap
        self.config = unetwrap.unet.config
        self.in_channels = unetwrap.unet.in_channels
        self.device = unetwrap.unet.device

    def forward(self, sample, timestep, encoder_hidden_states, cross_attention_kwargs=None):
        sample = self.unetwrap(sample, timestep.to(sample.dtype).expand((sample.shape[0],)), encoder_hidden_states)[0]
        return UNet2DConditionOutput(sample=sample)


class NeuronTextEncoder(torch.nn.Module):
    def __init__(self, text_encoder: Any) -> None:
        super().__init__()
        self.neuron_text_encoder = text_encoder
        self.config = text_encoder.config
        self.dtype = text_encoder.dtype
        self.device = text_encoder.device

    def forward(self, emb, attention_mask=None):
        return [self.neuron_text_encoder(emb)["last_hidden_state"]]


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}  # get_torch_dtype_from_str: nothing else


class StableDiffusionService:
    def __init__(self, jit_load: Callable[[str], Any], data_parallel: Callable[..., Any]) -> None:
        self.jit_load, self.data_parallel = jit_load, data_parallel
        self.pipeline: Any = None

    def initialize(self, properties: dict[str, str]) -> None:
        os.environ.pop("OMP_NUM_THREADS")  # as v0.24.0 does: DJL's Python engine sets it
        model = properties.get("model_id") or properties.get("model_dir")
        degree = int(properties.get("tensor_parallel_degree", 2))
        dtype = properties.get("dtype", "fp32")
        if dtype not in DTYPES:
            raise ValueError(f"Invalid data type: {dtype}. NeuronX currently only supports fp32 and bf16")
        self.pipeline = StableDiffusionPipeline.from_pretrained(model, torch_dtype=DTYPES[dtype])
        self.pipeline.scheduler = DPMSolverMultistepScheduler.from_config(self.pipeline.scheduler.config)
        compiled = os.path.join(model, "compiled_model")
        if not os.path.exists(compiled):
            raise AssertionError("the stand-in covers the compiled_model/ path only")
        self.load_compiled(compiled)
        self.pipeline.unet.unetwrap = self.data_parallel(
            self.pipeline.unet.unetwrap, list(range(degree)), set_dynamic_batching=False)

    def load_compiled(self, saved_dir: str) -> None:
        pipe = self.pipeline
        pipe.text_encoder = NeuronTextEncoder(pipe.text_encoder)
        pipe.text_encoder.neuron_text_encoder = self.jit_load(os.path.join(saved_dir, "text_encoder.pt"))
        pipe.vae.post_quant_conv = self.jit_load(os.path.join(saved_dir, "vae_post_quant_conv.pt"))
        pipe.vae.decoder = self.jit_load(os.path.join(saved_dir, "vae_decoder.pt"))
        pipe.unet = NeuronUNet(UNetWrap(pipe.unet))
        pipe.unet.unetwrap = self.jit_load(os.path.join(saved_dir, "unet.pt"))

    def inference(self, content_type: str, body: bytes) -> Output:
        import json

        try:
            if content_type != "application/json":
                raise AssertionError("the stand-in covers application/json requests only")
            request = json.loads(body.decode("utf-8"))
            prompt = request.pop("prompt")
            params = request.pop("parameters", {})
            result = self.pipeline(prompt, **params)
            buffer = io.BytesIO()
            result.images[0].save(buffer, format="PNG")
            return Output().add(buffer.getvalue()).add_property("content-type", "image/png")
        except Exception as err:  # noqa: BLE001 - as the handler does: every failure becomes a 424
            return Output().error(str(err))
