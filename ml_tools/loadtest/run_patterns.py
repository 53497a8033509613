"""Run the load test once per traffic pattern and print one table.

    python -m ml_tools.loadtest.run_patterns --endpoint-name my-mme --users 100 --duration 5m \\
        --model-count 1000 --out results/

Each pattern (``uniform``, ``hot``, ``few-hot``) runs headless for ``--duration`` with
the same users and spawn rate; its Locust CSVs and summary land in ``--out``. The table
gives throughput and p50/p99 of warm requests and of cold starts per pattern: set
``multi_model.autoscaling.max_rps_per_instance`` from the warm throughput one instance
sustained, and the worker settings from how the patterns differ (docs/multi-model.md).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from ml_tools.loadtest.patterns import PATTERNS
from ml_tools.loadtest.summary import table

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
_DURATION = re.compile(r"(\d+)(s|m|h)")


def seconds(duration: str) -> int:
    match = _DURATION.fullmatch(duration)
    if not match:
        raise ValueError(f"--duration: got {duration!r}, allowed: a number followed by s, m or h (e.g. 90s, 5m)")
    return int(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]


def locust_command(args: argparse.Namespace, pattern: str) -> list[str]:
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
               "-u", str(args.users), "-r", str(args.spawn_rate), "-t", args.duration,
               "--endpoint-name", args.endpoint_name, "--pattern", pattern,
               "--model-count", str(args.model_count), "--hot-count", str(args.hot_count),
               "--csv", str(args.out / pattern), "--summary-json", str(args.out / f"{pattern}.json")]
    if args.region:
        command += ["--region", args.region]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_tools.loadtest.run_patterns", description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint-name", required=True)
    parser.add_argument("--users", type=int, default=50, help="concurrent Locust users (default 50)")
    parser.add_argument("--spawn-rate", type=float, default=10, help="users started per second (default 10)")
    parser.add_argument("--duration", default="2m", help="per pattern, e.g. 90s or 5m (default 2m)")
    parser.add_argument("--model-count", type=int, default=1000)
    parser.add_argument("--hot-count", type=int, default=5)
    parser.add_argument("--patterns", nargs="+", choices=PATTERNS, default=list(PATTERNS))
    parser.add_argument("--region")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", type=Path, default=Path("loadtest-results"))
    args = parser.parse_args(argv)
    try:
        limit = seconds(args.duration) + 120  # start-up and the summary, beyond the run itself
    except ValueError as err:
        print(f"run_patterns: {err}", file=sys.stderr)
        return 2
    if args.users < 1 or args.model_count <= args.hot_count:
        print("run_patterns: --users must be at least 1 and --model-count above --hot-count", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for pattern in args.patterns:
        print(f"run_patterns: {pattern} for {args.duration} with {args.users} users", file=sys.stderr, flush=True)
        run = subprocess.run(locust_command(args, pattern), capture_output=True, text=True, timeout=limit)
        summary_file = args.out / f"{pattern}.json"
        if not summary_file.is_file():
            print(f"run_patterns: locust wrote no summary for {pattern} (exit {run.returncode}):\n"
                  f"{run.stderr[-2000:]}", file=sys.stderr)
            return 1
        summaries.append(json.loads(summary_file.read_text()))
    result = table(summaries)
    (args.out / "summary.md").write_text(result + "\n")
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
