"""The scikit-learn handler in the serving image's environment: skops loading with
trusted types only, predictions, and 400s (with the reason) for malformed input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import skops.io as sio
from djl_python import Input
from sklearn.preprocessing import FunctionTransformer


@pytest.fixture
def model_dir(tmp_path: Path, train) -> Path:
    assert train.main(["--output", str(tmp_path / "model.skops"), "--seed", "3"]) == 0
    return tmp_path


@pytest.fixture
def handle(handler_from, model_dir: Path):
    module = handler_from()
    assert module.handle(Input.load_call(str(model_dir))) is None  # DJL's load call
    return lambda body: module.handle(Input.request(body))


def test_training_recovers_the_documented_line(model_dir: Path):
    model = sio.load(model_dir / "model.skops", trusted=["sklearn.linear_model._base.LinearRegression"])
    assert model.coef_[0] == pytest.approx(2.0, abs=0.01)
    assert model.intercept_ == pytest.approx(1.0, abs=0.02)


def test_model_bytes_are_a_function_of_seed_and_versions(train):
    assert train.model_bytes(5) == train.model_bytes(5)
    assert train.model_bytes(5) != train.model_bytes(6)


def test_handler_predicts_with_the_trained_model(handle, model_dir: Path):
    out = handle(json.dumps({"inputs": [[0.0], [1.5], [-4]]}))
    assert out.code == 200 and out.properties["content-type"] == "application/json"
    assert json.loads(out.body())["predictions"] == pytest.approx([1.0, 4.0, -7.0], abs=0.05)


def test_single_flat_row_is_accepted(handle):
    assert json.loads(handle(json.dumps({"inputs": [10]})).body())["predictions"] == pytest.approx([21.0], abs=0.1)


def test_model_is_loaded_once_per_worker(handler_from, model_dir: Path):
    module = handler_from()
    calls = []
    real_load = module.load_model
    module.load_model = lambda d: calls.append(d) or real_load(d)
    assert module.handle(Input.load_call(str(model_dir))) is None
    for _ in range(3):
        assert module.handle(Input.request_json({"inputs": [[1]]})).code == 200
    assert calls == [str(model_dir)]


def test_row_cap(handle, handler_from):
    cap = handler_from().MAX_ROWS
    assert handle(json.dumps({"inputs": [[1.0]] * cap})).code == 200
    out = handle(json.dumps({"inputs": [[1.0]] * (cap + 1)}))
    assert out.code == 400
    assert json.loads(out.body())["error"] == f'"inputs" has {cap + 1} rows, at most {cap} are allowed'


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"inputs": [[1.0]', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"rows": [[1]]}', 'without "inputs"'),
        (b'{"inputs": []}', "non-empty list"),
        (b'{"inputs": [[1, 2]]}', "row 0 has 2 values, the model expects 1"),
        (b'{"inputs": [[1], ["x"]]}', "row 1 must be a list of finite numbers"),
        (b'{"inputs": [[NaN]]}', "row 0 must be a list of finite numbers"),
        (b'{"inputs": [[true]]}', "row 0 must be a list of finite numbers"),
        (b'{"inputs": [[1' + b"0" * 400 + b']]}', "row 0 must be a list of finite numbers (integers at most 2**53"),
        (b'"just a string"', "non-empty list"),
    ],
)
def test_malformed_requests_get_a_400_with_the_reason(handle, body: bytes, reason: str):
    out = handle(body)
    assert out.code == 400 and out.message == "Bad Request"
    assert out.properties["content-type"] == "application/json"
    assert reason in json.loads(out.body())["error"]


def test_missing_model_file_names_the_directory(handler_from, tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=f"model.skops not found in the model directory '{tmp_path}'"):
        handler_from().handle(Input.load_call(str(tmp_path)))


def test_a_model_file_with_an_untrusted_type_is_refused(handler_from, tmp_path: Path):
    # A skops file that would call a builtin on load-and-use: skops names it, the handler refuses it.
    (tmp_path / "model.skops").write_bytes(sio.dumps(FunctionTransformer(func=eval)))
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException, match="builtins.eval"):
        handler_from().handle(Input.load_call(str(tmp_path)))


def test_a_pickle_is_not_loaded(handler_from, tmp_path: Path):
    import pickle

    (tmp_path / "model.skops").write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(Exception) as raised:
        handler_from().handle(Input.load_call(str(tmp_path)))
    assert "zip" in str(raised.value).lower()
