"""What a Neuron-traced graph does that a CPU ``torch.jit.trace`` does not, for the contract tests.

``torch_neuronx.trace`` compiles a graph for the example inputs' exact shapes and dtypes and
inlines the weights into it: the loaded module holds no parameters, and a call with another
dtype or shape fails. On CPU the trace itself is ``torch.jit.trace`` (``strict=False``, so dict
outputs survive, as they do with ``torch_neuronx.trace``); this module records each graph's
input signature at trace time and wraps the loaded file in :class:`NeuronGraph`, which
enforces it and exposes no parameters. ``DataParallel`` splits the batch the way
``torch_neuronx.DataParallel`` does (dim 0, one chunk per core) so batch-1 graphs see batch 1, and
with dynamic batching off refuses any other batch: "If dynamic batching is not enabled, the batch
size at compilation-time must be equal to the batch size at inference-time divided by the number
of NeuronCores being used ... input.shape[dim] / len(device_ids) == compilation_input.shape[dim]"
(Neuron docs, PyTorch NeuronX DataParallel API, ``torch_neuronx.DataParallel``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

Signature = list[tuple[tuple[int, ...], torch.dtype]]


class NeuronTracer:
    """The compile script's ``tracer``: CPU trace plus the recorded input signature per component."""

    def __init__(self) -> None:
        self.signatures: dict[str, Signature] = {}

    def __call__(self, module: torch.nn.Module, example_inputs: tuple, name: str) -> Any:
        self.signatures[name] = [(tuple(t.shape), t.dtype) for t in example_inputs]
        return torch.jit.trace(module, example_inputs, check_trace=False, strict=False)


class NeuronGraph(torch.nn.Module):
    """A loaded graph that, like a Neuron one, has no parameters and accepts only its signature."""

    def __init__(self, loaded: Any, name: str, signature: Signature) -> None:
        super().__init__()
        object.__setattr__(self, "_graph", loaded)  # not a submodule: its parameters stay hidden
        self.name, self.signature = name, signature
        self.calls = 0

    def forward(self, *inputs: torch.Tensor) -> Any:
        got = [(tuple(t.shape), t.dtype) for t in inputs]
        if got != self.signature:
            raise RuntimeError(f"{self.name}: compiled for inputs {self.signature}, called with {got}")
        self.calls += 1
        return self._graph(*inputs)


def neuron_loader(signatures: dict[str, Signature]) -> Any:
    """A ``torch.jit.load`` replacement returning :class:`NeuronGraph` for the compiled files."""

    def load(path: str) -> NeuronGraph:
        name = Path(path).stem
        return NeuronGraph(torch.jit.load(path), name, signatures[name])

    return load


class DataParallel(torch.nn.Module):
    """torch_neuronx.DataParallel: inputs split along dim 0 over the cores, outputs concatenated."""

    def __init__(self, module: Any, device_ids: list[int], set_dynamic_batching: bool = True) -> None:
        super().__init__()
        if set_dynamic_batching:
            raise AssertionError("the compiled UNet has batch 1: dynamic batching must be off")
        self.module, self.device_ids = module, device_ids

    def forward(self, *inputs: torch.Tensor) -> Any:
        compiled = self.module.signature[0][0][0] if isinstance(self.module, NeuronGraph) else 1
        if inputs[0].shape[0] != compiled * len(self.device_ids):
            raise RuntimeError(f"DataParallel: dynamic batching is disabled and input.shape[0] / len(device_ids) "
                               f"!= compilation_input.shape[0] ({inputs[0].shape[0]} / {len(self.device_ids)} != "
                               f"{compiled})")
        chunks = [self.module(*parts) for parts in zip(*(t.chunk(len(self.device_ids)) for t in inputs), strict=True)]
        return tuple(torch.cat([c[i] for c in chunks]) for i in range(len(chunks[0])))
