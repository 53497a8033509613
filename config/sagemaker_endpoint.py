"""Settings shared by the SageMaker endpoint sections (autoscaling and alarms).

Each workload subclasses these with its own documented defaults, because a
nested table given in an environment file is built from its class defaults.
"""
from __future__ import annotations

from dataclasses import dataclass

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
