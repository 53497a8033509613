"""Target tracking on invocations per instance, the metric SageMaker recommends.

Target value (``SageMakerVariantInvocationsPerInstance`` is per instance per
minute)::

    target = max_rps_per_instance * 60 * safety_factor

``max_rps_per_instance`` is the sustained requests per second one instance
served in a load test before latency or errors degraded; ``safety_factor``
(0.5 is AWS's recommended starting point) leaves headroom for the minutes a
new instance needs to come into service.
"""
from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_iam as iam
from constructs import Construct

from ml_constructs.sagemaker.validation import Problems

SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


@dataclass(frozen=True)
class InvocationScaling:
    """Autoscaling of one production variant.

    Default settings: cooldowns 300 s (Application Auto Scaling's default for
    SageMaker), safety factor 0.5, scale-in enabled.
    """

    min_capacity: int
    max_capacity: int
    max_rps_per_instance: float
    safety_factor: float = 0.5
    scale_in_cooldown_seconds: int = 300
    scale_out_cooldown_seconds: int = 300
    disable_scale_in: bool = False

    @property
    def target_invocations_per_instance(self) -> float:
        """Invocations per instance per minute that the policy keeps the variant at."""
        return round(self.max_rps_per_instance * 60 * self.safety_factor, 3)

    def check(self, problems: Problems, initial_instance_count: int) -> None:
        if self.min_capacity < 1:
            problems.add("autoscaling.min_capacity", self.min_capacity, "1 or more (a real-time variant keeps an instance)")
        if not self.min_capacity <= initial_instance_count <= self.max_capacity:
            problems.add(
                "initial_instance_count",
                initial_instance_count,
                f"min_capacity <= initial_instance_count <= max_capacity "
                f"({self.min_capacity} <= {initial_instance_count} <= {self.max_capacity})",
            )
        if self.max_rps_per_instance <= 0:
            problems.add("autoscaling.max_rps_per_instance", self.max_rps_per_instance, "a number above 0")
        if not 0 < self.safety_factor <= 1:
            problems.add("autoscaling.safety_factor", self.safety_factor, "above 0 and at most 1")
        for name in ("scale_in_cooldown_seconds", "scale_out_cooldown_seconds"):
            problems.in_range(f"autoscaling.{name}", getattr(self, name), 0, 86400)


def service_linked_role(scope: Construct) -> iam.IRole:
    """Application Auto Scaling's SageMaker service-linked role.

    aws-cdk-lib's ScalableTarget otherwise creates a role with no policy that
    SageMaker scaling never uses; the service-linked role is what it acts with.
    """
    stack = cdk.Stack.of(scope)
    arn = (
        f"arn:{stack.partition}:iam::{stack.account}:role/aws-service-role/sagemaker.application-autoscaling."
        f"amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )
    return iam.Role.from_role_arn(scope, "ScalingServiceLinkedRole", arn, mutable=False)


def attach_invocation_scaling(
    scope: Construct, *, endpoint_name: str, variant_name: str, scaling: InvocationScaling
) -> appscaling.ScalableTarget:
    target = appscaling.ScalableTarget(
        scope,
        "ScalableTarget",
        service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
        resource_id=f"endpoint/{endpoint_name}/variant/{variant_name}",
        scalable_dimension=SCALABLE_DIMENSION,
        min_capacity=scaling.min_capacity,
        max_capacity=scaling.max_capacity,
        role=service_linked_role(scope),
    )
    target.scale_to_track_metric(
        "InvocationsPerInstance",
        target_value=scaling.target_invocations_per_instance,
        predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
        scale_in_cooldown=cdk.Duration.seconds(scaling.scale_in_cooldown_seconds),
        scale_out_cooldown=cdk.Duration.seconds(scaling.scale_out_cooldown_seconds),
        disable_scale_in=scaling.disable_scale_in,
    )
    return target
