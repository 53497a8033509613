"""The CI verify role allows every AWS call `verify` makes, on the resource it makes it on.

The calls are not listed by hand: verify runs its paths (endpoints that answer, an asynchronous one, a
rolled-back endpoint whose config and model are looked up, inference components running, rolled back and
woken) against moto and botocore's Stubber while every request is recorded; each recorded call is then
evaluated against the bootstrap app's synthesized verify role. What a user would notice: CI's `verify`
failing with AccessDenied instead of saying what to do after a rollback.
"""
from __future__ import annotations

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from ml_tools.verify import Clients, verify
from tests import test_bootstrap_github_oidc as oidc
from tests.policy_evaluation import ALLOW, Request, decide
from tests.test_bootstrap_github_oidc import DEV_ACCOUNT, logical_id, permissions_of
from tests.test_verify import (
    COMPONENT, PNG, REGION, SD_STACK, body, create_endpoint, deploy_component_stack, deploy_stack, stub_answers,
    stub_component)

standard = oidc.standard  # the bootstrap app synthesized once per module
DEV_REGION = "us-east-1"  # oidc.TWO_ACCOUNTS: dev's pinned region

# The request parameter that names the resource an operation acts on, and its ARN's resource part.
RESOURCE_OF = {"EndpointName": "endpoint/{}", "EndpointConfigName": "endpoint-config/{}", "ModelName": "model/{}",
               "InferenceComponentName": "inference-component/{}", "StackName": "stack/{}/0123-abcd"}
IAM_PREFIX = {"sagemaker": "sagemaker", "sagemaker-runtime": "sagemaker", "cloudformation": "cloudformation"}


class Recorder:
    def __init__(self) -> None:
        self.calls: set[tuple[str, str, str]] = set()  # (IAM action, resource ARN, botocore service)
        self.on = False  # only verify's calls are recorded, not the test's setup

    def verify(self, stacks: dict[str, str], clients: Clients):
        self.on = True
        try:
            return verify(stacks, clients)
        finally:
            self.on = False

    def clients(self) -> Clients:
        made = [boto3.client(name, REGION) for name in ("cloudformation", "sagemaker", "sagemaker-runtime")]
        for client in made:
            service = client.meta.service_model.service_name
            client.meta.events.register("before-parameter-build.*.*", self._record(service))
        return Clients(*made)

    def _record(self, service: str):
        def record(model, params, **_):
            if not self.on:
                return
            arn_service = "cloudformation" if service == "cloudformation" else "sagemaker"
            # InvokeEndpoint with InferenceComponentName is authorized on the endpoint (its EndpointName).
            key = next(k for k in RESOURCE_OF if k in params)
            arn = f"arn:aws:{arn_service}:{DEV_REGION}:{DEV_ACCOUNT}:" + RESOURCE_OF[key].format(params[key])
            self.calls.add((f"{IAM_PREFIX[service]}:{model.name}", arn, service))
        return record


@pytest.fixture
def credentials(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)


def run_every_verify_path(recorder: Recorder) -> None:
    with mock_aws():  # instance-hosted endpoints: one answers, one was rolled back
        clients = recorder.clients()
        deploy_stack(clients.cloudformation, "MlAccel-dev-StableDiffusion", {"sd-endpoint": "sd-config-2"})
        deploy_stack(clients.cloudformation, "MlAccel-dev-MultiModel", {"mme-endpoint": "mme-config-2"})
        create_endpoint(clients.sagemaker, "mme-endpoint", "mme-config-2")
        create_endpoint(clients.sagemaker, "sd-endpoint", "sd-config-1", ("sd-config-2",))  # rolled back
        stub_answers(clients.runtime, ("mme-endpoint", "sklearn-0.tar.gz", {"predictions": [3.0]}, "application/json"))
        report = recorder.verify({"stable_diffusion": "MlAccel-dev-StableDiffusion",
                                  "multi_model": "MlAccel-dev-MultiModel"}, clients)
        assert len(report.failed) == 1 and "still exist" in report.failed[0], report.failed
    for rolled_back in (False, True):  # inference components: running and invoked by name, or rolled back
        with mock_aws():
            clients = recorder.clients()
            deploy_component_stack(clients.cloudformation)
            stubber = stub_component(clients.sagemaker, model="sd-model-1" if rolled_back else "sd-model-2")
            if rolled_back:
                stubber.add_response("describe_model", {
                    "ModelName": "sd-model-1", "ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/sd-model-1",
                    "CreationTime": "2026-01-01T00:00:00Z"}, {"ModelName": "sd-model-1"})
            runtime = Stubber(clients.runtime)
            runtime.add_response("invoke_endpoint", {"Body": body(PNG), "ContentType": "image/png"}, {
                "EndpointName": "sd-endpoint", "InferenceComponentName": COMPONENT, "ContentType": "application/json",
                "Accept": ANY, "Body": ANY})
            runtime.activate()
            report = recorder.verify({"stable_diffusion": SD_STACK}, clients)
            assert bool(report.failed) == rolled_back, report.failed


def test_the_verify_role_allows_every_call_verify_makes(standard, credentials):
    recorder = Recorder()
    run_every_verify_path(recorder)
    actions = {action for action, _, _ in recorder.calls}
    # The paths above reach every kind of call (otherwise this test would prove less than it says).
    assert {"sagemaker:DescribeModel", "sagemaker:DescribeEndpointConfig", "sagemaker:InvokeEndpoint",
            "sagemaker:DescribeInferenceComponent"} <= actions
    template = standard[DEV_ACCOUNT].template
    statements = permissions_of(template, logical_id(template, "MlAccel-github-verify-dev"))
    # An identity policy applies to its role whoever the caller is: evaluated as a policy for any principal.
    policy = {"Statement": [{**s, "Principal": "*"} for s in statements]}
    denied = sorted((action, arn) for action, arn, service in recorder.calls
                    if decide(policy, Request(service, action, arn)) != ALLOW)
    assert denied == []


def test_without_describe_model_the_rollback_diagnosis_would_be_denied(standard):
    # The evaluation above can fail: the role's policy without its DescribeModel statement denies it.
    template = standard[DEV_ACCOUNT].template
    statements = [s for s in permissions_of(template, logical_id(template, "MlAccel-github-verify-dev"))
                  if s["Action"] != "sagemaker:DescribeModel"]
    policy = {"Statement": [{**s, "Principal": "*"} for s in statements]}
    arn = f"arn:aws:sagemaker:{DEV_REGION}:{DEV_ACCOUNT}:model/sd-model-1"
    assert decide(policy, Request("sagemaker", "sagemaker:DescribeModel", arn)) != ALLOW
