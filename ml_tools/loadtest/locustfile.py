"""Locust load test for the multi-model endpoint.

    locust -f ml_tools/loadtest/locustfile.py --headless -u 100 -r 10 -t 10m \\
        --endpoint-name my-mme --pattern hot --model-count 1000 --csv results/hot \\
        --summary-json results/hot.json

``--pattern`` is ``uniform``, ``hot`` (one model, 90% of requests) or ``few-hot``
(``--hot-count`` models share 90%). ``python -m ml_tools.loadtest.run_patterns`` runs
all three and prints one table.

Cold models: a request the endpoint answers with ``ModelNotReadyException`` (the model
is still loading) is retried with bounded backoff (``ml_tools.invoke_mme``), and the
whole wait counts as that request's latency. Requests are named in Locust's stats by
what they met: ``cold-start`` (the first request this load generator sent to that
model, or one that had to wait for a load) or ``warm``; the request type is the model
group (``hot``/``other``/``uniform``). ``--summary-json`` writes throughput and p50/p99
of warm and cold-start requests apart (Locust's own ``--csv`` files are written too).
AWS credentials and region come from the usual boto3 sources.

A configuration error stops the run at once, with one line and exit code 2: bad
options, no region or credentials (checked before any user starts), and an AWS
refusal that is not the endpoint's own answer (access denied, no such endpoint)
on the first request that meets it. The endpoint's own errors are failed requests.
"""
from __future__ import annotations

import itertools
import json
import random
import sys
import threading
import time
from pathlib import Path

from locust import User, between, events, task
from locust.exception import StopTest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, when run as a plain file
from ml_tools.invoke_mme import ColdStartRetry, predict_with_retry  # noqa: E402
from ml_tools.loadtest.patterns import PATTERNS, choose_model  # noqa: E402
from ml_tools.loadtest.summary import Recorder  # noqa: E402
from ml_tools.runtime import NO_RETRIES, EndpointError, explain_aws_error, runtime_client  # noqa: E402

CONFIGURATION_ERROR = 2  # the process exit code when the run stops on a configuration error

RECORDER = Recorder()


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    parser.add_argument("--endpoint-name", required=True, help="the multi-model endpoint's name")
    parser.add_argument("--pattern", choices=PATTERNS, default="uniform")
    parser.add_argument("--model-count", type=int, default=1000, help="models under the prefix (default 1000)")
    parser.add_argument("--hot-count", type=int, default=5, help="hot models of the few-hot pattern (default 5)")
    parser.add_argument("--region", default=None)
    parser.add_argument("--seed", type=int, default=None, help="seed of the model choice, for repeatable runs")
    parser.add_argument("--max-attempts", type=int, default=ColdStartRetry.max_attempts,
                        help="attempts per request while its model is still loading")
    parser.add_argument("--summary-json", default=None, help="write throughput and p50/p99 per kind here")


@events.test_start.add_listener
def _start(environment, **_) -> None:
    RECORDER.start(time.perf_counter())


@events.test_stop.add_listener
def _stop(environment, **_) -> None:
    options = environment.parsed_options
    summary = RECORDER.summary(time.perf_counter(), pattern=options.pattern)
    print(json.dumps(summary), file=sys.stderr)
    if options.summary_json:
        Path(options.summary_json).write_text(json.dumps(summary, indent=2) + "\n")


def configuration_problem(options) -> str | None:
    """What stops the run before it starts: bad options, no region, no credentials."""
    import boto3

    try:
        choose_model(options.pattern, random.Random(0), options.model_count, options.hot_count)
    except ValueError as err:
        return str(err)
    session = boto3.session.Session(region_name=options.region)
    if session.region_name is None:
        return "no AWS region: pass --region REGION or set AWS_REGION (or a region in your AWS profile)"
    try:
        credentials = session.get_credentials()
    except Exception as err:  # noqa: BLE001 - a broken profile or SSO cache is a configuration error too
        return explain_aws_error(err) or f"cannot load AWS credentials: {err}"
    if credentials is None:
        return explain_aws_error(_no_credentials())
    return None


def _no_credentials() -> Exception:
    from botocore.exceptions import NoCredentialsError

    return NoCredentialsError()


@events.init.add_listener
def _stop_on_configuration_error(environment, **_kwargs) -> None:
    options = environment.parsed_options
    if options is None:  # Locust used as a library, without its command line
        return
    problem = configuration_problem(options)
    if problem:
        print(f"locust: {problem}", file=sys.stderr)
        raise SystemExit(CONFIGURATION_ERROR)


class MultiModelUser(User):
    wait_time = between(0.0, 0.01)
    _numbers = itertools.count()  # user n draws from seed + n: repeatable with --seed
    _seen: set[int] = set()  # models this load generator has called (shared by its users)
    _seen_lock = threading.Lock()

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.client = runtime_client(options.region, retries=NO_RETRIES)
        self.rng = random.Random(None if options.seed is None else options.seed + next(self._numbers))
        self.retry = ColdStartRetry(max_attempts=options.max_attempts)

    def _first_call(self, index: int) -> bool:
        with self._seen_lock:
            if index in self._seen:
                return False
            self._seen.add(index)
            return True

    @task
    def invoke(self) -> None:
        options = self.environment.parsed_options
        index, group = choose_model(options.pattern, self.rng, options.model_count, options.hot_count)
        first = self._first_call(index)
        start = time.perf_counter()
        exception, length, kind = None, 0, "cold-start" if first else "warm"
        stop = None
        try:
            answer = predict_with_retry(self.client, options.endpoint_name, index, [[self.rng.uniform(-10, 10)]],
                                        retry=self.retry)
            length = len(answer.predictions)
            if answer.waited_for_load:
                kind = "cold-start"
        except EndpointError as err:  # the endpoint answered with an error (a model still loading, too): failed
            exception = err
        except Exception as err:  # noqa: BLE001 - every failure is a failed request in the stats
            exception, stop = err, explain_aws_error(err)
        elapsed_ms = (time.perf_counter() - start) * 1000
        RECORDER.record(kind, elapsed_ms, failed=exception is not None)
        self.environment.events.request.fire(
            request_type=group, name=kind, response_time=elapsed_ms,
            response_length=length, exception=exception, context={"target_model": index},
        )
        if stop is not None:  # AWS refused the call itself: every further request would fail the same way
            self.environment.process_exit_code = CONFIGURATION_ERROR
            raise StopTest(f"stopping the load test: {stop}")
