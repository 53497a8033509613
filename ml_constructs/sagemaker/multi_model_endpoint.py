"""A SageMaker multi-model endpoint: many ``.tar.gz`` models under one S3 prefix.

Contract for whoever publishes models: each model is one object
``<prefix><name>.tar.gz`` under the endpoint's prefix; clients invoke with
``TargetModel="<name>.tar.gz"`` (the key relative to the prefix). SageMaker
loads a model on its first invocation, keeps hot models in memory, and
unloads idle ones. A new object is servable without redeploying; replacing an
object in place is not picked up by instances that already loaded it (publish
a new key instead).
"""
from __future__ import annotations

from typing import Mapping

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from ml_constructs.sagemaker.endpoint_base import EndpointOptions, SageMakerEndpointBase, VariantSettings, parse_instance
from ml_constructs.sagemaker.images import ContainerImage
from ml_constructs.sagemaker.model_data import ModelData
from ml_constructs.sagemaker.monitoring import INSTANCE_NAMESPACE
from ml_constructs.sagemaker.validation import Problems


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

    Default settings: model cache enabled; the real-time endpoint's defaults.

    Creates what :class:`RealtimeEndpoint` creates, plus ``metric_model_cache_hit``,
    ``metric_model_loading_wait_time``, ``metric_model_loading_time`` and
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
