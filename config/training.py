"""Configuration of workload W4: multi-node LLM training on Trainium with AWS Batch."""
from __future__ import annotations

from dataclasses import dataclass

from config.typed import setting


@dataclass(frozen=True)
class TrainingConfig:
    """Workload W4: multi-node LLM training on Trainium with AWS Batch."""

    enabled: bool = setting(True, doc="false: the stack is not synthesized in this environment.")
