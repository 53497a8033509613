"""Seed profile (DJL Serving 0.24, diffusers 0.16): a tiny SD pipeline compiled by
model_packages/stable_diffusion_compile/compile.py with the Neuron trace stood in
(neuron_standin.py), shared by the no-code and bring-your-own tests."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PACKAGES = REPO / "model_packages"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(PACKAGES / "stable_diffusion_compile"))
sys.path.insert(0, str(REPO / "tests" / "model_packages" / "djl_stub"))  # djl_python.Input/Output for model.py


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def compile_script():
    return load_module(PACKAGES / "stable_diffusion_compile" / "compile.py", "sd_compile")


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    from tests.model_packages.tiny_models import save_tiny_sd_pipeline

    return save_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def compiled(compile_script, tiny_pipeline: Path, tmp_path_factory):
    """bf16, with the pipeline weights (DJL's handler loads them before swapping in the graphs)."""
    from neuron_standin import NeuronTracer

    out = tmp_path_factory.mktemp("compiled")
    tracer = NeuronTracer()
    argv = ["--model-id", str(tiny_pipeline), "--height", "64", "--width", "64", "--dtype", "bf16",
            "--output-dir", str(out)]
    assert compile_script.main(argv, tracer=tracer) == 0
    return out, tracer.signatures
