"""The platform's configuration schema: one frozen dataclass per section.

Defaults are the documented values of each workload (docs/workloads.md);
environment files under ``config/environments/`` only hold what differs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Literal

from config.hosting import platform_hosting_problems
from config.llm import LlmConfig
from config.multi_model import MultiModelConfig
from config.prices import price_problems
from config.sagemaker_endpoint import DeploymentConfig
from config.stable_diffusion import StableDiffusionConfig
from config.training import TrainingConfig, placement_problems
from config.typed import setting

ACCOUNT_PATTERN = r"\d{12}"
REGION_PATTERN = r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d"
SNS_TOPIC_ARN_PATTERN = r"arn:aws[a-z\-]*:sns:([a-z0-9\-]+):(\d{12}):[A-Za-z0-9_\-]{1,256}"
# The stack of each workload that serves endpoints: <stack_prefix>-<environment>-<component>.
ENDPOINT_STACKS = {"stable_diffusion": "StableDiffusion", "multi_model": "MultiModel", "llm": "Llm"}
EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"


@dataclass(frozen=True)
class AlertsConfig:
    """Where every alarm of the environment goes (alarm and OK actions).

    Default: an SNS topic encrypted with a customer managed key, created in the
    storage stack, with one email subscription per address. ``topic_arn``
    instead uses an existing topic (yours, with its subscriptions); it must be
    in the environment's region (CloudWatch alarm actions are regional).
    """

    emails: tuple[str, ...] = setting(
        default_factory=tuple, doc="Email addresses subscribed to the created topic (each confirms by mail)."
    )
    topic_arn: str | None = setting(
        None, pattern=SNS_TOPIC_ARN_PATTERN, doc="An existing SNS topic in the same region; no topic is created."
    )

    def problems(self) -> list[tuple[str, str]]:
        found = [
            (f"emails[{i}]", f"got {email!r}, allowed: an email address")
            for i, email in enumerate(self.emails)
            if not re.fullmatch(EMAIL_PATTERN, email)
        ]
        if self.topic_arn is not None and self.emails:
            found.append(("emails", "got email addresses and topic_arn; allowed: one of them (subscribe the "
                          "addresses to your own topic, or leave topic_arn out to have one created)"))
        return found

    @property
    def topic_region(self) -> str | None:
        match = re.fullmatch(SNS_TOPIC_ARN_PATTERN, self.topic_arn or "")
        return match[1] if match else None


@dataclass(frozen=True)
class EndpointNetworkConfig:
    """Where the endpoints' model containers run, and what they may reach.

    Default: SageMaker's managed network (the containers can reach the internet).
    ``private``: a VPC with isolated subnets and the AWS service endpoints the models
    need (in the storage stack); ``network_isolation``: the workloads whose containers
    get no network at all (only those that fetch nothing themselves).
    """

    private: bool = setting(False, doc="true: models run in isolated subnets of a platform VPC (VpcConfig).")
    vpc_cidr: str = setting("10.40.0.0/16", pattern=r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/(1[6-9]|2[0-4])")
    network_isolation: tuple[Literal["stable_diffusion", "multi_model", "llm"], ...] = setting(
        default_factory=tuple, doc="Workloads whose containers get EnableNetworkIsolation (no network calls)."
    )


@dataclass(frozen=True)
class StorageConfig:
    """Artifact buckets: what lives where is in docs/architecture.md (Artifact storage)."""

    encryption: Literal["kms", "s3"] = setting(
        "kms", doc="kms: one customer managed key with rotation; s3: SSE-S3 (AES256)."
    )
    abort_incomplete_multipart_upload_days: int = setting(7, ge=1, le=365)
    noncurrent_version_expiration_days: int = setting(
        30, ge=1, le=3650, doc="How long overwritten or deleted versions of models and checkpoints are kept."
    )
    compile_cache_expiration_days: int = setting(
        30, ge=1, le=3650, doc="Neuron compile cache entries older than this are deleted (the cache never evicts)."
    )
    access_logs_expiration_days: int = setting(365, ge=1, le=3650)


@dataclass(frozen=True)
class PlatformConfig:
    """Everything one environment deploys."""

    environment: str = setting(doc="Set from -c env=NAME; not read from files.")
    account: str | None = setting(None, pattern=ACCOUNT_PATTERN, doc="None: environment-agnostic synth.")
    region: str | None = setting(None, pattern=REGION_PATTERN, doc="None: environment-agnostic synth.")
    stack_prefix: str = setting("MlAccel", pattern=r"[A-Za-z][A-Za-z0-9]{0,30}")
    retain_data: bool = setting(True, doc="true: buckets and keys survive stack deletion (prod).")
    tags: dict[str, str] = setting(default_factory=dict)
    storage: StorageConfig = setting(default_factory=StorageConfig)
    stable_diffusion: StableDiffusionConfig = setting(default_factory=StableDiffusionConfig)
    multi_model: MultiModelConfig = setting(default_factory=MultiModelConfig)
    llm: LlmConfig = setting(default_factory=LlmConfig)
    training: TrainingConfig = setting(default_factory=TrainingConfig)
    deployment: DeploymentConfig = setting(
        default_factory=DeploymentConfig, doc="How every endpoint is updated (rolling / blue-green, rollback)."
    )
    alerts: AlertsConfig = setting(default_factory=AlertsConfig, doc="Where every alarm's notifications go.")
    endpoint_network: EndpointNetworkConfig = setting(
        default_factory=EndpointNetworkConfig, doc="Private subnets and network isolation for the models."
    )

    def stack_name(self, component: str) -> str:
        """The name of one of the environment's stacks (``Storage``, ``Llm``, ...)."""
        return f"{self.stack_prefix}-{self.environment}-{component}"

    def endpoint_stacks(self) -> dict[str, str]:
        """Workload -> stack name, for each enabled workload that serves endpoints."""
        return {w: self.stack_name(c) for w, c in ENDPOINT_STACKS.items() if getattr(self, w).enabled}

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if (self.account is None) != (self.region is None):
            found.append(("account", "account and region must be set together, or both left out (environment-agnostic)"))
        for key in self.tags:
            if not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
                found.append((f"tags.{key}", "tag keys are 1-128 characters and must not start with 'aws:'"))
        if self.region is not None and self.alerts.topic_region not in (None, self.region):
            found.append(("alerts.topic_arn", f"got {self.alerts.topic_arn!r} (region {self.alerts.topic_region}), "
                          f"allowed: a topic in the environment's region {self.region} (alarm actions are regional)"))
        found += deployment_problems(self)
        found += image_region_problems(self)
        found += placement_problems(self.training, pinned=self.region is not None)
        found += [(f"llm.{key}", message) for key, message in self.llm.region_problems(self.region)]
        found += isolation_problems(self)
        found += platform_hosting_problems(self) + price_problems(self)  # config/hosting.py, config/prices.py
        return found


def endpoint_shapes(cfg: "PlatformConfig") -> dict[str, tuple[int, int, bool]]:
    """(min count, max count, autoscaled) of each enabled instance-hosted endpoint, by workload (and model)."""
    shapes: dict[str, tuple[int, int, bool]] = {}
    for name in ("stable_diffusion", "multi_model"):
        section = getattr(cfg, name)
        if section.enabled and not _uses_components(getattr(section, "hosting", None)):
            scaling = section.autoscaling
            shapes[name] = ((scaling.min_capacity, scaling.max_capacity, True) if scaling.enabled
                            else (section.instance_count, section.instance_count, False))
    if cfg.llm.enabled:
        for model in cfg.llm.resolved_models():
            if not _uses_components(model.hosting):
                shapes[f"llm.models.{model.name}"] = (model.instance_count, model.instance_count, False)
    return shapes


def component_copy_ranges(cfg: "PlatformConfig") -> dict[str, tuple[int, int]]:
    """(min copies, max copies) of each enabled endpoint hosted as an inference component."""
    from config.hosting import resolve_component

    hosted = []
    if cfg.stable_diffusion.enabled:
        hosted.append(("stable_diffusion", cfg.stable_diffusion.hosting, cfg.stable_diffusion.instance_type))
    if cfg.llm.enabled:
        hosted += [(f"llm.models.{m.name}", m.hosting, m.instance_type) for m in cfg.llm.resolved_models()]
    ranges = {}
    for endpoint, hosting, instance_type in hosted:
        resolved = resolve_component(hosting, instance_type) if _uses_components(hosting) else None
        if resolved is not None:
            ranges[endpoint] = (resolved.min_copies, resolved.max_copies)
    return ranges


def _uses_components(hosting: object) -> bool:
    return bool(getattr(hosting, "uses_components", False))


def isolation_problems(cfg: "PlatformConfig") -> list[tuple[str, str]]:
    """Network isolation only for workloads whose containers download nothing themselves."""
    # The LLM containers of both profiles, and Stable Diffusion's optimum-neuron (current) profile, read
    # what SageMaker copied (ModelDataSource); the DJL Stable Diffusion handlers download OPTION_MODEL_ID.
    downloads = {}
    if cfg.stable_diffusion.mode != "optimum-neuron":
        downloads["stable_diffusion"] = ("its container downloads the compiled artifacts from S3 itself "
                                         f"(OPTION_MODEL_ID, runtime {cfg.stable_diffusion.runtime!r})")
    found = []
    for workload in cfg.endpoint_network.network_isolation:
        if workload in downloads:
            found.append(("endpoint_network.network_isolation",
                          f"got {workload!r}, allowed: workloads whose containers fetch nothing themselves "
                          f"('multi_model', 'llm', and 'stable_diffusion' on runtime 'current'): {downloads[workload]}"))
    return found


def image_region_problems(cfg: "PlatformConfig") -> list[tuple[str, str]]:
    """With a pinned region: each enabled workload's Deep Learning Container tag must be published there."""
    from ml_constructs.sagemaker.dlc_regions import tag_problem

    if cfg.region is None:
        return []  # checked at deploy time by template rules
    found = []
    for workload in ENDPOINT_STACKS:
        section = getattr(cfg, workload)
        repository, tag = deep_learning_container_of(section)
        if section.enabled and repository and tag and (problem := tag_problem(repository, tag, cfg.region)):
            found.append((f"{workload}.image_tag", f"got {tag!r} with region {cfg.region!r}: {problem}"))
    # The Neuron compile job pulls its own image when one is given (a full URI is the user's registry).
    compile_image = cfg.stable_diffusion.compile.image
    if cfg.stable_diffusion.enabled and compile_image:
        repository, _, tag = compile_image.rpartition(":")
        registry_host = "." in repository.split("/")[0]
        if not registry_host and (problem := tag_problem(repository, tag, cfg.region)):
            found.append(("stable_diffusion.compile.image",
                          f"got {compile_image!r} with region {cfg.region!r}: {problem}"))
    return found


def deep_learning_container_of(section: object) -> tuple[str | None, str | None]:
    """The AWS Deep Learning Container a workload section pulls: its runtime profile's image (or an
    explicit tag), or its own repository and tag; (None, None) for an image built or hosted elsewhere."""
    if getattr(section, "image_uri", None):
        return None, None  # a prebuilt image in the user's own registry
    profile = getattr(section, "profile", None)
    if profile is not None and not profile.dockerfile:
        return profile.image_repository, getattr(section, "image_tag", None) or profile.default_tag
    if profile is not None:
        return None, None  # built at deploy from the profile's Dockerfile into the CDK assets repository
    return getattr(section, "image_repository", None), getattr(section, "image_tag", None)


def deployment_problems(cfg: "PlatformConfig") -> list[tuple[str, str]]:
    """The deployment settings each enabled endpoint cannot hold (the construct applies the same rules)."""
    from ml_constructs.sagemaker.deployment import (
        DEFAULT_ALARM_WINDOW_SECONDS,
        DeploymentPolicy,
        VariantShape,
        check_component_policy,
        check_policy,
    )

    policy = DeploymentPolicy(**{f.name: getattr(cfg.deployment, f.name) for f in fields(DeploymentConfig)})
    found = []
    for endpoint, (low, high, autoscaled) in endpoint_shapes(cfg).items():
        for key, value, allowed in check_policy(policy, VariantShape(low, high, autoscaled, DEFAULT_ALARM_WINDOW_SECONDS)):
            found.append((key, f"got {value!r}, allowed for the {endpoint} endpoint: {allowed}"))
    # Inference components roll their copies (ml_constructs/sagemaker/inference_components.py).
    for endpoint, (low, high) in component_copy_ranges(cfg).items():
        shape = VariantShape(low, high, True, DEFAULT_ALARM_WINDOW_SECONDS, units="copies", holder="inference component")
        for key, value, allowed in check_component_policy(policy, shape):
            found.append((key, f"got {value!r}, allowed for the {endpoint} endpoint: {allowed}"))
    return found
