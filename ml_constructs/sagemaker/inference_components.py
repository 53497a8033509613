"""An endpoint that hosts its models as inference components, and can scale to zero instances.

SageMaker scales an endpoint to zero instances only when it hosts inference components
(https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-zero-instances.html).
Four parts make that work, and all four are created here:

1. the endpoint config's variant has ``ManagedInstanceScaling`` (``MinInstanceCount`` 0 allowed)
   and a ``RoutingConfig``, no model, and the execution role moves to the endpoint config;
2. one ``AWS::SageMaker::InferenceComponent`` per model, with its compute per copy
   (``NumberOfAcceleratorDevicesRequired``, ``MinMemoryRequiredInMb``) and its copy count;
3. a target-tracking policy on ``sagemaker:inference-component:DesiredCopyCount``
   (``SageMakerInferenceComponentInvocationsPerCopy`` or the high-resolution concurrency metric)
   that scales copies in to the floor (0) when idle, after which managed instance scaling
   removes the empty instances;
4. a step-scaling policy, triggered by an alarm on ``NoCapacityInvocationFailures``, that adds a
   copy when a request arrives while there is none: target tracking cannot scale out of zero.

Updates: each component gets the ``DeploymentConfig`` the deployment policy translates to
(:func:`ml_constructs.sagemaker.deployment.resolve_component`): a rolling update of its copies,
rolled back on its own 5XX and latency alarms, where it always has 2 or more copies; otherwise
none (SageMaker's own update: blue/green, unguarded), which
:attr:`InferenceComponentEndpoint.update_strategies` states per component. Either starts new copies
beside the old ones, so synth checks that ``max_instances`` holds them with the copies at their
ceiling: twice the ceiling without a rolling policy (hence the default of 2 instances).

aws-cdk-lib has no L2 for inference components, so the L1 ``CfnEndpointConfig``,
``CfnInferenceComponent`` and ``CfnModel`` are wrapped here, with the L2 Application Auto
Scaling and CloudWatch constructs for the policies.
"""
from __future__ import annotations

import hashlib

from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from ml_constructs.compliance import acknowledge_endpoint_config_key

from ml_constructs.sagemaker.deployment import (
    DEFAULT_ALARM_WINDOW_SECONDS,
    DeploymentPolicy,
    VariantShape,
    check_component_policy,
    component_update_room,
    resolve_component,
)
from ml_constructs.sagemaker.endpoint_base import (
    DEPLOYED_CONFIG_DESCRIPTION,
    DOWNLOAD_TIMEOUT_SECONDS,
    STARTUP_TIMEOUT_SECONDS,
    VOLUME_SIZE_GB,
)
from ml_constructs.sagemaker.execution_role import create_execution_role
from ml_constructs.sagemaker.images import ContainerImage
from ml_constructs.sagemaker.instances import InstanceType, UnknownInstanceType, inference_ami_problem
from ml_constructs.sagemaker.log_groups import (
    COMPONENT_LOG_PREFIX,
    ENDPOINT_LOG_PREFIX,
    NAME_MAX_LENGTH,
    EndpointLogs,
    LogTerm,
    grant_log_writes,
    log_term_alarm,
    owned_log_group,
    physical_name,
)
from ml_constructs.sagemaker.model_data import ModelData
from ml_constructs.sagemaker.monitoring import INVOCATION_NAMESPACE, ROLLBACK_ALARMS, alarm_name
from ml_constructs.sagemaker.scaling import service_linked_role
from ml_constructs.sagemaker.validation import Problems, is_token

COPY_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"
# "<this> <endpoint path>/<component> (<hint>)": the component name output, read by ml_tools.verify.
COMPONENT_OUTPUT_DESCRIPTION = "SageMaker inference component"
COMPONENT_OUTPUT_HINT = "pass as --inference-component to the invoke tools"
# "<this> <endpoint path>/<component>": the model the deploy gave the component (a rolled-back update keeps the old).
COMPONENT_MODEL_OUTPUT_DESCRIPTION = "SageMaker model deployed to inference component"
NO_CAPACITY_METRIC = "NoCapacityInvocationFailures"
CopyMetric = Literal["invocations-per-copy", "concurrent-requests-per-copy"]
_PREDEFINED = {
    "invocations-per-copy": appscaling.PredefinedMetric.SAGEMAKER_INFERENCE_COMPONENT_INVOCATIONS_PER_COPY,
    "concurrent-requests-per-copy": (
        appscaling.PredefinedMetric.SAGEMAKER_INFERENCE_COMPONENT_CONCURRENT_REQUESTS_PER_COPY_HIGH_RESOLUTION
    ),
}


@dataclass(frozen=True)
class ManagedInstances:
    """The endpoint's one variant: instance type and the range SageMaker keeps it in.

    Default settings: scale to zero (``min_instances`` 0) and at most two instances (room for
    an update's new copy beside the old one: one copy per instance by default); one
    instance at creation (SageMaker needs at least one to place the first copies); least
    outstanding requests routing; SageMaker's default volume and inference AMI.
    ``inference_ami_version``: ``ProductionVariant.InferenceAmiVersion``, the host image (GPU
    driver and CUDA version); it must be built for the instance type's accelerators
    (``INFERENCE_AMI_VERSIONS``), as on the instance-hosted endpoints.
    """

    instance_type: str
    min_instances: int = 0
    max_instances: int = 2
    initial_instance_count: int = 1
    volume_size_gb: int | None = None
    routing: Literal["LEAST_OUTSTANDING_REQUESTS", "RANDOM"] = "LEAST_OUTSTANDING_REQUESTS"
    variant_name: str = "AllTraffic"
    inference_ami_version: str | None = None


@dataclass(frozen=True)
class CopyScaling:
    """Autoscaling of one component's copies.

    Default settings: floor 0 (with the scale-out-from-zero step policy), target 10
    invocations per copy per minute, scale-in after 600 s, scale-out after 60 s.
    """

    min_copies: int = 0
    max_copies: int = 1
    metric: CopyMetric = "invocations-per-copy"
    target_value: float = 10.0
    scale_in_cooldown_seconds: int = 600
    scale_out_cooldown_seconds: int = 60


@dataclass(frozen=True)
class ComponentSpec:
    """One model served as an inference component.

    ``accelerators_per_copy``: accelerator *devices* per copy, what ``NumberOfAcceleratorDevicesRequired``
    counts: GPUs, or Inferentia2/Trainium chips (2 NeuronCores each), not NeuronCores (None on CPU
    instances); ``tensor_parallel_degree`` counts NeuronCores or GPUs and must fit in the copy's devices; ``memory_per_copy_mb``: the host memory SageMaker reserves per copy;
    ``copies``: copies CloudFormation deploys (the deploy fails if they do not start);
    ``scaling``: None keeps ``copies`` fixed.
    """

    name: str
    image: ContainerImage
    model_data: ModelData
    memory_per_copy_mb: int
    accelerators_per_copy: int | None = None
    cpu_cores_per_copy: float | None = None
    copies: int = 1
    environment: Mapping[str, str] | None = None
    tensor_parallel_degree: int | None = None
    model_data_download_timeout_seconds: int | None = None
    container_startup_health_check_timeout_seconds: int | None = None
    scaling: CopyScaling | None = field(default_factory=CopyScaling)


class InferenceComponentEndpoint(Construct):
    """A SageMaker endpoint whose models are inference components, validated at synth time.

    Props
      instances: :class:`ManagedInstances` (type, min/max, routing, volume).
      components: one :class:`ComponentSpec` per model.
      role: the execution role (default: a least-privilege role that reads each model's data,
        pulls each image, writes only SageMaker logs and metrics).
      volume_kms_key: encrypts the ML volume (not with local-NVMe instance types).
      endpoint_name: default derived from the construct path (as each component's name): the
        log groups ``/aws/sagemaker/Endpoints/<endpoint>`` and
        ``/aws/sagemaker/InferenceComponents/<component>`` are created by the stack before SageMaker
        writes to them, so the names are known at synth. Changing the endpoint name replaces the
        endpoint (CloudFormation's EndpointName is create-only) and every component: each component's
        logical id carries a digest of its endpoint and component name, because CloudFormation would
        update InferenceComponentName and EndpointName in place, which SageMaker cannot do (a component
        can be neither renamed nor moved), so a new name creates a new component and deletes the old.
      logs: retention and removal of those log groups (default :class:`EndpointLogs`: three months).
      deployment: how component updates roll (default: :class:`DeploymentPolicy` defaults, which
        an app-wide :class:`~ml_constructs.sagemaker.deployment_defaults.DeploymentDefaults` may
        replace); see :func:`ml_constructs.sagemaker.deployment.resolve_component`.

    Creates ``role``, ``endpoint_config``, ``endpoint``, and per component name:
    ``models``, ``components``, ``component_names`` (deploy-time names), ``scalable_targets``,
    ``log_group`` (the endpoint's), ``component_log_groups``,
    ``wake_alarms`` (NoCapacityInvocationFailures), ``alarms`` (5XX and model latency, with fixed
    names the rollback configuration refers to), ``update_strategies``; stack outputs
    with the endpoint name, its endpoint config name and each component's name (what
    ``python -m ml_tools verify`` reads). Synth fails with ``EndpointValidationError`` listing every invalid setting.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        instances: ManagedInstances,
        components: Sequence[ComponentSpec],
        role: iam.IRole | None = None,
        volume_kms_key: kms.IKey | None = None,
        endpoint_name: str | None = None,
        model_latency_p99_ms: float = 60000.0,
        deployment: DeploymentPolicy | None = None,
        logs: EndpointLogs | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        problems = Problems()
        instance = _check_instances(problems, instances, volume_kms_key)
        for spec in components:
            _check_component(problems, spec, instance, instances)
        if not components:
            problems.add("components", "[]", "at least one component (an endpoint without models serves nothing)")
        if len({c.name for c in components}) != len(components):
            problems.add("components", [c.name for c in components], "unique names")
        problems.raise_if_any(self.node.path)
        self.instances = instances
        self.instance = instance

        self._logs = logs = logs or EndpointLogs()
        name = endpoint_name or physical_name(self)
        self._endpoint_literal_name = name
        self.log_group = owned_log_group(self, "Logs", ENDPOINT_LOG_PREFIX + name, logs)
        if role is None:
            role = create_execution_role(self, "ExecutionRole")
        self.role: iam.IRole = role
        grant_log_writes(self.role, self.log_group)
        if volume_kms_key is not None:
            iam.Grant.add_to_principal(grantee=self.role, actions=["kms:Decrypt", "kms:GenerateDataKey"],
                                       resource_arns=[volume_kms_key.key_arn])
            iam.Grant.add_to_principal(grantee=self.role, actions=["kms:CreateGrant"],
                                       resource_arns=[volume_kms_key.key_arn],
                                       conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}})
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            execution_role_arn=self.role.role_arn,
            kms_key_id=volume_kms_key.key_arn if volume_kms_key else None,
            production_variants=[sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=instances.variant_name,
                instance_type=instances.instance_type,
                initial_instance_count=instances.initial_instance_count,
                volume_size_in_gb=instances.volume_size_gb,
                managed_instance_scaling=sagemaker.CfnEndpointConfig.ManagedInstanceScalingProperty(
                    status="ENABLED",
                    min_instance_count=instances.min_instances,
                    max_instance_count=instances.max_instances,
                ),
                routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(routing_strategy=instances.routing),
                inference_ami_version=instances.inference_ami_version,
            )],
        )
        if volume_kms_key is None:
            acknowledge_endpoint_config_key(
                self.endpoint_config, local_nvme=instance is not None and instance.has_local_nvme
            )
        # SageMaker checks the role when it creates the endpoint config: its policy must exist first.
        self.endpoint_config.node.add_dependency(self.role)
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            endpoint_name=name,
        )
        self.endpoint.node.add_dependency(self.log_group)
        self.endpoint_name = self.endpoint.attr_endpoint_name
        self.endpoint_arn = self.endpoint.ref
        self.variant_name = instances.variant_name

        self.models: dict[str, sagemaker.CfnModel] = {}
        self.components: dict[str, sagemaker.CfnInferenceComponent] = {}
        self.component_names: dict[str, str] = {}
        self.component_log_groups: dict[str, cdk.aws_logs.LogGroup] = {}
        self.scalable_targets: dict[str, appscaling.ScalableTarget] = {}
        self.wake_alarms: dict[str, cloudwatch.Alarm] = {}
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self.rollback_alarm_names: dict[str, list[str]] = {}
        self.update_strategies: dict[str, str] = {}
        self._specs = {c.name: c for c in components}
        scaling_role = service_linked_role(self) if any(c.scaling for c in components) else None
        for spec in components:
            self._add_component(spec, scaling_role, model_latency_p99_ms)
        self.deployment_is_default = deployment is None
        self.use_deployment(deployment or DeploymentPolicy())
        cdk.CfnOutput(self, "EndpointName", value=self.endpoint_name, description=f"SageMaker endpoint {self.node.path}")
        # With the name output, what `python -m ml_tools verify` reads (as for the instance-hosted endpoints).
        cdk.CfnOutput(self, "EndpointConfigName", value=self.endpoint_config.attr_endpoint_config_name,
                      description=f"{DEPLOYED_CONFIG_DESCRIPTION} {self.node.path}")

    def _add_component(self, spec: ComponentSpec, scaling_role: iam.IRole | None, latency_ms: float) -> None:
        scope = Construct(self, spec.name)
        bound = spec.image.bind(scope)
        spec.model_data.grant_read(self.role)
        bound.grant_pull(self.role)
        model = sagemaker.CfnModel(
            scope,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=bound.image_uri,
                environment=dict(sorted((spec.environment or {}).items())) or None,
                **spec.model_data.container_properties(),
            ),
        )
        model.node.add_dependency(self.role)
        startup = None
        if spec.model_data_download_timeout_seconds or spec.container_startup_health_check_timeout_seconds:
            startup = sagemaker.CfnInferenceComponent.InferenceComponentStartupParametersProperty(
                model_data_download_timeout_in_seconds=spec.model_data_download_timeout_seconds,
                container_startup_health_check_timeout_in_seconds=spec.container_startup_health_check_timeout_seconds,
            )
        # Component names are unique per account and region, and a component is created before the one it
        # replaces is deleted: the endpoint's name is part of it, so a new endpoint_name gives a new name too.
        endpoint_digest = _name_digest(self._endpoint_literal_name, "")
        component_name = f"{physical_name(scope, NAME_MAX_LENGTH - 9)}-{endpoint_digest}"
        log_group = owned_log_group(scope, "Logs", COMPONENT_LOG_PREFIX + component_name, self._logs)
        grant_log_writes(self.role, log_group)
        component = sagemaker.CfnInferenceComponent(
            scope,
            # SageMaker can neither rename a component nor move it to another endpoint, and CloudFormation
            # updates both properties in place: a logical id per (endpoint, component) name makes a change of
            # either a new component (the old one is deleted after), e.g. on upgrading from generated names.
            "Component" + _name_digest(self._endpoint_literal_name, component_name),
            inference_component_name=component_name,
            endpoint_name=self.endpoint_name,
            variant_name=self.variant_name,
            specification=sagemaker.CfnInferenceComponent.InferenceComponentSpecificationProperty(
                model_name=model.attr_model_name,
                compute_resource_requirements=(
                    sagemaker.CfnInferenceComponent.InferenceComponentComputeResourceRequirementsProperty(
                        min_memory_required_in_mb=spec.memory_per_copy_mb,
                        number_of_accelerator_devices_required=spec.accelerators_per_copy,
                        number_of_cpu_cores_required=spec.cpu_cores_per_copy,
                    )
                ),
                startup_parameters=startup,
            ),
            runtime_config=sagemaker.CfnInferenceComponent.InferenceComponentRuntimeConfigProperty(
                copy_count=spec.copies
            ),
        )
        component.node.add_dependency(log_group)  # the copies log from their start
        # The name through the component's ARN (arn:...:inference-component/<name>), not the literal:
        # Application Auto Scaling and the alarms must wait for the component.
        name = cdk.Fn.select(1, cdk.Fn.split("/", component.attr_inference_component_arn))
        self.component_log_groups[spec.name] = log_group
        self.models[spec.name] = model
        self.components[spec.name] = component
        self.component_names[spec.name] = name
        cdk.CfnOutput(scope, "InferenceComponentName", value=name,
                      description=f"{COMPONENT_OUTPUT_DESCRIPTION} {self.node.path}/{spec.name} ({COMPONENT_OUTPUT_HINT})")
        cdk.CfnOutput(scope, "ModelName", value=model.attr_model_name,
                      description=f"{COMPONENT_MODEL_OUTPUT_DESCRIPTION} {self.node.path}/{spec.name}")
        alarms = _component_alarms(scope, name, latency_ms)
        self.alarms.update({f"{spec.name}{k}": v for k, v in alarms.items()})
        # Literal names, not the alarms' Refs: the alarms' dimension is the component's name.
        self.rollback_alarm_names[spec.name] = []
        self._guard_with(spec.name, [alarm_name(scope, n) for n in ROLLBACK_ALARMS if n in alarms])
        if spec.scaling is not None and scaling_role is not None:
            self._scale(scope, spec, name, scaling_role)

    def _guard_with(self, component: str, names: list[str]) -> None:
        """Roll ``component``'s updates back on the alarms ``names`` too (call :meth:`use_deployment` after)."""
        self.rollback_alarm_names[component].extend(names)
        # SageMaker reads the rollback alarms' state with the execution role (as for endpoints).
        stack = cdk.Stack.of(self)
        iam.Grant.add_to_principal(grantee=self.role, actions=["cloudwatch:DescribeAlarms"], resource_arns=[
            stack.format_arn(service="cloudwatch", resource="alarm", resource_name=n,
                             arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME) for n in names
        ])

    def alarm_on_model_errors(self, term: LogTerm) -> dict[str, cloudwatch.Alarm]:
        """Per component: an alarm on ``term`` in the component's log group (a line the serving stack
        writes once per request the model failed), also a rollback alarm of the component's rolling
        updates. Same threshold and window as the component's 5XX alarm (1 in each of 3 five-minute
        periods). Creates ``alarms["<component>ModelErrors"]``."""
        created = {}
        for spec_name, group in self.component_log_groups.items():
            scope = self.node.find_child(spec_name)
            component_name = self.components[spec_name].inference_component_name
            alarm = log_term_alarm(
                scope, "ModelErrors", group=group, term=term, metric_name=component_name,
                alarm_name=alarm_name(scope, "ModelErrors"), threshold=1, evaluation_periods=3, period_seconds=300,
                what=f"Inference component {component_name}",
            )
            self.alarms[f"{spec_name}ModelErrors"] = created[spec_name] = alarm
            self.components[spec_name].node.add_dependency(alarm)  # its deployment config names the alarm
            self._guard_with(spec_name, [alarm_name(scope, "ModelErrors")])
        self.use_deployment(self.deployment_policy)
        return created

    def _scale(self, scope: Construct, spec: ComponentSpec, name: str, role: iam.IRole) -> None:
        scaling = spec.scaling
        assert scaling is not None
        target = appscaling.ScalableTarget(
            scope,
            "CopyScaling",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"inference-component/{name}",
            scalable_dimension=COPY_DIMENSION,
            min_capacity=scaling.min_copies,
            max_capacity=scaling.max_copies,
            role=role,
        )
        target.scale_to_track_metric(
            "TrackCopies",
            target_value=scaling.target_value,
            predefined_metric=_PREDEFINED[scaling.metric],
            scale_in_cooldown=cdk.Duration.seconds(scaling.scale_in_cooldown_seconds),
            scale_out_cooldown=cdk.Duration.seconds(scaling.scale_out_cooldown_seconds),
        )
        self.scalable_targets[spec.name] = target
        if scaling.min_copies == 0:
            self.wake_alarms[spec.name] = _scale_out_from_zero(scope, target, name)

    def use_deployment(self, policy: DeploymentPolicy) -> dict[str, str]:
        """Set each component's ``DeploymentConfig`` from ``policy``; returns :attr:`update_strategies`.

        Raises :class:`EndpointValidationError` for a policy a component cannot hold.
        """
        problems = Problems()
        shapes = {name: component_shape(spec) for name, spec in self._specs.items()}
        for name, shape in shapes.items():
            for key, value, allowed in check_component_policy(policy, shape):
                problems.add(key, value, allowed)
            self._check_update_room(problems, self._specs[name], shape, policy)
        problems.raise_if_any(self.node.path)
        self.deployment_policy = policy
        for name, shape in shapes.items():
            config = resolve_component(policy, shape, self.rollback_alarm_names[name])
            self.components[name].deployment_config = config
            self.update_strategies[name] = _describe_update(policy, shape, config is not None)
        return self.update_strategies

    def _check_update_room(self, problems: Problems, spec: ComponentSpec, shape: VariantShape,
                           policy: DeploymentPolicy) -> None:
        """Every update starts its new copies before the old ones stop (a rolling batch, or all of them in
        SageMaker's own blue/green update): with the copies at their ceiling, the instances at
        ``max_instances`` must hold those too, or the update waits for room that never comes until its
        timeout (:func:`~ml_constructs.sagemaker.deployment.component_update_room`)."""
        per_instance = copies_per_instance(self.instance, spec) if self.instance is not None else None
        if not per_instance:
            return
        needed, _, how = component_update_room(policy, shape, per_instance)
        if needed > self.instances.max_instances:
            problems.add(
                "max_instances", self.instances.max_instances,
                f"at least {needed} for an update of components[{spec.name}]: {how} beside the {shape.max_count} "
                f"at its ceiling, {per_instance} per {self.instances.instance_type} (or fewer copies at the "
                "ceiling, or a smaller rolling batch)")

    def place_in_vpc(self, subnet_ids: Sequence[str], security_group_ids: Sequence[str]) -> None:
        """Run the endpoint's instances and every component's model in these subnets; the role gets the
        ENI permissions.

        ``VpcConfig`` goes on the endpoint config (where SageMaker places an inference-component
        endpoint's instances, as the SageMaker Python SDK does for these endpoints) and on each model.
        """
        from ml_constructs.sagemaker.network import grant_vpc_access

        self.endpoint_config.vpc_config = sagemaker.CfnEndpointConfig.VpcConfigProperty(
            subnets=list(subnet_ids), security_group_ids=list(security_group_ids))
        for model in self.models.values():
            model.vpc_config = sagemaker.CfnModel.VpcConfigProperty(
                subnets=list(subnet_ids), security_group_ids=list(security_group_ids))
        grant_vpc_access(self.role)

    @property
    def in_vpc(self) -> bool:
        """Whether :meth:`place_in_vpc` (or a user) already placed the endpoint."""
        return self.endpoint_config.vpc_config is not None

    def isolate_network(self) -> None:
        """``EnableNetworkIsolation`` on the endpoint config and every model: the containers make no
        network calls (SageMaker still copies the model data)."""
        self.endpoint_config.enable_network_isolation = True
        for model in self.models.values():
            model.enable_network_isolation = True

    def metric_no_capacity_failures(self, component: str) -> cloudwatch.Metric:
        """Requests refused because ``component`` had no copy (the wake-up signal)."""
        return no_capacity_metric(self.component_names[component])

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """``sagemaker:InvokeEndpoint`` on this endpoint (callers name the component per request)."""
        return iam.Grant.add_to_principal(grantee=grantee, actions=["sagemaker:InvokeEndpoint"],
                                          resource_arns=[self.endpoint_arn])


def _describe_update(policy: DeploymentPolicy, shape: VariantShape, rolling: bool) -> str:
    if rolling:
        guard = "rolled back on the component's 5XX and latency alarms" if policy.auto_rollback else "no rollback alarms"
        return f"rolling, {policy.batch_size} {'%' if policy.batch_unit == 'percent' else 'copies'} per batch, {guard}"
    if policy.strategy == "blue_green":
        return "SageMaker's own update, no rollback alarms (inference components have no blue/green policy)"
    return (f"SageMaker's own update, no rollback alarms (the copy floor is {shape.min_count}; "
            "rolling needs 2 or more copies at all times)")


def component_shape(spec: ComponentSpec) -> VariantShape:
    """The copy counts a component can have, for the deployment policy's checks."""
    low, high = (spec.scaling.min_copies, spec.scaling.max_copies) if spec.scaling else (spec.copies, spec.copies)
    return VariantShape(low, high, spec.scaling is not None, DEFAULT_ALARM_WINDOW_SECONDS, units="copies",
                        holder=f"inference component {spec.name}")


def no_capacity_metric(component_name: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=INVOCATION_NAMESPACE,
        metric_name=NO_CAPACITY_METRIC,
        dimensions_map={"InferenceComponentName": component_name},
        statistic="Sum",
        period=cdk.Duration.minutes(1),
    )


def _scale_out_from_zero(scope: Construct, target: appscaling.ScalableTarget, name: str) -> cloudwatch.Alarm:
    """One copy more as soon as a request finds none (AWS's documented step policy, 60 s cooldown)."""
    action = appscaling.StepScalingAction(
        scope,
        "ScaleOutFromZero",
        scaling_target=target,
        adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
        metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
        cooldown=cdk.Duration.seconds(60),
    )
    action.add_adjustment(adjustment=1, lower_bound=0)
    # >= 1: the first refused request wakes the component (AWS's example uses > 1, which waits for two).
    alarm = no_capacity_metric(name).create_alarm(
        scope,
        "NoCapacityAlarm",
        threshold=1,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        alarm_description="Inference component invoked with no copy: scale out from zero",
    )
    alarm.add_alarm_action(cloudwatch_actions.ApplicationScalingAction(action))
    return alarm


def _name_digest(endpoint_name: str, component_name: str) -> str:
    return hashlib.sha256(f"{endpoint_name}/{component_name}".encode()).hexdigest()[:8].upper()


def _component_alarms(scope: Construct, name: str, latency_ms: float) -> dict[str, cloudwatch.Alarm]:
    # 3 periods of 5 minutes: DEFAULT_ALARM_WINDOW_SECONDS, the default bake of a rolling update.
    def metric(metric_name: str, statistic: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(namespace=INVOCATION_NAMESPACE, metric_name=metric_name, statistic=statistic,
                                 dimensions_map={"InferenceComponentName": name}, period=cdk.Duration.minutes(5))

    return {
        "Errors5xx": metric("Invocation5XXErrors", "Sum").create_alarm(
            scope, "Errors5xx", alarm_name=alarm_name(scope, "Errors5xx"), threshold=1, evaluation_periods=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Inference component 5XX errors returned"),
        "ModelLatencyP99": metric("ModelLatency", "p99").create_alarm(
            scope, "ModelLatencyP99", alarm_name=alarm_name(scope, "ModelLatencyP99"), threshold=latency_ms * 1000,
            evaluation_periods=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"Inference component model latency p99 above {latency_ms:g} ms"),
    }


def _check_instances(problems: Problems, instances: ManagedInstances, key: kms.IKey | None) -> InstanceType | None:
    instance = None
    if not is_token(instances.instance_type):
        try:
            instance = InstanceType.parse(instances.instance_type)
        except UnknownInstanceType as exc:
            problems.add("instance_type", instances.instance_type, f"ml.<family>.<size> ({exc})")
    if instance is not None and instance.is_burstable:
        problems.add("instance_type", instances.instance_type, "a non-burstable instance type (ml.t* cannot autoscale)")
    if instances.min_instances < 0:
        problems.add("min_instances", instances.min_instances, "0 or more")
    if instances.max_instances < 1:
        problems.add("max_instances", instances.max_instances, "1 or more")
    if instances.min_instances > instances.max_instances:
        problems.add("min_instances", instances.min_instances, f"at most max_instances ({instances.max_instances})")
    if not max(1, instances.min_instances) <= instances.initial_instance_count <= instances.max_instances:
        problems.add("initial_instance_count", instances.initial_instance_count,
                     f"{max(1, instances.min_instances)} to max_instances ({instances.max_instances})")
    problems.in_range("volume_size_gb", instances.volume_size_gb, *VOLUME_SIZE_GB)
    if instances.inference_ami_version is not None and not is_token(instances.inference_ami_version):
        ami_problem = inference_ami_problem(instances.instance_type, instances.inference_ami_version)
        if ami_problem:  # already "got ..., allowed: ..."
            problems.found.append(f"inference_ami_version: {ami_problem}")
    if instance is not None and instance.has_local_nvme:
        nvme = f"not set: {instances.instance_type} has local NVMe instance storage"
        if instances.volume_size_gb is not None:
            problems.add("volume_size_gb", instances.volume_size_gb, nvme)
        if key is not None:
            problems.add("volume_kms_key", "a KMS key", nvme)
    return instance


def _check_component(problems: Problems, spec: ComponentSpec, instance: InstanceType | None,
                     instances: ManagedInstances) -> None:
    where = f"components[{spec.name}]"
    if spec.model_data.kind == "model_prefix":
        problems.add(f"{where}.model_data", "a multi-model prefix",
                     "one model (multi-model endpoints cannot host inference components)")
    if spec.memory_per_copy_mb < 128:
        problems.add(f"{where}.memory_per_copy_mb", spec.memory_per_copy_mb, "128 or more")
    if spec.copies < 0:
        problems.add(f"{where}.copies", spec.copies, "0 or more")
    problems.in_range(f"{where}.model_data_download_timeout_seconds", spec.model_data_download_timeout_seconds,
                      *DOWNLOAD_TIMEOUT_SECONDS)
    problems.in_range(f"{where}.container_startup_health_check_timeout_seconds",
                      spec.container_startup_health_check_timeout_seconds, *STARTUP_TIMEOUT_SECONDS)
    accelerators = spec.accelerators_per_copy
    if accelerators is not None and accelerators < 1:
        problems.add(f"{where}.accelerators_per_copy", accelerators, "1 or more, or None on CPU instances")
    cores_per_device = instance.cores_per_device if instance is not None else 1
    if spec.tensor_parallel_degree is not None and accelerators is not None and (
            spec.tensor_parallel_degree > accelerators * cores_per_device):
        unit = f"{accelerators} device(s) x {cores_per_device} NeuronCores" if cores_per_device > 1 else (
            f"{accelerators}")
        problems.add(f"{where}.tensor_parallel_degree", spec.tensor_parallel_degree,
                     f"at most accelerators_per_copy ({unit}): a copy sees only its own accelerators")
    scaling = spec.scaling
    if scaling is not None:
        if scaling.min_copies < 0 or scaling.max_copies < 1 or scaling.min_copies > scaling.max_copies:
            problems.add(f"{where}.scaling", f"min_copies={scaling.min_copies}, max_copies={scaling.max_copies}",
                         "0 <= min_copies <= max_copies, max_copies >= 1")
        elif not scaling.min_copies <= spec.copies <= scaling.max_copies:
            problems.add(f"{where}.copies", spec.copies,
                         f"min_copies ({scaling.min_copies}) to max_copies ({scaling.max_copies})")
        if scaling.target_value <= 0:
            problems.add(f"{where}.scaling.target_value", scaling.target_value, "a number above 0")
    if instance is None:
        return
    have = instance.accelerator_devices
    if have is not None and accelerators is not None:
        if have == 0:
            problems.add(f"{where}.accelerators_per_copy", accelerators, f"None ({instance.name} has no accelerators)")
        elif accelerators > have:
            problems.add(f"{where}.accelerators_per_copy", accelerators,
                         f"at most {have} ({instance.name} has {have} accelerator device(s); a copy runs on one "
                         "instance)")
    memory_gib = instance.memory_gib
    if memory_gib is not None and spec.memory_per_copy_mb > memory_gib * 1024:
        problems.add(f"{where}.memory_per_copy_mb", spec.memory_per_copy_mb,
                     f"at most {memory_gib * 1024} ({instance.name} has {memory_gib} GiB; a copy runs on one instance)")
        return
    per_instance = copies_per_instance(instance, spec)
    ceiling = scaling.max_copies if scaling is not None else spec.copies
    if per_instance is not None and ceiling > per_instance * instances.max_instances:
        problems.add(f"{where}.max_copies" if scaling else f"{where}.copies", ceiling,
                     f"at most {per_instance * instances.max_instances} ({instances.max_instances} x {instance.name} "
                     f"hold {per_instance} copies each)")


def copies_per_instance(instance: InstanceType, spec: ComponentSpec) -> int | None:
    """How many copies of ``spec`` fit on one instance by accelerators and memory; None if unknown."""
    limits = []
    if spec.accelerators_per_copy and instance.accelerator_devices:
        limits.append(instance.accelerator_devices // spec.accelerators_per_copy)
    if instance.memory_gib is not None:
        limits.append(instance.memory_gib * 1024 // spec.memory_per_copy_mb)
    return min(limits) if limits else None
