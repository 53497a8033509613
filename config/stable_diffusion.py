"""Configuration of workload W1: Stable Diffusion on Inferentia2 (serving; compile step in issue 6)."""
from __future__ import annotations

from dataclasses import dataclass

from config.typed import setting


@dataclass(frozen=True)
class StableDiffusionConfig:
    """Workload W1: Stable Diffusion on Inferentia2 (serving; compile step in issue 6)."""

    enabled: bool = setting(True, doc="false: the stack is not synthesized in this environment.")
