"""Multi-node training on AWS Trainium with AWS Batch (workload W4).

Reusable pieces, each usable on its own: :class:`ClusterNetwork` (one-AZ private VPC
with an EFA security group and the node containers' rules), :class:`EfaLaunchTemplate`,
:class:`TrainiumComputeEnvironment`, :class:`SingleNodeComputeEnvironment`,
:class:`FairShareJobQueue`, :class:`TrainiumJobDefinitions`, :class:`TrainingPipeline`
and :class:`TrainingMonitoring`.
The container runtime shipped with them lives in ``runtime/``.

Names are imported on first use, so the pure modules (``limits``,
``retry``, ``instances``, ``runtime``) load without CDK (``config`` uses them).
"""
from __future__ import annotations

from ml_constructs._lazy import lazy_getattr

_EXPORTS = {
    "NEURON_AMI_PARAMETER": "compute",
    "TrainiumComputeEnvironment": "compute",
    "SingleNodeComputeEnvironment": "compute",
    "TrainingMonitoring": "monitoring",
    "TRAINIUM_INSTANCES": "instances",
    "TrainiumInstance": "instances",
    "trainium_instance": "instances",
    "TrainingJobSettings": "job_definitions",
    "TrainingLocations": "job_definitions",
    "TrainiumJobDefinitions": "job_definitions",
    "EfaLaunchTemplate": "launch_template",
    "ClusterNetwork": "network",
    "ExistingVpc": "network",
    "TrainingPipeline": "pipeline",
    "FairShareJobQueue": "queue",
    "RetryRule": "retry",
    "default_retry_rules": "retry",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
