"""The bring-your-own Stable Diffusion handler: loads the compile step's four files by
name (the Neuron loader and DataParallel injected), and turns requests into PNG images
with a tiny pipeline compiled on CPU."""
from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from djl_python import Input
from PIL import Image

from tests.model_packages.conftest import PACKAGES, load_module

sys.path.insert(0, str(PACKAGES / "stable_diffusion_compile"))
compile_sd = load_module(PACKAGES / "stable_diffusion_compile" / "compile.py")
byo = load_module(PACKAGES / "stable_diffusion_inf2_byo" / "model.py")


@pytest.fixture(scope="module")
def compiled_dir(tiny_sd_pipeline: Path, tmp_path_factory) -> Path:
    source = tiny_sd_pipeline
    out = tmp_path_factory.mktemp("compiled")
    argv = ["--model-id", str(source), "--height", "64", "--width", "64", "--dtype", "fp32",
            "--output-dir", str(out), "--no-pipeline-weights"]
    assert compile_sd.main(argv, tracer=lambda m, ex, name: torch.jit.trace(m, ex, check_trace=False, strict=False)) == 0
    return out


class Loads:
    """Records which files were loaded and how the UNet was parallelised."""

    def __init__(self):
        self.files: list[str] = []
        self.parallel: list[tuple[list[int], bool]] = []

    def jit_load(self, path: str):
        self.files.append(Path(path).name)
        return torch.jit.load(path)

    def data_parallel(self, module, device_ids, set_dynamic_batching):
        self.parallel.append((device_ids, set_dynamic_batching))
        return module  # on CPU the traced UNet runs the batch of 2 itself


@pytest.fixture(scope="module")
def service(compiled_dir: Path):
    loads = Loads()
    svc = byo.Service(lambda props: byo.load_pipeline(props, jit_load=loads.jit_load, data_parallel=loads.data_parallel))
    assert svc.handle(Input(b"", properties={"model_id": str(compiled_dir), "tensor_parallel_degree": "2",
                                             "num_inference_steps": "3"})) is None
    return svc, loads


def test_loads_the_four_compiled_files_and_spreads_the_unet_over_the_cores(service):
    _, loads = service
    assert sorted(loads.files) == ["text_encoder.pt", "unet.pt", "vae_decoder.pt", "vae_post_quant_conv.pt"]
    assert loads.parallel == [([0, 1], False)]


def test_prompt_becomes_a_png_of_the_compiled_size(service):
    svc, _ = service
    out = svc.handle(Input(json.dumps({"prompt": "a cat sat", "parameters": {"num_inference_steps": 1, "seed": 7}})))
    assert out.code == 200 and out.properties["content-type"] == "image/png"
    image = Image.open(io.BytesIO(out.body()))
    assert image.format == "PNG" and image.size == (64, 64)
    again = svc.handle(Input(json.dumps({"prompt": "a cat sat", "parameters": {"num_inference_steps": 1, "seed": 7}})))
    assert again.body() == out.body()  # the seed makes it reproducible


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{oops", "not valid JSON"),
        ({"parameters": {}}, 'expected {"prompt"'),
        ({"prompt": "  "}, 'expected {"prompt"'),
        ({"prompt": "cat", "parameters": {"steps": 3}}, "unknown parameters: steps"),
        ({"prompt": "cat", "parameters": {"num_inference_steps": 0}}, "num_inference_steps: got 0, allowed: an integer from 1 to 150"),
        ({"prompt": "cat", "parameters": {"guidance_scale": 99}}, "guidance_scale: got 99"),
        ({"prompt": "cat", "parameters": {"height": 512}}, "height: got 512, allowed: 64 (this endpoint was compiled for 64x64)"),
        ({"prompt": "cat", "parameters": {"seed": -1}}, "seed: got -1"),
    ],
)
def test_bad_requests_get_400(service, payload, reason: str):
    svc, _ = service
    body = payload if isinstance(payload, bytes) else json.dumps(payload)
    out = svc.handle(Input(body))
    assert out.code == 400 and reason in out.json_body()["error"]


def test_missing_compiled_file_is_named(compiled_dir: Path, tmp_path: Path):
    broken = tmp_path / "model"
    shutil.copytree(compiled_dir, broken)
    (broken / "compiled_model" / "unet.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"compiled files missing in .*compiled_model: unet.pt"):
        byo.load_pipeline({"model_id": str(broken)}, jit_load=torch.jit.load, data_parallel=lambda m, *a, **k: m)


def test_model_folder_without_compiled_output_is_explained(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="point option.model_id at the compile step's output"):
        byo.load_pipeline({"model_dir": str(tmp_path)})

