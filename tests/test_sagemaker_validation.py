"""Every synth-time rule of the endpoint constructs fails with setting, value and what is allowed."""
from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms

from ml_constructs.sagemaker import (
    ContainerImage,
    EndpointOptions,
    EndpointValidationError,
    InvocationScaling,
    ModelData,
    MultiModelEndpoint,
    VariantSettings,
)
from tests.sagemaker_fixtures import LMI, bare_stack, realtime, weights_location

DJL_CPU = ContainerImage.deep_learning_container("djl-inference", "0.23.0-cpu-full")


def scaling(**overrides) -> InvocationScaling:
    return InvocationScaling(**{"min_capacity": 1, "max_capacity": 4, "max_rps_per_instance": 2.0, **overrides})


def failure(build) -> str:
    with pytest.raises(EndpointValidationError) as exc:
        build(bare_stack())
    assert isinstance(exc.value, ValueError)
    return str(exc.value)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"instance_type": "ml.inf2.xlarge", "volume_size_gb": 0}, "volume_size_gb: got 0, allowed: 1 to 512"),
        ({"instance_type": "ml.inf2.xlarge", "volume_size_gb": 513}, "volume_size_gb: got 513, allowed: 1 to 512"),
        ({"model_data_download_timeout_seconds": 59}, "model_data_download_timeout_seconds: got 59, allowed: 60 to 3600"),
        ({"model_data_download_timeout_seconds": 3601}, "model_data_download_timeout_seconds: got 3601, allowed: 60 to 3600"),
        (
            {"container_startup_health_check_timeout_seconds": 30},
            "container_startup_health_check_timeout_seconds: got 30, allowed: 60 to 3600",
        ),
        (
            {"container_startup_health_check_timeout_seconds": 4000},
            "container_startup_health_check_timeout_seconds: got 4000, allowed: 60 to 3600",
        ),
        ({"initial_instance_count": 0}, "initial_instance_count: got 0, allowed: 1 or more"),
        ({"instance_type": "inf2.xlarge"}, "instance_type: got 'inf2.xlarge', allowed: ml.<family>.<size>"),
    ],
)
def test_variant_ranges(kwargs, expected):
    assert expected in failure(lambda s: realtime(s, **kwargs))


@pytest.mark.parametrize("instance_type", ["ml.p4d.24xlarge", "ml.g5.24xlarge", "ml.c5d.18xlarge", "ml.m5d.large",
                                           "ml.p5.48xlarge", "ml.g6.xlarge", "ml.trn1.32xlarge"])
def test_no_volume_size_on_local_nvme_instances(instance_type):
    message = failure(lambda s: realtime(s, instance_type=instance_type, volume_size_gb=100))
    assert f"volume_size_gb: got 100, allowed: not set: {instance_type} has local NVMe instance storage" in message


def test_no_kms_key_on_local_nvme_instances():
    def build(stack):
        key = kms.Key(stack, "Key", enable_key_rotation=True)
        return realtime(stack, instance_type="ml.p4d.24xlarge", options=EndpointOptions(volume_kms_key=key))

    assert "volume_kms_key: got 'a KMS key', allowed: not set: ml.p4d.24xlarge has local NVMe" in failure(build)


@pytest.mark.parametrize(
    ("instance_type", "degree", "expected"),
    [
        ("ml.inf2.xlarge", 4, "tensor_parallel_degree: got 4, allowed: at most 2 (ml.inf2.xlarge has 2 NeuronCores)"),
        ("ml.inf2.48xlarge", 32, "at most 24 (ml.inf2.48xlarge has 24 NeuronCores)"),
        ("ml.p4d.24xlarge", 16, "tensor_parallel_degree: got 16, allowed: at most 8 (ml.p4d.24xlarge has 8 GPUs)"),
        ("ml.g5.24xlarge", 8, "at most 4 (ml.g5.24xlarge has 4 GPUs)"),
        ("ml.g5.2xlarge", 2, "at most 1 (ml.g5.2xlarge has 1 GPUs)"),
        ("ml.m5.xlarge", 2, "tensor_parallel_degree: got 2, allowed: 1 (ml.m5.xlarge has no accelerators)"),
        ("ml.g5.24xlarge", 0, "tensor_parallel_degree: got 0, allowed: 1 or more"),
    ],
)
def test_tensor_parallel_degree_fits_the_accelerators(instance_type, degree, expected):
    assert expected in failure(lambda s: realtime(s, instance_type=instance_type, tensor_parallel_degree=degree))


def test_tensor_parallel_degree_equal_to_the_accelerators_is_accepted():
    stack = bare_stack()
    assert realtime(stack, instance_type="ml.p4d.24xlarge", tensor_parallel_degree=8).tensor_parallel_degree == 8


def test_uncompressed_prefix_must_end_with_a_slash():
    def build(stack):
        location = weights_location(stack)
        bad = ModelData(location.s3_url.rstrip("/"), "uncompressed_prefix", location.grant_read)
        return realtime(stack, model_data=bad)

    assert "model data S3 prefix URI: got 's3://models-bucket/weights/opt', allowed: an S3 prefix URI ending with '/'" in failure(build)


@pytest.mark.parametrize(
    ("initial", "scale", "expected"),
    [
        (1, {"min_capacity": 2, "max_capacity": 4}, "initial_instance_count: got 1, allowed: min_capacity <= initial_instance_count <= max_capacity (2 <= 1 <= 4)"),
        (5, {"min_capacity": 1, "max_capacity": 4}, "(1 <= 5 <= 4)"),
        (1, {"min_capacity": 0}, "autoscaling.min_capacity: got 0, allowed: 1 or more"),
        (1, {"max_rps_per_instance": 0}, "autoscaling.max_rps_per_instance: got 0, allowed: a number above 0"),
        (1, {"safety_factor": 1.5}, "autoscaling.safety_factor: got 1.5, allowed: above 0 and at most 1"),
        (1, {"scale_in_cooldown_seconds": -1}, "autoscaling.scale_in_cooldown_seconds: got -1, allowed: 0 to 86400"),
    ],
)
def test_autoscaling_capacities(initial, scale, expected):
    message = failure(
        lambda s: realtime(s, initial_instance_count=initial, options=EndpointOptions(autoscaling=scaling(**scale)))
    )
    assert expected in message


def test_burstable_instances_cannot_autoscale():
    message = failure(lambda s: realtime(s, instance_type="ml.t2.medium", options=EndpointOptions(autoscaling=scaling())))
    assert "instance_type: got 'ml.t2.medium', allowed: a non-burstable instance type (ml.t* cannot autoscale)" in message


def test_burstable_instance_without_autoscaling_is_accepted():
    assert realtime(bare_stack(), instance_type="ml.t2.medium").scalable_target is None


def test_all_problems_of_one_construct_are_reported_together():
    message = failure(
        lambda s: realtime(
            s, instance_type="ml.p4d.24xlarge", volume_size_gb=600, tensor_parallel_degree=9,
            container_startup_health_check_timeout_seconds=10,
        )
    )
    assert message.startswith("Test/Endpoint: 4 invalid setting(s)")
    for setting in ("volume_size_gb: got 600, allowed: 1 to 512", "volume_size_gb: got 600, allowed: not set",
                    "tensor_parallel_degree: got 9", "container_startup_health_check_timeout_seconds: got 10"):
        assert setting in message


def test_multi_model_prefix_is_rejected_for_a_real_time_endpoint():
    message = failure(lambda s: realtime(s, model_data=ModelData.multi_model_prefix(weights_location(s))))
    assert "model_data: got 'a multi-model prefix', allowed: a .tar.gz or an uncompressed prefix" in message


def mme(stack, instance_type="ml.c5.xlarge", model_data=None):
    return MultiModelEndpoint(
        stack, "Mme", image=DJL_CPU, model_data=model_data or ModelData.multi_model_prefix(weights_location(stack, "mm/")),
        variant=VariantSettings(instance_type=instance_type),
    )


@pytest.mark.parametrize("instance_type", ["ml.inf2.xlarge", "ml.trn1.2xlarge", "ml.g5.xlarge", "ml.p4d.24xlarge"])
def test_multi_model_endpoints_run_on_cpu_instances_only(instance_type):
    message = failure(lambda s: mme(s, instance_type))
    assert f"instance_type: got '{instance_type}', allowed: a CPU instance type" in message


def test_multi_model_endpoints_reject_uncompressed_model_data():
    message = failure(lambda s: mme(s, model_data=ModelData.from_s3_prefix(weights_location(s))))
    assert "model_data: got 'uncompressed_prefix', allowed: ModelData.multi_model_prefix" in message
    assert "uncompressed model data is not allowed for multi-model endpoints" in message


def test_multi_model_prefix_must_end_with_a_slash():
    def build(stack):
        location = weights_location(stack, "mm/")
        return mme(stack, model_data=ModelData("s3://models-bucket/mm", "model_prefix", location.grant_read))

    assert "model data S3 prefix URI: got 's3://models-bucket/mm', allowed: an S3 prefix URI ending with '/'" in failure(build)


def test_unresolved_tokens_are_not_checked():
    stack = bare_stack()
    size = cdk.CfnParameter(stack, "Size", type="Number").value_as_number
    degree = cdk.CfnParameter(stack, "Degree", type="Number").value_as_number
    kind = cdk.CfnParameter(stack, "Kind").value_as_string
    url = cdk.CfnParameter(stack, "Url").value_as_string
    location = weights_location(stack)
    endpoint = realtime(
        stack, instance_type=kind, volume_size_gb=size, tensor_parallel_degree=degree,
        model_data=ModelData(url, "uncompressed_prefix", location.grant_read),
    )
    assert endpoint.instance is None  # unknown until deploy time: no catalogue rule applies


def test_image_tags_must_be_plain_tags():
    with pytest.raises(ValueError, match="image tag: got 'djl:1', allowed: a plain tag"):
        ContainerImage.deep_learning_container("djl-inference", "djl:1")


def test_unknown_dlc_region_is_reported():
    stack = bare_stack(env=cdk.Environment(account="123456789012", region="xx-nowhere-1"))
    with pytest.raises(ValueError, match="no known registry account in region 'xx-nowhere-1'"):
        realtime(stack, image=LMI)


def test_tarball_model_data_must_be_one_object():
    message = failure(lambda s: realtime(s, model_data=ModelData.from_s3_url("s3://other/models/")))
    assert "model data URL: got 's3://other/models/', allowed: one S3 object (a .tar.gz), not a prefix" in message


def test_literal_model_data_urls_must_be_s3_urls():
    with pytest.raises(ValueError, match=r"S3 URL: got 'https://x/m.tar.gz', allowed: s3://<bucket>/<key or prefix>"):
        ModelData.from_s3_url("https://x/m.tar.gz")
