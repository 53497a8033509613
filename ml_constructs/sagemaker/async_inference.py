"""Asynchronous invocations of a real-time endpoint: queued requests, results in S3, scale to zero.

``AsyncInference`` turns a :class:`RealtimeEndpoint` into an asynchronous one
(https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference.html): its endpoint config
gets an ``AsyncInferenceConfig`` (results and failures under an S3 prefix, encrypted with
the location's KMS key when it has one; SNS success and error topics, encrypted), and its
variant scales on ``ApproximateBacklogSizePerInstance`` down to zero instances, with a step
policy on ``HasBacklogWithoutCapacity`` that adds an instance when requests wait and none
is running (https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-autoscale.html).
Invocations per instance is the wrong metric here: queued requests are not invocations yet.
"""
from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from ml_constructs.sagemaker.monitoring import INVOCATION_NAMESPACE
from ml_constructs.sagemaker.realtime_endpoint import RealtimeEndpoint
from ml_constructs.sagemaker.scaling import SCALABLE_DIMENSION, service_linked_role
from ml_constructs.sagemaker.validation import Problems
from ml_constructs.storage import ArtifactLocation

MAX_CONCURRENT_INVOCATIONS = (1, 1000)


@dataclass(frozen=True)
class AsyncSettings:
    """Queue processing and backlog scaling.

    Default settings: one request at a time per instance (a Stable Diffusion instance
    renders one image at a time), 0 to 1 instances, 2 queued requests per instance as
    the target, scale in after 600 s, notifications on.
    """

    max_concurrent_invocations_per_instance: int = 1
    min_instances: int = 0
    max_instances: int = 1
    target_backlog_per_instance: float = 2.0
    scale_in_cooldown_seconds: int = 600
    scale_out_cooldown_seconds: int = 60
    notifications: bool = True


class AsyncInference(Construct):
    """Asynchronous inference on ``endpoint``, with requests and results under ``io``.

    Creates ``requests`` (where callers upload inputs), ``responses`` and ``failures``
    (``S3OutputPath``/``S3FailurePath``), ``success_topic``/``error_topic`` (with
    notifications), ``scalable_target`` and ``wake_alarm`` (HasBacklogWithoutCapacity).
    The endpoint must have no invocation autoscaling of its own.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, endpoint: RealtimeEndpoint, io: ArtifactLocation,
        settings: AsyncSettings = AsyncSettings(),
    ) -> None:
        super().__init__(scope, construct_id)
        problems = Problems()
        if endpoint.scalable_target is not None:
            problems.add("endpoint autoscaling", "invocations per instance",
                         "none: an asynchronous endpoint scales on its backlog (AsyncSettings)")
        problems.in_range("max_concurrent_invocations_per_instance", settings.max_concurrent_invocations_per_instance,
                          *MAX_CONCURRENT_INVOCATIONS)
        if not 0 <= settings.min_instances <= settings.max_instances or settings.max_instances < 1:
            problems.add("min_instances/max_instances", (settings.min_instances, settings.max_instances),
                         "0 <= min_instances <= max_instances, max_instances >= 1")
        if settings.target_backlog_per_instance <= 0:
            problems.add("target_backlog_per_instance", settings.target_backlog_per_instance, "a number above 0")
        problems.raise_if_any(self.node.path)
        self.endpoint = endpoint
        self.requests = io.child("requests", "asynchronous inference requests")
        self.responses = io.child("responses", "asynchronous inference results")
        self.failures = io.child("failures", "asynchronous inference failures")
        role = endpoint.role
        self.requests.grant_read(role)
        self.responses.grant_write(role)
        self.failures.grant_write(role)

        self.success_topic: sns.Topic | None = None
        self.error_topic: sns.Topic | None = None
        notification = None
        if settings.notifications:
            topic_key: kms.IKey = io.key or kms.Alias.from_alias_name(self, "SnsManagedKey", "alias/aws/sns")
            self.success_topic = sns.Topic(self, "SuccessTopic", master_key=topic_key, enforce_ssl=True,
                                           display_name="Asynchronous inference succeeded")
            self.error_topic = sns.Topic(self, "ErrorTopic", master_key=topic_key, enforce_ssl=True,
                                         display_name="Asynchronous inference failed")
            iam.Grant.add_to_principal(grantee=role, actions=["sns:Publish"],
                                       resource_arns=[self.success_topic.topic_arn, self.error_topic.topic_arn])
            if io.key is not None:  # a customer managed key: used through SNS only (AWS managed keys allow that)
                iam.Grant.add_to_principal(
                    grantee=role, actions=["kms:Decrypt", "kms:GenerateDataKey"], resource_arns=[io.key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"sns.{cdk.Aws.REGION}.{cdk.Aws.URL_SUFFIX}"}},
                )
            notification = sagemaker.CfnEndpointConfig.AsyncInferenceNotificationConfigProperty(
                success_topic=self.success_topic.topic_arn, error_topic=self.error_topic.topic_arn,
            )
        config = sagemaker.CfnEndpointConfig.AsyncInferenceConfigProperty(
            output_config=sagemaker.CfnEndpointConfig.AsyncInferenceOutputConfigProperty(
                s3_output_path=self.responses.s3_url,
                s3_failure_path=self.failures.s3_url,
                kms_key_id=io.key.key_arn if io.key is not None else None,
                notification_config=notification,
            ),
            client_config=sagemaker.CfnEndpointConfig.AsyncInferenceClientConfigProperty(
                max_concurrent_invocations_per_instance=settings.max_concurrent_invocations_per_instance,
            ),
        )
        endpoint.endpoint_config.async_inference_config = config
        # SageMaker checks that it can write results and publish when it creates the endpoint config.
        endpoint.endpoint_config.node.add_dependency(role)

        self.scalable_target = appscaling.ScalableTarget(
            self,
            "ScalableTarget",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{endpoint.endpoint_name}/variant/{endpoint.variant_name}",
            scalable_dimension=SCALABLE_DIMENSION,
            min_capacity=settings.min_instances,
            max_capacity=settings.max_instances,
            role=service_linked_role(self),
        )
        # Without RetainAllVariantProperties every update resets the count the backlog policy reached.
        endpoint.scaled_elsewhere(settings.min_instances, settings.max_instances)
        self.scalable_target.scale_to_track_metric(
            "BacklogPerInstance",
            target_value=settings.target_backlog_per_instance,
            custom_metric=self.metric_backlog_per_instance(),
            scale_in_cooldown=cdk.Duration.seconds(settings.scale_in_cooldown_seconds),
            scale_out_cooldown=cdk.Duration.seconds(settings.scale_out_cooldown_seconds),
        )
        self.wake_alarm = self._scale_out_from_zero() if settings.min_instances == 0 else None

    def _scale_out_from_zero(self) -> cloudwatch.Alarm:
        action = appscaling.StepScalingAction(
            self, "ScaleOutFromZero", scaling_target=self.scalable_target,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            metric_aggregation_type=appscaling.MetricAggregationType.AVERAGE,
            cooldown=cdk.Duration.seconds(150),
        )
        action.add_adjustment(adjustment=1, lower_bound=0)
        alarm = self._metric("HasBacklogWithoutCapacity", "Average").create_alarm(
            self, "HasBacklogWithoutCapacity", threshold=1, evaluation_periods=2, datapoints_to_alarm=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.MISSING,
            alarm_description="Asynchronous requests wait and no instance runs: scale out from zero",
        )
        alarm.add_alarm_action(cloudwatch_actions.ApplicationScalingAction(action))
        return alarm

    def _metric(self, name: str, statistic: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(namespace=INVOCATION_NAMESPACE, metric_name=name, statistic=statistic,
                                 dimensions_map={"EndpointName": self.endpoint.endpoint_name},
                                 period=cdk.Duration.minutes(1))

    def metric_backlog_per_instance(self) -> cloudwatch.Metric:
        """Queued requests per instance (the scaling metric)."""
        return self._metric("ApproximateBacklogSizePerInstance", "Average")

    def metric_backlog(self) -> cloudwatch.Metric:
        return self._metric("ApproximateBacklogSize", "Average")

    def grant_invoke(self, grantee: iam.IGrantable) -> None:
        """What a client needs: upload requests, read results and failures, InvokeEndpointAsync."""
        self.requests.grant_write(grantee)
        self.responses.grant_read(grantee)
        self.failures.grant_read(grantee)
        iam.Grant.add_to_principal(grantee=grantee, actions=["sagemaker:InvokeEndpointAsync"],
                                   resource_arns=[self.endpoint.endpoint_arn])
