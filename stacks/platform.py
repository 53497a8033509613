"""Compose the whole platform for one environment: the single app factory.

The app entry (``app.py``) reads and validates configuration, then calls
:func:`build_platform`. Tests call it too, with configurations of their own.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks

from config.schema import PlatformConfig
from ml_constructs.alerts import AlarmActions
from ml_constructs.compliance import Nist80053Baseline
from ml_constructs.sagemaker.deployment import DeploymentPolicy
from ml_constructs.sagemaker.deployment_defaults import DeploymentDefaults, EndpointPlacement
from stacks.llm_stack import LlmStack
from stacks.multi_model_stack import MultiModelStack
from stacks.stable_diffusion_stack import StableDiffusionStack
from stacks.storage_stack import ArtifactStorageStack
from stacks.training_stack import TrainingStack


@dataclass
class Platform:
    """The stacks of one environment, for tests and for wiring."""

    storage: ArtifactStorageStack
    workloads: dict[str, cdk.Stack] = field(default_factory=dict)


def build_platform(app: cdk.App, cfg: PlatformConfig) -> Platform:
    """Add every enabled stack of ``cfg`` to ``app`` and register cdk-nag (AwsSolutions, NIST 800-53 R5) once."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(), NIST80053R5Checks())
    env = cdk.Environment(account=cfg.account, region=cfg.region) if cfg.account else None

    name = cfg.stack_name

    storage = ArtifactStorageStack(
        app,
        name("Storage"),
        env=env,
        storage=cfg.storage,
        retain_data=cfg.retain_data,
        alerts=cfg.alerts,
        endpoint_network=cfg.endpoint_network,
        description=f"ML accelerator platform ({cfg.environment}): artifact buckets",
    )
    platform = Platform(storage=storage)
    # Workload stacks are added here, each guarded by its `enabled` switch.
    if cfg.stable_diffusion.enabled:
        platform.workloads["stable_diffusion"] = StableDiffusionStack(
            app, name("StableDiffusion"), env=env, config=cfg.stable_diffusion, storage=storage,
            description=f"ML accelerator platform ({cfg.environment}): Stable Diffusion on Inferentia2 (W1)",
        )
    if cfg.multi_model.enabled:
        platform.workloads["multi_model"] = MultiModelStack(
            app, name("MultiModel"), env=env, config=cfg.multi_model, storage=storage,
            description=f"ML accelerator platform ({cfg.environment}): multi-model endpoint (W2)",
        )
    if cfg.llm.enabled:
        platform.workloads["llm"] = LlmStack(
            app, name("Llm"), env=env, config=cfg.llm, storage=storage,
            description=f"ML accelerator platform ({cfg.environment}): LLMs with tensor parallelism (W3)",
        )
    if cfg.training.enabled:
        platform.workloads["training"] = TrainingStack(
            app, name("Training"), env=env, training=cfg.training, storage=storage, retain_data=cfg.retain_data,
            description=f"ML accelerator platform ({cfg.environment}): Trainium training on AWS Batch (W4)",
        )

    # The environment's update policy for every endpoint (validated with the configuration).
    policy = DeploymentPolicy(**{f.name: getattr(cfg.deployment, f.name) for f in fields(cfg.deployment)})
    cdk.Aspects.of(app).add(DeploymentDefaults(policy))
    # Private subnets and network isolation for the models, per configuration.
    isolated = {platform.workloads[w].node.path for w in cfg.endpoint_network.network_isolation if w in platform.workloads}
    cdk.Aspects.of(app).add(EndpointPlacement(storage.endpoint_network, isolated))
    # NIST 800-53 R5: log groups take the platform key; what is the design is acknowledged where it is.
    cdk.Aspects.of(app).add(Nist80053Baseline(storage.platform_key_arn_for))
    # Every alarm of every stack notifies the environment's topic (alarm and OK).
    cdk.Aspects.of(app).add(AlarmActions(storage.alert_topic_arn_for))
    for key, value in sorted(cfg.tags.items()):
        cdk.Tags.of(app).add(key, value)
    return platform
