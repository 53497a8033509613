"""The multi-model endpoint's scikit-learn package, run for real: train, load through
the handler, predict; malformed requests get a 400 with a reason."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import joblib
import pytest
from djl_python import Input

from ml_constructs.packaging import build_model_tarball, parse_properties
from tests.model_packages.conftest import PACKAGES, load_module

train = load_module(PACKAGES / "sklearn_mme_training" / "train.py")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    assert train.main(["--output", str(tmp_path / "model.joblib"), "--seed", "3"]) == 0
    return tmp_path


@pytest.fixture
def handle(handler_module, model_dir: Path):
    module = handler_module("sklearn_mme")
    return lambda body: module.handle(Input(body, properties={"model_dir": str(model_dir)}))


def test_training_recovers_the_documented_line(model_dir: Path):
    model = joblib.load(model_dir / "model.joblib")
    assert model.coef_[0] == pytest.approx(2.0, abs=0.01)
    assert model.intercept_ == pytest.approx(1.0, abs=0.02)


def test_training_is_deterministic_per_seed():
    assert train.model_bytes(5) == train.model_bytes(5)
    assert train.model_bytes(5) != train.model_bytes(6)


def test_handler_predicts_with_the_trained_model(handle, model_dir: Path):
    out = handle(json.dumps({"inputs": [[0.0], [1.5], [-4]]}))
    assert out.code == 200 and out.properties["content-type"] == "application/json"
    model = joblib.load(model_dir / "model.joblib")
    expected = [model.intercept_, model.coef_[0] * 1.5 + model.intercept_, -4 * model.coef_[0] + model.intercept_]
    assert out.json_body()["predictions"] == pytest.approx(expected, rel=1e-12)
    assert out.json_body()["predictions"] == pytest.approx([1.0, 4.0, -7.0], abs=0.05)


def test_single_flat_row_is_accepted(handle):
    assert handle(json.dumps({"inputs": [10]})).json_body()["predictions"] == pytest.approx([21.0], abs=0.1)


def test_model_is_loaded_once(handler_module, model_dir: Path):
    module = handler_module("sklearn_mme")
    calls = []
    real_load = module.load_model
    module.load_model = lambda d: calls.append(d) or real_load(d)
    props = {"model_dir": str(model_dir)}
    assert module.handle(Input(b"", properties=props)) is None  # warm-up ping loads the model
    for _ in range(3):
        assert module.handle(Input('{"inputs": [[1]]}', properties=props)).code == 200
    assert calls == [str(model_dir)]


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
        (b'{"inputs": [[-9007199254740993]]}', "row 0 must be a list of finite numbers"),
        (b'"just a string"', "non-empty list"),
    ],
)
def test_malformed_requests_get_a_400_with_the_reason(handle, body: bytes, reason: str):
    out = handle(body)
    assert out.code == 400 and out.message == "Bad Request"
    assert out.properties["content-type"] == "application/json"
    assert reason in out.json_body()["error"]


def test_missing_model_file_names_the_directory(handler_module, tmp_path: Path):
    module = handler_module("sklearn_mme")
    with pytest.raises(FileNotFoundError, match=f"model.joblib not found in the model directory '{tmp_path}'"):
        module.handle(Input(b"", properties={"model_dir": str(tmp_path)}))


def test_package_ships_handler_and_properties_only(tmp_path: Path):
    out = tmp_path / "pkg.tar.gz"
    build_model_tarball(PACKAGES / "sklearn_mme", out, extra_files={"model.joblib": train.model_bytes(0)})
    with tarfile.open(out) as tar:
        assert sorted(tar.getnames()) == ["model.joblib", "model.py", "serving.properties"]
    props = parse_properties((PACKAGES / "sklearn_mme" / "serving.properties").read_text())
    assert props == {"engine": "Python", "max_idle_time": "600"}
