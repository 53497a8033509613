"""optimum_export.export against optimum-neuron 0.4.1's real argument parsing (the lock's package):
the shapes and compiler settings it passes are ones NeuronStableDiffusionPipeline's export accepts."""
from __future__ import annotations

import ast
import json
import sys
from dataclasses import asdict
from pathlib import Path

import optimum.neuron
import pytest
from optimum.neuron.utils.argument_utils import NeuronArgumentParser

PACKAGE = Path(__file__).resolve().parents[3] / "model_packages" / "stable_diffusion_compile"
sys.path.insert(0, str(PACKAGE))
import optimum_export  # noqa: E402


def export_function() -> ast.FunctionDef:
    """NeuronDiffusionPipelineBase._export in the installed optimum-neuron (read from its source:
    importing the module needs neuronx_distributed)."""
    source = Path(optimum.neuron.__file__).parent / "modeling_diffusion.py"
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.FunctionDef) and node.name == "_export":
            return node
    raise AssertionError("no _export in optimum-neuron's modeling_diffusion.py")


def export_parameters() -> set[str]:
    node = export_function()
    return {a.arg for a in node.args.args + node.args.kwonlyargs}


def export_defaults() -> dict[str, object]:
    args = export_function().args
    positional = dict(zip([a.arg for a in args.args][-len(args.defaults):], args.defaults, strict=True)) if args.defaults else {}
    keyword = {a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None}
    return {name: ast.literal_eval(d) for name, d in {**positional, **keyword}.items()
            if isinstance(d, ast.Constant)}


class Recorder:
    calls: list[tuple[str, dict]] = []

    @classmethod
    def from_pretrained(cls, source, **kwargs):
        cls.calls.append((source, kwargs))
        return cls()

    def save_pretrained(self, out: Path) -> None:
        (out / "model_index.json").write_text(json.dumps({"_class_name": "NeuronStableDiffusionPipeline"}))


@pytest.mark.parametrize(("dtype", "cast"), [("bf16", "bf16"), ("fp16", "fp16"), ("fp32", None)])
def test_export_arguments_are_what_optimum_neuron_parses(tmp_path, dtype, cast):
    Recorder.calls.clear()
    optimum_export.export("/weights/sd21", "0123456789abcdef0123456789abcdef01234567", 512, 768, dtype, tmp_path,
                          pipeline_class=Recorder)
    ((source, kwargs),) = Recorder.calls
    assert source == "/weights/sd21" and kwargs.pop("export") is True
    shapes = asdict(NeuronArgumentParser(**kwargs).input_shapes)
    assert (shapes["batch_size"], shapes["height"], shapes["width"], shapes["num_images_per_prompt"]) == (1, 512, 768, 1)
    shape_names = {k for k in kwargs if k in shapes}
    assert set(kwargs) - shape_names <= export_parameters()  # every other argument is a named _export parameter
    assert kwargs.get("auto_cast_type") == cast and kwargs["revision"] == "0123456789abcdef0123456789abcdef01234567"


def test_the_export_never_consults_the_hub_compile_cache(tmp_path):
    """optimum-neuron 0.4.1 looks the graphs up in the public hub cache unless disable_neuron_cache is
    true (its default is false): the docs' "prod never downloads from the hub" rests on passing it."""
    assert export_defaults()["disable_neuron_cache"] is False
    source = (Path(optimum.neuron.__file__).parent / "modeling_diffusion.py").read_text()
    assert "if not disable_neuron_cache:" in source and "create_hub_compile_cache_proxy()" in source
    Recorder.calls.clear()
    optimum_export.export("/weights/sd21", None, 512, 512, "bf16", tmp_path, pipeline_class=Recorder)
    ((_, kwargs),) = Recorder.calls
    assert kwargs["disable_neuron_cache"] is True


def test_the_manifest_records_the_installed_optimum_neuron():
    import compile as compile_script

    found = compile_script.versions()
    assert found["optimum-neuron"] == "0.4.1"  # the lock's, as the image pins it
    assert found["diffusers"] == "0.35.2" and "neuron_sdk" not in found


def test_export_ships_the_serving_code_beside_the_pipeline(tmp_path):
    optimum_export.export("m", None, 512, 512, "bf16", tmp_path, pipeline_class=Recorder)
    assert (tmp_path / "code" / "inference.py").read_bytes() == (
        PACKAGE / "optimum_serving" / "code" / "inference.py").read_bytes()
    assert (tmp_path / "model_index.json").is_file()
