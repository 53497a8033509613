"""Multi-node training on AWS Trainium with AWS Batch (workload W4).

Reusable pieces, each usable on its own: :class:`ClusterNetwork` (one-AZ private VPC
with an EFA security group), :class:`EfaLaunchTemplate`, :class:`TrainiumComputeEnvironment`,
:class:`FairShareJobQueue`, :class:`TrainiumJobDefinitions` and :class:`TrainingPipeline`.
The container runtime shipped with them lives in ``runtime/``.
"""
from ml_constructs.trainium_batch.compute import NEURON_AMI_PARAMETER, TrainiumComputeEnvironment
from ml_constructs.trainium_batch.instances import TRAINIUM_INSTANCES, TrainiumInstance, trainium_instance
from ml_constructs.trainium_batch.job_definitions import TrainingJobSettings, TrainingLocations, TrainiumJobDefinitions
from ml_constructs.trainium_batch.launch_template import EfaLaunchTemplate
from ml_constructs.trainium_batch.network import ClusterNetwork, ExistingVpc
from ml_constructs.trainium_batch.pipeline import TrainingPipeline
from ml_constructs.trainium_batch.queue import FairShareJobQueue
from ml_constructs.trainium_batch.retry import RetryRule, default_retry_rules

__all__ = [
    "NEURON_AMI_PARAMETER",
    "TRAINIUM_INSTANCES",
    "ClusterNetwork",
    "EfaLaunchTemplate",
    "ExistingVpc",
    "FairShareJobQueue",
    "RetryRule",
    "TrainingJobSettings",
    "TrainingLocations",
    "TrainingPipeline",
    "TrainiumComputeEnvironment",
    "TrainiumInstance",
    "TrainiumJobDefinitions",
    "default_retry_rules",
    "trainium_instance",
]
