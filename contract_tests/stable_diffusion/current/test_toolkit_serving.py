"""code/inference.py served by the real sagemaker-huggingface-inference-toolkit (2.6.0, the lock's),
as the Hugging Face Neuron inference container does: the toolkit imports code/inference.py from the
model directory, calls model_fn once and transform_fn per request, and answers errors with 400."""
from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import optimum.neuron
import pytest
from mms.service import PredictionException  # what the toolkit raises; the model server answers its code
from PIL import Image
from sagemaker_huggingface_inference_toolkit.handler_service import HuggingFaceHandlerService

import optimum_neuron_standin

CODE = Path(__file__).resolve().parents[3] / "model_packages" / "stable_diffusion_compile" / "optimum_serving" / "code"


class RequestProcessor:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def get_request_properties(self) -> dict[str, str]:
        return self.headers


class Metrics:
    def add_time(self, name: str, value: float) -> None:
        pass


class Context:
    """The model server's context, as far as handler_service.py reads it."""

    def __init__(self, model_dir: Path, headers: dict[str, str]) -> None:
        self.system_properties = {"model_dir": str(model_dir), "batch_size": 1, "gpu_id": 0}
        self.request_processor = [RequestProcessor(headers)]
        self.metrics = Metrics()
        self.response_content_type: str | None = None

    def set_response_content_type(self, index: int, value: str) -> None:
        self.response_content_type = value


@pytest.fixture
def service(tmp_path, monkeypatch):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model_index.json").write_text(json.dumps({"_class_name": "NeuronStableDiffusionPipeline"}))
    shutil.copytree(CODE, model_dir / "code")
    # optimum.neuron resolves names lazily and cannot import this one here (neuronx_distributed):
    # the module's namespace takes the stand-in, so `from optimum.neuron import ...` finds it.
    monkeypatch.setitem(vars(optimum.neuron), "NeuronStableDiffusionPipeline",
                        optimum_neuron_standin.NeuronStableDiffusionPipeline)
    optimum_neuron_standin.NeuronStableDiffusionPipeline.loaded.clear()
    sys.modules.pop("inference", None)
    yield HuggingFaceHandlerService(), model_dir
    sys.modules.pop("inference", None)
    while str(model_dir / "code") in sys.path:
        sys.path.remove(str(model_dir / "code"))


def request(svc, model_dir, payload, accept="image/png"):
    context = Context(model_dir, {"Content-Type": "application/json", "Accept": accept})
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return svc.handle([{"body": body}], context), context


def test_a_prompt_becomes_a_png_with_the_unet_on_both_cores(service):
    svc, model_dir = service
    (png,), context = request(svc, model_dir, {"prompt": "an astronaut", "parameters": {
        "num_inference_steps": 3, "guidance_scale": 6.5, "negative_prompt": "blurry", "seed": 7}})
    assert Image.open(io.BytesIO(png)).format == "PNG" and context.response_content_type == "image/png"
    assert optimum_neuron_standin.NeuronStableDiffusionPipeline.loaded == [(str(model_dir), "unet")]
    (call,) = svc.model.calls
    assert (call["num_inference_steps"], call["guidance_scale"], call["negative_prompt"]) == (3, 6.5, "blurry")
    assert call["generator"].initial_seed() == 7


def test_the_model_loads_once(service):
    svc, model_dir = service
    request(svc, model_dir, {"prompt": "one"})
    request(svc, model_dir, {"prompt": "two"})
    assert len(optimum_neuron_standin.NeuronStableDiffusionPipeline.loaded) == 1


@pytest.mark.parametrize(("payload", "reason"), [
    (b"{oops", "not valid JSON"),
    ({"parameters": {}}, 'expected {"prompt"'),
    ({"prompt": "cat", "parameters": {"steps": 3}}, "unknown parameters: steps"),
    ({"prompt": "cat", "parameters": {"num_inference_steps": 0}}, "num_inference_steps: got 0"),
    ({"prompt": "cat", "parameters": {"seed": -1}}, "seed: got -1"),
])
def test_bad_requests_are_answered_400(service, payload, reason):
    svc, model_dir = service
    with pytest.raises(PredictionException) as exc:
        request(svc, model_dir, payload)
    assert exc.value.error_code == 400 and reason in exc.value.message
