"""Settings shared by the SageMaker endpoint sections (autoscaling and alarms).

Each workload subclasses these with its own documented defaults, because a
nested table given in an environment file is built from its class defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from config.typed import setting

INSTANCE_TYPE_PATTERN = r"ml\.[a-z]+\d+[a-z\-]*\.[a-z0-9]+"
IMAGE_REPOSITORY_PATTERN = r"[a-z0-9][a-z0-9._/\-]{0,255}"
IMAGE_TAG_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}"


@dataclass(frozen=True)
class AutoscalingConfig:
    """Target tracking on invocations per instance: target = max_rps_per_instance x 60 x safety_factor."""

    enabled: bool = setting(False, doc="true: register the variant with Application Auto Scaling.")
    min_capacity: int = setting(1, ge=1, le=1000)
    max_capacity: int = setting(2, ge=1, le=1000)
    max_rps_per_instance: float = setting(
        1.0, ge=0.001, le=100000, doc="Sustained requests/s one instance served in a load test."
    )
    safety_factor: float = setting(0.5, ge=0.05, le=1.0, doc="0.5 is AWS's recommended starting point.")
    scale_in_cooldown_seconds: int = setting(300, ge=0, le=3600)
    scale_out_cooldown_seconds: int = setting(300, ge=0, le=3600)

    def problems(self) -> list[tuple[str, str]]:
        if self.min_capacity > self.max_capacity:
            return [("min_capacity", f"got {self.min_capacity}, allowed: at most max_capacity ({self.max_capacity})")]
        return []


@dataclass(frozen=True)
class AlarmsConfig:
    """Alarm thresholds (CPU/GPU per vCPU/GPU; alarms exist for what the instance reports)."""

    model_latency_p99_ms: float = setting(1000.0, ge=1, le=3600000)
    errors_5xx: int = setting(1, ge=1, le=100000, doc="5XX errors per 5 minutes, 3 periods in a row.")
    cpu_percent: float = setting(90.0, ge=1, le=100)
    memory_percent: float = setting(90.0, ge=1, le=100)
    disk_percent: float = setting(90.0, ge=1, le=100)
    gpu_percent: float = setting(95.0, ge=1, le=100)
    gpu_memory_percent: float = setting(95.0, ge=1, le=100)


def capacity_problem(count: int, scaling: AutoscalingConfig) -> list[tuple[str, str]]:
    """min_capacity <= instance_count <= max_capacity when autoscaling is on."""
    if scaling.enabled and not scaling.min_capacity <= count <= scaling.max_capacity:
        return [(
            "instance_count",
            f"got {count}, allowed: autoscaling.min_capacity ({scaling.min_capacity}) to "
            f"autoscaling.max_capacity ({scaling.max_capacity})",
        )]
    return []


@dataclass(frozen=True)
class DeploymentConfig:
    """How every endpoint of the environment is updated (docs/operations.md states the capacity each needs).

    ``auto`` rolls in batches where the variant always has 2 or more instances (the
    multi-model endpoint in prod: 5 extra instances instead of 20) and uses blue/green
    elsewhere (one extra instance for a one-instance endpoint, the least any update needs).
    """

    strategy: Literal["auto", "rolling", "blue_green"] = setting(
        "auto", doc="auto: rolling where the variant always has 2+ instances, else blue_green."
    )
    batch_size: int = setting(25, ge=1, le=1000, doc="Rolling batch: percent (5-50) or instances, see batch_unit.")
    batch_unit: Literal["percent", "instances"] = setting("percent")
    rollback_batch_size: int | None = setting(
        None, ge=1, le=1000, doc="Rolling rollback batch (same unit); None: batch_size (AWS's default is all at once)."
    )
    traffic: Literal["all_at_once", "canary", "linear"] = setting("all_at_once", doc="Blue/green traffic shifting.")
    traffic_step_percent: int = setting(10, ge=1, le=50, doc="Canary size (1-50) or linear step (10-50), blue/green.")
    wait_interval_seconds: int | None = setting(
        None, ge=0, le=3600, doc="Bake per rolling batch or traffic step; None: the alarms' evaluation window."
    )
    termination_wait_seconds: int | None = setting(
        None, ge=0, le=3600, doc="Blue/green final bake before the old fleet goes; None: the alarms' window."
    )
    maximum_execution_timeout_seconds: int | None = setting(None, ge=600, le=28800)
    auto_rollback: bool = setting(True, doc="Roll back when the endpoint's 5XX or latency alarm fires during an update.")

    def problems(self) -> list[tuple[str, str]]:
        if self.batch_unit == "percent":
            found = []
            for key in ("batch_size", "rollback_batch_size"):
                value = getattr(self, key)
                if value is not None and not 5 <= value <= 50:
                    found.append((key, f"got {value}, allowed: 5 to 50 (percent of the variant's instances)"))
            return found
        return []
