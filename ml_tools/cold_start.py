"""Invoking an endpoint that may be scaled to zero: recognise the cold start, wait it out within a bound.

An endpoint of inference components at zero copies answers ``ValidationError: Inference
Component has no capacity to process this request`` (and emits NoCapacityInvocationFailures,
which makes the step policy add a copy). Instances then take minutes to come into service
(https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-zero-instances.html).
:func:`call_through_cold_start` retries such answers with exponential back-off until
``max_wait_s`` and reports how long the cold start took; any other error is raised at once.
:class:`ColdStartClient` wraps a sagemaker-runtime client so the invocation tools get this
(and the ``InferenceComponentName`` a component endpoint needs) without changing their calls.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from ml_tools.runtime import EndpointError

T = TypeVar("T")

DEFAULT_MAX_WAIT_S = 900.0  # AWS measured about 5 minutes for one instance and model; large models take longer
FIRST_DELAY_S = 5.0
MAX_DELAY_S = 60.0
_NO_CAPACITY_PHRASES = ("no capacity", "scaling from zero")
_NOT_READY_CODES = frozenset({"ServiceUnavailable", "ModelNotReadyException"})


class ColdStartTimeout(EndpointError):
    """The endpoint still had no capacity after the wait bound."""


@dataclass(frozen=True)
class ColdStart:
    """What a call went through before it was answered."""

    waited_s: float
    attempts: int

    def describe(self) -> str:
        return f"cold start: answered after {self.waited_s:.0f} s and {self.attempts} attempts (endpoint scaled from zero)"


def error_code_and_message(error: BaseException) -> tuple[str, str] | None:
    """(code, message) of a botocore ClientError, also when wrapped (``raise ... from err``)."""
    seen: BaseException | None = error
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict) and "Error" in response:
            detail = response["Error"]
            return str(detail.get("Code", "")), str(detail.get("Message", ""))
        seen = seen.__cause__
    return None


def is_cold_start(error: BaseException) -> bool:
    """True for answers that mean "no capacity yet, scaling out": worth waiting for."""
    found = error_code_and_message(error)
    if found is None:
        return False
    code, message = found
    if code in _NOT_READY_CODES:
        return True
    return code == "ValidationError" and any(phrase in message.lower() for phrase in _NO_CAPACITY_PHRASES)


def call_through_cold_start(
    call: Callable[[], T],
    *,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
    first_delay_s: float = FIRST_DELAY_S,
    max_delay_s: float = MAX_DELAY_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[str], None] | None = None,
) -> tuple[T, ColdStart | None]:
    """``call()``, retried while it answers "no capacity", at most ``max_wait_s`` seconds.

    Returns the answer and, if it had to wait, a :class:`ColdStart`. Raises
    :class:`ColdStartTimeout` when the bound is reached, other errors at once.
    """
    start = clock()
    attempts = 0
    delay = first_delay_s
    while True:
        attempts += 1
        try:
            answer = call()
        except Exception as err:  # noqa: BLE001 - only cold-start answers are retried, others re-raised
            if not is_cold_start(err):
                raise
            waited = clock() - start
            if waited + delay > max_wait_s:
                raise ColdStartTimeout(
                    f"no capacity after {waited:.0f} s and {attempts} attempts (bound {max_wait_s:.0f} s); the endpoint "
                    f"is scaling out from zero or cannot place a copy: {error_code_and_message(err)}"
                ) from err
            if progress is not None:
                progress(f"no capacity yet (scaling out from zero), waited {waited:.0f} s; retrying in {delay:.0f} s")
            sleep(delay)
            delay = min(delay * 2, max_delay_s)
            continue
        return answer, (ColdStart(clock() - start, attempts) if attempts > 1 else None)


class ColdStartClient:
    """A sagemaker-runtime client whose ``invoke_endpoint`` survives a cold start.

    ``inference_component``: added as ``InferenceComponentName`` to every call (an endpoint
    that hosts inference components needs it). The last cold start is kept in ``last_cold_start``
    and reported through ``progress``.
    """

    def __init__(self, client: Any, *, inference_component: str | None = None, max_wait_s: float = DEFAULT_MAX_WAIT_S,
                 progress: Callable[[str], None] | None = None, **retry: Any) -> None:
        self._client = client
        self._component = inference_component
        self._max_wait_s = max_wait_s
        self._progress = progress
        self._retry = retry
        self.last_cold_start: ColdStart | None = None

    def invoke_endpoint(self, **kwargs: Any) -> Any:
        if self._component and "InferenceComponentName" not in kwargs:
            kwargs["InferenceComponentName"] = self._component
        answer, cold = call_through_cold_start(lambda: self._client.invoke_endpoint(**kwargs),
                                               max_wait_s=self._max_wait_s, progress=self._progress, **self._retry)
        self.last_cold_start = cold
        if cold is not None and self._progress is not None:
            self._progress(cold.describe())
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_cold_start_arguments(parser: Any) -> None:
    parser.add_argument("--inference-component", help="the inference component to call (component endpoints)")
    parser.add_argument("--cold-start-wait", type=float, default=DEFAULT_MAX_WAIT_S, metavar="SECONDS",
                        help=f"how long to wait for an endpoint scaled to zero (default {DEFAULT_MAX_WAIT_S:.0f})")


def wrap(client: Any, args: Any) -> ColdStartClient:
    """The tools' hook: ``client = wrap(client, args)`` after :func:`add_cold_start_arguments`."""
    return ColdStartClient(client, inference_component=getattr(args, "inference_component", None),
                           max_wait_s=getattr(args, "cold_start_wait", DEFAULT_MAX_WAIT_S), progress=to_stderr)
