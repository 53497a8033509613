"""Neuron compilation as a CloudFormation custom resource (workload W1's compile step).

Names are imported on first use, so ``rules`` (which ``config`` uses) loads without CDK.
"""
from __future__ import annotations

from ml_constructs._lazy import lazy_getattr

_EXPORTS = {
    "DEFAULT_COMPILER_ARGS": "compilation",
    "CompileInputs": "compilation",
    "NeuronCompilation": "compilation",
    "compilation_props": "compilation",
    "CompileQueue": "compute",
    "CompileProvider": "provider",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
