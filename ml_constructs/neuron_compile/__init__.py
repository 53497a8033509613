"""Neuron compilation as a CloudFormation custom resource (workload W1's compile step)."""
from ml_constructs.neuron_compile.compilation import (
    DEFAULT_COMPILER_ARGS,
    CompileInputs,
    NeuronCompilation,
    compilation_props,
)
from ml_constructs.neuron_compile.compute import CompileQueue
from ml_constructs.neuron_compile.provider import CompileProvider

__all__ = ["DEFAULT_COMPILER_ARGS", "CompileInputs", "CompileProvider", "CompileQueue", "NeuronCompilation", "compilation_props"]
