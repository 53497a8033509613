"""Call one model of the multi-model endpoint: ``TargetModel=sklearn-N.tar.gz``.

The first call to a model that no instance holds is a cold start: SageMaker downloads
and loads it while the request waits, and while it is still doing so it may answer
``ModelNotReadyException`` ("a multi-model endpoint is still downloading or loading the
target model. Wait and try your request again", SageMaker Runtime API). That answer is
retried with bounded exponential backoff and jitter (``ColdStartRetry``); every other
error is reported at once. ``--repeat N`` sends the request N times and reports the
first call's latency (the one that may include the load) apart from the warm ones.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from ml_tools.runtime import NO_RETRIES, EndpointError, add_endpoint_arguments, invoke_json, runtime_client

NOT_READY = "ModelNotReadyException"


def model_name(index: int) -> str:
    return f"sklearn-{index}.tar.gz"


@dataclass(frozen=True)
class ColdStartRetry:
    """Bounded retry of ``ModelNotReadyException``: attempt n waits min(max_delay, base_delay x 2^(n-1))
    scaled by a random factor in [0.5, 1) (jitter spreads clients that all hit one cold model)."""

    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        return min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)) * (0.5 + rng() / 2)


@dataclass(frozen=True)
class Answer:
    predictions: list[float]
    latency_ms: float  # from the first attempt to the answer, waits included
    attempts: int

    @property
    def waited_for_load(self) -> bool:
        """The endpoint said the model was still loading at least once."""
        return self.attempts > 1


def is_not_ready(error: Exception) -> bool:
    cause = error.__cause__
    response = getattr(cause, "response", None) or {}
    return response.get("Error", {}).get("Code") == NOT_READY


def predict(client: Any, endpoint: str, model_index: int, rows: list[list[float]]) -> list[float]:
    """One attempt; any error (a cold model's too) raises :class:`EndpointError`."""
    _content_type, body = invoke_json(client, endpoint, {"inputs": rows}, target_model=model_name(model_index))
    return json.loads(body)["predictions"]


def predict_with_retry(
    client: Any, endpoint: str, model_index: int, rows: list[list[float]], *,
    retry: ColdStartRetry = ColdStartRetry(), sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.perf_counter, rng: Callable[[], float] = random.random,
) -> Answer:
    start = clock()
    for attempt in range(1, retry.max_attempts + 1):
        try:
            predictions = predict(client, endpoint, model_index, rows)
        except EndpointError as err:
            if not is_not_ready(err):
                raise
            if attempt == retry.max_attempts:
                raise EndpointError(
                    f"{endpoint}: {model_name(model_index)} was still loading after {attempt} attempts over "
                    f"{clock() - start:.1f} s; try again later, or look at ModelLoadingWaitTime and "
                    f"ModelDownloadingTime on the endpoint's dashboard"
                ) from err
            sleep(retry.delay(attempt, rng))
            continue
        return Answer(predictions, (clock() - start) * 1000, attempt)
    raise AssertionError("unreachable")  # the loop returns or raises


def configure(parser: argparse.ArgumentParser) -> None:
    # No --inference-component/--cold-start-wait: a multi-model endpoint hosts no inference components and
    # is not scaled to zero; its cold start is a model load, retried below (ColdStartRetry).
    add_endpoint_arguments(parser, cold_start=False)
    parser.add_argument("--model", type=int, default=0, help="package number N of sklearn-N.tar.gz (default 0)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="send the request this many times; report the first call apart from the warm ones")
    parser.add_argument("--max-attempts", type=int, default=ColdStartRetry.max_attempts,
                        help=f"attempts while the model is still loading (default {ColdStartRetry.max_attempts})")
    parser.add_argument("values", nargs="+", type=float, help="x values to predict y for")


def latency_report(answers: list[Answer]) -> str:
    first = answers[0]
    cold = f" (the model was loading: {first.attempts} attempts)" if first.waited_for_load else ""
    line = f"latency: first call {first.latency_ms:.1f} ms{cold}"
    warm = [a.latency_ms for a in answers[1:]]
    if warm:
        line += f"; warm calls p50 {statistics.median(warm):.1f} ms, max {max(warm):.1f} ms over {len(warm)}"
    return line


def run(args: argparse.Namespace, *, client: Any = None, sleep: Callable[[float], None] = time.sleep) -> int:
    problems = []
    if not 1 <= args.repeat <= 10_000:
        problems.append(f"--repeat: got {args.repeat}, allowed: 1 to 10000")
    if not 1 <= args.max_attempts <= 20:
        problems.append(f"--max-attempts: got {args.max_attempts}, allowed: 1 to 20")
    if problems:
        print("invoke-mme: " + "; ".join(problems), file=sys.stderr)
        return 2
    # Our own bounded retry is the only one: botocore's would hide the cold start inside one call.
    client = client or runtime_client(args.region, retries=NO_RETRIES)
    retry = ColdStartRetry(max_attempts=args.max_attempts)
    rows = [[v] for v in args.values]
    try:
        answers = [predict_with_retry(client, args.endpoint_name, args.model, rows, retry=retry, sleep=sleep)
                   for _ in range(args.repeat)]
    except EndpointError:
        raise  # the endpoint's refusal: python -m ml_tools prints it as one line
    except (ValueError, KeyError) as err:
        print(f"invoke-mme: unexpected answer: {err}", file=sys.stderr)
        return 1
    predictions = answers[0].predictions
    if len(predictions) != len(args.values):
        print(f"invoke-mme: {len(args.values)} inputs sent, {len(predictions)} predictions received", file=sys.stderr)
        return 1
    for x, y in zip(args.values, predictions, strict=True):
        print(f"{x:g} -> {y:g}")
    print(latency_report(answers))
    return 0
