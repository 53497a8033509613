"""How an endpoint is updated: rolling or blue/green, guarded by its own alarms.

Every ``UpdateEndpoint`` (a CloudFormation update of the endpoint config) starts
a new fleet; what differs is how much of it exists at once:

* blue/green (SageMaker's default, all at once): the whole new fleet is
  provisioned beside the old one, so an update needs 2 x the instance count
  until the old fleet is terminated;
* rolling: batches of ``batch_size`` instances are provisioned, baked and the
  same number of old instances terminated, so an update needs the count plus
  one batch. SageMaker allows 5-50 % of the variant's instance count per batch,
  so a variant that can have fewer than 2 instances cannot roll.

During each bake (rolling batches, blue/green traffic steps and the final
termination wait) SageMaker watches the rollback alarms and rolls back when one
fires. The default bake is the alarms' own evaluation window (period x
evaluation periods), so an alarm has the time to fire before the old capacity
is gone.

With autoscaling, ``RetainAllVariantProperties`` keeps the instance count the
scaler reached (otherwise each update resets it to the initial count).

Inference components (``AWS::SageMaker::InferenceComponent``) have their own
``DeploymentConfig``: a rolling update of the component's copies, with the same
rollback alarms, and no blue/green policy
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_InferenceComponentDeploymentConfig.html,
``RollingUpdatePolicy`` required;
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_InferenceComponentRollingUpdatePolicy.html:
batches of 5-50 % of the copy count, ``COPY_COUNT`` or ``CAPACITY_PERCENT``, bake 0-3600 s,
timeout 600-28800 s, rollback all at once unless ``RollbackMaximumBatchSize`` is set).
:func:`component_strategy`, :func:`check_component_policy` and :func:`resolve_component`
translate the same :class:`DeploymentPolicy`: rolling where the component always has 2 or more
copies (``batch_unit = "instances"`` counts copies there), otherwise no ``DeploymentConfig``
(SageMaker's own update, blue/green without rollback alarms: all new copies beside the old); the
blue/green traffic settings do not apply. :func:`component_update_room` sizes either.

This module imports aws-cdk-lib only in :func:`resolve` and :func:`resolve_component`, so the
configuration layer checks policies with the same rules the construct applies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Sequence

if TYPE_CHECKING:
    from aws_cdk import aws_sagemaker as sagemaker

Strategy = Literal["auto", "rolling", "blue_green"]
BatchUnit = Literal["percent", "instances"]
Traffic = Literal["all_at_once", "canary", "linear"]

BAKE_SECONDS = (0, 3600)
EXECUTION_TIMEOUT_SECONDS = (600, 28800)
ROLLING_BATCH_PERCENT = (5, 50)  # of the variant's instance count (RollingUpdatePolicy.MaximumBatchSize)
MAX_ROLLBACK_ALARMS = 10
# The default alarms' evaluation window (EndpointAlarms: 3 periods of 300 s), the configuration's default bake.
DEFAULT_ALARM_WINDOW_SECONDS = 3 * 300


@dataclass(frozen=True)
class DeploymentPolicy:
    """Update strategy of one endpoint.

    Default settings: ``auto`` picks rolling updates in batches of 25 % of the
    instances (rollback in the same batches) when the variant always has 2 or
    more instances, otherwise blue/green with all-at-once traffic shifting;
    bakes last the rollback alarms' evaluation window; automatic rollback on
    the endpoint's 5XX and model latency alarms; SageMaker's default execution
    timeout.
    """

    strategy: Strategy = "auto"
    batch_size: int = 25
    batch_unit: BatchUnit = "percent"
    rollback_batch_size: int | None = None
    traffic: Traffic = "all_at_once"
    traffic_step_percent: int = 10
    wait_interval_seconds: int | None = None
    termination_wait_seconds: int | None = None
    maximum_execution_timeout_seconds: int | None = None
    auto_rollback: bool = True


@dataclass(frozen=True)
class VariantShape:
    """What the policy is checked against: the counts the variant can have."""

    min_count: int
    max_count: int
    autoscaled: bool
    bake_seconds: int  # the rollback alarms' evaluation window
    units: str = "instances"  # what a rolling batch counts: a variant's instances, an inference component's copies
    holder: str = "variant"


@dataclass(frozen=True)
class ResolvedDeployment:
    strategy: Literal["rolling", "blue_green"]
    config: "sagemaker.CfnEndpoint.DeploymentConfigProperty"
    retain_all_variant_properties: bool
    extra_instances: int  # at most this many instances beyond the current count during an update

    def describe(self) -> str:
        return f"{self.strategy}: up to {self.extra_instances} extra instance(s) during an update"


def batch_instances(policy: DeploymentPolicy, count: int, size: int | None = None) -> int:
    """Instances in one batch of a variant with ``count`` instances."""
    size = policy.batch_size if size is None else size
    if policy.batch_unit == "instances":
        return size
    return max(1, math.ceil(count * size / 100))


def check_policy(policy: DeploymentPolicy, shape: VariantShape) -> list[tuple[str, Any, str]]:
    """Every setting the variant cannot hold: (key, value, what is allowed)."""
    problems = _Found()
    for name in ("wait_interval_seconds", "termination_wait_seconds"):
        problems.in_range(f"deployment.{name}", getattr(policy, name), *BAKE_SECONDS)
    problems.in_range(
        "deployment.maximum_execution_timeout_seconds", policy.maximum_execution_timeout_seconds,
        *EXECUTION_TIMEOUT_SECONDS,
    )
    if policy.traffic == "canary":  # TrafficRoutingConfig: canary <= 50 %, linear steps 10-50 %
        problems.in_range("deployment.traffic_step_percent", policy.traffic_step_percent, 1, 50)
    elif policy.traffic == "linear":
        problems.in_range("deployment.traffic_step_percent", policy.traffic_step_percent, 10, 50)
    strategy = resolve_strategy(policy, shape)
    timeout = policy.maximum_execution_timeout_seconds
    if timeout is not None:
        waits = _or(policy.wait_interval_seconds, shape.bake_seconds)
        if strategy == "blue_green":
            waits += _or(policy.termination_wait_seconds, shape.bake_seconds)
        if timeout <= waits:
            problems.add("deployment.maximum_execution_timeout_seconds", timeout,
                         f"more than the bakes it must contain ({waits} s)")
    if strategy != "rolling":
        return problems.found
    if shape.min_count < 2:
        problems.add(
            "deployment.strategy", policy.strategy,
            f"'blue_green' or 'auto' (the variant can have {shape.min_count} instance; a rolling batch is 5-50 % "
            "of the instances, so rolling needs 2 or more at all times)",
        )
        return problems.found
    for key, size in (("batch_size", policy.batch_size), ("rollback_batch_size", policy.rollback_batch_size)):
        if size is None:
            continue
        if policy.batch_unit == "percent":
            problems.in_range(f"deployment.{key}", size, *ROLLING_BATCH_PERCENT)
            continue
        # An instance count must stay within 5-50 % of whatever count the variant has when it updates.
        low = math.ceil(shape.max_count * ROLLING_BATCH_PERCENT[0] / 100)
        high = math.floor(shape.min_count * ROLLING_BATCH_PERCENT[1] / 100)
        if not low <= size <= high:
            counts = (f"{shape.min_count} to {shape.max_count} {shape.units} (autoscaling)" if shape.autoscaled
                      else f"{shape.min_count} {shape.units}")
            allowed = f"{low} to {high}" if low <= high else "none (use batch_unit = 'percent')"
            problems.add(f"deployment.{key}", size, f"{allowed}: 5-50 % of the {shape.holder}'s {counts}")
    return problems.found


class _Found:
    def __init__(self) -> None:
        self.found: list[tuple[str, Any, str]] = []

    def add(self, key: str, value: Any, allowed: str) -> None:
        self.found.append((key, value, allowed))

    def in_range(self, key: str, value: int | None, low: int, high: int) -> None:
        if value is not None and not low <= value <= high:
            self.add(key, value, f"{low} to {high}")


def resolve_strategy(policy: DeploymentPolicy, shape: VariantShape) -> Literal["rolling", "blue_green"]:
    if policy.strategy == "auto":
        return "rolling" if shape.min_count >= 2 else "blue_green"
    return policy.strategy


def resolve(policy: DeploymentPolicy, shape: VariantShape, rollback_alarm_names: Sequence[str]) -> ResolvedDeployment:
    """The endpoint's ``DeploymentConfig`` (call :func:`check_policy` first)."""
    from aws_cdk import aws_sagemaker as sagemaker

    strategy = resolve_strategy(policy, shape)
    bake = shape.bake_seconds
    rollback = (
        sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
            alarms=[sagemaker.CfnEndpoint.AlarmProperty(alarm_name=n) for n in rollback_alarm_names[:MAX_ROLLBACK_ALARMS]]
        )
        if policy.auto_rollback and rollback_alarm_names
        else None
    )
    unit = "CAPACITY_PERCENT" if policy.batch_unit == "percent" else "INSTANCE_COUNT"
    if strategy == "rolling":
        rollback_size = policy.rollback_batch_size if policy.rollback_batch_size is not None else policy.batch_size
        config = sagemaker.CfnEndpoint.DeploymentConfigProperty(
            auto_rollback_configuration=rollback,
            rolling_update_policy=sagemaker.CfnEndpoint.RollingUpdatePolicyProperty(
                maximum_batch_size=sagemaker.CfnEndpoint.CapacitySizeProperty(type=unit, value=policy.batch_size),
                # Without it SageMaker rolls back all at once: a second full fleet, the capacity rolling avoids.
                rollback_maximum_batch_size=sagemaker.CfnEndpoint.CapacitySizeProperty(type=unit, value=rollback_size),
                wait_interval_in_seconds=_or(policy.wait_interval_seconds, bake),
                maximum_execution_timeout_in_seconds=policy.maximum_execution_timeout_seconds,
            ),
        )
        extra = max(batch_instances(policy, shape.max_count), batch_instances(policy, shape.max_count, rollback_size))
    else:
        step = sagemaker.CfnEndpoint.CapacitySizeProperty(type="CAPACITY_PERCENT", value=policy.traffic_step_percent)
        config = sagemaker.CfnEndpoint.DeploymentConfigProperty(
            auto_rollback_configuration=rollback,
            blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                traffic_routing_configuration=sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
                    type=policy.traffic.upper(),
                    canary_size=step if policy.traffic == "canary" else None,
                    linear_step_size=step if policy.traffic == "linear" else None,
                    # Required by the API for every type (the bake after each traffic step).
                    wait_interval_in_seconds=_or(policy.wait_interval_seconds, bake),
                ),
                # The final bake: the old fleet stays until the alarms had a full window to fire.
                termination_wait_in_seconds=_or(policy.termination_wait_seconds, bake),
                maximum_execution_timeout_in_seconds=policy.maximum_execution_timeout_seconds,
            ),
        )
        extra = shape.max_count
    return ResolvedDeployment(strategy, config, shape.autoscaled, extra)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def component_strategy(policy: DeploymentPolicy, shape: VariantShape) -> Literal["rolling"] | None:
    """How an inference component with ``shape`` (counted in copies) is updated: ``rolling``, or
    None for no ``DeploymentConfig`` (components have no blue/green policy; ``auto`` rolls only
    where the copy count never drops below 2, since a batch is 5-50 % of the copies)."""
    if policy.strategy == "blue_green":
        return None
    if policy.strategy == "rolling" or shape.min_count >= 2:
        return "rolling"
    return None


def component_update_room(policy: DeploymentPolicy, shape: VariantShape,
                          copies_per_instance: int) -> tuple[int, int, str]:
    """``(instances needed, new copies beside the old, how)`` for an update of a component with ``shape`` copies.

    Every update starts new copies before the old ones stop, so with the copies at their ceiling
    the instances must hold the new ones too, or the update waits for a slot until its timeout:
    a rolling update one batch more (the larger of the rolling and the rollback batch); SageMaker's
    own update (no ``DeploymentConfig``) is blue/green and provisions every new copy beside the
    old ones, so it needs twice the ceiling (AWS Machine Learning Blog, "Enhance deployment
    guardrails with inference component rolling updates for Amazon SageMaker AI inference",
    2025-03-26: blue/green "requires provisioning resources for both the current (blue) and new
    (green) environments simultaneously")."""
    if component_strategy(policy, shape) == "rolling":
        extra = max(batch_instances(policy, shape.max_count),
                    batch_instances(policy, shape.max_count, policy.rollback_batch_size))
        how = f"a rolling update starts a batch of {extra} new copies"
    else:
        extra = shape.max_count
        how = f"SageMaker's own (blue/green) update starts all {extra} new copies"
    return math.ceil((shape.max_count + extra) / copies_per_instance), extra, how


def check_component_policy(policy: DeploymentPolicy, shape: VariantShape) -> list[tuple[str, Any, str]]:
    """Every setting an inference component with ``shape`` (counted in copies) cannot hold."""
    if policy.strategy == "rolling" and shape.min_count < 2:
        return [(
            "deployment.strategy", policy.strategy,
            f"'auto' or 'blue_green' (the {shape.holder} can have {shape.min_count} copies; a rolling batch is "
            "5-50 % of the copies, so rolling needs 2 or more at all times)",
        )]
    if component_strategy(policy, shape) is None:
        return []  # nothing of the policy reaches the template
    return check_policy(replace(policy, strategy="rolling"), shape)


def resolve_component(
    policy: DeploymentPolicy, shape: VariantShape, rollback_alarm_names: Sequence[str]
) -> "sagemaker.CfnInferenceComponent.InferenceComponentDeploymentConfigProperty | None":
    """The inference component's ``DeploymentConfig``, or None (call :func:`check_component_policy` first)."""
    from aws_cdk import aws_sagemaker as sagemaker

    if component_strategy(policy, shape) is None:
        return None
    ic = sagemaker.CfnInferenceComponent
    unit = "CAPACITY_PERCENT" if policy.batch_unit == "percent" else "COPY_COUNT"
    rollback_size = policy.rollback_batch_size if policy.rollback_batch_size is not None else policy.batch_size
    rollback = (
        ic.AutoRollbackConfigurationProperty(
            alarms=[ic.AlarmProperty(alarm_name=n) for n in rollback_alarm_names[:MAX_ROLLBACK_ALARMS]]
        )
        if policy.auto_rollback and rollback_alarm_names
        else None
    )
    return ic.InferenceComponentDeploymentConfigProperty(
        auto_rollback_configuration=rollback,
        rolling_update_policy=ic.InferenceComponentRollingUpdatePolicyProperty(
            maximum_batch_size=ic.InferenceComponentCapacitySizeProperty(type=unit, value=policy.batch_size),
            # Without it SageMaker rolls back all copies at once.
            rollback_maximum_batch_size=ic.InferenceComponentCapacitySizeProperty(type=unit, value=rollback_size),
            wait_interval_in_seconds=_or(policy.wait_interval_seconds, shape.bake_seconds),
            maximum_execution_timeout_in_seconds=policy.maximum_execution_timeout_seconds,
        ),
    )
