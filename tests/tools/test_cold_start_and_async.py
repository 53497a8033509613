"""Clients that survive a cold start (botocore Stubber answers SageMaker's real "no capacity" error) and
``invoke-sd --async`` against moto's S3, SageMaker and sagemaker-runtime."""
from __future__ import annotations

import argparse
import io
import json

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from moto import mock_aws

from ml_tools import invoke_sd
from ml_tools.cold_start import ColdStartClient, ColdStartTimeout, call_through_cold_start, is_cold_start
from ml_tools.invoke_async import request_prefix, submit_and_wait
from ml_tools.runtime import EndpointError

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 16
# What InvokeEndpoint answers while an inference component has no copy (AWS blog on scale to zero).
NO_CAPACITY = ("Inference Component has no capacity to process this request. ApplicationAutoScaling may be "
               "in-progress (if configured) or try to increase the capacity by invoking "
               "UpdateInferenceComponentRuntimeConfig API.")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def _stubbed_runtime(no_capacity_answers: int, *, then_png: bool = True, code: str = "ValidationError",
                     message: str = NO_CAPACITY):
    client = boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    for _ in range(no_capacity_answers):
        stub.add_client_error("invoke_endpoint", service_error_code=code, service_message=message, http_status_code=400)
    if then_png:
        stub.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(PNG), len(PNG)), "ContentType": "image/png"},
                          expected_params={"EndpointName": "sd", "ContentType": "application/json",
                                           "Accept": "image/png", "Body": ANY,
                                           "InferenceComponentName": "sd-component"})
    stub.activate()
    return client, stub


def test_no_capacity_is_waited_out_with_growing_delays_and_the_cold_start_is_reported(tmp_path, capsys):
    client, stub = _stubbed_runtime(3)
    clock = FakeClock()
    wrapped = ColdStartClient(client, inference_component="sd-component", max_wait_s=900,
                              progress=lambda m: print(m), sleep=clock.sleep, clock=clock)
    args = argparse.Namespace(endpoint_name="sd", region="us-east-1", prompt="a cat", steps=30, guidance_scale=7.5,
                              negative_prompt=None, seed=None, height=None, width=None, output=tmp_path / "cat.png")
    assert invoke_sd.run(args, client=wrapped) == 0
    assert (tmp_path / "cat.png").read_bytes() == PNG
    assert clock.sleeps == [5.0, 10.0, 20.0]
    assert wrapped.last_cold_start is not None and wrapped.last_cold_start.attempts == 4
    assert "cold start: answered after 35 s and 4 attempts" in capsys.readouterr().out
    stub.assert_no_pending_responses()


def test_the_wait_is_bounded_and_ends_as_an_endpoint_error():
    client, _ = _stubbed_runtime(10, then_png=False)
    clock = FakeClock()
    with pytest.raises(ColdStartTimeout) as err:
        call_through_cold_start(lambda: client.invoke_endpoint(EndpointName="sd", Body=b"{}"), max_wait_s=60,
                                sleep=clock.sleep, clock=clock)
    assert isinstance(err.value, EndpointError)  # the CLI prints it instead of a traceback
    assert clock.now <= 60 and "no capacity after" in str(err.value)


def test_other_errors_are_not_retried():
    client, stub = _stubbed_runtime(1, then_png=False, message="Received client error (400) from primary: bad prompt")
    clock = FakeClock()
    with pytest.raises(Exception) as err:
        call_through_cold_start(lambda: client.invoke_endpoint(EndpointName="sd", Body=b"{}"), sleep=clock.sleep,
                                clock=clock)
    assert not is_cold_start(err.value) and clock.sleeps == []


# ------------------------------------------------------------------ asynchronous


@pytest.fixture
def aws():
    with mock_aws():
        yield {name: boto3.client(name, region_name="us-east-1") for name in ("s3", "sagemaker", "sagemaker-runtime")}


def _async_endpoint(sm, output="s3://models/async-inference/responses/"):
    sm.create_model(ModelName="sd", ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
                    PrimaryContainer={"Image": "img"})
    sm.create_endpoint_config(
        EndpointConfigName="sd-config",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "sd", "InstanceType": "ml.g4dn.xlarge",
                             "InitialInstanceCount": 1}],
        AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": output}},
    )
    sm.create_endpoint(EndpointName="sd", EndpointConfigName="sd-config")


def test_requests_go_beside_the_endpoints_results(aws):
    _async_endpoint(aws["sagemaker"])
    assert request_prefix(aws["sagemaker"], "sd") == "s3://models/async-inference/requests/"


def test_a_real_time_endpoint_is_refused_for_async(aws):
    sm = aws["sagemaker"]
    sm.create_model(ModelName="rt", ExecutionRoleArn="arn:aws:iam::123456789012:role/r", PrimaryContainer={"Image": "i"})
    sm.create_endpoint_config(EndpointConfigName="rt", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "rt", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName="rt", EndpointConfigName="rt")
    with pytest.raises(EndpointError, match="not an asynchronous endpoint"):
        request_prefix(sm, "rt")


def test_async_submits_the_request_to_s3_and_saves_the_image(aws, tmp_path, capsys):
    from moto.sagemakerruntime.models import sagemakerruntime_backends

    aws["s3"].create_bucket(Bucket="models")
    _async_endpoint(aws["sagemaker"])
    backend = sagemakerruntime_backends["123456789012"]["us-east-1"]
    backend.async_results_queue.append((False, "placeholder"))  # moto stores text: the PNG replaces it below
    sent = []
    aws["sagemaker-runtime"].meta.events.register(
        "before-parameter-build.sagemaker-runtime.InvokeEndpointAsync", lambda params, **_: sent.append(dict(params)))

    def model_answers_png(parsed, **_):  # what the model writes for Accept: image/png
        bucket, key = parsed["OutputLocation"][5:].split("/", 1)
        aws["s3"].put_object(Bucket=bucket, Key=key, Body=PNG)

    aws["sagemaker-runtime"].meta.events.register("after-call.sagemaker-runtime.InvokeEndpointAsync", model_answers_png)
    args = argparse.Namespace(endpoint_name="sd", region="us-east-1", prompt="a lighthouse", steps=20,
                              guidance_scale=7.5, negative_prompt=None, seed=3, height=None, width=None,
                              output=tmp_path / "out.png", use_async=True, input_location=None, timeout=60.0)
    from ml_tools.invoke_async import run_async

    assert run_async(args, invoke_sd.request_body(args), invoke_sd.stored_image_bytes, runtime=aws["sagemaker-runtime"],
                     s3=aws["s3"], sagemaker=aws["sagemaker"]) == 0
    assert (tmp_path / "out.png").read_bytes() == PNG
    (call,) = sent
    assert call["Accept"] == "image/png"
    assert call["InputLocation"].startswith("s3://models/async-inference/requests/")
    bucket, key = call["InputLocation"][5:].split("/", 1)
    body = json.loads(aws["s3"].get_object(Bucket=bucket, Key=key)["Body"].read())
    assert body == {"prompt": "a lighthouse", "parameters": {"num_inference_steps": 20, "guidance_scale": 7.5, "seed": 3}}
    assert "saved" in capsys.readouterr().out


def test_async_failure_and_timeout_are_endpoint_errors(aws):
    from moto.sagemakerruntime.models import sagemakerruntime_backends

    aws["s3"].create_bucket(Bucket="models")
    backend = sagemakerruntime_backends["123456789012"]["us-east-1"]
    backend.async_results_queue.append((True, "CUDA out of memory"))
    clock = FakeClock()
    with pytest.raises(EndpointError, match="the request failed after 0 s: b'CUDA out of memory'"):
        submit_and_wait(runtime=aws["sagemaker-runtime"], s3=aws["s3"], endpoint_name="sd", payload={},
                        input_prefix="s3://models/async-inference/requests/", sleep=clock.sleep, clock=clock,
                        progress=lambda m: None)


def test_async_waits_with_progress_until_the_timeout(aws):
    aws["s3"].create_bucket(Bucket="models")
    runtime = aws["sagemaker-runtime"]
    stub = Stubber(runtime)
    stub.add_response("invoke_endpoint_async", {"OutputLocation": "s3://models/async-inference/responses/x.out",
                                                "FailureLocation": "s3://models/async-inference/failures/x.out",
                                                "InferenceId": "x"})
    stub.activate()
    clock = FakeClock()
    said: list[str] = []
    with pytest.raises(EndpointError, match="no result after 30 s"):
        submit_and_wait(runtime=runtime, s3=aws["s3"], endpoint_name="sd", payload={}, poll_s=10.0, timeout_s=30.0,
                        input_prefix="s3://models/async-inference/requests/", sleep=clock.sleep, clock=clock,
                        progress=said.append)
    assert said[0].startswith("queued as x") and sum("waiting" in s for s in said) == 3
