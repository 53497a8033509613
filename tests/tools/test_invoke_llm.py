"""invoke-llm against LMI's answer format: one request per prompt, one object per answer."""
from __future__ import annotations

import argparse
import io
import json

import boto3
from botocore.stub import Stubber

from ml_tools import invoke_llm


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    invoke_llm.configure(parser)
    return parser.parse_args(["--endpoint-name", "opt", *argv])


def answer(text: str) -> dict:
    return {"Body": io.BytesIO(json.dumps({"generated_text": text}).encode()), "ContentType": "application/json"}


def test_each_prompt_is_its_own_request_and_lmi_answers_are_printed_in_order(capsys):
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stub:
        for prompt, text in (("the cat", " sat"), ("a dog", " ran")):
            body = json.dumps({"inputs": prompt, "parameters": {"max_new_tokens": 32, "do_sample": False}})
            stub.add_response("invoke_endpoint", answer(text), {
                "EndpointName": "opt", "ContentType": "application/json", "Accept": "application/json", "Body": body})
        assert invoke_llm.run(parsed("the cat", "a dog", "--max-new-tokens", "32"), client=client) == 0
        stub.assert_no_pending_responses()
    assert capsys.readouterr().out == "--- the cat\n sat\n--- a dog\n ran\n"


def test_an_answer_without_generated_text_is_reported(capsys):
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("invoke_endpoint", {"Body": io.BytesIO(b'{"error": "x"}'), "ContentType": "application/json"})
        assert invoke_llm.run(parsed("hi"), client=client) == 1
    assert "invoke-llm: unexpected answer" in capsys.readouterr().err
