"""Configuration of workload W2: scikit-learn models behind one multi-model endpoint."""
from __future__ import annotations

from dataclasses import dataclass

from config.typed import setting


@dataclass(frozen=True)
class MultiModelConfig:
    """Workload W2: scikit-learn models behind one multi-model endpoint."""

    enabled: bool = setting(True, doc="false: the stack is not synthesized in this environment.")
