"""no-code mode: compile.py's output served by (a stand-in for) DJL Serving 0.24's handler.

Before the fix every request failed: the text encoder was traced to return a list (the handler
indexes it with 'last_hidden_state') and the UNet with an fp32 timestep (the handler passes it in
the sample's dtype), while the endpoint still went InService.
"""
from __future__ import annotations

import io
import json

import pytest
import torch
from PIL import Image

from djl_v024_stable_diffusion import StableDiffusionService
from neuron_standin import DataParallel, NeuronTracer, neuron_loader


def serve(model_dir, signatures, monkeypatch) -> StableDiffusionService:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # DJL's Python engine sets it; the handler pops it
    service = StableDiffusionService(jit_load=neuron_loader(signatures), data_parallel=DataParallel)
    service.initialize({"model_id": str(model_dir), "tensor_parallel_degree": "2", "dtype": "bf16",
                        "use_stable_diffusion": "True"})
    return service


def test_a_prompt_becomes_a_png_through_the_compiled_graphs(compiled, monkeypatch):
    out, signatures = compiled
    service = serve(out, signatures, monkeypatch)
    result = service.inference("application/json", json.dumps(
        {"prompt": "a cat sat on the mat", "parameters": {"num_inference_steps": 2, "height": 64, "width": 64}}).encode())
    assert result.code == 200, result.content
    image = Image.open(io.BytesIO(result.content[0]))
    assert image.format == "PNG" and image.size == (64, 64)
    graphs = {name: getattr(service.pipeline.vae, name) for name in ("decoder", "post_quant_conv")}
    assert all(g.calls == 1 for g in graphs.values())  # the compiled VAE parts ran, not the weights
    assert service.pipeline.text_encoder.neuron_text_encoder.calls == 2  # prompt and negative prompt
    # Two steps, classifier-free guidance: the batch-1 UNet ran twice per step, one half per core.
    assert service.pipeline.unet.unetwrap.module.calls == 4


def test_the_traced_signatures_are_what_the_handler_calls(compiled):
    _, signatures = compiled
    assert signatures["text_encoder"] == [((1, 16), torch.int64)]
    assert signatures["unet"] == [((1, 4, 32, 32), torch.bfloat16), ((1,), torch.bfloat16),
                                  ((1, 16, 16), torch.bfloat16)]


class ListTextEncoder(torch.nn.Module):
    """The previous compile.py's text encoder output: a list."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids):
        return [self.inner(input_ids)["last_hidden_state"]]


@pytest.mark.parametrize(("old", "error"), [
    ("list_output", "list indices must be integers"),
    ("fp32_timestep", "unet: compiled for inputs"),
])
def test_the_handler_rejects_the_old_trace(compile_script, tiny_pipeline, tmp_path, monkeypatch, old, error):
    """The stand-in fails the way the endpoint did with the previous compile output, so a
    regression in compile.py cannot pass these tests."""
    tracer = NeuronTracer()

    def old_tracer(module, example_inputs, name):
        if name == "text_encoder" and old == "list_output":
            module = ListTextEncoder(module)
        if name == "unet" and old == "fp32_timestep":
            example_inputs = (example_inputs[0], example_inputs[1].float(), example_inputs[2])
        return tracer(module, example_inputs, name)

    argv = ["--model-id", str(tiny_pipeline), "--height", "64", "--width", "64", "--dtype", "bf16",
            "--output-dir", str(tmp_path / "old")]
    assert compile_script.main(argv, tracer=old_tracer) == 0
    service = serve(tmp_path / "old", tracer.signatures, monkeypatch)
    result = service.inference("application/json", json.dumps(
        {"prompt": "a cat", "parameters": {"num_inference_steps": 1, "height": 64, "width": 64}}).encode())
    assert result.code == 424 and error in result.content[0]["error"]


@pytest.mark.parametrize("dtype", ["fp16"])
def test_dtypes_the_handler_refuses(compiled, dtype, monkeypatch):
    out, signatures = compiled
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    service = StableDiffusionService(jit_load=neuron_loader(signatures), data_parallel=DataParallel)
    with pytest.raises(ValueError, match="only supports fp32 and bf16"):
        service.initialize({"model_id": str(out), "dtype": dtype})
