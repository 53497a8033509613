"""Asynchronous Stable Diffusion: results in S3 (encrypted), SNS topics, backlog scaling down to zero."""
from __future__ import annotations

import pytest

from config import ConfigError, load_config
from ml_constructs.sagemaker import EndpointOptions, EndpointValidationError, InvocationScaling
from ml_constructs.sagemaker.async_inference import AsyncInference
from tests.helpers import platform_key_reference, policy_statements, resources_of_type
from tests.sagemaker_fixtures import bare_stack, realtime, weights_location

ASYNC = {"stable_diffusion__async_inference__enabled": "true"}


@pytest.fixture(scope="module")
def prod_async(platform_synth):
    _, assembly = platform_synth("prod", **ASYNC)
    return assembly.get_stack_by_name("MlAccel-prod-StableDiffusion").template


@pytest.fixture(scope="module")
def prod_key(platform_synth):
    return platform_key_reference(platform_synth("prod", **ASYNC)[1], "MlAccel-prod-Storage")


def test_results_and_failures_go_to_encrypted_prefixes_with_notifications(prod_async, prod_key):
    (config,) = resources_of_type(prod_async, "AWS::SageMaker::EndpointConfig").values()
    output = config["Properties"]["AsyncInferenceConfig"]["OutputConfig"]
    assert output["S3OutputPath"]["Fn::Join"][1][-1] == "/async-inference/responses/"
    assert output["S3FailurePath"]["Fn::Join"][1][-1] == "/async-inference/failures/"
    assert output["KmsKeyId"] == prod_key  # prod's customer managed key
    topics = resources_of_type(prod_async, "AWS::SNS::Topic")
    assert {v["Ref"] for v in output["NotificationConfig"].values()} == set(topics) and len(topics) == 2
    assert all("KmsMasterKeyId" in t["Properties"] for t in topics.values())
    client = config["Properties"]["AsyncInferenceConfig"]["ClientConfig"]
    assert client == {"MaxConcurrentInvocationsPerInstance": 1}


def test_role_writes_results_and_publishes_nothing_else(prod_async):
    statements = policy_statements(prod_async)
    publish = [s for s in statements if s["Action"] == "sns:Publish"]
    assert len(publish) == 1 and len(publish[0]["Resource"]) == 2
    written = []
    for statement in statements:
        if "s3:PutObject" in statement["Action"]:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            written += [r["Fn::Join"][1][-1] for r in resources]
    assert sorted(r for r in written if "async-inference" in r) == [
        "/async-inference/failures/*", "/async-inference/responses/*"]  # never requests/: callers write those


def test_backlog_per_instance_scales_down_to_zero_and_a_waiting_request_scales_out(prod_async):
    (target,) = resources_of_type(prod_async, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (0, 1)
    policies = [p["Properties"] for p in resources_of_type(prod_async, "AWS::ApplicationAutoScaling::ScalingPolicy").values()]
    (tracking,) = [p for p in policies if p["PolicyType"] == "TargetTrackingScaling"]
    metric = tracking["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
    assert metric["MetricName"] == "ApproximateBacklogSizePerInstance" and metric["Statistic"] == "Average"
    assert "PredefinedMetricSpecification" not in tracking["TargetTrackingScalingPolicyConfiguration"]
    (step,) = [p for p in policies if p["PolicyType"] == "StepScaling"]
    assert step["StepScalingPolicyConfiguration"]["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
    alarms = [a["Properties"] for a in resources_of_type(prod_async, "AWS::CloudWatch::Alarm").values()]
    assert any(a["MetricName"] == "HasBacklogWithoutCapacity" and a["Threshold"] == 1 for a in alarms)


def test_an_update_keeps_the_instance_count_the_backlog_scaling_reached(prod_async):
    (endpoint,) = resources_of_type(prod_async, "AWS::SageMaker::Endpoint").values()
    # Without it every update resets the variant to its initial count (scaled-in to zero: back to one).
    assert endpoint["Properties"]["RetainAllVariantProperties"] is True
    # 0 to 1 instances cannot roll (a batch is 5-50 % of 2 or more): blue/green, with the rollback alarms.
    assert "BlueGreenUpdatePolicy" in endpoint["Properties"]["DeploymentConfig"]


def test_cost_floor_of_an_async_stable_diffusion_is_zero():
    from ml_tools.cost import estimate

    result = estimate(load_config("prod", overrides={"stable_diffusion.async_inference.enabled": "true"}))
    (endpoint,) = [x for x in result.lines if x.stack.endswith("StableDiffusion") and x.item.startswith("endpoint")]
    assert (endpoint.floor, endpoint.ceiling) == (0, 0.99) and "asynchronous" in endpoint.item


@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        ({"stable_diffusion.autoscaling.enabled": "true"}, "stable_diffusion.autoscaling.enabled",
         "got true with async_inference.enabled; allowed: false (invocations per instance does not see queued"),
        ({"stable_diffusion.hosting.mode": "inference-components"}, "stable_diffusion.hosting.mode",
         "got 'inference-components' with async_inference.enabled; allowed: 'instances'"),
        ({"stable_diffusion.async_inference.min_instances": "2"}, "stable_diffusion.async_inference.min_instances",
         "got 2, allowed: at most max_instances (1)"),
    ],
)
def test_what_cannot_combine_with_async_is_a_config_error(overrides, key, message):
    with pytest.raises(ConfigError) as err:
        load_config("prod", overrides={"stable_diffusion.async_inference.enabled": "true", **overrides})
    problems = {p.path: p for p in err.value.problems}
    assert key in problems and message in problems[key].message, str(err.value)


def test_construct_refuses_an_endpoint_that_scales_on_invocations():
    stack = bare_stack()
    scaled = realtime(stack, "Scaled", options=EndpointOptions(
        autoscaling=InvocationScaling(min_capacity=1, max_capacity=2, max_rps_per_instance=1.0)))
    with pytest.raises(EndpointValidationError, match="an asynchronous endpoint scales on its backlog"):
        AsyncInference(stack, "Async", endpoint=scaled, io=weights_location(stack, "async/"))
