"""Guarded endpoint updates: the DeploymentConfig each endpoint shape gets, and the settings it cannot hold."""
from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk.assertions import Template

from config import ConfigError, load_config
from ml_constructs.sagemaker import (
    ContainerImage,
    EndpointOptions,
    EndpointValidationError,
    InvocationScaling,
    ModelData,
    MultiModelEndpoint,
    VariantSettings,
)
from ml_constructs.sagemaker.deployment import DeploymentPolicy
from tests.helpers import pinned, new_checked_app, resources_of_type
from tests.sagemaker_fixtures import bare_stack, realtime, weights_location


def scaling(low: int, high: int) -> InvocationScaling:
    return InvocationScaling(min_capacity=low, max_capacity=high, max_rps_per_instance=1.0)


def endpoint_props(stack, endpoint) -> dict:
    return Template.from_stack(stack).to_json()["Resources"][stack.get_logical_id(endpoint.endpoint)]["Properties"]


def alarm_name(stack, endpoint, name: str) -> str:
    template = Template.from_stack(stack).to_json()
    return template["Resources"][stack.get_logical_id(endpoint.alarms[name].node.default_child)]["Properties"]["AlarmName"]


@pytest.fixture(scope="module")
def mme(tmp_path_factory):
    stack = bare_stack(new_checked_app(tmp_path_factory.mktemp("mme")))
    endpoint = MultiModelEndpoint(
        stack, "Mme", image=ContainerImage.deep_learning_container("djl-inference", "0.23.0-cpu-full"),
        model_data=ModelData.multi_model_prefix(weights_location(stack, "multi-model/")),
        variant=VariantSettings(instance_type="ml.c5d.18xlarge", initial_instance_count=20),
    )
    return stack, endpoint


def test_a_twenty_instance_variant_rolls_in_quarter_batches_and_rolls_back_on_its_own_alarms(mme):
    stack, endpoint = mme
    config = endpoint_props(stack, endpoint)["DeploymentConfig"]
    assert config["RollingUpdatePolicy"] == {
        "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
        # Without a rollback batch, SageMaker would bring back the whole old fleet at once.
        "RollbackMaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
        "WaitIntervalInSeconds": 900,  # 3 x 300 s: a batch bakes as long as the alarms need to fire
    }
    assert config["AutoRollbackConfiguration"]["Alarms"] == [
        {"AlarmName": alarm_name(stack, endpoint, "Errors5xx")},
        {"AlarmName": alarm_name(stack, endpoint, "ModelLatencyP99")},
    ]
    assert endpoint.deployment.extra_instances == 5
    assert "RetainAllVariantProperties" not in endpoint_props(stack, endpoint)  # not autoscaled: config wins


def test_a_variant_that_can_shrink_to_one_instance_updates_blue_green_and_keeps_its_scaled_count(tmp_path):
    stack = bare_stack(new_checked_app(tmp_path))
    endpoint = realtime(stack, options=EndpointOptions(autoscaling=scaling(1, 3)))
    props = endpoint_props(stack, endpoint)
    assert props["DeploymentConfig"]["BlueGreenUpdatePolicy"] == {
        # The bake after the shift (WaitIntervalInSeconds, required by the API), then the old fleet's final wait.
        "TerminationWaitInSeconds": 900,
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 900},
    }
    assert props["RetainAllVariantProperties"] is True
    assert endpoint.deployment.extra_instances == 3  # blue/green doubles whatever count the scaler reached


def test_an_autoscaled_variant_that_always_has_two_instances_rolls(tmp_path):
    stack = bare_stack(new_checked_app(tmp_path))
    endpoint = realtime(stack, initial_instance_count=2, options=EndpointOptions(autoscaling=scaling(2, 8)))
    props = endpoint_props(stack, endpoint)
    assert "RollingUpdatePolicy" in props["DeploymentConfig"] and props["RetainAllVariantProperties"] is True


def test_canary_blue_green_bakes_each_step(tmp_path):
    stack = bare_stack(new_checked_app(tmp_path))
    policy = DeploymentPolicy(strategy="blue_green", traffic="canary", traffic_step_percent=20,
                              wait_interval_seconds=300, maximum_execution_timeout_seconds=7200)
    endpoint = realtime(stack, options=EndpointOptions(deployment=policy))
    assert endpoint_props(stack, endpoint)["DeploymentConfig"]["BlueGreenUpdatePolicy"] == {
        "MaximumExecutionTimeoutInSeconds": 7200,
        "TerminationWaitInSeconds": 900,
        "TrafficRoutingConfiguration": {
            "Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20}, "WaitIntervalInSeconds": 300,
        },
    }


def test_without_alarms_there_is_no_rollback_and_no_alarm_permission(tmp_path):
    stack = bare_stack(new_checked_app(tmp_path))
    endpoint = realtime(stack, options=EndpointOptions(alarms=None))
    assert "AutoRollbackConfiguration" not in endpoint_props(stack, endpoint)["DeploymentConfig"]
    template = Template.from_stack(stack).to_json()
    assert "cloudwatch:DescribeAlarms" not in str(resources_of_type(template, "AWS::IAM::Policy"))


@pytest.mark.parametrize(
    ("count", "autoscaling", "policy", "expected"),
    [
        (1, None, DeploymentPolicy(strategy="rolling"),
         "deployment.strategy: got 'rolling', allowed: 'blue_green' or 'auto' (the variant can have 1 instance"),
        (20, scaling(20, 40), DeploymentPolicy(batch_unit="instances", batch_size=1),
         "deployment.batch_size: got 1, allowed: 2 to 10: 5-50 % of the variant's 20 to 40 instances (autoscaling)"),
        (4, None, DeploymentPolicy(batch_unit="instances", batch_size=3),
         "deployment.batch_size: got 3, allowed: 1 to 2: 5-50 % of the variant's 4 instances"),
        (4, None, DeploymentPolicy(batch_size=60), "deployment.batch_size: got 60, allowed: 5 to 50"),
        (4, None, DeploymentPolicy(rollback_batch_size=2), "deployment.rollback_batch_size: got 2, allowed: 5 to 50"),
        (2, scaling(2, 100), DeploymentPolicy(batch_unit="instances", batch_size=1),
         "deployment.batch_size: got 1, allowed: none (use batch_unit = 'percent')"),
        (1, None, DeploymentPolicy(termination_wait_seconds=4000),
         "deployment.termination_wait_seconds: got 4000, allowed: 0 to 3600"),
        (1, None, DeploymentPolicy(maximum_execution_timeout_seconds=300),
         "deployment.maximum_execution_timeout_seconds: got 300, allowed: 600 to 28800"),
        (1, None, DeploymentPolicy(traffic="canary", traffic_step_percent=60),
         "deployment.traffic_step_percent: got 60, allowed: 1 to 50"),
        (1, None, DeploymentPolicy(traffic="linear", traffic_step_percent=5),
         "deployment.traffic_step_percent: got 5, allowed: 10 to 50"),
    ],
)
def test_a_policy_the_variant_cannot_hold_fails_synth_naming_the_setting(count, autoscaling, policy, expected):
    stack = bare_stack()
    with pytest.raises(EndpointValidationError) as err:
        realtime(stack, initial_instance_count=count, options=EndpointOptions(autoscaling=autoscaling, deployment=policy))
    assert expected in str(err.value)
    assert "Test/Endpoint" in str(err.value)


def test_configuration_rejects_an_instance_batch_the_prod_multi_model_endpoint_cannot_hold():
    with pytest.raises(ConfigError) as err:
        load_config("prod", overrides={"deployment.batch_unit": "instances", "deployment.batch_size": "1"})
    message = str(err.value)
    assert "deployment.batch_size: got 1, allowed for the multi_model endpoint: 2 to 10" in message
    assert "-c set:deployment.batch_size" in message  # where the value came from


def test_configuration_rejects_rolling_for_one_instance_endpoints():
    with pytest.raises(ConfigError) as err:
        load_config("prod", overrides={"deployment.strategy": "rolling"})
    message = str(err.value)
    for endpoint in ("stable_diffusion", "llm.models.bloom-176b", "llm.models.opt-30b"):
        assert f"allowed for the {endpoint} endpoint: 'blue_green' or 'auto'" in message
    assert "multi_model endpoint" not in message  # 20 instances roll


def test_configuration_rejects_a_percent_batch_out_of_range():
    with pytest.raises(ConfigError, match=r"deployment.batch_size: got 75, allowed: 5 to 50 \(percent"):
        load_config("dev", overrides={"deployment.batch_size": "75"})


def test_every_prod_endpoint_has_a_guarded_update_and_autoscaled_ones_keep_their_count(platform_synth):
    cfg, assembly = platform_synth("prod")
    endpoints = {}
    for stack in assembly.stacks:
        for logical_id, resource in resources_of_type(stack.template, "AWS::SageMaker::Endpoint").items():
            endpoints[f"{stack.stack_name}/{logical_id}"] = resource["Properties"]
    assert len(endpoints) == 4
    for name, props in endpoints.items():
        rollback = props["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
        # Stable Diffusion also rolls back on its model-error line (the toolkit answers model failures with 400).
        expected = ["Errors5xx", "ModelLatencyP99"] + (["ModelErrors"] if "StableDiffusion" in name else [])
        assert [a["AlarmName"].rsplit("-", 1)[1] for a in rollback] == expected, name
    mme = next(p for n, p in endpoints.items() if "MultiModel" in n)
    assert mme["DeploymentConfig"]["RollingUpdatePolicy"]["MaximumBatchSize"] == {"Type": "CAPACITY_PERCENT", "Value": 25}
    assert mme["RetainAllVariantProperties"] is True
    bloom = next(p for n, p in endpoints.items() if "Bloom" in n)
    assert bloom["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 900}
    assert "RetainAllVariantProperties" not in bloom


def test_the_environment_policy_reaches_every_endpoint(platform_synth):
    _, assembly = platform_synth("prod", deployment__strategy="blue_green", deployment__traffic="linear")
    for stack in assembly.stacks:
        for props in (r["Properties"] for r in resources_of_type(stack.template, "AWS::SageMaker::Endpoint").values()):
            routing = props["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
            assert routing["Type"] == "LINEAR" and routing["LinearStepSize"]["Value"] == 10


def test_a_pinned_region_without_a_workloads_image_tag_is_a_configuration_error():
    with pytest.raises(ConfigError) as err:
        load_config("prod", overrides={**pinned("123456789012", "af-south-1"),
                                       "stable_diffusion.runtime": "seed"})
    message = str(err.value)
    assert ("stable_diffusion.image_tag: got '0.24.0-neuronx-sdk2.14.1' with region 'af-south-1': "
            "djl-inference:0.24.0-neuronx-sdk2.14.1 is not published in af-south-1") in message
    assert "llm.image_tag" not in message  # the LMI DeepSpeed 0.19 tag is published in af-south-1
    load_config("prod", overrides=pinned("123456789012", "us-east-1"))  # published there


def test_a_pinned_region_without_the_current_stable_diffusion_image_is_a_configuration_error():
    # huggingface-neuronx.json (sagemaker-python-sdk v3.20.0) publishes the SDK 2.26.0 image in 24 regions,
    # not af-south-1 nor us-west-1; djl-lmi.json 0.36.0 has af-south-1 and us-west-1.
    for region in ("af-south-1", "us-west-1"):
        with pytest.raises(ConfigError) as err:
            load_config("prod", overrides=pinned("123456789012", region))
        message = str(err.value)
        tag = "2.8.0-transformers4.55.4-neuronx-py310-sdk2.26.0-ubuntu22.04"
        assert (f"stable_diffusion.image_tag: got '{tag}' with region '{region}': "
                f"huggingface-pytorch-inference-neuronx:{tag} is not published in {region}; regions that have it: "
                "ap-northeast-1, ap-south-1, ap-south-2,") in message
        assert "us-east-1, us-east-2, us-gov-east-1, us-gov-west-1, us-west-2 (copy the image" in message
        assert message.rstrip().endswith("(from defaults)")
        assert "llm.image_tag" not in message
    for region in ("eu-central-2", "ap-southeast-5", "mx-central-1"):  # published there, registry known
        # BLOOM on p5 there: its default ml.p4de.24xlarge is hosted in us-east-1 and us-west-2 only (docs/llm.md).
        load_config("prod", overrides={**pinned("123456789012", region), "llm.models.bloom-176b.instance_type": "ml.p5.48xlarge"})


def test_the_current_llm_image_has_the_regions_of_its_djl_release():
    from ml_constructs.sagemaker.dlc_regions import tag_problem

    tag = "0.36.0-lmi20.0.0-cu128"
    for region in ("af-south-1", "eu-south-2", "ap-east-2", "mx-central-1", "us-gov-west-1"):  # djl-lmi.json 0.36.0
        assert tag_problem("djl-inference", tag, region) is None
    problem = tag_problem("djl-inference", tag, "xx-nowhere-1")
    assert problem is not None and f"djl-inference:{tag} is not published in xx-nowhere-1" in problem
    # an earlier release's tag is not taken for 0.36.0's
    assert "not published in ap-east-2" in tag_problem("djl-inference", "0.30.0-lmi12.0.0-cu124", "ap-east-2")


def test_an_execution_timeout_shorter_than_the_bakes_is_rejected():
    stack = bare_stack()
    with pytest.raises(EndpointValidationError, match=r"deployment.maximum_execution_timeout_seconds: got 1800, "
                       r"allowed: more than the bakes it must contain \(1800 s\)"):
        realtime(stack, options=EndpointOptions(deployment=DeploymentPolicy(maximum_execution_timeout_seconds=1800)))


def test_the_environment_policy_leaves_an_endpoint_with_its_own_policy_alone(tmp_path):
    import aws_cdk as cdk

    from ml_constructs.sagemaker.deployment_defaults import DeploymentDefaults

    app = new_checked_app(tmp_path)
    stack = bare_stack(app)
    own = realtime(stack, "Own", options=EndpointOptions(deployment=DeploymentPolicy(traffic="canary")))
    default = realtime(stack, "Default")
    cdk.Aspects.of(app).add(DeploymentDefaults(DeploymentPolicy(traffic="linear")))
    template = Template.from_stack(stack).to_json()["Resources"]

    def routing(endpoint):
        props = template[stack.get_logical_id(endpoint.endpoint)]["Properties"]
        return props["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"]

    assert (routing(own), routing(default)) == ("CANARY", "LINEAR")


def test_configuration_rejects_an_execution_timeout_within_the_default_bake():
    with pytest.raises(ConfigError, match=r"deployment.maximum_execution_timeout_seconds: got 1200, allowed for the "
                       r"stable_diffusion endpoint: more than the bakes it must contain \(1800 s\)") as err:
        load_config("prod", overrides={"deployment.maximum_execution_timeout_seconds": "1200"})
    # The rolling multi-model endpoint bakes one batch at a time: 1200 s holds its 900 s bake.
    assert "multi_model endpoint" not in str(err.value)


def test_dev_stable_diffusion_components_scale_to_zero_and_have_no_guarded_update(platform_synth):
    _, assembly = platform_synth("dev")
    components = [c for stack in assembly.stacks
                  for c in resources_of_type(stack.template, "AWS::SageMaker::InferenceComponent").values()]
    assert components, "dev hosts Stable Diffusion as an inference component"
    for component in components:  # a copy floor of 0 cannot roll: SageMaker's own update (docs/operations.md)
        assert "DeploymentConfig" not in component["Properties"]


def test_a_component_with_a_copy_floor_of_two_rolls_with_the_environment_policy(platform_synth):
    _, assembly = platform_synth(
        # 2 copies fill 2 ml.inf2.xlarge (one device each): the rolling batch needs a third instance.
        "dev", stable_diffusion__hosting__min_instances="2", stable_diffusion__hosting__max_instances="3",
        stable_diffusion__hosting__min_copies="2", stable_diffusion__hosting__copies="2",
        stable_diffusion__hosting__max_copies="2", deployment__wait_interval_seconds="300", deployment__batch_unit="instances", deployment__batch_size="1")
    (component,) = [c for stack in assembly.stacks
                    for c in resources_of_type(stack.template, "AWS::SageMaker::InferenceComponent").values()]
    config = component["Properties"]["DeploymentConfig"]
    assert config["RollingUpdatePolicy"]["MaximumBatchSize"] == {"Type": "COPY_COUNT", "Value": 1}
    assert config["RollingUpdatePolicy"]["WaitIntervalInSeconds"] == 300
    assert [a["AlarmName"].rsplit("-", 1)[1] for a in config["AutoRollbackConfiguration"]["Alarms"]] == [
        "Errors5xx", "ModelLatencyP99", "ModelErrors"]
    # CloudFormation's resource schema accepts it (cfn-lint checks the InferenceComponent properties)
    from cfnlint.api import ManualArgs, lint_file

    from tests.cfn_lint_policy import IGNORED_RULES, LINT_REGIONS

    (stack,) = [s for s in assembly.stacks if resources_of_type(s.template, "AWS::SageMaker::InferenceComponent")]
    findings = lint_file(Path(assembly.directory) / stack.template_file,
                         config=ManualArgs(regions=LINT_REGIONS, ignore_checks=sorted(IGNORED_RULES)))
    assert [str(f) for f in findings] == []


@pytest.mark.parametrize("overrides, expected", [
    # A copy floor of 2 rolls: 2 copies fill 2 ml.inf2.xlarge, the first batch would wait for room until the
    # update times out.
    ({"stable_diffusion.hosting.min_instances": "2", "stable_diffusion.hosting.max_instances": "2",
      "stable_diffusion.hosting.min_copies": "2", "stable_diffusion.hosting.copies": "2",
      "stable_diffusion.hosting.max_copies": "2"},
     "stable_diffusion.hosting.max_instances: got 2, allowed: at least 3: a rolling update starts a batch of 1 new "
     "copies beside the 2 at the copy ceiling, 1 per ml.inf2.xlarge"),
    # Dev's scale-to-zero component gets SageMaker's own update, which starts its new copy beside the running one:
    # on one instance it has nowhere to go.
    ({"stable_diffusion.hosting.max_instances": "1"},
     "stable_diffusion.hosting.max_instances: got 1, allowed: at least 2: SageMaker's own (blue/green) update starts "
     "all 1 new copies beside the 1 at the copy ceiling, 1 per ml.inf2.xlarge"),
    # blue_green is no way out: without a rolling policy every new copy starts at once.
    ({"deployment.strategy": "blue_green", "stable_diffusion.hosting.max_instances": "3",
      "stable_diffusion.hosting.max_copies": "2"},
     "stable_diffusion.hosting.max_instances: got 3, allowed: at least 4: SageMaker's own (blue/green) update starts "
     "all 2 new copies beside the 2 at the copy ceiling"),
])
def test_a_component_update_without_room_for_its_new_copies_is_a_configuration_error(overrides, expected):
    with pytest.raises(ConfigError) as err:
        load_config("dev", overrides=overrides)
    assert expected in str(err.value)
    assert "deployment.strategy = 'blue_green'" not in str(err.value)


def test_the_update_room_is_reported_with_the_other_hosting_problems():
    # One run names every problem: the room for the update is not held back until the rest is fixed.
    with pytest.raises(ConfigError) as err:
        load_config("dev", overrides={"stable_diffusion.hosting.max_instances": "1",
                                      "stable_diffusion.hosting.accelerators_per_copy": "4"})
    problems = {p.path for p in err.value.problems}
    assert {"stable_diffusion.hosting.max_instances", "stable_diffusion.hosting.accelerators_per_copy"} <= problems


def test_rolling_a_component_that_can_reach_zero_copies_is_a_configuration_error():
    with pytest.raises(ConfigError) as err:
        load_config("dev", overrides={"deployment.strategy": "rolling"})
    assert ("deployment.strategy: got 'rolling', allowed for the stable_diffusion endpoint: 'auto' or 'blue_green' "
            "(the inference component can have 0 copies; a rolling batch is 5-50 % of the copies, so rolling needs 2 "
            "or more at all times) (from -c set:deployment.strategy)") in str(err.value)


def test_a_compile_image_missing_from_the_pinned_region_is_a_configuration_error():
    with pytest.raises(ConfigError) as err:
        load_config("prod", overrides={**pinned("123456789012", "af-south-1"),
                                       "stable_diffusion.runtime": "seed",
                                       "stable_diffusion.compile.image": "djl-inference:0.24.0-neuronx-sdk2.14.1"})
    assert ("stable_diffusion.compile.image: got 'djl-inference:0.24.0-neuronx-sdk2.14.1' with region 'af-south-1': "
            "djl-inference:0.24.0-neuronx-sdk2.14.1 is not published in af-south-1; regions that have it: "
            "ap-northeast-1,") in str(err.value)
    load_config("prod", overrides={**pinned("123456789012", "eu-west-3"), "stable_diffusion.runtime": "seed",
                                   "llm.models.bloom-176b.instance_type": "ml.p5.48xlarge",  # no p4de in eu-west-3
                                   "stable_diffusion.compile.image": "djl-inference:0.24.0-neuronx-sdk2.14.1"})
