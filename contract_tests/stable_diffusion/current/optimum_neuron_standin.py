"""Stand-in for optimum-neuron's NeuronStableDiffusionPipeline (the real class needs neuronx_distributed
and torch_neuronx, which are not on PyPI).

Written from huggingface/optimum-neuron tag v0.4.1, optimum/neuron/modeling_diffusion.py:
``from_pretrained(model_dir, data_parallel_mode=...)`` loads an exported pipeline (its
``model_index.json`` names the Neuron pipeline class) with ``data_parallel_mode`` one of "none",
"unet", "transformer", "all"; the exported folder's ``tokenizer/`` is loaded as ``tokenizer`` (the
processors it loads, ``_from_pretrained``); ``vae_scale_factor`` is ``2 ** (len(vae.config.
block_out_channels) - 1)`` (``__init__``, "Calculate static shapes"); ``unet.config.neuron`` holds the
exported ``static_height``/``static_width`` (latent sizes) and ``__call__`` drops any requested
``height``/``width`` for them. ``__call__`` is diffusers' ``StableDiffusionPipeline.__call__`` (the
class derives from it), so the call is checked against the real diffusers signature of the lock.

With ``data_parallel_mode="unet"`` the UNet runs under ``torch_neuronx.DataParallel`` with dynamic
batching off (``set_dynamic_batching=dynamic_batch_size``, false for a batch-1 export), and
``do_classifier_free_guidance`` is ``guidance_scale > 1``: at 1 or below the UNet gets a batch of 1
on two cores, which DataParallel refuses ("If dynamic batching is not enabled ... input.shape[dim] /
len(device_ids) == compilation_input.shape[dim]", Neuron docs, PyTorch NeuronX DataParallel API).
The stand-in raises that error for such a call. ``fail_with`` makes the next call raise, as a Neuron
runtime error inside the pipeline would. Images are small solid PIL images of the compiled size;
what is checked is the calls, not the pixels.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from diffusers import StableDiffusionPipeline
from PIL import Image
from transformers import CLIPTokenizer

DATA_PARALLEL_MODES = ("none", "unet", "transformer", "all")


class Result:
    def __init__(self, images: list[Image.Image]) -> None:
        self.images = images


class Config:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


class Part:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = Config(config)


class NeuronStableDiffusionPipeline:
    loaded: list[tuple[str, str]] = []
    fail_with: Exception | None = None

    def __init__(self, index: dict[str, Any], model_dir: Path, data_parallel_mode: str) -> None:
        self.index = index
        self.calls: list[dict[str, Any]] = []
        self.data_parallel_mode = data_parallel_mode
        self.tokenizer = CLIPTokenizer.from_pretrained(model_dir / "tokenizer")
        self.unet = Part(json.loads((model_dir / "unet" / "config.json").read_text()))
        self.vae = Part(json.loads((model_dir / "vae_decoder" / "config.json").read_text()))
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)

    @classmethod
    def from_pretrained(cls, model_dir: str, *, data_parallel_mode: str | None = None, **kwargs: Any):
        if data_parallel_mode not in DATA_PARALLEL_MODES:
            raise ValueError("You need to pass `data_parallel_mode` to define Neuron Core allocation.")
        if kwargs:
            raise TypeError(f"unexpected arguments for loading a compiled pipeline: {sorted(kwargs)}")
        index = json.loads((Path(model_dir) / "model_index.json").read_text())
        cls.loaded.append((model_dir, data_parallel_mode))
        return cls(index, Path(model_dir), data_parallel_mode)

    def __call__(self, prompt: str, **kwargs: Any) -> Result:
        inspect.signature(StableDiffusionPipeline.__call__).bind(self, prompt, **kwargs)  # TypeError if not
        self.calls.append({"prompt": prompt, **kwargs})
        if self.fail_with is not None:
            error, type(self).fail_with = self.fail_with, None
            raise error
        guided = kwargs.get("guidance_scale", 7.5) > 1
        if self.data_parallel_mode == "unet" and not guided:
            raise RuntimeError("DataParallel: dynamic batching is disabled and input.shape[0] / len(device_ids) "
                               "!= compilation_input.shape[0] (1 / 2 != 1)")
        neuron = self.unet.config.neuron
        size = (neuron["static_width"] * self.vae_scale_factor, neuron["static_height"] * self.vae_scale_factor)
        return Result([Image.new("RGB", size, (len(prompt) % 256, 0, 0))])
