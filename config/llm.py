"""Configuration of workload W3: BLOOM-176B and OPT-30B with tensor parallelism (LMI DeepSpeed)."""
from __future__ import annotations

from dataclasses import dataclass

from config.typed import setting


@dataclass(frozen=True)
class LlmConfig:
    """Workload W3: BLOOM-176B and OPT-30B with tensor parallelism (LMI DeepSpeed)."""

    enabled: bool = setting(True, doc="false: the stack is not synthesized in this environment.")
