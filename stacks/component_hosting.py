"""A workload section's ``hosting`` table -> an :class:`InferenceComponentEndpoint` (one component),
and its ``async_inference`` table -> :class:`AsyncInference` on the real-time endpoint.

Used by the Stable Diffusion and LLM stacks when ``hosting.mode = "inference-components"``;
the configuration has already checked the rules that need the instance type
(config/hosting.py), the construct checks them again for direct users.
"""
from __future__ import annotations

from typing import Any, Mapping

from aws_cdk import aws_kms as kms
from constructs import Construct

from config.hosting import HostingConfig, resolve_component
from ml_constructs.sagemaker import ContainerImage, ModelData, has_local_nvme
from ml_constructs.sagemaker.async_inference import AsyncInference, AsyncSettings
from ml_constructs.sagemaker.inference_components import (
    ComponentSpec,
    CopyScaling,
    InferenceComponentEndpoint,
    ManagedInstances,
)
from ml_constructs.storage import ArtifactLocation, ArtifactLocations
from stacks.inference_common import VariantConfig

COMPONENT_NAME = "Model"


def component_endpoint(
    scope: Construct,
    construct_id: str,
    section: VariantConfig,
    hosting: HostingConfig,
    *,
    image: ContainerImage,
    model_data: ModelData,
    environment: Mapping[str, str],
    key: kms.IKey | None,
    tensor_parallel_degree: int | None,
    model_latency_p99_ms: float,
) -> InferenceComponentEndpoint:
    """One model as an inference component on an endpoint that scales between the hosting table's bounds."""
    resolved = resolve_component(hosting, section.instance_type)
    if resolved is None:
        raise ValueError(f"hosting: {section.instance_type} is not in the instance catalogue "
                         "(ml_constructs/sagemaker/instances.py); inference components need its accelerators and memory")
    return InferenceComponentEndpoint(
        scope,
        construct_id,
        instances=ManagedInstances(
            section.instance_type,
            min_instances=hosting.floor_instances,
            max_instances=hosting.max_instances,
            initial_instance_count=max(1, hosting.floor_instances),
            volume_size_gb=section.volume_size_gb,
            routing=hosting.routing,
            # The LLM models have one (the current runtime's CUDA needs a newer host driver); SD does not.
            inference_ami_version=getattr(section, "inference_ami_version", None),
        ),
        components=[ComponentSpec(
            name=COMPONENT_NAME,
            image=image,
            model_data=model_data,
            environment=environment,
            memory_per_copy_mb=resolved.memory_per_copy_mb,
            accelerators_per_copy=resolved.accelerators_per_copy,
            copies=hosting.copies,
            tensor_parallel_degree=tensor_parallel_degree,
            model_data_download_timeout_seconds=section.model_data_download_timeout_seconds,
            container_startup_health_check_timeout_seconds=section.container_startup_health_check_timeout_seconds,
            scaling=CopyScaling(
                min_copies=resolved.min_copies,
                max_copies=resolved.max_copies,
                metric=hosting.scaling_metric,
                target_value=hosting.target_value,
                scale_in_cooldown_seconds=hosting.scale_in_cooldown_seconds,
                scale_out_cooldown_seconds=hosting.scale_out_cooldown_seconds,
            ),
        )],
        volume_kms_key=None if has_local_nvme(section.instance_type) else key,
        model_latency_p99_ms=model_latency_p99_ms,
    )


def async_inference(scope: Construct, config: Any, endpoint: Any, locations: ArtifactLocations) -> AsyncInference | None:
    """``config.async_inference`` on the section's real-time endpoint; requests and results under
    ``async-inference/`` of the models bucket (its key encrypts results)."""
    settings = config.async_inference
    if not settings.enabled:
        return None
    io = ArtifactLocation(locations.model_packages.bucket, "async-inference/",
                          "asynchronous inference requests and results", locations.model_packages.key)
    return AsyncInference(scope, "Async", endpoint=endpoint, io=io, settings=AsyncSettings(
        max_concurrent_invocations_per_instance=settings.max_concurrent_invocations_per_instance,
        min_instances=settings.min_instances,
        max_instances=settings.max_instances,
        target_backlog_per_instance=settings.target_backlog_per_instance,
        scale_in_cooldown_seconds=settings.scale_in_cooldown_seconds,
        scale_out_cooldown_seconds=settings.scale_out_cooldown_seconds,
        notifications=settings.notifications,
    ))
