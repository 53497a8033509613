"""What real-time and multi-model endpoints share: model, config, endpoint, scaling, alarms.

aws-cdk-lib has no stable L2 for SageMaker hosting (the aws-sagemaker-alpha
module lacks volume size, download timeout, multi-model mode and uncompressed
model data, and is not a dependency here), so the L1 ``CfnModel``,
``CfnEndpointConfig`` and ``CfnEndpoint`` are wrapped in L2-style constructs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from ml_constructs.sagemaker.execution_role import create_execution_role
from ml_constructs.compliance import acknowledge_endpoint_config_key
from ml_constructs.sagemaker.deployment import DeploymentPolicy, ResolvedDeployment, VariantShape, check_policy, resolve
from ml_constructs.sagemaker.images import ContainerImage
from ml_constructs.sagemaker.instances import InstanceType, UnknownInstanceType, inference_ami_problem
from ml_constructs.sagemaker.log_groups import (
    ENDPOINT_LOG_PREFIX,
    EndpointLogs,
    LogTerm,
    grant_log_writes,
    log_term_alarm,
    owned_log_group,
    physical_name,
)
from ml_constructs.sagemaker.model_data import ModelData
from ml_constructs.sagemaker.monitoring import ROLLBACK_ALARMS, EndpointAlarms, VariantMetrics, alarm_name, create_alarms
from ml_constructs.sagemaker.scaling import InvocationScaling, attach_invocation_scaling
from ml_constructs.sagemaker.validation import Problems, is_token

VOLUME_SIZE_GB = (1, 512)
DOWNLOAD_TIMEOUT_SECONDS = (60, 3600)
STARTUP_TIMEOUT_SECONDS = (60, 3600)
DEPLOYED_CONFIG_DESCRIPTION = "SageMaker endpoint config deployed to"  # read by ml_tools.verify
_TRAILING_TOKEN = re.compile(r"\$\{Token\[[^\]]+\]\}$")


@dataclass(frozen=True)
class VariantSettings:
    """The production variant: instance type and count, volume, timeouts, inference AMI.

    Default settings: one instance; SageMaker's defaults for the volume, the
    timeouts and the AMI (left out of the template when not set).
    ``inference_ami_version``: ``ProductionVariant.InferenceAmiVersion``, the host
    image (GPU driver and CUDA version) to run on; it must be built for the
    instance type's accelerators (``INFERENCE_AMI_VERSIONS``).
    """

    instance_type: str
    initial_instance_count: int = 1
    volume_size_gb: int | None = None
    model_data_download_timeout_seconds: int | None = None
    container_startup_health_check_timeout_seconds: int | None = None
    variant_name: str = "AllTraffic"
    inference_ami_version: str | None = None


@dataclass(frozen=True)
class EndpointOptions:
    """Optional parts shared by both endpoint kinds.

    Default settings: a least-privilege execution role, no endpoint-config KMS
    key, no autoscaling, the default alarms, an endpoint name derived from the
    construct path (:func:`~ml_constructs.sagemaker.log_groups.physical_name`: its log
    group must exist before SageMaker writes, so the name is known at synth; changing
    it replaces the endpoint), the endpoint's log group kept three months (``logs``),
    network isolation off (the LMI handlers download from S3),
    ``DeploymentPolicy()`` updates (rolling where the variant always has 2+
    instances, else blue/green; rollback on the 5XX and latency alarms).
    ``deployment=None`` means that default, which an app-wide
    :class:`~ml_constructs.sagemaker.deployment_defaults.DeploymentDefaults` may replace.
    """

    role: iam.IRole | None = None
    volume_kms_key: kms.IKey | None = None
    autoscaling: InvocationScaling | None = None
    alarms: EndpointAlarms | None = field(default_factory=EndpointAlarms)
    endpoint_name: str | None = None
    network_isolation: bool = False
    deployment: DeploymentPolicy | None = None
    logs: EndpointLogs = field(default_factory=EndpointLogs)


class SageMakerEndpointBase(Construct, VariantMetrics):
    """Creates ``role`` (unless given), ``model``, ``endpoint_config``, ``endpoint``, ``log_group``
    (``/aws/sagemaker/Endpoints/<name>``, created before the endpoint), ``scalable_target`` (with
    autoscaling), ``alarms`` and an output of the endpoint name."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        image: ContainerImage,
        model_data: ModelData,
        variant: VariantSettings,
        environment: Mapping[str, str] | None,
        options: EndpointOptions,
        container_extra: Mapping[str, Any],
        problems: Problems,
        instance: InstanceType | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.variant = variant
        self.instance = instance
        self._check_common(problems, model_data, variant, options, instance)
        problems.raise_if_any(self.node.path)
        if image.end_of_life_notice:
            cdk.Annotations.of(self).add_warning_v2(
                "ml-accel:end-of-life-image",
                f"image {image.repository_name}:{image.tag} is end-of-life: {image.end_of_life_notice}",
            )

        bound_image = image.bind(self)
        self.image_uri = bound_image.image_uri
        self._alarm_settings = options.alarms
        name = options.endpoint_name or physical_name(self)
        self.log_group = owned_log_group(self, "Logs", ENDPOINT_LOG_PREFIX + name, options.logs)
        if options.role is None:
            self.role: iam.IRole = create_execution_role(self, "ExecutionRole")
        else:
            self.role = options.role
        grant_log_writes(self.role, self.log_group)
        model_data.grant_read(self.role)
        bound_image.grant_pull(self.role)

        container = sagemaker.CfnModel.ContainerDefinitionProperty(
            image=bound_image.image_uri,
            environment=dict(sorted((environment or {}).items())) or None,
            **model_data.container_properties(),
            **container_extra,
        )
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=container,
            enable_network_isolation=options.network_isolation or None,
        )
        # The model must not be created before its role's policy exists: SageMaker
        # checks access to the artifacts and image when the model is created.
        self.model.node.add_dependency(self.role)

        if options.volume_kms_key is not None:
            key_arn = options.volume_kms_key.key_arn
            iam.Grant.add_to_principal(
                grantee=self.role, actions=["kms:Decrypt", "kms:GenerateDataKey"], resource_arns=[key_arn]
            )
            iam.Grant.add_to_principal(
                grantee=self.role,
                actions=["kms:CreateGrant"],
                resource_arns=[key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            kms_key_id=options.volume_kms_key.key_arn if options.volume_kms_key else None,
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=variant.variant_name,
                    model_name=self.model.attr_model_name,
                    instance_type=variant.instance_type,
                    initial_instance_count=variant.initial_instance_count,
                    initial_variant_weight=1,
                    volume_size_in_gb=variant.volume_size_gb,
                    model_data_download_timeout_in_seconds=variant.model_data_download_timeout_seconds,
                    container_startup_health_check_timeout_in_seconds=(
                        variant.container_startup_health_check_timeout_seconds
                    ),
                    inference_ami_version=variant.inference_ami_version,
                )
            ],
        )
        if options.volume_kms_key is None:
            acknowledge_endpoint_config_key(
                self.endpoint_config, local_nvme=instance is not None and instance.has_local_nvme
            )
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            endpoint_name=name,
        )
        # SageMaker writes to the group from the first instance on: it must exist, with its retention and key.
        self.endpoint.node.add_dependency(self.log_group)
        self.endpoint_name = self.endpoint.attr_endpoint_name
        self.endpoint_arn = self.endpoint.ref  # Ref of AWS::SageMaker::Endpoint is its ARN
        self.variant_name = variant.variant_name

        self.scalable_target = None
        if options.autoscaling is not None:
            self.scalable_target = attach_invocation_scaling(
                self, endpoint_name=self.endpoint_name, variant_name=variant.variant_name, scaling=options.autoscaling
            )
        self.alarms: dict[str, cloudwatch.Alarm] = (
            create_alarms(self, self, instance, options.alarms) if options.alarms is not None else {}
        )
        self._init_deployment(options)
        cdk.CfnOutput(self, "EndpointName", value=self.endpoint_name, description=f"SageMaker endpoint {self.node.path}")
        # What `python -m ml_tools verify` compares with the live endpoint: the config this deploy made.
        # verify pairs it with the EndpointName output by the path in both descriptions.
        cdk.CfnOutput(
            self, "EndpointConfigName", value=self.endpoint_config.attr_endpoint_config_name,
            description=f"{DEPLOYED_CONFIG_DESCRIPTION} {self.node.path}",
        )

    def _init_deployment(self, options: EndpointOptions) -> None:
        # A deploy-time count is unknown here: treated as 1, so only blue/green is chosen for it.
        count = 1 if is_token(self.variant.initial_instance_count) else self.variant.initial_instance_count
        scaling = options.autoscaling
        window = options.alarms.period_seconds * options.alarms.evaluation_periods if options.alarms else 0
        self.deployment_shape = VariantShape(
            min_count=scaling.min_capacity if scaling else count,
            max_count=scaling.max_capacity if scaling else count,
            autoscaled=scaling is not None,
            bake_seconds=min(window, 3600),
        )
        # Literal names, not the alarms' Refs: the alarms depend on the endpoint (their dimension).
        self.rollback_alarm_names: list[str] = []
        self._guard_with([alarm_name(self, n) for n in ROLLBACK_ALARMS if n in self.alarms])
        self.deployment_is_default = options.deployment is None
        self.deployment: ResolvedDeployment | None = None
        self.use_deployment(options.deployment or DeploymentPolicy())

    def _guard_with(self, names: Sequence[str]) -> None:
        """Roll updates back on the alarms ``names`` too (call :meth:`use_deployment` after)."""
        if not names:
            return
        self.rollback_alarm_names.extend(names)
        # SageMaker reads the rollback alarms' state with the model's execution role.
        stack = cdk.Stack.of(self)
        iam.Grant.add_to_principal(
            grantee=self.role, actions=["cloudwatch:DescribeAlarms"],
            resource_arns=[
                stack.format_arn(service="cloudwatch", resource="alarm", resource_name=n,
                                 arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
                for n in names
            ],
        )

    def scaled_elsewhere(self, min_count: int, max_count: int) -> None:
        """The variant's instance count is autoscaled by another construct (asynchronous inference's
        backlog scaling): updates keep the reached count (``RetainAllVariantProperties``) and the
        deployment policy is checked against ``min_count``-``max_count`` instances."""
        self.deployment_shape = replace(self.deployment_shape, min_count=min_count, max_count=max_count,
                                        autoscaled=True)
        self.use_deployment(self.deployment_policy)

    def alarm_on_model_errors(self, term: LogTerm) -> cloudwatch.Alarm:
        """An alarm on ``term`` in the endpoint's log group (a line the serving stack writes once per
        request the model failed), also a rollback alarm of every guarded update.

        For containers that answer model failures with a 4XX status (the 5XX alarm never moves).
        Threshold and window are the 5XX alarm's (``EndpointAlarms``). Creates ``alarms["ModelErrors"]``.
        """
        settings = self._alarm_settings or EndpointAlarms()
        alarm = log_term_alarm(
            self, "ModelErrors", group=self.log_group, term=term, metric_name=self.endpoint.endpoint_name,
            alarm_name=alarm_name(self, "ModelErrors"), threshold=settings.errors_5xx,
            evaluation_periods=settings.evaluation_periods, period_seconds=settings.period_seconds,
            what=f"SageMaker endpoint {self.endpoint.endpoint_name}",
        )
        self.alarms["ModelErrors"] = alarm
        # The deployment config names the alarm: it must exist before the endpoint's next update. No cycle:
        # the alarm's metric names the endpoint by its literal name, and its filter reads the stack's log group.
        self.endpoint.node.add_dependency(alarm)
        self._guard_with([alarm_name(self, "ModelErrors")])
        self.use_deployment(self.deployment_policy)
        return alarm

    def use_deployment(self, policy: DeploymentPolicy) -> ResolvedDeployment:
        """Set the endpoint's ``DeploymentConfig`` (and ``RetainAllVariantProperties`` when autoscaled).

        Raises :class:`EndpointValidationError` for a policy the variant cannot hold.
        """
        problems = Problems()
        for key, value, allowed in check_policy(policy, self.deployment_shape):
            problems.add(key, value, allowed)
        problems.raise_if_any(self.node.path)
        self.deployment_policy = policy
        self.deployment = resolve(policy, self.deployment_shape, self.rollback_alarm_names)
        self.endpoint.deployment_config = self.deployment.config
        # Keeps the count the scaler reached; without it every update resets it to the initial count.
        self.endpoint.retain_all_variant_properties = self.deployment.retain_all_variant_properties or None
        return self.deployment

    def place_in_vpc(self, subnet_ids: Sequence[str], security_group_ids: Sequence[str]) -> None:
        """Run the model's instances in these subnets (``VpcConfig``); the role gets the ENI permissions."""
        from ml_constructs.sagemaker.network import grant_vpc_access

        self.model.vpc_config = sagemaker.CfnModel.VpcConfigProperty(
            subnets=list(subnet_ids), security_group_ids=list(security_group_ids)
        )
        grant_vpc_access(self.role)

    def isolate_network(self) -> None:
        """``EnableNetworkIsolation``: the container makes no network calls (SageMaker still fetches model data)."""
        self.model.enable_network_isolation = True

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """``sagemaker:InvokeEndpoint`` on this endpoint only."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["sagemaker:InvokeEndpoint"], resource_arns=[self.endpoint_arn]
        )

    @staticmethod
    def _check_common(
        problems: Problems,
        model_data: ModelData,
        variant: VariantSettings,
        options: EndpointOptions,
        instance: InstanceType | None,
    ) -> None:
        if not is_token(variant.initial_instance_count) and variant.initial_instance_count < 1:
            problems.add("initial_instance_count", variant.initial_instance_count, "1 or more")
        problems.in_range("volume_size_gb", variant.volume_size_gb, *VOLUME_SIZE_GB)
        problems.in_range(
            "model_data_download_timeout_seconds", variant.model_data_download_timeout_seconds, *DOWNLOAD_TIMEOUT_SECONDS
        )
        problems.in_range(
            "container_startup_health_check_timeout_seconds",
            variant.container_startup_health_check_timeout_seconds,
            *STARTUP_TIMEOUT_SECONDS,
        )
        if instance is not None and instance.has_local_nvme:
            nvme = f"not set: {variant.instance_type} has local NVMe instance storage"
            if variant.volume_size_gb is not None:
                problems.add("volume_size_gb", variant.volume_size_gb, nvme)
            if options.volume_kms_key is not None:
                problems.add("volume_kms_key", "a KMS key", nvme)
        if variant.inference_ami_version is not None:
            # The same rule the configuration and the inference-component endpoint apply.
            ami_problem = inference_ami_problem(variant.instance_type, variant.inference_ami_version)
            if ami_problem:
                problems.found.append(f"inference_ami_version: {ami_problem}")
        if model_data.kind == "tarball" and model_data.url.endswith("/"):
            problems.add("model data URL", model_data.url, "one S3 object (a .tar.gz), not a prefix")
        if model_data.kind != "tarball" and not model_data.url.endswith("/") and not _TRAILING_TOKEN.search(model_data.url):
            problems.add("model data S3 prefix URI", model_data.url, "an S3 prefix URI ending with '/'")
        if options.autoscaling is not None:
            options.autoscaling.check(problems, variant.initial_instance_count)
            if instance is not None and instance.is_burstable:
                problems.add(
                    "instance_type", variant.instance_type, "a non-burstable instance type (ml.t* cannot autoscale)"
                )


def parse_instance(problems: Problems, instance_type: str) -> InstanceType | None:
    """The parsed instance type, or None (a token, or a problem recorded)."""
    if is_token(instance_type):
        return None
    try:
        return InstanceType.parse(instance_type)
    except UnknownInstanceType as exc:
        problems.add("instance_type", instance_type, f"ml.<family>.<size> ({exc})")
        return None
