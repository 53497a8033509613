"""Config sections -> endpoint construct settings, shared by the three inference stacks."""
from __future__ import annotations

from typing import Protocol

from aws_cdk import aws_kms as kms

from config.sagemaker_endpoint import AlarmsConfig, AutoscalingConfig
from ml_constructs.sagemaker import EndpointAlarms, EndpointOptions, InvocationScaling, VariantSettings, has_local_nvme


class VariantConfig(Protocol):
    """The production-variant keys every inference config section shares."""

    instance_type: str
    instance_count: int
    volume_size_gb: int | None
    model_data_download_timeout_seconds: int | None
    container_startup_health_check_timeout_seconds: int | None


def variant_settings(config: VariantConfig) -> VariantSettings:
    """``inference_ami_version`` is read where a section has one (the LLM models do)."""
    return VariantSettings(
        instance_type=config.instance_type,
        initial_instance_count=config.instance_count,
        volume_size_gb=config.volume_size_gb,
        model_data_download_timeout_seconds=config.model_data_download_timeout_seconds,
        container_startup_health_check_timeout_seconds=config.container_startup_health_check_timeout_seconds,
        inference_ami_version=getattr(config, "inference_ami_version", None),
    )


def endpoint_options(
    *, instance_type: str, key: kms.IKey | None, alarms: AlarmsConfig, model_latency_p99_ms: float | None = None,
    autoscaling: AutoscalingConfig | None = None,
) -> EndpointOptions:
    """The storage key encrypts the ML volume where the instance type takes one (not on local NVMe)."""
    return EndpointOptions(
        volume_kms_key=None if has_local_nvme(instance_type) else key,
        autoscaling=InvocationScaling(
            min_capacity=autoscaling.min_capacity,
            max_capacity=autoscaling.max_capacity,
            max_rps_per_instance=autoscaling.max_rps_per_instance,
            safety_factor=autoscaling.safety_factor,
            scale_in_cooldown_seconds=autoscaling.scale_in_cooldown_seconds,
            scale_out_cooldown_seconds=autoscaling.scale_out_cooldown_seconds,
        )
        if autoscaling is not None and autoscaling.enabled
        else None,
        alarms=EndpointAlarms(
            model_latency_p99_ms=model_latency_p99_ms or alarms.model_latency_p99_ms,
            errors_5xx=alarms.errors_5xx,
            cpu_percent=alarms.cpu_percent,
            memory_percent=alarms.memory_percent,
            disk_percent=alarms.disk_percent,
            gpu_percent=alarms.gpu_percent,
            gpu_memory_percent=alarms.gpu_memory_percent,
        ),
    )

