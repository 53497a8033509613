"""InferenceComponentEndpoint: what SageMaker needs to scale an endpoint to zero, and what it rejects."""
from __future__ import annotations

import re

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from ml_constructs.packaging import ModelPackageAsset
from ml_constructs.sagemaker import EndpointValidationError, ModelData
from ml_constructs.sagemaker.inference_components import (
    ComponentSpec,
    CopyScaling,
    InferenceComponentEndpoint,
    ManagedInstances,
)
from tests.helpers import new_checked_app, policy_statements, resources_of_type
from tests.sagemaker_fixtures import LMI, PACKAGE, bare_stack, weights_location


def _spec(stack: cdk.Stack, name: str = "Opt", **kwargs) -> ComponentSpec:
    values = {"memory_per_copy_mb": 32768, "accelerators_per_copy": 4}
    values.update(kwargs)
    if "model_data" not in values:
        values["model_data"] = ModelData.from_asset(ModelPackageAsset(stack, f"{name}Package", source_dir=PACKAGE))
    return ComponentSpec(name=name, image=LMI, **values)


def _endpoint(stack: cdk.Stack, *, instances: ManagedInstances | None = None, **spec_kwargs):
    return InferenceComponentEndpoint(
        stack, "Endpoint", instances=instances or ManagedInstances("ml.g5.12xlarge", max_instances=2),
        components=[_spec(stack, **spec_kwargs)],
    )


@pytest.fixture(scope="module")
def built():
    app = new_checked_app()
    stack = bare_stack(app)
    endpoint = _endpoint(stack, scaling=CopyScaling(max_copies=2, target_value=4.0))
    template = app.synth().get_stack_by_name(stack.stack_name).template
    return endpoint, template


def test_variant_has_managed_instance_scaling_to_zero_routing_and_no_model(built):
    _, template = built
    (config,) = resources_of_type(template, "AWS::SageMaker::EndpointConfig").values()
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["ManagedInstanceScaling"] == {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 2}
    assert variant["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
    assert "ModelName" not in variant
    assert variant["InitialInstanceCount"] == 1
    assert "ExecutionRoleArn" in config["Properties"]  # component endpoints carry the role on the config


def test_component_requests_its_compute_and_copies(built):
    _, template = built
    (component,) = resources_of_type(template, "AWS::SageMaker::InferenceComponent").values()
    spec = component["Properties"]["Specification"]
    assert spec["ComputeResourceRequirements"] == {"MinMemoryRequiredInMb": 32768, "NumberOfAcceleratorDevicesRequired": 4}
    assert component["Properties"]["RuntimeConfig"] == {"CopyCount": 1}
    assert component["Properties"]["VariantName"] == "AllTraffic"
    assert "Fn::GetAtt" in spec["ModelName"]


def test_copies_track_a_metric_down_to_zero(built):
    _, template = built
    (target,) = resources_of_type(template, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    props = target["Properties"]
    assert props["ScalableDimension"] == "sagemaker:inference-component:DesiredCopyCount"
    assert (props["MinCapacity"], props["MaxCapacity"]) == (0, 2)
    resource_id = props["ResourceId"]["Fn::Join"][1]
    assert resource_id[0] == "inference-component/"
    assert resource_id[1]["Fn::Select"][0] == 1  # the name, taken from the component's ARN
    policies = resources_of_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    tracking = [p for p in policies if p["Properties"]["PolicyType"] == "TargetTrackingScaling"]
    (tracking,) = tracking
    config = tracking["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert config["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerInferenceComponentInvocationsPerCopy"
    assert config["TargetValue"] == 4.0


def test_a_request_with_no_copy_scales_out_from_zero(built):
    _, template = built
    policies = resources_of_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    ((step_id, step),) = [(k, p) for k, p in policies.items() if p["Properties"]["PolicyType"] == "StepScaling"]
    config = step["Properties"]["StepScalingPolicyConfiguration"]
    assert config["AdjustmentType"] == "ChangeInCapacity"
    assert config["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
    alarms = [a["Properties"] for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
              if a["Properties"]["MetricName"] == "NoCapacityInvocationFailures"]
    (alarm,) = alarms
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and alarm["Threshold"] == 1
    assert alarm["AlarmActions"] == [{"Ref": step_id}]
    assert alarm["Dimensions"][0]["Name"] == "InferenceComponentName"


def test_fixed_copies_have_no_scaling_and_a_floor_above_zero_has_no_wake_alarm():
    app = new_checked_app()
    stack = bare_stack(app)
    fixed = InferenceComponentEndpoint(stack, "Fixed", instances=ManagedInstances("ml.g5.12xlarge"),
                                       components=[_spec(stack, scaling=None)])
    floor = InferenceComponentEndpoint(stack, "Floor", instances=ManagedInstances("ml.g5.12xlarge", min_instances=1),
                                       components=[_spec(stack, "Kept", scaling=CopyScaling(min_copies=1))])
    assert fixed.scalable_targets == {} and fixed.wake_alarms == {}
    assert set(floor.scalable_targets) == {"Kept"} and floor.wake_alarms == {}
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::ApplicationAutoScaling::ScalingPolicy", 1)


def test_role_reads_model_data_and_the_endpoint_config_waits_for_it(built):
    endpoint, template = built
    (config_id,) = resources_of_type(template, "AWS::SageMaker::EndpointConfig")
    policy_ids = set(resources_of_type(template, "AWS::IAM::Policy"))
    assert policy_ids & set(template["Resources"][config_id].get("DependsOn", []))
    assert endpoint.component_names.keys() == {"Opt"}


@pytest.mark.parametrize(
    ("instances", "spec_kwargs", "expected"),
    [
        (ManagedInstances("ml.g5.12xlarge"), {"accelerators_per_copy": 8},
         "accelerators_per_copy: got 8, allowed: at most 4"),
        (ManagedInstances("ml.g5.12xlarge"), {"memory_per_copy_mb": 300000},
         "memory_per_copy_mb: got 300000, allowed: at most 196608"),
        (ManagedInstances("ml.m5.xlarge"), {"accelerators_per_copy": 1}, "ml.m5.xlarge has no accelerators"),
        (ManagedInstances("ml.g5.12xlarge"), {"scaling": CopyScaling(max_copies=3)},
         "max_copies: got 3, allowed: at most 1 (1 x ml.g5.12xlarge hold 1 copies each)"),
        (ManagedInstances("ml.g5.12xlarge"), {"tensor_parallel_degree": 8, "accelerators_per_copy": 4},
         "tensor_parallel_degree: got 8, allowed: at most accelerators_per_copy (4)"),
        (ManagedInstances("ml.g5.12xlarge", min_instances=3, max_instances=2), {},
         "min_instances: got 3, allowed: at most max_instances (2)"),
        (ManagedInstances("ml.t3.large"), {"accelerators_per_copy": None}, "ml.t* cannot autoscale"),
        (ManagedInstances("ml.g5.12xlarge", volume_size_gb=100), {}, "has local NVMe instance storage"),
        (ManagedInstances("ml.g5.12xlarge"), {"scaling": CopyScaling(min_copies=2, max_copies=1)},
         "0 <= min_copies <= max_copies"),
    ],
)
def test_what_sagemaker_would_reject_fails_at_synth(instances, spec_kwargs, expected):
    stack = bare_stack()
    with pytest.raises(EndpointValidationError, match=re.escape(expected)):
        _endpoint(stack, instances=instances, **spec_kwargs)


def test_multi_model_prefix_is_rejected():
    stack = bare_stack()
    with pytest.raises(EndpointValidationError, match="multi-model endpoints cannot host inference components"):
        _endpoint(stack, model_data=ModelData.multi_model_prefix(weights_location(stack)))


def test_the_role_may_write_the_component_log_groups(built):
    _, template = built
    (statement,) = [s for s in policy_statements(template) if "logs:PutLogEvents" in s["Action"]]
    tails = sorted(r["Fn::Join"][1][-1] for r in statement["Resource"])
    assert tails == [":log-group:/aws/sagemaker/Endpoints/*:*", ":log-group:/aws/sagemaker/InferenceComponents/*:*"]
