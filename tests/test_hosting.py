"""Hosting mode per environment: dev's Stable Diffusion idles at zero instances; prod turns it on per model."""
from __future__ import annotations

import pytest

from config import ConfigError, load_config
from tests.helpers import resources_of_type


def _variant(template):
    (config,) = resources_of_type(template, "AWS::SageMaker::EndpointConfig").values()
    (variant,) = config["Properties"]["ProductionVariants"]
    return variant


def test_dev_stable_diffusion_is_an_inference_component_with_a_floor_of_zero_instances(platform_synth):
    _, assembly = platform_synth("dev")
    template = assembly.get_stack_by_name("MlAccel-dev-StableDiffusion").template
    variant = _variant(template)
    # A second instance only for an update's new copy beside the running one (SageMaker's own update, copy floor 0).
    assert variant["ManagedInstanceScaling"] == {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 2}
    assert variant["InstanceType"] == "ml.inf2.xlarge" and "ModelName" not in variant
    (component,) = resources_of_type(template, "AWS::SageMaker::InferenceComponent").values()
    requirements = component["Properties"]["Specification"]["ComputeResourceRequirements"]
    # inf2.xlarge has one accelerator device (an Inferentia2 chip) holding the 2 NeuronCores that
    # tensor_parallel_degree=2 needs: SageMaker counts devices, so 2 could never be placed. Half of its 16 GiB.
    assert requirements == {"NumberOfAcceleratorDevicesRequired": 1, "MinMemoryRequiredInMb": 8192}
    startup = component["Properties"]["Specification"]["StartupParameters"]
    assert startup == {"ContainerStartupHealthCheckTimeoutInSeconds": 360, "ModelDataDownloadTimeoutInSeconds": 600}
    (target,) = resources_of_type(template, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (0, 1)
    assert any(a["Properties"].get("MetricName") == "NoCapacityInvocationFailures"
               for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values())


def test_prod_keeps_instances_unless_a_model_turns_components_on(platform_synth):
    _, assembly = platform_synth("prod")
    for stack in ("MlAccel-prod-StableDiffusion", "MlAccel-prod-Llm"):
        assert not resources_of_type(assembly.get_stack_by_name(stack).template, "AWS::SageMaker::InferenceComponent")
    _, assembly = platform_synth("prod", **{"llm__models__opt-30b__hosting__mode": "inference-components"})
    template = assembly.get_stack_by_name("MlAccel-prod-Llm").template
    (component,) = resources_of_type(template, "AWS::SageMaker::InferenceComponent").values()
    assert component["Properties"]["Specification"]["ComputeResourceRequirements"] == {
        "NumberOfAcceleratorDevicesRequired": 4, "MinMemoryRequiredInMb": 196608}  # g5.24xlarge: 4 GPUs, 384 GiB
    variants = [v["Properties"]["ProductionVariants"][0]
                for v in resources_of_type(template, "AWS::SageMaker::EndpointConfig").values()]
    assert sorted("ManagedInstanceScaling" in v for v in variants) == [False, True]  # bloom keeps its instance


@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        ({"stable_diffusion.hosting.min_instances": "0"}, "stable_diffusion.hosting.min_instances",
         "got 0 with mode 'instances'; allowed: unset, or mode = 'inference-components'"),
        ({"stable_diffusion.hosting.mode": "inference-components", "stable_diffusion.hosting.accelerators_per_copy": "4"},
         "stable_diffusion.hosting.accelerators_per_copy", "got 4, allowed: at most 1 (the accelerator devices"),
        ({"stable_diffusion.hosting.mode": "inference-components", "stable_diffusion.hosting.memory_per_copy_mb": "20000"},
         "stable_diffusion.hosting.memory_per_copy_mb", "got 20000, allowed: at most 16384"),
        ({"stable_diffusion.hosting.mode": "inference-components", "stable_diffusion.hosting.max_copies": "3"},
         "stable_diffusion.hosting.max_copies", "got 3, allowed: at most 2 (2 x ml.inf2.xlarge hold 1 copies each)"),
        ({"stable_diffusion.hosting.mode": "inference-components", "stable_diffusion.autoscaling.enabled": "true"},
         "stable_diffusion.autoscaling.enabled", "got true with hosting.mode 'inference-components'"),
        ({"stable_diffusion.hosting.mode": "inference-components", "stable_diffusion.hosting.min_instances": "3"},
         "stable_diffusion.hosting.min_instances", "got 3, allowed: at most max_instances (2)"),
        ({"stable_diffusion.hosting.mode": "inference-components", "stable_diffusion.hosting.copies": "2"},
         "stable_diffusion.hosting.copies", "got 2, allowed: at most 1 (max_copies unset: half of what max_instances = 2 "
         "x ml.inf2.xlarge hold"),
    ],
)
def test_hosting_mistakes_name_key_value_allowed_and_source(overrides, key, message):
    with pytest.raises(ConfigError) as err:
        load_config("prod", overrides=overrides)
    problems = {p.path: p for p in err.value.problems}
    assert key in problems, str(err.value)
    assert message in problems[key].message
    assert problems[key].source.startswith("-c set:")



def test_dev_llms_idle_at_zero_instances_when_turned_on(platform_synth):
    _, assembly = platform_synth("dev", llm__enabled="true")
    template = assembly.get_stack_by_name("MlAccel-dev-Llm").template
    variants = [c["Properties"]["ProductionVariants"][0]
                for c in resources_of_type(template, "AWS::SageMaker::EndpointConfig").values()]
    assert sorted(v["InstanceType"] for v in variants) == ["ml.g5.24xlarge", "ml.p4de.24xlarge"]
    assert all(v["ManagedInstanceScaling"]["MinInstanceCount"] == 0 for v in variants)
    accelerators = sorted(c["Properties"]["Specification"]["ComputeResourceRequirements"]["NumberOfAcceleratorDevicesRequired"]
                          for c in resources_of_type(template, "AWS::SageMaker::InferenceComponent").values())
    assert accelerators == [4, 8]  # tensor_parallel_degree of OPT-30B and BLOOM-176B
    # The current LMI image's CUDA needs the newer host AMI; without it the instances never start the container.
    assert [v.get("InferenceAmiVersion") for v in variants] == ["al2-ami-sagemaker-inference-gpu-2-1"] * 2
