"""Property tests: whatever body a client sends, the handler answers 200 or 400, never an
exception (which DJL turns into a 424 or 500) or another code.

Hypothesis generates arbitrary bytes and arbitrary JSON documents (bare, and as the value of
``"inputs"``, the place the handler looks first); the explicit examples are the bodies a review
found answered 424: an integer past Python's 4,300-digit limit, and nesting deeper than the
interpreter's recursion limit.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from djl_python import Input
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import load_module, PACKAGE

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=40,
)
ROWS_OF_NUMBERS = st.lists(st.lists(st.integers() | st.floats(), min_size=0, max_size=3), max_size=5)
HUGE_INTEGER = b'{"inputs": [[1' + b"0" * 5000 + b"]]}"
DEEP_LIST = b"[" * 100_000 + b"]" * 100_000
DEEP_INPUTS = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
CHECKED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def handle(tmp_path_factory, train):
    model_dir: Path = tmp_path_factory.mktemp("model")
    assert train.main(["--output", str(model_dir / "model.skops"), "--seed", "3"]) == 0
    module = load_module(PACKAGE / "model.py")
    assert module.handle(Input.load_call(str(model_dir))) is None
    return lambda body: module.handle(Input.request(body))


def assert_answered(out) -> None:
    assert out.code in (200, 400), (out.code, out.message)
    body = json.loads(out.body())
    if out.code == 400:
        assert out.message == "Bad Request" and isinstance(body["error"], str) and body["error"]
    else:
        assert all(isinstance(v, float) for v in body["predictions"])


@CHECKED
@given(st.binary(max_size=200))
@example(HUGE_INTEGER)
@example(DEEP_LIST)
@example(DEEP_INPUTS)
@example(b'{"inputs": [[1e308]]}')  # finite input, prediction 2e308 + 1 overflows
def test_arbitrary_bytes_get_200_or_400(handle, body: bytes):
    assert_answered(handle(body))


@CHECKED
@given(JSON_VALUES)
def test_arbitrary_json_gets_200_or_400(handle, document):
    assert_answered(handle(json.dumps(document).encode()))


@CHECKED
@given(JSON_VALUES | ROWS_OF_NUMBERS)
def test_arbitrary_inputs_get_200_or_400(handle, inputs):
    assert_answered(handle(json.dumps({"inputs": inputs}).encode()))


@pytest.mark.parametrize("body", [HUGE_INTEGER, DEEP_LIST, DEEP_INPUTS], ids=["4300-digits", "deep", "deep-inputs"])
def test_parser_limits_are_named(handle, body: bytes):
    out = handle(body)
    assert out.code == 400
    assert json.loads(out.body())["error"].startswith("request body is not valid JSON")
