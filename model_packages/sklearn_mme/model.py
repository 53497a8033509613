"""DJL Serving handler for one scikit-learn model of the multi-model endpoint.

Request (``application/json``): ``{"inputs": [[x1, ...], ...]}``: a list of rows,
each a list of numbers with as many features as the model was trained on
(a single row ``[x1, ...]`` and a bare list of rows are accepted too).

Response (``application/json``): ``{"predictions": [y, ...]}``, one per row.

A body that is not valid JSON (including nesting too deep for the parser and
integers with too many digits), more than ``MAX_ROWS`` rows, or rows of the wrong
shape or type get HTTP 400 with ``{"error": "..."}`` saying what was wrong; the
model is never called. Values so large that a prediction overflows get a 400 as
well: every malformed body is a 400, never a 424 or 500
(``contract_tests/multi_model/test_handler_properties.py``).

The model (``model.skops`` next to this file) is loaded once, on the first
request, and kept for the life of the worker. It is a skops file, not a pickle:
skops rebuilds only the types listed in ``TRUSTED_TYPES`` and refuses a file that
names any other, so a model file in the bucket cannot run code in the container.
Runs in the serving image of ``runtime_profiles/multi_model/`` (numpy,
scikit-learn and skops at the lock's versions).
"""
from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

from djl_python import Input, Output

MODEL_FILE = "model.skops"
MAX_ROWS = 10_000
# The model types this package serves, trusted by name. skops trusts builtins,
# numpy arrays and (from 0.10 on) scikit-learn's own estimators by default; naming
# the one type keeps the contract explicit and loads under older skops as well.
TRUSTED_TYPES = ("sklearn.linear_model._base.LinearRegression",)

_model = None


class BadRequest(ValueError):
    """The request itself is wrong: answered with HTTP 400."""


def load_model(model_dir: str) -> Any:
    """The package's model; a file holding any type outside TRUSTED_TYPES is refused."""
    from skops.io import load  # imported late: a syntax check of this file must not need skops

    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{MODEL_FILE} not found in the model directory {model_dir!r}")
    return load(path, trusted=list(TRUSTED_TYPES))


def parse_rows(body: bytes, n_features: int) -> list[list[float]]:
    try:
        payload = json.loads(body)
    # ValueError covers JSONDecodeError, UnicodeDecodeError and Python 3.11+'s limit on the digits
    # of an integer (4,300 by default); RecursionError: nesting deeper than the interpreter's stack.
    except (ValueError, RecursionError) as err:
        raise BadRequest(f"request body is not valid JSON: {str(err)[:200]}") from None
    rows = payload.get("inputs") if isinstance(payload, dict) else payload
    if rows is None:
        raise BadRequest('expected {"inputs": [[number, ...], ...]}, got an object without "inputs"')
    if isinstance(rows, list) and rows and all(_is_number(v) for v in rows):
        rows = [rows]  # one row given flat
    if not isinstance(rows, list) or not rows:
        raise BadRequest('"inputs" must be a non-empty list of rows')
    if len(rows) > MAX_ROWS:
        raise BadRequest(f'"inputs" has {len(rows)} rows, at most {MAX_ROWS} are allowed')
    for index, row in enumerate(rows):
        if not isinstance(row, list) or not all(_is_number(v) for v in row):
            raise BadRequest("row {} must be a list of finite numbers (integers at most 2**53 in magnitude), got {}".format(
                index, _excerpt(row)))
        if len(row) != n_features:
            raise BadRequest(f"row {index} has {len(row)} values, the model expects {n_features}")
    return rows


def _excerpt(row: Any) -> str:
    """What is wrong in a row, for the error message; never fails, however deep or large the value."""
    if not isinstance(row, list):
        return _describe(row)
    position, bad = next((i, v) for i, v in enumerate(row) if not _is_number(v))
    return f"{_describe(bad)} at position {position}"


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, int) and not isinstance(value, bool):
        return "an integer beyond 2**53"  # str() of a huge integer may itself raise ValueError
    return json.dumps(value)[:40]  # a string, a boolean, null or a non-finite float


MAX_EXACT_INT = 2**53  # larger integers lose precision as float64 (or do not fit at all)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):  # math.isfinite would raise OverflowError beyond float's range
        return abs(value) <= MAX_EXACT_INT
    return isinstance(value, float) and math.isfinite(value)


def _error(code: int, message: str) -> Output:
    return (
        Output()
        .set_code(code)
        .set_message("Bad Request" if code == 400 else "Internal Server Error")
        .add_property("content-type", "application/json")
        .add_as_json({"error": message})
    )


def handle(inputs: Input) -> Output | None:
    global _model
    if _model is None:
        _model = load_model(inputs.get_properties().get("model_dir", os.path.dirname(__file__)))
    if inputs.is_empty():
        return None  # DJL's warm-up call: the model is loaded, nothing to answer
    try:
        rows = parse_rows(inputs.get_as_bytes(), int(_model.n_features_in_))
    except BadRequest as err:
        return _error(400, str(err))
    try:
        predictions = _model.predict(rows)
    except Exception:  # noqa: BLE001 - the client gets a message, the log keeps the trace
        logging.exception("prediction failed")
        return _error(500, "prediction failed, see the endpoint's logs")
    values = [float(p) for p in predictions]
    overflowed = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if overflowed:  # finite inputs so large that the model's arithmetic overflows: JSON has no infinity
        return _error(400, f"row {overflowed[0]}'s prediction is not a finite number: its values are too "
                      "large in magnitude for the model")
    return (
        Output()
        .add_property("content-type", "application/json")
        .add_as_json({"predictions": values})
    )
