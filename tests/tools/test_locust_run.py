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
         "-u", "2", "-r", "2", "-t", "4s", "--endpoint-name", "mme", "--pattern", "hot", "--model-count", "20",
         "--seed", "1", "--csv", str(tmp_path / "hot"), "--only-summary", "--summary-json", str(tmp_path / "hot.json")],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {row["Name"]: row for row in csv.DictReader((tmp_path / "hot_stats.csv").open())}
    # Names say what a request met: the first call to each model is a cold start, the rest are warm.
    assert set(rows) == {"cold-start", "warm", "Aggregated"}, run.stderr[-3000:]
    assert int(rows["Aggregated"]["Request Count"]) > 0 and int(rows["Aggregated"]["Failure Count"]) == 0
    summary = json.loads((tmp_path / "hot.json").read_text())
    assert summary["pattern"] == "hot" and summary["requests_per_second"] > 0
    # At most one cold start per model the run touched (20 models); every other request is warm.
    assert 1 <= summary["cold-start"]["count"] <= 20
    # Locust writes its CSV before the test_stop listeners run: the summary may hold a few more requests.
    assert summary["warm"]["count"] + summary["cold-start"]["count"] >= int(rows["Aggregated"]["Request Count"])
    assert summary["warm"]["p50_ms"] <= summary["warm"]["p99_ms"]
