"""Metrics and alarms of one SageMaker endpoint variant.

Two namespaces: ``AWS/SageMaker`` (invocations, errors, latencies in
microseconds, multi-model loading) and ``/aws/sagemaker/Endpoints`` (instance
utilisation). CPU and GPU utilisation are summed over vCPUs / GPUs
(0-100 x count), so their thresholds are scaled by the instance's counts.
"""
from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from ml_constructs.sagemaker.instances import InstanceType

INVOCATION_NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
# The alarms a deployment rolls back on: the endpoint's own errors and latency.
ROLLBACK_ALARMS = ("Errors5xx", "ModelLatencyP99")


@dataclass(frozen=True)
class EndpointAlarms:
    """Alarm thresholds; an alarm is created for each utilisation the instance reports.

    Default settings: 5XX errors >= 1 in 3 of 3 five-minute periods; model
    latency p99 above ``model_latency_p99_ms`` for 3 periods; CPU (per vCPU),
    memory and disk above 90 %; GPU and GPU memory (per GPU) above 95 % on
    GPU instances. Missing data is not breaching (an idle endpoint is healthy).
    """

    model_latency_p99_ms: float = 1000.0
    errors_5xx: int = 1
    cpu_percent: float = 90.0
    memory_percent: float = 90.0
    disk_percent: float = 90.0
    gpu_percent: float = 95.0
    gpu_memory_percent: float = 95.0
    evaluation_periods: int = 3
    period_seconds: int = 300


class VariantMetrics:
    """``metric_*`` helpers for one endpoint variant (mixed into the endpoint constructs)."""

    endpoint_name: str
    variant_name: str

    def metric(self, metric_name: str, *, namespace: str = INVOCATION_NAMESPACE, statistic: str = "Sum",
               period: cdk.Duration | None = None) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=namespace,
            metric_name=metric_name,
            dimensions_map={"EndpointName": self.endpoint_name, "VariantName": self.variant_name},
            statistic=statistic,
            period=period or cdk.Duration.minutes(5),
        )

    def metric_invocations(self) -> cloudwatch.Metric:
        return self.metric("Invocations")

    def metric_invocations_per_instance(self) -> cloudwatch.Metric:
        """The metric the autoscaling policy tracks (per instance per minute)."""
        return self.metric("InvocationsPerInstance", period=cdk.Duration.minutes(1))

    def metric_5xx_errors(self) -> cloudwatch.Metric:
        return self.metric("Invocation5XXErrors")

    def metric_4xx_errors(self) -> cloudwatch.Metric:
        return self.metric("Invocation4XXErrors")

    def metric_model_latency(self, statistic: str = "p99") -> cloudwatch.Metric:
        """Time the model container took, in microseconds."""
        return self.metric("ModelLatency", statistic=statistic)

    def metric_overhead_latency(self, statistic: str = "p99") -> cloudwatch.Metric:
        return self.metric("OverheadLatency", statistic=statistic)

    def metric_cpu_utilization(self) -> cloudwatch.Metric:
        """Summed over vCPUs: 0-100 x vCPUs."""
        return self.metric("CPUUtilization", namespace=INSTANCE_NAMESPACE, statistic="Average")

    def metric_memory_utilization(self) -> cloudwatch.Metric:
        return self.metric("MemoryUtilization", namespace=INSTANCE_NAMESPACE, statistic="Average")

    def metric_disk_utilization(self) -> cloudwatch.Metric:
        return self.metric("DiskUtilization", namespace=INSTANCE_NAMESPACE, statistic="Average")

    def metric_gpu_utilization(self) -> cloudwatch.Metric:
        """Summed over GPUs: 0-100 x GPUs."""
        return self.metric("GPUUtilization", namespace=INSTANCE_NAMESPACE, statistic="Average")

    def metric_gpu_memory_utilization(self) -> cloudwatch.Metric:
        return self.metric("GPUMemoryUtilization", namespace=INSTANCE_NAMESPACE, statistic="Average")


def alarm_name(scope: Construct, name: str) -> str:
    """The fixed name of alarm ``name`` of the endpoint at ``scope`` (unique per stack and path)."""
    return f"{cdk.Names.unique_resource_name(scope, max_length=200, separator='-')}-{name}"


def create_alarms(
    scope: Construct, metrics: VariantMetrics, instance: InstanceType | None, settings: EndpointAlarms
) -> dict[str, cloudwatch.Alarm]:
    """5XX, model latency p99, and the utilisation alarms ``instance`` reports.

    Alarm names are fixed (derived from the construct path): the endpoint's
    ``AutoRollbackConfiguration`` names them, while the alarms' dimensions name
    the endpoint, so a generated name would make the two depend on each other.
    """
    period = cdk.Duration.seconds(settings.period_seconds)
    wanted: dict[str, tuple[cloudwatch.Metric, float, str]] = {
        "Errors5xx": (metrics.metric_5xx_errors().with_(period=period), settings.errors_5xx, "5XX errors returned"),
        "ModelLatencyP99": (
            metrics.metric_model_latency("p99").with_(period=period),
            settings.model_latency_p99_ms * 1000,  # the metric is in microseconds
            f"model latency p99 above {settings.model_latency_p99_ms:g} ms",
        ),
        "MemoryUtilization": (metrics.metric_memory_utilization().with_(period=period), settings.memory_percent,
                              f"memory above {settings.memory_percent:g} %"),
        "DiskUtilization": (metrics.metric_disk_utilization().with_(period=period), settings.disk_percent,
                            f"disk above {settings.disk_percent:g} %"),
    }
    if instance is not None and instance.vcpus:
        wanted["CpuUtilization"] = (
            metrics.metric_cpu_utilization().with_(period=period),
            settings.cpu_percent * instance.vcpus,
            f"CPU above {settings.cpu_percent:g} % of {instance.vcpus} vCPUs",
        )
    if instance is not None and instance.accelerator_kind == "gpu" and instance.accelerator_count:
        gpus = instance.accelerator_count
        wanted["GpuUtilization"] = (metrics.metric_gpu_utilization().with_(period=period),
                                    settings.gpu_percent * gpus, f"GPU above {settings.gpu_percent:g} % of {gpus} GPUs")
        wanted["GpuMemoryUtilization"] = (
            metrics.metric_gpu_memory_utilization().with_(period=period),
            settings.gpu_memory_percent * gpus,
            f"GPU memory above {settings.gpu_memory_percent:g} % of {gpus} GPUs",
        )
    return {
        name: metric.create_alarm(
            scope,
            name,
            threshold=threshold,
            evaluation_periods=settings.evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            if name == "Errors5xx"
            else cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"SageMaker endpoint {description}",
            alarm_name=alarm_name(scope, name),
        )
        for name, (metric, threshold, description) in wanted.items()
    }
