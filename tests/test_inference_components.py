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
from tests.helpers import log_groups_granted, new_checked_app, policy_statements, resources_of_type
from tests.sagemaker_fixtures import LMI, PACKAGE, bare_stack, weights_location


def _spec(stack: cdk.Stack, name: str = "Opt", **kwargs) -> ComponentSpec:
    values = {"memory_per_copy_mb": 32768, "accelerators_per_copy": 4}
    values.update(kwargs)
    if "model_data" not in values:
        values["model_data"] = ModelData.from_asset(ModelPackageAsset(stack, f"{name}Package", source_dir=PACKAGE))
    return ComponentSpec(name=name, image=LMI, **values)


def _endpoint(stack: cdk.Stack, *, instances: ManagedInstances | None = None, **spec_kwargs):
    return InferenceComponentEndpoint(
        # 4 instances: room for an update's new copies beside the copies at their ceiling (up to 2 here).
        stack, "Endpoint", instances=instances or ManagedInstances("ml.g5.12xlarge", max_instances=4),
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
    assert variant["ManagedInstanceScaling"] == {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 4}
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
         "max_copies: got 3, allowed: at most 2 (2 x ml.g5.12xlarge hold 1 copies each)"),
        (ManagedInstances("ml.g5.12xlarge"), {"tensor_parallel_degree": 8, "accelerators_per_copy": 4},
         "tensor_parallel_degree: got 8, allowed: at most accelerators_per_copy (4)"),
        # Devices are Neuron chips: one inf2 device holds 2 NeuronCores, so tensor parallelism 4 needs 2 devices.
        (ManagedInstances("ml.inf2.24xlarge"), {"tensor_parallel_degree": 4, "accelerators_per_copy": 1},
         "tensor_parallel_degree: got 4, allowed: at most accelerators_per_copy (1 device(s) x 2 NeuronCores)"),
        (ManagedInstances("ml.inf2.xlarge"), {"accelerators_per_copy": 2},
         "accelerators_per_copy: got 2, allowed: at most 1 (ml.inf2.xlarge has 1 accelerator device(s)"),
        (ManagedInstances("ml.g5.12xlarge", min_instances=3, max_instances=2), {},
         "min_instances: got 3, allowed: at most max_instances (2)"),
        (ManagedInstances("ml.t3.large"), {"accelerators_per_copy": None}, "ml.t* cannot autoscale"),
        (ManagedInstances("ml.g5.12xlarge", volume_size_gb=100), {}, "has local NVMe instance storage"),
        (ManagedInstances("ml.g5.12xlarge"), {"scaling": CopyScaling(min_copies=2, max_copies=1)},
         "0 <= min_copies <= max_copies"),
        (ManagedInstances("ml.g5.12xlarge", inference_ami_version="al2-ami-sagemaker-inference-neuron-2"), {},
         "inference_ami_version: got 'al2-ami-sagemaker-inference-neuron-2' (built for Inferentia2/Trainium "
         "instances) for ml.g5.12xlarge, allowed: al2-ami-sagemaker-inference-gpu-2, "),
        (ManagedInstances("ml.g5.12xlarge", inference_ami_version="al2-ami-sagemaker-inference-gpu-9"), {},
         "inference_ami_version: got 'al2-ami-sagemaker-inference-gpu-9', allowed: al2-ami-sagemaker-inference-gpu-2,"),
        (ManagedInstances("ml.m5.4xlarge", inference_ami_version="al2-ami-sagemaker-inference-gpu-2-1"),
         {"accelerators_per_copy": None},
         "allowed: not set (ml.m5.4xlarge has no accelerators)"),
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


def test_the_role_may_write_only_the_log_groups_the_stack_creates_first(built):
    endpoint, template = built
    (statement,) = [s for s in policy_statements(template) if "logs:PutLogEvents" in s["Action"]]
    resources = template["Resources"]
    endpoint_props = resources[cdk.Stack.of(endpoint).get_logical_id(endpoint.endpoint)]
    (component,) = resources_of_type(template, "AWS::SageMaker::InferenceComponent").values()
    endpoint_name = endpoint_props["Properties"]["EndpointName"]
    component_name = component["Properties"]["InferenceComponentName"]
    assert log_groups_granted(template, statement) == [
        f"/aws/sagemaker/Endpoints/{endpoint_name}", f"/aws/sagemaker/InferenceComponents/{component_name}"]
    # Created before SageMaker writes: the endpoint and the component wait for their groups.
    groups = {r["Properties"]["LogGroupName"]: logical for logical, r in resources_of_type(template, "AWS::Logs::LogGroup").items()}
    assert groups[f"/aws/sagemaker/Endpoints/{endpoint_name}"] in endpoint_props["DependsOn"]
    assert groups[f"/aws/sagemaker/InferenceComponents/{component_name}"] in component["DependsOn"]
    assert {r["Properties"]["RetentionInDays"] for r in resources_of_type(template, "AWS::Logs::LogGroup").values()} == {90}


# --- guarded updates: the deployment policy as the component's own DeploymentConfig -------------------------

def _props(stack: cdk.Stack, endpoint: InferenceComponentEndpoint, name: str = "Opt") -> dict:
    template = Template.from_stack(stack).to_json()["Resources"]
    return template[stack.get_logical_id(endpoint.components[name])]["Properties"]


def test_a_component_that_always_has_two_copies_rolls_and_rolls_back_on_its_alarms():
    from ml_constructs.sagemaker.deployment import DeploymentPolicy

    stack = bare_stack()
    endpoint = InferenceComponentEndpoint(
        stack, "Endpoint", instances=ManagedInstances("ml.g5.12xlarge", min_instances=1, max_instances=4),
        components=[_spec(stack, accelerators_per_copy=1, memory_per_copy_mb=16384, copies=2,
                          scaling=CopyScaling(min_copies=2, max_copies=8))],
        deployment=DeploymentPolicy(rollback_batch_size=50, maximum_execution_timeout_seconds=3600),
    )
    config = _props(stack, endpoint)["DeploymentConfig"]
    assert config["RollingUpdatePolicy"] == {
        "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
        "RollbackMaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
        "WaitIntervalInSeconds": 900,  # the component alarms' window: 3 x 5 min
        "MaximumExecutionTimeoutInSeconds": 3600,
    }
    names = [a["AlarmName"] for a in config["AutoRollbackConfiguration"]["Alarms"]]
    resources = Template.from_stack(stack).to_json()["Resources"]
    alarm_names = {r["Properties"]["AlarmName"]: r["Properties"]["MetricName"]
                   for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"}
    # the rollback names the alarms that exist, by literal name (their dimension is the component's name)
    assert [alarm_names[n] for n in names] == ["Invocation5XXErrors", "ModelLatency"]
    assert endpoint.update_strategies["Opt"].startswith("rolling, 25 % per batch, rolled back")
    (describe,) = [s for s in policy_statements(Template.from_stack(stack).to_json())
                   if s["Action"] == "cloudwatch:DescribeAlarms"]
    resources_text = str(describe["Resource"])  # the two rollback alarms, no wildcard
    assert all(n in resources_text for n in names) and "*" not in resources_text


def test_a_scale_to_zero_component_gets_no_deployment_config_and_says_so(built):
    endpoint, template = built
    (component,) = resources_of_type(template, "AWS::SageMaker::InferenceComponent").values()
    assert "DeploymentConfig" not in component["Properties"]
    assert "copy floor is 0; rolling needs 2 or more copies" in endpoint.update_strategies["Opt"]


def test_copy_counts_and_the_blue_green_strategy():
    from ml_constructs.sagemaker.deployment import DeploymentPolicy

    def four_copies(policy: DeploymentPolicy) -> InferenceComponentEndpoint:
        return InferenceComponentEndpoint(
            stack, f"Endpoint{policy.strategy}", components=[
                _spec(stack, f"Opt{policy.strategy}", accelerators_per_copy=1, memory_per_copy_mb=16384, copies=4,
                      scaling=None)],
            # 4 copies fill one g5.12xlarge (4 GPUs): a rolling batch needs the second instance.
            instances=ManagedInstances("ml.g5.12xlarge", min_instances=1, max_instances=2), deployment=policy)

    stack = bare_stack()
    rolling = four_copies(DeploymentPolicy(batch_unit="instances", batch_size=2, rollback_batch_size=1,
                                           auto_rollback=False))
    blue_green = four_copies(DeploymentPolicy(strategy="blue_green", traffic="canary"))
    config = _props(stack, rolling, "Optauto")["DeploymentConfig"]
    assert config["RollingUpdatePolicy"]["MaximumBatchSize"] == {"Type": "COPY_COUNT", "Value": 2}
    assert config["RollingUpdatePolicy"]["RollbackMaximumBatchSize"] == {"Type": "COPY_COUNT", "Value": 1}
    assert "AutoRollbackConfiguration" not in config
    assert rolling.update_strategies["Optauto"] == "rolling, 2 copies per batch, no rollback alarms"
    assert "DeploymentConfig" not in _props(stack, blue_green, "Optblue_green")
    assert "no blue/green policy" in blue_green.update_strategies["Optblue_green"]


@pytest.mark.parametrize("policy, copies, scaling, expected", [
    ({"strategy": "rolling"}, 1, CopyScaling(max_copies=2),
     "deployment.strategy: got 'rolling', allowed: 'auto' or 'blue_green' (the inference component Opt can have 0 "
     "copies; a rolling batch is 5-50 % of the copies"),
    ({"batch_unit": "instances", "batch_size": 3}, 4, None,
     "deployment.batch_size: got 3, allowed: 1 to 2: 5-50 % of the inference component Opt's 4 copies"),
    ({"batch_unit": "instances", "batch_size": 1}, 2, CopyScaling(min_copies=2, max_copies=40),
     "deployment.batch_size: got 1, allowed: none (use batch_unit = 'percent'): 5-50 % of the inference component "
     "Opt's 2 to 40 copies (autoscaling)"),
    ({"maximum_execution_timeout_seconds": 900}, 2, None,
     "deployment.maximum_execution_timeout_seconds: got 900, allowed: more than the bakes it must contain (900 s)"),
])
def test_a_policy_a_component_cannot_hold_fails_at_synth(policy, copies, scaling, expected):
    from ml_constructs.sagemaker.deployment import DeploymentPolicy

    stack = bare_stack()
    with pytest.raises(EndpointValidationError) as err:
        InferenceComponentEndpoint(
            stack, "Endpoint", instances=ManagedInstances("ml.g5.12xlarge", min_instances=1, max_instances=10),
            components=[_spec(stack, accelerators_per_copy=1, memory_per_copy_mb=16384, copies=copies,
                              scaling=scaling)],
            deployment=DeploymentPolicy(**policy),
        )
    assert expected in str(err.value)


@pytest.mark.parametrize("policy, copies, scaling, max_instances, needed", [
    # 4 copies fill one g5.12xlarge (4 GPUs, 1 per copy): the first batch (25 % of 4 = 1 copy) has nowhere to go.
    ({}, 4, None, 1, "at least 2 for an update of components[Opt]: a rolling update starts a batch of 1 new copies "
     "beside the 4 at its ceiling, 4 per ml.g5.12xlarge"),
    # Autoscaled to 8 copies on 2 instances; a rollback batch of 50 % (4 copies) needs a third instance.
    ({"rollback_batch_size": 50}, 2, CopyScaling(min_copies=2, max_copies=8), 2,
     "at least 3 for an update of components[Opt]: a rolling update starts a batch of 4 new copies beside the 8"),
    # No rolling policy (strategy blue_green): SageMaker's own update starts all 4 new copies at once.
    ({"strategy": "blue_green"}, 4, None, 1, "at least 2 for an update of components[Opt]: SageMaker's own "
     "(blue/green) update starts all 4 new copies beside the 4 at its ceiling, 4 per ml.g5.12xlarge"),
    # A copy floor of 0 cannot roll: the same update, twice the ceiling of 6 copies is 3 instances.
    ({}, 1, CopyScaling(min_copies=0, max_copies=6), 2, "at least 3 for an update of components[Opt]: SageMaker's "
     "own (blue/green) update starts all 6 new copies beside the 6 at its ceiling"),
])
def test_an_update_without_room_for_its_new_copies_fails_at_synth_naming_the_ceiling(policy, copies, scaling,
                                                                                    max_instances, needed):
    from ml_constructs.sagemaker.deployment import DeploymentPolicy

    def endpoint(stack: cdk.Stack, name: str, max_instances: int) -> InferenceComponentEndpoint:
        return InferenceComponentEndpoint(
            stack, f"{name}Endpoint", instances=ManagedInstances("ml.g5.12xlarge", min_instances=1, max_instances=max_instances),
            components=[_spec(stack, name, accelerators_per_copy=1, memory_per_copy_mb=16384, copies=copies,
                              scaling=scaling)],
            deployment=DeploymentPolicy(**policy))

    stack = bare_stack()
    with pytest.raises(EndpointValidationError) as err:
        endpoint(stack, "Opt", max_instances)
    assert f"max_instances: got {max_instances}, allowed: {needed}" in str(err.value)
    # The number it names is enough.
    endpoint(stack, "Other", int(needed.split()[2]))


def test_the_environment_policy_reaches_a_component_endpoint():
    from ml_constructs.sagemaker.deployment import DeploymentPolicy
    from ml_constructs.sagemaker.deployment_defaults import DeploymentDefaults

    app = new_checked_app()
    stack = bare_stack(app)
    endpoint = InferenceComponentEndpoint(
        stack, "Endpoint", instances=ManagedInstances("ml.g5.12xlarge", min_instances=1, max_instances=2),
        components=[_spec(stack, accelerators_per_copy=1, memory_per_copy_mb=16384, copies=4, scaling=None)],
    )
    cdk.Aspects.of(app).add(DeploymentDefaults(DeploymentPolicy(batch_size=50, wait_interval_seconds=120)))
    template = app.synth().get_stack_by_name(stack.stack_name).template
    (component,) = resources_of_type(template, "AWS::SageMaker::InferenceComponent").values()
    rolling = component["Properties"]["DeploymentConfig"]["RollingUpdatePolicy"]
    assert rolling["MaximumBatchSize"] == {"Type": "CAPACITY_PERCENT", "Value": 50}
    assert rolling["WaitIntervalInSeconds"] == 120
    assert endpoint.deployment_is_default


# --- host AMI and network placement ------------------------------------------------------------------------


def test_the_inference_ami_reaches_the_variant():
    # Without it SageMaker starts the instances on its default AMI, whose driver is too old for a CUDA 12.8 image.
    def variant(instances: ManagedInstances) -> dict:
        stack = bare_stack()
        _endpoint(stack, instances=instances)
        (config,) = resources_of_type(Template.from_stack(stack).to_json(), "AWS::SageMaker::EndpointConfig").values()
        return config["Properties"]["ProductionVariants"][0]

    chosen = variant(ManagedInstances("ml.g5.12xlarge", inference_ami_version="al2-ami-sagemaker-inference-gpu-2-1"))
    assert chosen["InferenceAmiVersion"] == "al2-ami-sagemaker-inference-gpu-2-1"
    assert "InferenceAmiVersion" not in variant(ManagedInstances("ml.g5.12xlarge"))


def test_a_placed_and_isolated_endpoint_runs_every_model_in_the_subnets_and_stays_nag_clean():
    from ml_constructs.sagemaker.deployment_defaults import EndpointPlacement
    from ml_constructs.sagemaker.network import EndpointNetwork

    app = new_checked_app()
    stack = bare_stack(app)
    network = EndpointNetwork(stack, "Network")
    endpoint = InferenceComponentEndpoint(
        stack, "Endpoint", instances=ManagedInstances("ml.g5.12xlarge", max_instances=2),
        components=[_spec(stack, "Opt"), _spec(stack, "Other")],
    )
    cdk.Aspects.of(app).add(EndpointPlacement(network, [stack.node.path]))
    template = app.synth().get_stack_by_name(stack.stack_name).template  # raises on an unacknowledged finding
    assert endpoint.in_vpc
    subnets = sorted(resources_of_type(template, "AWS::EC2::Subnet"))
    (group,) = [k for k, v in resources_of_type(template, "AWS::EC2::SecurityGroup").items()
                if v["Properties"]["GroupDescription"].startswith("SageMaker models")]
    expected = {"Subnets": [{"Ref": s} for s in subnets], "SecurityGroupIds": [{"Fn::GetAtt": [group, "GroupId"]}]}
    models = resources_of_type(template, "AWS::SageMaker::Model").values()
    assert len(models) == 2
    for model in models:
        assert model["Properties"]["VpcConfig"] == expected
        assert model["Properties"]["EnableNetworkIsolation"] is True
    (config,) = resources_of_type(template, "AWS::SageMaker::EndpointConfig").values()
    assert config["Properties"]["VpcConfig"] == expected and config["Properties"]["EnableNetworkIsolation"] is True
    actions = {a for s in policy_statements(template) for a in ([s["Action"]] if isinstance(s["Action"], str)
                                                               else s["Action"])}
    assert {"ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeSubnets"} <= actions


def test_without_placement_a_component_endpoint_uses_sagemakers_network(built):
    endpoint, template = built
    assert not endpoint.in_vpc
    for resource in [*resources_of_type(template, "AWS::SageMaker::Model").values(),
                     *resources_of_type(template, "AWS::SageMaker::EndpointConfig").values()]:
        assert "VpcConfig" not in resource["Properties"] and "EnableNetworkIsolation" not in resource["Properties"]


# --- names: a new endpoint or component name is a new component ----------------------------------------------


def _components_by_logical_id(endpoint_name: str, component: str) -> dict[str, dict]:
    stack = bare_stack()
    InferenceComponentEndpoint(stack, "Endpoint", instances=ManagedInstances("ml.g5.12xlarge", max_instances=4),
                               components=[_spec(stack, component)], endpoint_name=endpoint_name)
    return {logical_id: resource["Properties"] for logical_id, resource in
            resources_of_type(Template.from_stack(stack).to_json(), "AWS::SageMaker::InferenceComponent").items()}


def test_a_component_keeps_its_logical_id_until_its_endpoint_or_its_name_changes():
    # CloudFormation would update InferenceComponentName/EndpointName in place (the resource schema has no
    # create-only property), which SageMaker cannot do: a new name must be a new logical id, so that CloudFormation
    # creates the new component and deletes the old one, and the same names must keep it (no replacement).
    (first,) = _components_by_logical_id("ep-a", "Opt")
    assert _components_by_logical_id("ep-a", "Opt").keys() == {first}  # deterministic
    (moved,) = _components_by_logical_id("ep-b", "Opt")  # same component, another endpoint
    (renamed,) = _components_by_logical_id("ep-a", "Other")  # same endpoint, another component name
    assert len({first, moved, renamed}) == 3
    assert re.fullmatch(r"EndpointOptComponent[0-9A-F]{8}[0-9A-F]{8}", first), first


def test_a_component_on_another_endpoint_gets_another_name():
    """The new component is created before the old one is deleted, and SageMaker names are unique per account
    and region: a new endpoint_name alone must also give the component a new name."""
    (on_a,) = _components_by_logical_id("ep-a", "Opt").values()
    (on_b,) = _components_by_logical_id("ep-b", "Opt").values()
    assert on_a["InferenceComponentName"] != on_b["InferenceComponentName"]
    assert all(len(p["InferenceComponentName"]) <= 63 for p in (on_a, on_b))
