"""code/inference.py served by the real sagemaker-huggingface-inference-toolkit (2.6.0, the lock's) under
the real multi-model-server worker (1.1.11: mms.service.Service, the one that encodes the answer for the
model server), as the Hugging Face Neuron inference container does: the toolkit imports
code/inference.py from the model directory, calls model_fn once and transform_fn per request.

What these tests pin about the toolkit (handler_service.py ``handle``), because alarms, rollbacks
and clients are built on it:
* every exception from the handler, a failing pipeline included, is answered 400 with the
  exception's text (``PredictionException(str(e), 400)``): no 5XX ever comes from a model error;
* the response content type is the request's Accept, verbatim (``application/json`` when Accept
  is absent or ``*/*``), whatever the handler returns.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import shutil
import struct
import sys
from pathlib import Path

import optimum.neuron
import pytest
from mms.service import Service
from PIL import Image
from sagemaker_huggingface_inference_toolkit.handler_service import HuggingFaceHandlerService

import optimum_neuron_standin
from tests.model_packages.tiny_models import tiny_clip_tokenizer

CODE = Path(__file__).resolve().parents[3] / "model_packages" / "stable_diffusion_compile" / "optimum_serving" / "code"
TOKEN = "ml_platform.model_error"
PIPELINE = optimum_neuron_standin.NeuronStableDiffusionPipeline
# The exported pipeline's shapes: latent 8x8 with a VAE scale factor of 8 -> 64x64 images.
COMPILED = 64


def export_folder(model_dir: Path) -> None:
    """What optimum-neuron's save_pretrained writes, as far as the handler and the stand-in read it."""
    model_dir.mkdir()
    (model_dir / "model_index.json").write_text(json.dumps({"_class_name": "NeuronStableDiffusionPipeline"}))
    # 16 tokens at most; one per letter of a word outside its few whole words ("a" is one)
    tiny_clip_tokenizer(model_dir / "tokenizer-src").save_pretrained(model_dir / "tokenizer")
    for part, config in (("unet", {"neuron": {"static_height": COMPILED // 8, "static_width": COMPILED // 8}}),
                         ("vae_decoder", {"block_out_channels": [8, 8, 8, 8]})):
        (model_dir / part).mkdir()
        (model_dir / part / "config.json").write_text(json.dumps(config))
    shutil.copytree(CODE, model_dir / "code")


@pytest.fixture
def served(tmp_path, monkeypatch):
    model_dir = tmp_path / "model"
    export_folder(model_dir)
    # optimum.neuron resolves names lazily and cannot import this one here (neuronx_distributed):
    # the module's namespace takes the stand-in, so `from optimum.neuron import ...` finds it.
    monkeypatch.setitem(vars(optimum.neuron), "NeuronStableDiffusionPipeline", PIPELINE)
    PIPELINE.loaded.clear()
    sys.modules.pop("inference", None)
    handler = HuggingFaceHandlerService()
    service = Service("model", str(model_dir), None, handler.handle, 0, 1)
    yield service, handler, model_dir
    PIPELINE.fail_with = None
    sys.modules.pop("inference", None)
    while str(model_dir / "code") in sys.path:
        sys.path.remove(str(model_dir / "code"))


class Answer:
    """The model server's wire answer (mms/protocol/otf_message_handler.py create_predict_response)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = bytes(raw)
        self.pos = 0
        self.code = self._int()
        self.message = self._text()
        self._text()  # request id
        self.content_type = self._text()

    def _int(self) -> int:
        (value,) = struct.unpack_from("!i", self.raw, self.pos)
        self.pos += 4
        return value

    def _text(self) -> str:
        size = self._int()
        value = self.raw[self.pos:self.pos + size].decode()
        self.pos += size
        return value


def post(service, payload, *, accept: str | None = "image/png") -> Answer:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = [{"name": b"Content-Type", "value": b"application/json"}]
    if accept is not None:
        headers.append({"name": b"Accept", "value": accept.encode()})
    batch = [{"requestId": b"r1", "parameters": [{"name": "body", "contentType": "application/json", "value": body}],
              "headers": headers}]
    return Answer(service.predict(batch))


def png_in(answer: Answer) -> Image.Image:
    start = answer.raw.index(b"\x89PNG")
    return Image.open(io.BytesIO(answer.raw[start:]))


def test_a_prompt_becomes_a_png_with_the_unet_on_both_cores(served):
    service, handler, model_dir = served
    answer = post(service, {"prompt": "a cat sat", "parameters": {
        "num_inference_steps": 3, "guidance_scale": 6.5, "negative_prompt": "dog", "seed": 7,
        "height": COMPILED, "width": COMPILED}})
    assert (answer.code, answer.content_type) == (200, "image/png")
    image = png_in(answer)
    assert image.format == "PNG" and image.size == (COMPILED, COMPILED)
    assert PIPELINE.loaded == [(str(model_dir), "unet")]
    (call,) = handler.model.calls
    assert (call["num_inference_steps"], call["guidance_scale"], call["negative_prompt"]) == (3, 6.5, "dog")
    assert call["generator"].initial_seed() == 7 and "height" not in call  # the pipeline uses its compiled size


def test_the_model_loads_once(served):
    service, _, _ = served
    post(service, {"prompt": "cat"})
    post(service, {"prompt": "dog"})
    assert len(PIPELINE.loaded) == 1


@pytest.mark.parametrize(("accept", "content_type"), [
    ("image/png", "image/png"),
    ("application/json", "application/json"),
    (None, "application/json"),  # the toolkit's default for a missing Accept
    ("*/*", "application/json"),
])
def test_the_content_type_is_the_accept_and_the_body_matches_it(served, accept, content_type):
    service, _, _ = served
    answer = post(service, {"prompt": "cat"}, accept=accept)
    assert (answer.code, answer.content_type) == (200, content_type)
    if content_type == "application/json":
        body = answer.raw[answer.raw.index(b'{"image"'):answer.raw.rindex(b"}") + 1]
        assert Image.open(io.BytesIO(base64.b64decode(json.loads(body)["image"]))).format == "PNG"
    else:
        assert png_in(answer).format == "PNG"


def test_an_accept_the_toolkit_would_echo_verbatim_is_refused(served):
    """invoke-sd used to send this; the toolkit would have answered it as the content type."""
    service, _, _ = served
    answer = post(service, {"prompt": "cat"}, accept="image/png, application/json")
    assert answer.code == 400
    assert answer.message == "Accept 'image/png, application/json' is not supported; send one of image/png, application/json"


def test_a_failing_pipeline_is_a_400_with_one_model_error_line(served, caplog):
    """The toolkit turns the model's failure into a 400: the token line is what the alarm counts."""
    service, _, _ = served
    PIPELINE.fail_with = RuntimeError("nrt_execute failed: NERR_FAIL\nstatus 1")
    with caplog.at_level(logging.INFO):
        answer = post(service, {"prompt": "cat"})
    assert answer.code == 400
    assert answer.message == "the model failed: RuntimeError: nrt_execute failed: NERR_FAIL status 1"
    lines = [line for record in caplog.records for line in record.getMessage().splitlines() if TOKEN in line]
    assert lines == [f"{TOKEN} RuntimeError: nrt_execute failed: NERR_FAIL status 1"]
    assert caplog.text.count(TOKEN) == 1  # the model server's "Prediction error" traceback does not repeat it
    assert "Prediction error" in caplog.text


def test_guidance_of_one_would_fail_on_the_data_parallel_unet(served):
    """Why guidance_scale must be above 1: the stand-in's DataParallel refuses the batch of 1."""
    _, handler, _ = served
    post(served[0], {"prompt": "cat"})
    with pytest.raises(RuntimeError, match="dynamic batching is disabled"):
        handler.model("cat", guidance_scale=1.0)


@pytest.mark.parametrize(("payload", "reason"), [
    (b"{oops", "request body is not valid JSON"),
    ({"parameters": {}}, 'expected {"prompt"'),
    ({"prompt": ""}, 'expected {"prompt"'),
    ({"prompt": "cat cat cat cat cat"}, "prompt: 17 tokens, allowed: at most 16"),
    ({"prompt": "cat", "parameters": {"negative_prompt": "dog dog dog dog dog"}}, "negative_prompt: 17 tokens, allowed: at most 16"),
    ({"prompt": "cat", "parameters": {"steps": 3}}, "unknown parameters: steps"),
    ({"prompt": "cat", "parameters": {"num_inference_steps": 0}}, "num_inference_steps: got 0, allowed: an integer from 1 to 150"),
    ({"prompt": "cat", "parameters": {"num_inference_steps": 151}}, "num_inference_steps: got 151"),
    ({"prompt": "cat", "parameters": {"guidance_scale": 1}}, "guidance_scale: got 1, allowed: a number above 1"),
    ({"prompt": "cat", "parameters": {"guidance_scale": 31}}, "guidance_scale: got 31"),
    ({"prompt": "cat", "parameters": {"height": 512}}, f"height: got 512, allowed: {COMPILED} (this endpoint was compiled for 64x64)"),
    ({"prompt": "cat", "parameters": {"width": 48}}, f"width: got 48, allowed: {COMPILED}"),
    ({"prompt": "cat", "parameters": {"seed": -1}}, "seed: got -1, allowed: an integer >= 0"),
    ({"prompt": "cat", "parameters": {"seed": "7"}}, 'seed: got "7"'),
])
def test_bad_requests_are_answered_400_with_the_reason_and_no_model_error(served, caplog, payload, reason):
    service, handler, _ = served
    with caplog.at_level(logging.INFO):
        answer = post(service, payload)
    assert answer.code == 400 and reason in answer.message
    assert not any(TOKEN in record.getMessage() for record in caplog.records)
    assert handler.model.calls == []  # refused before the pipeline ran
