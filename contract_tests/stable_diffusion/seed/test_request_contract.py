"""The request contract on runtime "seed" (docs/stable-diffusion.md, "Request contract"), with the lock's
diffusers 0.16 and transformers: every row for the bring-your-own handler (model.py) and for DJL 0.24's
no-code handler (djl_v024_stable_diffusion.py, written from its source), on compile.py's output for a
64x64 image from a tiny pipeline whose own size is 32x32 (so a request without a size only works
because the compile made the compiled size the pipeline's default).
"""
from __future__ import annotations

import io
import json
import logging
import shutil

import pytest
import torch
from djl_python import Input
from PIL import Image

from conftest import PACKAGES, load_module
from djl_v024_stable_diffusion import StableDiffusionService
from neuron_standin import DataParallel, neuron_loader

TOKEN = "ml_platform.model_error"
COMPILED = 64
byo = load_module(PACKAGES / "stable_diffusion_inf2_byo" / "model.py", "byo_model")


@pytest.fixture(scope="module")
def byo_service(compiled):
    out, signatures = compiled
    service = byo.Service(lambda props: byo.load_pipeline(props, jit_load=neuron_loader(signatures),
                                                          data_parallel=DataParallel))
    assert service.handle(Input(b"", properties={"model_id": str(out), "tensor_parallel_degree": "2"})) is None
    return service


def no_code(model_dir, signatures, monkeypatch) -> StableDiffusionService:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # DJL's Python engine sets it; the handler pops it
    service = StableDiffusionService(jit_load=neuron_loader(signatures), data_parallel=DataParallel)
    service.initialize({"model_id": str(model_dir), "tensor_parallel_degree": "2", "dtype": "bf16"})
    return service


def ask_byo(service, payload):
    body = payload if isinstance(payload, bytes) else json.dumps(payload)
    return service.handle(Input(body))


def ask_no_code(service, payload):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return service.inference("application/json", body)


def png(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    assert image.format == "PNG"
    return image


# One row per contract row: (parameters or a raw body, the BYO handler's 400 reason).
BAD = [
    (b"{oops", "request body is not valid JSON"),
    ({"prompt": ""}, 'expected {"prompt"'),
    ({"prompt": "cat cat cat cat cat"}, "prompt: 17 tokens, allowed: at most 16"),
    ({"prompt": "cat", "parameters": {"negative_prompt": "dog dog dog dog dog"}}, "negative_prompt: 17 tokens"),
    ({"prompt": "cat", "parameters": {"num_inference_steps": 0}}, "num_inference_steps: got 0, allowed: an integer from 1 to 150"),
    ({"prompt": "cat", "parameters": {"num_inference_steps": 151}}, "num_inference_steps: got 151"),
    ({"prompt": "cat", "parameters": {"guidance_scale": 1}}, "guidance_scale: got 1, allowed: a number above 1"),
    ({"prompt": "cat", "parameters": {"guidance_scale": 31}}, "guidance_scale: got 31"),
    ({"prompt": "cat", "parameters": {"height": 32}}, "height: got 32, allowed: 64 (this endpoint was compiled for 64x64)"),
    ({"prompt": "cat", "parameters": {"width": 128}}, "width: got 128, allowed: 64"),
    ({"prompt": "cat", "parameters": {"seed": -1}}, "seed: got -1, allowed: an integer >= 0"),
    ({"prompt": "cat", "parameters": {"sampler": "ddim"}}, "unknown parameters: sampler"),
]


def test_byo_serves_the_compiled_size_with_every_accepted_parameter(byo_service):
    out = ask_byo(byo_service, {"prompt": "a cat sat", "parameters": {
        "num_inference_steps": 2, "guidance_scale": 1.5, "negative_prompt": "dog", "seed": 3,
        "height": COMPILED, "width": COMPILED}})
    assert (out.code, out.properties["content-type"]) == (200, "image/png")
    assert png(out.body()).size == (COMPILED, COMPILED)
    assert png(ask_byo(byo_service, {"prompt": "a cat sat"}).body()).size == (COMPILED, COMPILED)


@pytest.mark.parametrize(("payload", "reason"), BAD)
def test_byo_answers_bad_requests_400_with_the_reason_and_no_model_error(byo_service, caplog, payload, reason):
    with caplog.at_level(logging.INFO):
        out = ask_byo(byo_service, payload)
    assert out.code == 400 and out.properties["content-type"] == "application/json"
    assert reason in out.json_body()["error"]
    assert TOKEN not in caplog.text


class FailingGraph(torch.nn.Module):
    def forward(self, *inputs):
        raise RuntimeError("nrt_execute failed: NERR_FAIL\nexecution status 1")


def test_byo_answers_a_model_failure_500_with_one_model_error_line(byo_service, caplog, monkeypatch):
    monkeypatch.setattr(byo_service.pipe.unet, "traced", FailingGraph())
    with caplog.at_level(logging.INFO):
        out = ask_byo(byo_service, {"prompt": "cat", "parameters": {"num_inference_steps": 1}})
    assert out.code == 500  # DJL 0.24 sends the Output's code as the HTTP status: the 5XX alarms see it
    assert out.json_body() == {"error": "the model failed: RuntimeError: nrt_execute failed: NERR_FAIL execution status 1"}
    lines = [line for line in caplog.text.splitlines() if TOKEN in line]
    assert len(lines) == 1 and lines[0].endswith(f"{TOKEN} RuntimeError: nrt_execute failed: NERR_FAIL execution status 1")


def test_guidance_of_one_is_what_the_data_parallel_unet_refuses(byo_service):
    """Why the contract wants guidance above 1: without classifier-free guidance the UNet gets batch 1."""
    with pytest.raises(RuntimeError, match="dynamic batching is disabled"):
        byo_service.pipe("cat", num_inference_steps=1, guidance_scale=1.0, height=COMPILED, width=COMPILED)


def test_no_code_renders_the_compiled_size_when_the_request_names_none(compiled, monkeypatch):
    out, signatures = compiled
    service = no_code(out, signatures, monkeypatch)
    result = ask_no_code(service, {"prompt": "a cat sat", "parameters": {"num_inference_steps": 2, "guidance_scale": 5}})
    assert result.code == 200 and result.properties["content-type"] == "image/png"
    assert png(result.content[0]).size == (COMPILED, COMPILED)


def test_without_the_compiled_default_size_no_code_fails_every_request_that_names_none(compiled, tmp_path, monkeypatch):
    out, signatures = compiled
    native = tmp_path / "native"
    shutil.copytree(out, native)
    config = json.loads((native / "unet" / "config.json").read_text())
    (native / "unet" / "config.json").write_text(json.dumps(config | {"sample_size": 16}))  # the checkpoint's own
    result = ask_no_code(no_code(native, signatures, monkeypatch), {"prompt": "cat", "parameters": {"num_inference_steps": 1}})
    assert result.code == 424 and "compiled for inputs" in result.content[0]["error"]


@pytest.mark.parametrize(("payload", "error"), [
    ({"prompt": "cat", "parameters": {"seed": 7}}, "unexpected keyword argument 'seed'"),
    ({"prompt": "cat", "parameters": {"guidance_scale": 1, "num_inference_steps": 1}}, "dynamic batching is disabled"),
    ({"prompt": "cat", "parameters": {"height": 32, "num_inference_steps": 1}}, "compiled for inputs"),
    (b"{oops", "Expecting property name"),
    ({"parameters": {"num_inference_steps": 1}}, "'prompt'"),
    ({"prompt": "cat", "parameters": {"sampler": "ddim", "num_inference_steps": 1}}, "unexpected keyword argument 'sampler'"),
])
def test_no_code_answers_what_it_cannot_serve_with_424(compiled, monkeypatch, payload, error):
    """DJL 0.24's handler passes every parameter to diffusers 0.16's __call__ and answers any failure
    424: invoke-sd refuses seed for no-code before sending; the rest is the 424 shown here."""
    out, signatures = compiled
    result = ask_no_code(no_code(out, signatures, monkeypatch), payload)
    assert result.code == 424 and error in result.content[0]["error"]


@pytest.mark.parametrize(("prompt", "steps"), [("", 1), ("cat cat cat cat cat", 1), ("cat", 0)])
def test_no_code_serves_what_the_contract_refuses_elsewhere(compiled, monkeypatch, prompt, steps):
    """No check in DJL's handler: an empty prompt renders unguided by text, a long one is cut to the
    tokenizer's length (16 here) with only a warning, 0 steps decodes the starting noise; invoke-sd
    refuses all three before sending."""
    out, signatures = compiled
    result = ask_no_code(no_code(out, signatures, monkeypatch), {"prompt": prompt, "parameters": {"num_inference_steps": steps}})
    assert result.code == 200 and png(result.content[0]).size == (COMPILED, COMPILED)
