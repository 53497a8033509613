"""How an endpoint is hosted: instances (a fixed or autoscaled fleet) or inference components.

``mode = "inference-components"`` hosts the model as an ``AWS::SageMaker::InferenceComponent`` on
an endpoint with managed instance scaling: SageMaker adds and removes instances to fit the
copies, and with ``min_instances = 0`` an idle endpoint scales to zero instances (no instance
cost; the first request after that waits minutes for a cold start; docs/costs.md).

Each workload section has a ``hosting`` table (``[stable_diffusion.hosting]``,
``[llm.models.<name>.hosting]``); rules that depend on the instance type are checked by
:func:`hosting_problems`, called from the platform configuration with the section's key.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from config.typed import setting
from ml_constructs.sagemaker.instances import InstanceType, UnknownInstanceType

HostingMode = Literal["instances", "inference-components"]
CopyMetric = Literal["invocations-per-copy", "concurrent-requests-per-copy"]


@dataclass(frozen=True)
class HostingConfig:
    """Instances (the default) or inference components with scale-to-zero."""

    mode: HostingMode = setting(
        "instances",
        doc="instances: the model on a production variant (instance_count, autoscaling); inference-components: "
        "one inference component per model on an endpoint whose instances SageMaker manages (can reach zero).",
    )
    min_instances: int | None = setting(
        None, ge=0, le=1000, doc="Inference components only. None: 0 (scale to zero when idle)."
    )
    max_instances: int = setting(
        2, ge=1, le=1000, doc="Inference components only: the instance ceiling. An update starts its new copies "
        "beside the old ones, so it must hold them too (2: one copy and its replacement)."
    )
    copies: int = setting(
        1, ge=0, le=1000, doc="Copies deployed by CloudFormation; 1 proves the model loads before the deploy ends."
    )
    min_copies: int = setting(0, ge=0, le=1000, doc="Copy floor of the scaling policy; 0 lets the endpoint go idle.")
    max_copies: int | None = setting(
        None, ge=1, le=1000, doc="Copy ceiling. None: half of what max_instances hold (at least 1), leaving room "
        "for an update's new copies."
    )
    accelerators_per_copy: int | None = setting(
        None, ge=1, le=64, doc="NumberOfAcceleratorDevicesRequired: accelerator devices per copy, GPUs or Inferentia2/Trainium chips "
        "(2 NeuronCores each), not NeuronCores. None: every device of the instance (1 on ml.inf2.xlarge)."
    )
    memory_per_copy_mb: int | None = setting(
        None, ge=128, le=4194304, doc="MinMemoryRequiredInMb. None: half the instance's memory divided by copies "
        "per instance."
    )
    scaling_metric: CopyMetric = setting(
        "invocations-per-copy",
        doc="invocations-per-copy: SageMakerInferenceComponentInvocationsPerCopy (per minute), the metric AWS's "
        "scale-to-zero guide uses; concurrent-requests-per-copy: the high-resolution concurrency metric.",
    )
    target_value: float = setting(
        10.0, ge=0.01, le=100000, doc="Target of the copy scaling policy, in the metric's unit."
    )
    scale_in_cooldown_seconds: int = setting(600, ge=0, le=86400, doc="Idle time before a copy is removed.")
    scale_out_cooldown_seconds: int = setting(60, ge=0, le=86400)
    routing: Literal["LEAST_OUTSTANDING_REQUESTS", "RANDOM"] = setting("LEAST_OUTSTANDING_REQUESTS")

    @property
    def uses_components(self) -> bool:
        return self.mode == "inference-components"

    @property
    def floor_instances(self) -> int:
        return 0 if self.min_instances is None else self.min_instances

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if not self.uses_components:
            if self.min_instances is not None:
                found.append(("min_instances", (
                    f"got {self.min_instances} with mode 'instances'; allowed: unset, or mode = "
                    "'inference-components' (only endpoints that host inference components scale to zero)")))
            return found
        if self.floor_instances > self.max_instances:
            found.append(("min_instances", f"got {self.floor_instances}, allowed: at most max_instances "
                          f"({self.max_instances})"))
        ceiling = self.max_copies
        if ceiling is not None and self.min_copies > ceiling:
            found.append(("min_copies", f"got {self.min_copies}, allowed: at most max_copies ({ceiling})"))
        if ceiling is not None and not self.min_copies <= self.copies <= ceiling:
            found.append(("copies", f"got {self.copies}, allowed: min_copies ({self.min_copies}) to max_copies "
                          f"({ceiling})"))
        elif self.copies < self.min_copies:
            found.append(("copies", f"got {self.copies}, allowed: at least min_copies ({self.min_copies})"))
        return found


@dataclass(frozen=True)
class ResolvedComponent:
    """A component's compute per copy and its copy range, with every default filled in."""

    accelerators_per_copy: int | None
    memory_per_copy_mb: int
    copies_per_instance: int
    min_copies: int
    max_copies: int
    copies: int

    def instances_for(self, copies: int) -> int:
        return math.ceil(copies / self.copies_per_instance) if copies else 0


def resolve_component(hosting: HostingConfig, instance_type: str) -> ResolvedComponent | None:
    """Per-copy compute and copy range on ``instance_type``; None if the instance is not catalogued."""
    try:
        instance = InstanceType.parse(instance_type)
    except UnknownInstanceType:
        return None
    accelerators = instance.accelerator_devices  # what NumberOfAcceleratorDevicesRequired counts
    memory_gib = instance.memory_gib
    if memory_gib is None or accelerators is None:
        return None
    per_copy_accel = hosting.accelerators_per_copy if hosting.accelerators_per_copy else (accelerators or None)
    by_accel = accelerators // per_copy_accel if per_copy_accel and accelerators else None
    memory_mb = memory_gib * 1024
    if hosting.memory_per_copy_mb is not None:
        per_copy_memory = hosting.memory_per_copy_mb
    else:
        per_copy_memory = max(128, memory_mb // 2 // (by_accel or 1))
    by_memory = memory_mb // per_copy_memory
    per_instance = max(0, min(x for x in (by_accel, by_memory) if x is not None))
    # Unset: half the slots, so that any update (all new copies at once, or a rolling batch of at most 50 %)
    # has room for its new copies beside the old ones (rolling_room_problems).
    max_copies = hosting.max_copies if hosting.max_copies is not None else max(
        1, per_instance * hosting.max_instances // 2)
    return ResolvedComponent(per_copy_accel, per_copy_memory, max(per_instance, 1), hosting.min_copies, max_copies,
                             hosting.copies)


def hosting_problems(
    hosting: HostingConfig,
    instance_type: str,
    *,
    tensor_parallel_degree: int | None = None,
    autoscaling_enabled: bool = False,
) -> list[tuple[str, str]]:
    """Rules that need the instance type, as ``(key under the section, message)``."""
    if not hosting.uses_components:
        return []
    found: list[tuple[str, str]] = []
    if autoscaling_enabled:
        found.append(("autoscaling.enabled", (
            "got true with hosting.mode 'inference-components'; allowed: false (the copies scale, with "
            "hosting.min_copies/max_copies/target_value; SageMaker manages the instances)")))
    try:
        instance = InstanceType.parse(instance_type)
    except UnknownInstanceType:
        return found  # reported by the section's own instance_type rule
    if instance.is_burstable:
        found.append(("instance_type", f"got {instance_type!r} with hosting.mode 'inference-components'; allowed: "
                      "a non-burstable instance type (ml.t* cannot autoscale)"))
    accelerators = instance.accelerator_devices
    if hosting.accelerators_per_copy is not None and accelerators is not None:
        if accelerators == 0:
            found.append(("hosting.accelerators_per_copy", f"got {hosting.accelerators_per_copy}, allowed: unset "
                          f"({instance_type} has no accelerators)"))
        elif hosting.accelerators_per_copy > accelerators:
            found.append(("hosting.accelerators_per_copy", f"got {hosting.accelerators_per_copy}, allowed: at most "
                          f"{accelerators} (the accelerator devices one {instance_type} has; a copy runs on one "
                          "instance)"))
    memory_gib = instance.memory_gib
    if hosting.memory_per_copy_mb is not None and memory_gib is not None and (
            hosting.memory_per_copy_mb > memory_gib * 1024):
        found.append(("hosting.memory_per_copy_mb", f"got {hosting.memory_per_copy_mb}, allowed: at most "
                      f"{memory_gib * 1024} ({instance_type} has {memory_gib} GiB; a copy runs on one instance)"))
    if found:
        return found
    resolved = resolve_component(hosting, instance_type)
    if resolved is not None:
        capacity = resolved.copies_per_instance * hosting.max_instances
        if resolved.max_copies > capacity:
            found.append(("hosting.max_copies", f"got {resolved.max_copies}, allowed: at most {capacity} "
                          f"({hosting.max_instances} x {instance_type} hold {resolved.copies_per_instance} "
                          "copies each)"))
        for key, value in (("hosting.copies", hosting.copies), ("hosting.min_copies", hosting.min_copies)):
            if hosting.max_copies is None and value > resolved.max_copies:
                found.append((key, f"got {value}, allowed: at most {resolved.max_copies} (max_copies unset: half "
                              f"of what max_instances = {hosting.max_instances} x {instance_type} hold, the other "
                              "half is room for an update), or set hosting.max_copies"))
        per_device = instance.cores_per_device
        if (tensor_parallel_degree is not None and resolved.accelerators_per_copy is not None
                and tensor_parallel_degree > resolved.accelerators_per_copy * per_device):
            needed = -(-tensor_parallel_degree // per_device)
            found.append(("hosting.accelerators_per_copy", (
                f"got {resolved.accelerators_per_copy}, allowed: at least {needed} (tensor_parallel_degree "
                f"{tensor_parallel_degree}" + (f" NeuronCores, {per_device} per device" if per_device > 1 else "")
                + "); a copy sees only its own accelerators")))
    return found


def platform_hosting_problems(cfg: Any) -> list[tuple[str, str]]:
    """Every section's hosting rules, keyed from the configuration root (PlatformConfig.problems)."""
    found: list[tuple[str, str]] = []
    sd = cfg.stable_diffusion
    if sd.enabled:
        found += [(f"stable_diffusion.{key}", message) for key, message in async_problems(sd)]
        found += [(f"stable_diffusion.{key}", message) for key, message in hosting_problems(
            sd.hosting, sd.instance_type, tensor_parallel_degree=sd.tensor_parallel_degree,
            autoscaling_enabled=sd.autoscaling.enabled)]
    if cfg.llm.enabled:
        for model in cfg.llm.resolved_models():
            found += [(f"llm.models.{model.name}.{key}", message) for key, message in hosting_problems(
                model.hosting, model.instance_type, tensor_parallel_degree=model.tensor_parallel_degree)]
    sections = [("stable_diffusion", sd)] if sd.enabled else []
    sections += [(f"llm.models.{m.name}", m) for m in cfg.llm.resolved_models()] if cfg.llm.enabled else []
    return found + [problem for where, section in sections for problem in _update_room_problems(cfg, where, section)]


def _update_room_problems(cfg: Any, where: str, section: Any) -> list[tuple[str, str]]:
    """A component update needs room for its new copies at the copy ceiling (the construct checks the same)."""
    from dataclasses import fields

    from ml_constructs.sagemaker.deployment import (
        DEFAULT_ALARM_WINDOW_SECONDS,
        DeploymentPolicy,
        VariantShape,
        component_update_room,
    )

    hosting = section.hosting
    resolved = resolve_component(hosting, section.instance_type) if hosting.uses_components else None
    if resolved is None:
        return []
    policy = DeploymentPolicy(**{f.name: getattr(cfg.deployment, f.name) for f in fields(cfg.deployment)})
    shape = VariantShape(resolved.min_copies, resolved.max_copies, True, DEFAULT_ALARM_WINDOW_SECONDS, units="copies")
    needed, _, how = component_update_room(policy, shape, resolved.copies_per_instance)
    if needed <= hosting.max_instances:
        return []
    return [(f"{where}.hosting.max_instances", (
        f"got {hosting.max_instances}, allowed: at least {needed}: {how} beside the {resolved.max_copies} at the "
        f"copy ceiling, {resolved.copies_per_instance} per {section.instance_type} (or lower hosting.max_copies, "
        "or, for a rolling update, deployment.batch_size)"))]


@dataclass(frozen=True)
class AsyncInferenceConfig:
    """Asynchronous invocations (InvokeEndpointAsync): requests queue in S3, the endpoint can idle at zero."""

    enabled: bool = setting(False, doc="true: the endpoint takes asynchronous requests only (invoke-sd --async).")
    min_instances: int = setting(0, ge=0, le=1000, doc="0: no instance while the queue is empty.")
    max_instances: int = setting(1, ge=1, le=1000)
    max_concurrent_invocations_per_instance: int = setting(
        1, ge=1, le=1000, doc="Requests one instance works on at once (Stable Diffusion renders one image at a time)."
    )
    target_backlog_per_instance: float = setting(
        2.0, ge=0.01, le=100000, doc="Queued requests per instance the backlog policy keeps (ApproximateBacklogSizePerInstance)."
    )
    scale_in_cooldown_seconds: int = setting(600, ge=0, le=86400)
    scale_out_cooldown_seconds: int = setting(60, ge=0, le=86400)
    notifications: bool = setting(True, doc="SNS success and error topics (encrypted).")

    def problems(self) -> list[tuple[str, str]]:
        if self.min_instances > self.max_instances:
            return [("min_instances", f"got {self.min_instances}, allowed: at most max_instances ({self.max_instances})")]
        return []


def async_problems(section: Any) -> list[tuple[str, str]]:
    """What cannot combine with asynchronous inference, keyed under the section."""
    async_cfg = section.async_inference
    if not async_cfg.enabled:
        return []
    found = []
    if section.autoscaling.enabled:
        found.append(("autoscaling.enabled", (
            "got true with async_inference.enabled; allowed: false (invocations per instance does not see queued "
            "requests: the asynchronous endpoint scales on async_inference.target_backlog_per_instance)")))
    if section.hosting.uses_components:
        found.append(("hosting.mode", ("got 'inference-components' with async_inference.enabled; allowed: 'instances' "
                                       "(asynchronous endpoints host one model on a production variant)")))
    return found
