#!/usr/bin/env python3
"""Synth wall time of the full app per environment, against a one-bucket app.

Each round runs `npx cdk synth` for the one-bucket baseline and for every
environment, in that order, so the two share the machine's state. Reports
the median of each and the median of per-round ratios (full / baseline).

    python scripts/bench_synth.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import known_environments  # noqa: E402


def synth_seconds(extra: list[str], outdir: str) -> float:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    cmd = ["npx", "--no-install", "cdk", "synth", "--quiet", "--no-notices", "-o", outdir, *extra]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        # A benchmark of a failing synth means nothing: show why it failed and stop.
        sys.exit(f"bench_synth: `{' '.join(cmd)}` failed with exit code {result.returncode}:\n{result.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    baseline_app = ["--app", f"python {ROOT / 'scripts' / 'one_bucket_app.py'}"]
    envs = known_environments()
    times: dict[str, list[float]] = {"one-bucket": [], **{e: [] for e in envs}}
    ratios: dict[str, list[float]] = {e: [] for e in envs}
    with tempfile.TemporaryDirectory() as tmp:
        synth_seconds(baseline_app, f"{tmp}/warm")  # first run unpacks aws-cdk-lib for this HOME
        for _ in range(args.rounds):
            base = synth_seconds(baseline_app, f"{tmp}/base")
            times["one-bucket"].append(base)
            for env in envs:
                t = synth_seconds(["-c", f"env={env}"], f"{tmp}/{env}")
                times[env].append(t)
                ratios[env].append(t / base)
    print(f"rounds: {args.rounds}, `npx cdk synth`, median wall seconds")
    print(f"  one-bucket app: {statistics.median(times['one-bucket']):.2f} s")
    for env in envs:
        print(f"  env={env:<6} {statistics.median(times[env]):.2f} s  ratio to one-bucket: {statistics.median(ratios[env]):.2f}")


if __name__ == "__main__":
    main()
