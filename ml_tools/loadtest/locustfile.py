"""Locust load test for the multi-model endpoint.

    locust -f ml_tools/loadtest/locustfile.py --headless -u 100 -r 10 -t 10m \\
        --endpoint-name my-mme --pattern hot --model-count 1000 --csv results/hot

``--pattern`` is ``uniform``, ``hot`` (one model, 90% of requests) or ``few-hot``
(``--hot-count`` models share 90%). ``--csv PREFIX`` (Locust's own) writes
``PREFIX_stats.csv``, ``PREFIX_stats_history.csv``, ``PREFIX_failures.csv`` and
``PREFIX_exceptions.csv``; requests are grouped as ``hot``/``cold``/``uniform``.
AWS credentials and region come from the usual boto3 sources.

A configuration error stops the run at once, with one line and exit code 2: bad
options, no region or credentials (checked before any user starts), and an AWS
refusal that is not the endpoint's own answer (access denied, no such endpoint)
on the first request that meets it. The endpoint's own errors are failed requests.
"""
from __future__ import annotations

import itertools
import random
import sys
import time
from pathlib import Path

from locust import User, between, events, task
from locust.exception import StopTest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, when run as a plain file
from ml_tools.invoke_mme import predict  # noqa: E402
from ml_tools.loadtest.patterns import PATTERNS, choose_model  # noqa: E402
from ml_tools.runtime import NO_RETRIES, EndpointError, explain_aws_error, runtime_client  # noqa: E402

CONFIGURATION_ERROR = 2  # the process exit code when the run stops on a configuration error


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    parser.add_argument("--endpoint-name", required=True, help="the multi-model endpoint's name")
    parser.add_argument("--pattern", choices=PATTERNS, default="uniform")
    parser.add_argument("--model-count", type=int, default=1000, help="models under the prefix (default 1000)")
    parser.add_argument("--hot-count", type=int, default=5, help="hot models of the few-hot pattern (default 5)")
    parser.add_argument("--region", default=None)
    parser.add_argument("--seed", type=int, default=None, help="seed of the model choice, for repeatable runs")


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

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.client = runtime_client(options.region, retries=NO_RETRIES)
        self.rng = random.Random(None if options.seed is None else options.seed + next(self._numbers))

    @task
    def invoke(self) -> None:
        options = self.environment.parsed_options
        index, group = choose_model(options.pattern, self.rng, options.model_count, options.hot_count)
        start = time.perf_counter()
        exception, length = None, 0
        stop = None
        try:
            length = len(predict(self.client, options.endpoint_name, index, [[self.rng.uniform(-10, 10)]]))
        except EndpointError as err:  # the endpoint answered with an error: a failed request
            exception = err
        except Exception as err:  # noqa: BLE001 - every failure is a failed request in the stats
            exception, stop = err, explain_aws_error(err)
        self.environment.events.request.fire(
            request_type="invoke_endpoint", name=group, response_time=(time.perf_counter() - start) * 1000,
            response_length=length, exception=exception, context={"target_model": index},
        )
        if stop is not None:  # AWS refused the call itself: every further request would fail the same way
            self.environment.process_exit_code = CONFIGURATION_ERROR
            raise StopTest(f"stopping the load test: {stop}")
