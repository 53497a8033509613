"""Call one model of the multi-model endpoint: ``TargetModel=sklearn-N.tar.gz``."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ml_tools.runtime import add_endpoint_arguments, invoke_json, runtime_client


def model_name(index: int) -> str:
    return f"sklearn-{index}.tar.gz"


def predict(client: Any, endpoint: str, model_index: int, rows: list[list[float]]) -> list[float]:
    _content_type, body = invoke_json(client, endpoint, {"inputs": rows}, target_model=model_name(model_index))
    return json.loads(body)["predictions"]


def configure(parser: argparse.ArgumentParser) -> None:
    add_endpoint_arguments(parser)
    parser.add_argument("--model", type=int, default=0, help="package number N of sklearn-N.tar.gz (default 0)")
    parser.add_argument("values", nargs="+", type=float, help="x values to predict y for")


def run(args: argparse.Namespace, *, client: Any = None) -> int:
    client = client or runtime_client(args.region)
    try:
        predictions = predict(client, args.endpoint_name, args.model, [[v] for v in args.values])
    except (ValueError, KeyError) as err:
        print(f"invoke-mme: unexpected answer: {err}", file=sys.stderr)
        return 1
    if len(predictions) != len(args.values):
        print(f"invoke-mme: {len(args.values)} inputs sent, {len(predictions)} predictions received", file=sys.stderr)
        return 1
    for x, y in zip(args.values, predictions, strict=True):
        print(f"{x:g} -> {y:g}")
    return 0
