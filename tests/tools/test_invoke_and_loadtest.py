"""Invocation clients and load-test traffic: request shapes against moto's
sagemaker-runtime (the SD client uses botocore's Stubber: moto only returns text
bodies, and the endpoint answers PNG bytes), and the traffic split of the patterns."""
from __future__ import annotations

import io
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import boto3
import pytest
import requests
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from ml_tools.__main__ import main as cli_main
from ml_tools.invoke_mme import predict
from ml_tools.loadtest.patterns import choose_model

REPO = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
def runtime():
    """moto's sagemaker-runtime; ``sent`` collects the parameters of every invoke_endpoint."""
    with mock_aws():
        client = boto3.client("sagemaker-runtime", region_name="us-east-1")
        sent: list[dict] = []
        client.meta.events.register("before-parameter-build.sagemaker-runtime.InvokeEndpoint",
                                    lambda params, **_: sent.append(dict(params)))
        yield client, sent


def queue_results(*bodies: str) -> None:
    results = [{"Body": b, "ContentType": "application/json", "InvokedProductionVariant": "AllTraffic",
                "CustomAttributes": ""} for b in bodies]
    requests.post("http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
                  json={"account_id": "123456789012", "region": "us-east-1", "results": results}, timeout=5)


def test_mme_request_names_the_target_model(runtime):
    client, sent = runtime
    queue_results(json.dumps({"predictions": [7.0]}))
    assert predict(client, "mme", 42, [[3.0]]) == [7.0]
    assert sent == [{"EndpointName": "mme", "ContentType": "application/json", "Accept": "application/json",
                     "Body": '{"inputs": [[3.0]]}', "TargetModel": "sklearn-42.tar.gz"}]


def test_llm_client_sends_prompts_and_parameters(runtime, capsys):
    client, sent = runtime
    queue_results(json.dumps([{"generated_text": " sat on the mat"}, {"generated_text": " ran far"}]))
    from ml_tools import invoke_llm

    parser = __import__("argparse").ArgumentParser()
    invoke_llm.configure(parser)
    args = parser.parse_args(["--endpoint-name", "bloom", "the cat", "a dog", "--max-new-tokens", "64", "--top-p", "0.9",
                              "--batch"])
    assert invoke_llm.run(args, client=client) == 0
    assert json.loads(sent[0]["Body"]) == {"inputs": ["the cat", "a dog"],
                                           "parameters": {"max_new_tokens": 64, "do_sample": False, "top_p": 0.9}}
    assert "TargetModel" not in sent[0]
    assert "--- a dog\n ran far" in capsys.readouterr().out


@pytest.mark.parametrize(("tool", "argv", "answer", "message"), [
    ("invoke_llm", ["--endpoint-name", "e", "one", "two", "--batch"], [{"generated_text": "x"}],
     "invoke-llm: 2 prompts sent, 1 answers received"),
    ("invoke_mme", ["--endpoint-name", "e", "1", "2", "3"], {"predictions": [1.0]},
     "invoke-mme: 3 inputs sent, 1 predictions received"),
])
def test_clients_reject_an_answer_of_the_wrong_length(runtime, capsys, tool, argv, answer, message):
    """A short answer must not be zipped silently against the inputs."""
    import argparse
    import importlib

    client, _ = runtime
    queue_results(json.dumps(answer))
    module = importlib.import_module(f"ml_tools.{tool}")
    parser = argparse.ArgumentParser()
    module.configure(parser)
    assert module.run(parser.parse_args(argv), client=client) == 1
    assert message in capsys.readouterr().err


def test_sd_client_saves_the_png(tmp_path: Path):
    client = boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(PNG), len(PNG)), "ContentType": "image/png"},
            {"EndpointName": "sd21", "ContentType": "application/json", "Accept": "image/png",
             "Body": json.dumps({"prompt": "a cat", "parameters": {"num_inference_steps": 20, "guidance_scale": 7.5,
                                                                   "seed": 3}})},
        )
        from ml_tools import invoke_sd

        parser = __import__("argparse").ArgumentParser()
        invoke_sd.configure(parser)
        out = tmp_path / "img" / "cat.png"
        args = parser.parse_args(["--endpoint-name", "sd21", "a cat", "--steps", "20", "--seed", "3", "--output", str(out)])
        assert invoke_sd.run(args, client=client) == 0
        stub.assert_no_pending_responses()
    assert out.read_bytes() == PNG


def test_a_model_error_is_one_line_with_the_models_answer(monkeypatch, capsys):
    client = boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    monkeypatch.setattr("ml_tools.invoke_llm.runtime_client", lambda region: client)
    with Stubber(client) as stub:
        stub.add_client_error(
            "invoke_endpoint", "ModelError", "Received client error (400) from primary", http_status_code=424,
            modeled_fields={"OriginalStatusCode": 400, "OriginalMessage": '{"error": "unknown parameter \'max_tokens\'"}'},
        )
        assert cli_main(["invoke-llm", "--endpoint-name", "llm", "hello"]) == 1
    err = capsys.readouterr().err
    assert err == ("invoke-llm: llm: ModelError: Received client error (400) from primary "
                   "(the model answered 400: {\"error\": \"unknown parameter 'max_tokens'\"})\n")


def test_the_load_test_client_does_not_retry():
    # Run the locustfile's own start-up in a fresh process (locust patches the standard library).
    code = (
        "import runpy, types\n"
        f"user_class = runpy.run_path({str(REPO / 'ml_tools' / 'loadtest' / 'locustfile.py')!r})['MultiModelUser']\n"
        "from locust.env import Environment\n"
        "env = Environment(user_classes=[user_class])\n"
        "env.parsed_options = types.SimpleNamespace(region='us-east-1', seed=1, max_attempts=6)\n"
        "user = user_class(env)\n"
        "user.on_start()\n"
        "print(user.client.meta.config.retries)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO,
                         env={**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "{'total_max_attempts': 1, 'mode': 'standard'}"


def test_sd_client_reports_an_answer_that_is_not_a_png():
    from ml_tools.invoke_sd import image_bytes

    assert image_bytes("image/png", PNG) == PNG
    with pytest.raises(ValueError, match=r"expected image/png, the endpoint answered application/json: b'\{\"error"):
        image_bytes("application/json", b'{"error": "bad"}')
    with pytest.raises(ValueError, match="answered image/png, application/json"):  # an echoed Accept list
        image_bytes("image/png, application/json", PNG)
    with pytest.raises(ValueError, match="answered image/png: b'not a png'"):
        image_bytes("image/png", b"not a png")


def shares(pattern: str, draws: int = 20_000, models: int = 1000) -> tuple[Counter, Counter]:
    rng = random.Random(1234)
    picks = [choose_model(pattern, rng, models) for _ in range(draws)]
    return Counter(i for i, _ in picks), Counter(g for _, g in picks)


def test_hot_pattern_sends_90_percent_to_model_0():
    by_model, by_group = shares("hot")
    assert by_model[0] / 20_000 == pytest.approx(0.9, abs=0.01)
    assert by_group == {"hot": by_model[0], "other": 20_000 - by_model[0]}
    assert len(by_model) > 800  # the other 10% still spread over the rest


def test_few_hot_pattern_shares_90_percent_among_five():
    by_model, _ = shares("few-hot")
    hot = [by_model[i] / 20_000 for i in range(5)]
    assert sum(hot) == pytest.approx(0.9, abs=0.01)
    assert all(share == pytest.approx(0.18, abs=0.015) for share in hot)


def test_uniform_pattern_is_flat():
    by_model, by_group = shares("uniform", draws=50_000, models=10)
    assert set(by_group) == {"uniform"}
    assert all(count / 50_000 == pytest.approx(0.1, abs=0.01) for count in by_model.values())


def test_patterns_are_repeatable_per_seed_and_validated():
    assert shares("few-hot", 500) == shares("few-hot", 500)
    with pytest.raises(ValueError, match="pattern: got 'bursty'"):
        choose_model("bursty", random.Random(0), 10)
    with pytest.raises(ValueError, match="few-hot: 5 hot model"):
        choose_model("few-hot", random.Random(0), 5)


def test_cli_dispatches_to_the_chosen_tool(capsys):
    with pytest.raises(SystemExit):
        cli_main(["invoke-mme", "--help"])
    assert "--endpoint-name" in capsys.readouterr().out


def test_cli_hands_standalone_tools_their_own_arguments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["submit-training-job", "--help"])
    assert exit_info.value.code == 0 and "--share" in capsys.readouterr().out


# ---- cold models: bounded retry of ModelNotReadyException ------------------------------------


def stubbed_runtime():
    return boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def add_not_ready(stub: Stubber) -> None:
    stub.add_client_error("invoke_endpoint", "ModelNotReadyException",
                          "Model sklearn-7.tar.gz is not ready yet", http_status_code=429)


def add_answer(stub: Stubber, predictions: list[float]) -> None:
    body = json.dumps({"predictions": predictions}).encode()
    stub.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(body), len(body)),
                                          "ContentType": "application/json"})


def test_a_loading_model_is_retried_with_growing_bounded_delays():
    from ml_tools.invoke_mme import ColdStartRetry, predict_with_retry

    client, slept = stubbed_runtime(), []
    with Stubber(client) as stub:
        for _ in range(3):
            add_not_ready(stub)
        add_answer(stub, [15.0])
        answer = predict_with_retry(client, "mme", 7, [[7.0]], retry=ColdStartRetry(max_attempts=4),
                                    sleep=slept.append, rng=lambda: 1.0)
    assert answer.predictions == [15.0] and answer.attempts == 4 and answer.waited_for_load
    assert slept == [0.5, 1.0, 2.0]
    # Jitter: a factor in [0.5, 1); the cap bounds every wait.
    assert ColdStartRetry().delay(1, rng=lambda: 0.0) == 0.25 and ColdStartRetry().delay(10, rng=lambda: 1.0) == 8.0


def test_a_model_still_loading_after_the_last_attempt_is_reported():
    from ml_tools.invoke_mme import ColdStartRetry, predict_with_retry
    from ml_tools.runtime import EndpointError

    client, slept = stubbed_runtime(), []
    with Stubber(client) as stub:
        for _ in range(3):
            add_not_ready(stub)
        with pytest.raises(EndpointError, match=r"mme: sklearn-7.tar.gz was still loading after 3 attempts over"):
            predict_with_retry(client, "mme", 7, [[1.0]], retry=ColdStartRetry(max_attempts=3), sleep=slept.append)
        stub.assert_no_pending_responses()
    assert len(slept) == 2  # no wait after the last attempt


@pytest.mark.parametrize(
    ("code", "message", "status", "raised"),
    [
        # AWS refusing the call stays botocore's error: python -m ml_tools explains it (exit 2)
        ("ValidationError", "Endpoint mme not found", 400, "ClientError"),
        # the model's own failure is the endpoint's answer (exit 1)
        ("ModelError", "Received server error (500) from primary", 424, "EndpointError"),
    ],
)
def test_other_errors_are_not_retried(code, message, status, raised):
    from botocore.exceptions import ClientError

    from ml_tools.invoke_mme import predict_with_retry
    from ml_tools.runtime import EndpointError

    client, slept = stubbed_runtime(), []
    with Stubber(client) as stub:
        stub.add_client_error("invoke_endpoint", code, message, http_status_code=status)
        expected = {"ClientError": ClientError, "EndpointError": EndpointError}[raised]
        with pytest.raises(expected, match=re.escape(message)):
            predict_with_retry(client, "mme", 7, [[1.0]], sleep=slept.append)
        stub.assert_no_pending_responses()
    assert slept == []


def test_invoke_mme_reports_the_cold_first_call_apart_from_warm_ones(monkeypatch, capsys):
    client = stubbed_runtime()
    monkeypatch.setattr("ml_tools.invoke_mme.runtime_client", lambda region, retries=None: client)
    monkeypatch.setattr("ml_tools.invoke_mme.time.sleep", lambda s: None)
    with Stubber(client) as stub:
        add_not_ready(stub)
        for _ in range(3):
            add_answer(stub, [5.0])
        assert cli_main(["invoke-mme", "--endpoint-name", "mme", "--model", "7", "--repeat", "3", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2 -> 5"
    assert re.fullmatch(r"latency: first call [\d.]+ ms \(the model was loading: 2 attempts\); "
                        r"warm calls p50 [\d.]+ ms, max [\d.]+ ms over 2", out[1])


@pytest.mark.parametrize(("argv", "message"), [
    (["--repeat", "0"], "--repeat: got 0, allowed: 1 to 10000"),
    (["--max-attempts", "21"], "--max-attempts: got 21, allowed: 1 to 20"),
])
def test_invoke_mme_rejects_bad_bounds(argv, message, capsys):
    assert cli_main(["invoke-mme", "--endpoint-name", "mme", *argv, "1"]) == 2
    assert message in capsys.readouterr().err


# ---- load-test summaries ---------------------------------------------------------------------


def test_summary_separates_cold_starts_and_counts_throughput():
    from ml_tools.loadtest.summary import Recorder

    recorder = Recorder()
    recorder.start(100.0)
    for ms in range(1, 101):  # warm: 1 .. 100 ms
        recorder.record("warm", float(ms))
    recorder.record("cold-start", 900.0)
    recorder.record("cold-start", 1500.0)
    recorder.record("warm", 5.0, failed=True)
    summary = recorder.summary(110.0, pattern="hot")
    assert summary == {
        "pattern": "hot", "seconds": 10.0, "requests_per_second": 10.2,
        "warm": {"count": 100, "failures": 1, "p50_ms": 50.0, "p99_ms": 99.0},
        "cold-start": {"count": 2, "failures": 0, "p50_ms": 900.0, "p99_ms": 1500.0},
    }


def test_summary_table_has_a_row_per_pattern():
    from ml_tools.loadtest.summary import table

    row = {"pattern": "uniform", "requests_per_second": 812.5, "seconds": 30,
           "warm": {"count": 20000, "failures": 0, "p50_ms": 4.1, "p99_ms": 19.0},
           "cold-start": {"count": 200, "failures": 2, "p50_ms": 40.0, "p99_ms": None}}
    lines = table([row]).splitlines()
    assert lines[2] == "| uniform | 812.5 | 20000 | 4.1 | 19 | 200 | 40 | - | 2 |"


def test_run_patterns_rejects_a_bad_duration(capsys):
    from ml_tools.loadtest.run_patterns import main

    assert main(["--endpoint-name", "e", "--duration", "10 minutes"]) == 2
    assert "--duration: got '10 minutes', allowed: a number followed by s, m or h" in capsys.readouterr().err
