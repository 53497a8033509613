"""Configuration of workload W2: scikit-learn models behind one multi-model endpoint."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from config.sagemaker_endpoint import (
    IMAGE_REPOSITORY_PATTERN,
    IMAGE_TAG_PATTERN,
    INSTANCE_TYPE_PATTERN,
    AlarmsConfig,
    AutoscalingConfig,
    capacity_problem,
)
from config.typed import setting
from ml_constructs.sagemaker.instances import variant_problems


@dataclass(frozen=True)
class MultiModelAutoscaling(AutoscalingConfig):
    """On by default: endpoint-level target tracking on invocations per instance (W2)."""

    enabled: bool = setting(True)
    min_capacity: int = setting(20, ge=1, le=1000, doc="The documented 20 instances stay the floor.")
    max_capacity: int = setting(40, ge=1, le=1000)
    max_rps_per_instance: float = setting(
        200.0, ge=0.001, le=100000, doc="Measure with the Locust load test and set per environment."
    )


@dataclass(frozen=True)
class MultiModelAlarms(AlarmsConfig):
    model_latency_p99_ms: float = setting(100.0, ge=1, le=3600000)


@dataclass(frozen=True)
class MultiModelConfig:
    """Workload W2: scikit-learn models behind one multi-model endpoint.

    Models are published (by a tool, not by the stack) as
    ``<multi_model_packages prefix><name>.tar.gz``; clients pass ``TargetModel=<name>.tar.gz``.
    """

    enabled: bool = setting(True, doc="false: the stack is not synthesized in this environment.")
    image_repository: str = setting("djl-inference", pattern=IMAGE_REPOSITORY_PATTERN)
    image_tag: str = setting("0.23.0-cpu-full", pattern=IMAGE_TAG_PATTERN, doc="DJL Serving CPU image (W2).")
    instance_type: str = setting("ml.c5d.18xlarge", pattern=INSTANCE_TYPE_PATTERN)
    instance_count: int = setting(20, ge=1, le=1000, doc="20 reaches thousands of TPS (needs a quota increase).")
    volume_size_gb: int | None = setting(None, ge=1, le=512, doc="Not allowed on c5d (local NVMe).")
    model_data_download_timeout_seconds: int | None = setting(None, ge=60, le=3600)
    container_startup_health_check_timeout_seconds: int | None = setting(None, ge=60, le=3600)
    model_cache: Literal["Enabled", "Disabled"] = setting("Enabled", doc="MultiModelConfig.ModelCacheSetting.")
    # Read by the model publisher and load-test tools (rendered into each package's serving.properties).
    model_count: int = setting(1000, ge=1, le=100000, doc="Models published: sklearn-0 .. sklearn-<n-1>.")
    min_workers: int | None = setting(None, ge=1, le=1024, doc="DJL minWorkers per model; None: DJL's default.")
    max_workers: int | None = setting(None, ge=1, le=1024, doc="DJL maxWorkers per model; None: DJL's default.")
    max_idle_time_seconds: int = setting(600, ge=1, le=86400, doc="DJL max_idle_time: idle workers are removed.")
    autoscaling: MultiModelAutoscaling = setting(default_factory=MultiModelAutoscaling)
    alarms: MultiModelAlarms = setting(default_factory=MultiModelAlarms)

    def problems(self) -> list[tuple[str, str]]:
        found = capacity_problem(self.instance_count, self.autoscaling)
        found += variant_problems(
            self.instance_type, volume_size_gb=self.volume_size_gb, autoscaling=self.autoscaling.enabled, cpu_only=True
        )
        if self.min_workers is not None and self.max_workers is not None and self.min_workers > self.max_workers:
            found.append(("min_workers", f"got {self.min_workers}, allowed: at most max_workers ({self.max_workers})"))
        return found
