"""A SageMaker multi-model endpoint: many ``.tar.gz`` models under one S3 prefix.

Contract for whoever publishes models: each model is one object
``<prefix><name>.tar.gz`` under the endpoint's prefix; clients invoke with
``TargetModel="<name>.tar.gz"`` (the key relative to the prefix). SageMaker
loads a model on its first invocation, keeps hot models in memory, and
unloads idle ones. A new object is servable without redeploying; replacing an
object in place is not picked up by instances that already loaded it (publish
a new key instead).

Telemetry of the model cache (AWS's "Multi-model endpoint metrics"): ``ModelCacheHit``
(Average = share of requests whose model was loaded), ``ModelLoadingWaitTime``,
``ModelDownloadingTime``, ``ModelLoadingTime`` (microseconds, ``AWS/SageMaker``) and
``LoadedModelCount`` (``/aws/sagemaker/Endpoints``). :class:`CacheAlarms` sets the
alarms on them; a CloudWatch dashboard shows them beside invocations and latency.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from ml_constructs.sagemaker.endpoint_base import EndpointOptions, SageMakerEndpointBase, VariantSettings, parse_instance
from ml_constructs.sagemaker.images import ContainerImage
from ml_constructs.sagemaker.model_data import ModelData
from ml_constructs.sagemaker.monitoring import INSTANCE_NAMESPACE
from ml_constructs.sagemaker.validation import Problems


@dataclass(frozen=True)
class CacheAlarms:
    """Thresholds of the model-cache alarms (missing data is not breaching: no traffic, no alarm).

    Default settings: ModelCacheHit average under 0.5 for 3 of 3 five-minute periods (most
    requests wait for a load: too many models for the instances' memory, or a traffic pattern
    that defeats the cache); ModelLoadingWaitTime p99 above 5 s and ModelDownloadingTime p99
    above 3 s for 3 periods (cold starts slow enough that clients time out or retry).
    """

    cache_hit_min: float = 0.5
    loading_wait_p99_ms: float = 5000.0
    downloading_p99_ms: float = 3000.0
    evaluation_periods: int = 3
    period_seconds: int = 300


class MultiModelEndpoint(SageMakerEndpointBase):
    """``Mode=MultiModel`` with ``ModelDataUrl`` = an S3 prefix, on CPU instances.

    Props
      image: a container that implements the multi-model contract (DJL Serving CPU).
      model_data: ``ModelData.multi_model_prefix(location)``; read is granted on
        that prefix only.
      variant: instance type (CPU families only: Inferentia, Trainium and GPU
        types are rejected) and count, volume, timeouts.
      model_cache: ``ModelCacheSetting`` Enabled (default) keeps loaded models;
        Disabled suits models invoked once.
      environment, options: as for :class:`RealtimeEndpoint`.
      cache_alarms: thresholds of the model-cache alarms (None: none); they are
        created only when ``options.alarms`` is set, like the endpoint's others.
      dashboard: create a CloudWatch dashboard of the variant (default True).

    Default settings: model cache enabled; :class:`CacheAlarms` defaults; a dashboard;
    the real-time endpoint's defaults.

    Creates what :class:`RealtimeEndpoint` creates, with ``alarms`` also holding
    ``ModelCacheHitLow``, ``ModelLoadingWaitP99`` and ``ModelDownloadingP99``, plus
    ``dashboard`` and ``metric_model_cache_hit``, ``metric_model_loading_wait_time``,
    ``metric_model_loading_time``, ``metric_model_downloading_time`` and
    ``metric_loaded_model_count``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        image: ContainerImage,
        model_data: ModelData,
        variant: VariantSettings,
        model_cache: bool = True,
        environment: Mapping[str, str] | None = None,
        options: EndpointOptions | None = None,
        cache_alarms: CacheAlarms | None = CacheAlarms(),
        dashboard: bool = True,
    ) -> None:
        problems = Problems()
        instance = parse_instance(problems, variant.instance_type)
        if instance is not None and not instance.is_cpu_only:
            problems.add(
                "instance_type",
                variant.instance_type,
                "a CPU instance type (multi-model endpoints with this container do not run on Inferentia, "
                "Trainium or GPU instances)",
            )
        if model_data.kind != "model_prefix":
            problems.add(
                "model_data",
                model_data.kind,
                "ModelData.multi_model_prefix (an S3 prefix of .tar.gz models; uncompressed model data is not "
                "allowed for multi-model endpoints)",
            )
        self.model_cache = model_cache
        super().__init__(
            scope,
            construct_id,
            image=image,
            model_data=model_data,
            variant=variant,
            environment=environment,
            options=options or EndpointOptions(),
            container_extra={
                "mode": "MultiModel",
                "multi_model_config": sagemaker.CfnModel.MultiModelConfigProperty(
                    model_cache_setting="Enabled" if model_cache else "Disabled"
                ),
            },
            problems=problems,
            instance=instance,
        )
        self.model_prefix_url = model_data.url
        if cache_alarms is not None and self.alarms:
            self.alarms.update(self._cache_alarms(cache_alarms))
        self.dashboard = self._dashboard() if dashboard else None

    def _cache_alarms(self, settings: CacheAlarms) -> dict[str, cloudwatch.Alarm]:
        period = cdk.Duration.seconds(settings.period_seconds)
        above = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        wanted = {
            "ModelCacheHitLow": (
                self.metric_model_cache_hit().with_(period=period), settings.cache_hit_min,
                cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                f"model cache hit ratio under {settings.cache_hit_min:g}",
            ),
            "ModelLoadingWaitP99": (
                self.metric_model_loading_wait_time("p99").with_(period=period),
                settings.loading_wait_p99_ms * 1000, above,  # microseconds
                f"p99 wait for a cold model above {settings.loading_wait_p99_ms:g} ms",
            ),
            "ModelDownloadingP99": (
                self.metric_model_downloading_time("p99").with_(period=period),
                settings.downloading_p99_ms * 1000, above,
                f"p99 model download above {settings.downloading_p99_ms:g} ms",
            ),
        }
        return {
            name: metric.create_alarm(
                self, name, threshold=threshold, evaluation_periods=settings.evaluation_periods,
                comparison_operator=operator, treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"SageMaker multi-model endpoint {description}",
            )
            for name, (metric, threshold, operator, description) in wanted.items()
        }

    def _dashboard(self) -> cloudwatch.Dashboard:
        """Traffic, latency and the model cache side by side, one row each."""
        def graph(title: str, *metrics: cloudwatch.IMetric, unit: str = "") -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=list(metrics), width=8, left_y_axis=cloudwatch.YAxisProps(
                label=unit, show_units=False) if unit else None)

        dashboard = cloudwatch.Dashboard(self, "Dashboard")
        dashboard.add_widgets(
            graph("Invocations per instance", self.metric_invocations_per_instance()),
            graph("Model latency (us)", self.metric_model_latency("p50"), self.metric_model_latency("p99"), unit="us"),
            graph("Errors", self.metric_4xx_errors(), self.metric_5xx_errors()),
        )
        dashboard.add_widgets(
            graph("ModelCacheHit (share of requests)", self.metric_model_cache_hit()),
            graph("LoadedModelCount (per instance)", self.metric_loaded_model_count()),
            graph("ModelLoadingWaitTime (us)", self.metric_model_loading_wait_time("p50"),
                  self.metric_model_loading_wait_time("p99"), unit="us"),
        )
        dashboard.add_widgets(
            graph("ModelDownloadingTime (us)", self.metric_model_downloading_time("p50"),
                  self.metric_model_downloading_time("p99"), unit="us"),
            graph("ModelLoadingTime (us)", self.metric_model_loading_time("p99"), unit="us"),
            graph("CPU and memory (%)", self.metric_cpu_utilization(), self.metric_memory_utilization()),
        )
        return dashboard

    def metric_model_cache_hit(self) -> cloudwatch.Metric:
        """Average = share of requests whose model was already loaded."""
        return self.metric("ModelCacheHit", statistic="Average")

    def metric_model_loading_wait_time(self, statistic: str = "p99") -> cloudwatch.Metric:
        """Microseconds a request waited for its model to be downloaded and loaded (cold start)."""
        return self.metric("ModelLoadingWaitTime", statistic=statistic)

    def metric_model_loading_time(self, statistic: str = "Average") -> cloudwatch.Metric:
        return self.metric("ModelLoadingTime", statistic=statistic)

    def metric_model_downloading_time(self, statistic: str = "Average") -> cloudwatch.Metric:
        return self.metric("ModelDownloadingTime", statistic=statistic)

    def metric_loaded_model_count(self) -> cloudwatch.Metric:
        return self.metric("LoadedModelCount", namespace=INSTANCE_NAMESPACE, statistic="Average")
