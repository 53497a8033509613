"""What each supported Trainium instance type offers (docs/aws-limits.md: AWS Batch on Trainium)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainiumInstance:
    """Hardware of one instance type, as the launch template and job definitions need it."""

    name: str
    vcpus: int
    memory_gib: int
    neuron_devices: int
    efa_interfaces: int  # one per network card
    job_memory_gib: int = 0  # what a job may reserve (the ECS agent and OS keep the rest)

    @property
    def neuron_device_paths(self) -> tuple[str, ...]:
        return tuple(f"/dev/neuron{i}" for i in range(self.neuron_devices))

    @property
    def efa_device_paths(self) -> tuple[str, ...]:
        return tuple(f"/dev/infiniband/uverbs{i}" for i in range(self.efa_interfaces))


TRAINIUM_INSTANCES: dict[str, TrainiumInstance] = {
    "trn1.32xlarge": TrainiumInstance("trn1.32xlarge", 128, 512, neuron_devices=16, efa_interfaces=8, job_memory_gib=480),
    "trn1n.32xlarge": TrainiumInstance("trn1n.32xlarge", 128, 512, neuron_devices=16, efa_interfaces=16, job_memory_gib=480),
    # One Trainium device (2 NeuronCores), no EFA: evaluation and batch inference.
    "trn1.2xlarge": TrainiumInstance("trn1.2xlarge", 8, 32, neuron_devices=1, efa_interfaces=0, job_memory_gib=28),
}
MULTI_NODE_INSTANCES = ("trn1.32xlarge", "trn1n.32xlarge")


def trainium_instance(name: str) -> TrainiumInstance:
    try:
        return TRAINIUM_INSTANCES[name]
    except KeyError:
        raise ValueError(f"instance type {name!r} is not supported; allowed: {', '.join(TRAINIUM_INSTANCES)}") from None
