"""The instance catalogue encodes docs/aws-limits.md (accelerators, NVMe storage, burstable, vCPUs)."""
from __future__ import annotations

import pytest

from ml_constructs.sagemaker import InstanceType, accelerator_count, has_local_nvme
from ml_constructs.sagemaker.instances import UnknownInstanceType


@pytest.mark.parametrize(
    ("instance_type", "count"),
    [
        ("ml.inf2.xlarge", 2), ("ml.inf2.8xlarge", 2), ("ml.inf2.24xlarge", 12), ("ml.inf2.48xlarge", 24),
        ("ml.p4d.24xlarge", 8), ("ml.g5.xlarge", 1), ("ml.g5.16xlarge", 1), ("ml.g5.12xlarge", 4),
        ("ml.g5.24xlarge", 4), ("ml.g5.48xlarge", 8), ("ml.c5d.18xlarge", 0), ("ml.m5.large", 0), ("ml.t2.medium", 0),
    ],
)
def test_accelerator_counts(instance_type, count):
    assert accelerator_count(instance_type) == count


def test_uncatalogued_accelerator_sizes_are_unknown_not_guessed():
    assert accelerator_count("ml.g5.96xlarge") is None


@pytest.mark.parametrize(
    ("instance_type", "nvme"),
    [
        ("ml.p4d.24xlarge", True), ("ml.c5d.18xlarge", True), ("ml.m5d.xlarge", True), ("ml.r5d.large", True),
        ("ml.g4dn.xlarge", True), ("ml.g5.24xlarge", True), ("ml.g6.xlarge", True), ("ml.p5.48xlarge", True),
        ("ml.trn1.32xlarge", True), ("ml.inf2.xlarge", False), ("ml.m5.xlarge", False), ("ml.c5.xlarge", False),
    ],
)
def test_local_nvme_rule(instance_type, nvme):
    assert has_local_nvme(instance_type) is nvme


def test_kinds_vcpus_and_burstable():
    assert InstanceType.parse("ml.inf2.xlarge").accelerator_kind == "neuron_core"
    assert InstanceType.parse("ml.p4d.24xlarge").accelerator_kind == "gpu"
    assert InstanceType.parse("ml.c5d.18xlarge").is_cpu_only
    assert InstanceType.parse("ml.t3.medium").is_burstable and not InstanceType.parse("ml.trn1.2xlarge").is_burstable
    assert [InstanceType.parse(f"ml.c5d.{s}").vcpus for s in ("large", "xlarge", "2xlarge", "18xlarge")] == [2, 4, 8, 72]
    assert InstanceType.parse("ml.p4d.24xlarge").vcpus == 96


@pytest.mark.parametrize("bad", ["inf2.xlarge", "ml.inf2", "ml..xlarge", "ML.INF2.XLARGE"])
def test_malformed_instance_types_are_rejected(bad):
    with pytest.raises(UnknownInstanceType, match="ml.<family>.<size>"):
        InstanceType.parse(bad)


@pytest.mark.parametrize(
    ("instance_type", "neuron_cores", "devices"),
    # Neuron docs (Inferentia2 / Trainium architecture): 2 NeuronCore-v2 per chip; AWS's SageMaker tooling
    # counts accelerator devices as chips (trn1.32xlarge: 16 devices x 2 cores).
    [("ml.inf2.xlarge", 2, 1), ("ml.inf2.8xlarge", 2, 1), ("ml.inf2.24xlarge", 12, 6), ("ml.inf2.48xlarge", 24, 12),
     ("ml.trn1.2xlarge", 2, 1), ("ml.trn1.32xlarge", 32, 16), ("ml.g5.12xlarge", 4, 4), ("ml.m5.xlarge", 0, 0)],
)
def test_neuron_cores_and_accelerator_devices_are_kept_apart(instance_type, neuron_cores, devices):
    instance = InstanceType.parse(instance_type)
    assert (instance.accelerator_count, instance.accelerator_devices) == (neuron_cores, devices)
