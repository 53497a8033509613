"""The attention score function traced into the Neuron graphs.

diffusers' default ``Attention.get_attention_scores`` computes
``softmax(scale * Q @ K^T)`` with ``torch.baddbmm`` on an empty bias tensor.
On Neuron, that bias allocation and the softmax over the last axis of a square
self-attention matrix compile to slow code. This version drops ``baddbmm`` for a
plain ``bmm`` and a multiply, and for self-attention (query and key of the same
shape) computes the transposed product ``K @ Q^T``, takes the softmax over axis 1
and permutes back: the same probabilities, in the layout the Neuron compiler
handles best (the approach of AWS's Neuron Stable Diffusion samples). The model's
own ``scale`` is used, so any head size works.

Only the classic ``AttnProcessor`` calls ``get_attention_scores`` (the default
``AttnProcessor2_0`` uses fused SDPA, which Neuron's tracer cannot lower), so
``use_neuron_attention`` also switches every attention layer to it.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def neuron_attention_scores(self, query: torch.Tensor, key: torch.Tensor, attention_mask=None) -> torch.Tensor:
    if attention_mask is not None:
        raise ValueError("the Neuron attention path takes no attention mask (Stable Diffusion's UNet passes none)")
    dtype = query.dtype
    if self.upcast_attention:
        query, key = query.float(), key.float()
    if query.size() == key.size():
        scores = torch.bmm(key, query.transpose(-1, -2)) * self.scale
        if self.upcast_softmax:
            scores = scores.float()
        probs = scores.softmax(dim=1).permute(0, 2, 1)
    else:
        scores = torch.bmm(query, key.transpose(-1, -2)) * self.scale
        if self.upcast_softmax:
            scores = scores.float()
        probs = scores.softmax(dim=-1)
    return probs.to(dtype)


def attention_classes() -> tuple[type, type]:
    """diffusers' attention layer and its classic processor (renamed in diffusers 0.15)."""
    try:
        from diffusers.models.attention_processor import Attention, AttnProcessor
    except ImportError:  # the diffusers of older Neuron SDK images
        from diffusers.models.cross_attention import CrossAttention as Attention
        from diffusers.models.cross_attention import CrossAttnProcessor as AttnProcessor
    return Attention, AttnProcessor


@contextlib.contextmanager
def use_neuron_attention(*modules: torch.nn.Module) -> Iterator[None]:
    """Within the block, the given modules' attention layers use ``neuron_attention_scores``."""
    Attention, AttnProcessor = attention_classes()
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, Attention):
                layer.set_processor(AttnProcessor())
    original = Attention.get_attention_scores
    Attention.get_attention_scores = neuron_attention_scores
    try:
        yield
    finally:
        Attention.get_attention_scores = original
