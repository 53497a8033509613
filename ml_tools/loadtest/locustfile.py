"""Locust load test for the multi-model endpoint.

    locust -f ml_tools/loadtest/locustfile.py --headless -u 100 -r 10 -t 10m \\
        --endpoint-name my-mme --pattern hot --model-count 1000 --csv results/hot

``--pattern`` is ``uniform``, ``hot`` (one model, 90% of requests) or ``few-hot``
(``--hot-count`` models share 90%). ``--csv PREFIX`` (Locust's own) writes
``PREFIX_stats.csv``, ``PREFIX_stats_history.csv``, ``PREFIX_failures.csv`` and
``PREFIX_exceptions.csv``; requests are grouped as ``hot``/``cold``/``uniform``.
AWS credentials and region come from the usual boto3 sources.
"""
from __future__ import annotations

import itertools
import random
import sys
import time
from pathlib import Path

from locust import User, between, events, task

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, when run as a plain file
from ml_tools.invoke_mme import predict  # noqa: E402
from ml_tools.loadtest.patterns import PATTERNS, choose_model  # noqa: E402
from ml_tools.runtime import NO_RETRIES, runtime_client  # noqa: E402


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    parser.add_argument("--endpoint-name", required=True, help="the multi-model endpoint's name")
    parser.add_argument("--pattern", choices=PATTERNS, default="uniform")
    parser.add_argument("--model-count", type=int, default=1000, help="models under the prefix (default 1000)")
    parser.add_argument("--hot-count", type=int, default=5, help="hot models of the few-hot pattern (default 5)")
    parser.add_argument("--region", default=None)
    parser.add_argument("--seed", type=int, default=None, help="seed of the model choice, for repeatable runs")


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
        try:
            length = len(predict(self.client, options.endpoint_name, index, [[self.rng.uniform(-10, 10)]]))
        except Exception as err:  # noqa: BLE001 - every failure is a failed request in the stats
            exception = err
        self.environment.events.request.fire(
            request_type="invoke_endpoint", name=group, response_time=(time.perf_counter() - start) * 1000,
            response_length=length, exception=exception, context={"target_model": index},
        )
