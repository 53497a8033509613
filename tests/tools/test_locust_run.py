"""The locustfile run for real (headless, a few seconds) against a moto server: the
command-line options work and Locust's own --csv writes the results."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def moto_url():
    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    body = json.dumps({"predictions": [1.0]})
    requests.post(f"{url}/moto-api/static/sagemaker/endpoint-results", timeout=5, json={
        "account_id": "123456789012", "region": "us-east-1",
        "results": [{"Body": body, "ContentType": "application/json"}] * 2000})  # one per distinct request
    yield url
    server.stop()


def test_headless_run_writes_csv_per_group(moto_url: str, tmp_path: Path):
    env = {**os.environ, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": moto_url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    run = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(REPO / "ml_tools" / "loadtest" / "locustfile.py"), "--headless",
         "-u", "2", "-r", "2", "-t", "2s", "--endpoint-name", "mme", "--pattern", "hot", "--model-count", "20",
         "--seed", "1", "--csv", str(tmp_path / "hot"), "--only-summary"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {row["Name"]: row for row in csv.DictReader((tmp_path / "hot_stats.csv").open())}
    # Names are the pattern's groups; how many of each in a few seconds is the patterns' test's business.
    assert set(rows) - {"Aggregated"} and set(rows) <= {"hot", "cold", "Aggregated"}, run.stderr[-3000:]
    assert int(rows["Aggregated"]["Request Count"]) > 0 and int(rows["Aggregated"]["Failure Count"]) == 0
