"""Stand-in for optimum-neuron's NeuronStableDiffusionPipeline (the real class needs neuronx_distributed
and torch_neuronx, which are not on PyPI).

Written from huggingface/optimum-neuron tag v0.4.1, optimum/neuron/modeling_diffusion.py:
``from_pretrained(model_dir, data_parallel_mode=...)`` loads an exported pipeline (its
``model_index.json`` names the Neuron pipeline class) with ``data_parallel_mode`` one of "none",
"unet", "transformer", "all"; ``__call__`` is diffusers' ``StableDiffusionPipeline.__call__`` (the
class derives from it), so the call is checked against the real diffusers signature of the lock.
Images are small solid PIL images; what is checked is the calls, not the pixels.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from diffusers import StableDiffusionPipeline
from PIL import Image

DATA_PARALLEL_MODES = ("none", "unet", "transformer", "all")


class Result:
    def __init__(self, images: list[Image.Image]) -> None:
        self.images = images


class NeuronStableDiffusionPipeline:
    loaded: list[tuple[str, str]] = []

    def __init__(self, index: dict[str, Any]) -> None:
        self.index = index
        self.calls: list[dict[str, Any]] = []

    @classmethod
    def from_pretrained(cls, model_dir: str, *, data_parallel_mode: str | None = None, **kwargs: Any):
        if data_parallel_mode not in DATA_PARALLEL_MODES:
            raise ValueError("You need to pass `data_parallel_mode` to define Neuron Core allocation.")
        if kwargs:
            raise TypeError(f"unexpected arguments for loading a compiled pipeline: {sorted(kwargs)}")
        index = json.loads((Path(model_dir) / "model_index.json").read_text())
        cls.loaded.append((model_dir, data_parallel_mode))
        return cls(index)

    def __call__(self, prompt: str, **kwargs: Any) -> Result:
        inspect.signature(StableDiffusionPipeline.__call__).bind(self, prompt, **kwargs)  # TypeError if not
        self.calls.append({"prompt": prompt, **kwargs})
        return Result([Image.new("RGB", (64, 64), (len(prompt) % 256, 0, 0))])
