"""invoke-sd refuses, before sending anything, what the request contract refuses on every runtime
(docs/stable-diffusion.md, "Request contract"), one line naming the option, the value and what is allowed."""
from __future__ import annotations

import argparse

import boto3
import pytest
from botocore.stub import Stubber

from ml_tools import invoke_sd


def run(argv: list[str], capsys) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    invoke_sd.configure(parser)
    client = boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:  # no response queued: a request sent would fail the test
        code = invoke_sd.run(parser.parse_args(["--endpoint-name", "sd", *argv]), client=client)
        stub.assert_no_pending_responses()
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("argv", "line"), [
    (["  "], "invoke-sd: prompt: empty, allowed: some text"),
    (["cat " * 76], "invoke-sd: prompt: 76 words, allowed: at most 77 CLIP tokens with the start and end tokens"),
    (["cat", "--negative-prompt", "dog " * 80], "invoke-sd: --negative-prompt: 80 words"),
    (["cat", "--steps", "0"], "invoke-sd: --steps: got 0, allowed: 1 to 150"),
    (["cat", "--steps", "151"], "invoke-sd: --steps: got 151, allowed: 1 to 150"),
    (["cat", "--guidance-scale", "1"], "invoke-sd: --guidance-scale: got 1.0, allowed: above 1 and at most 30"),
    (["cat", "--guidance-scale", "30.5"], "invoke-sd: --guidance-scale: got 30.5"),
    (["cat", "--height", "500"], "invoke-sd: --height: got 500, allowed: the endpoint's compiled size"),
    (["cat", "--width", "4096"], "invoke-sd: --width: got 4096"),
    (["cat", "--seed", "-3"], "invoke-sd: --seed: got -3, allowed: an integer >= 0"),
    (["cat", "--seed", "3", "--serving-mode", "no-code"], "invoke-sd: --seed: not accepted with --serving-mode no-code"),
])
def test_bad_requests_are_refused_before_sending(capsys, argv, line):
    code, err = run(argv, capsys)
    assert code == 2 and err.startswith(line) and err.count("\n") == 1


def test_seed_is_sent_to_the_runtimes_that_take_it(capsys):
    parser = argparse.ArgumentParser()
    invoke_sd.configure(parser)
    for mode in ("optimum-neuron", "byo-script"):
        args = parser.parse_args(["--endpoint-name", "sd", "cat", "--seed", "3", "--serving-mode", mode])
        assert invoke_sd.request_problems(args) == []
        assert invoke_sd.request_body(args)["parameters"]["seed"] == 3
