"""Configuration of workload W2: scikit-learn models behind one multi-model endpoint.

Worker settings (docs/multi-model.md, "Workers"): DJL Serving v0.23.0 and v0.36.0 start
``minWorkers`` = 1 Python worker per model and, on CPU, ``maxWorkers`` = vCPUs /
``OMP_NUM_THREADS`` when that variable is set, else 2; ``job_queue_size`` defaults to 1000
(``WlmConfigManager.java``, ``ModelInfo.java``). Two workers would cap a hot model at two cores
of a 72-vCPU instance, so this section sets every one of them: one single-threaded worker
(``omp_num_threads`` = 1) per vCPU at most, one kept per loaded model.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from config.runtime import profile_for, runtime_setting
from config.sagemaker_endpoint import (
    INSTANCE_TYPE_PATTERN,
    AlarmsConfig,
    AutoscalingConfig,
    capacity_problem,
)
from config.typed import setting
from ml_constructs.sagemaker.instances import InstanceType, variant_problems
from runtime_profiles import ProfileError, RuntimeProfile

# registry/repository:tag, a tag required (a digest says nothing about the lock it was built from).
IMAGE_REFERENCE_PATTERN = r"[a-z0-9][a-z0-9.\-]*(:[0-9]+)?(/[a-z0-9][a-z0-9._\-]*)+:[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}"
# SageMaker pulls serving images from ECR: account.dkr.ecr.region.amazonaws.com[.cn]/name:tag.
ECR_IMAGE_URI_PATTERN = (
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?P<cn>\.cn)?/"
    r"(?P<name>[a-z0-9][a-z0-9._/\-]*):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127})"
)


def image_tag(reference: str) -> str:
    return reference.rsplit(":", 1)[1]


def tag_matches(tag: str, profile: RuntimeProfile) -> bool:
    """``tag`` is a verified tag of the profile, or one followed by ``-<suffix>`` (``0.36.0-cpu-full-lock1``)."""
    return any(tag == known or tag.startswith(known + "-") for known in profile.image_tags)


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
    model_cache_hit_min: float = setting(
        0.5, ge=0, le=1, doc="Alarm when under this share of requests find their model loaded (15 min average)."
    )
    model_loading_wait_p99_ms: float = setting(
        5000.0, ge=1, le=3600000, doc="Alarm when the p99 wait for a cold model's download and load exceeds this."
    )
    model_downloading_p99_ms: float = setting(
        3000.0, ge=1, le=3600000, doc="Alarm when the p99 download of a model package from S3 exceeds this."
    )


@dataclass(frozen=True)
class MultiModelConfig:
    """Workload W2: scikit-learn models behind one multi-model endpoint.

    Models are published (by a tool, not by the stack) as
    ``<multi_model_packages prefix><name>.tar.gz``; clients pass ``TargetModel=<name>.tar.gz``.
    """

    enabled: bool = setting(True, doc="false: the stack is not synthesized in this environment.")
    runtime: str = runtime_setting("multi_model")
    base_image: str | None = setting(
        None, pattern=IMAGE_REFERENCE_PATTERN,
        doc="FROM of the image built at deploy (default: the profile's settings.base_image, Docker Hub); "
        "e.g. the djl-inference Deep Learning Container. Its tag must be one of the profile's verified tags.",
    )
    image_uri: str | None = setting(
        None, pattern=ECR_IMAGE_URI_PATTERN,
        doc="A prebuilt serving image (an ECR URI) instead of building the profile's Dockerfile at deploy. "
        "Its tag must start with one of the profile's verified tags (e.g. 0.36.0-cpu-full-lock1).",
    )
    instance_type: str = setting("ml.c5d.18xlarge", pattern=INSTANCE_TYPE_PATTERN)
    instance_count: int = setting(20, ge=1, le=1000, doc="20 reaches thousands of TPS (needs a quota increase).")
    volume_size_gb: int | None = setting(None, ge=1, le=512, doc="Not allowed on c5d (local NVMe).")
    model_data_download_timeout_seconds: int | None = setting(None, ge=60, le=3600)
    container_startup_health_check_timeout_seconds: int | None = setting(None, ge=60, le=3600)
    model_cache: Literal["Enabled", "Disabled"] = setting(
        "Enabled", doc="MultiModelConfig.ModelCacheSetting; Disabled only when most models are invoked once."
    )
    # Read by the model publisher and load-test tools (rendered into each package's serving.properties).
    model_count: int = setting(1000, ge=1, le=100000, doc="Models published: sklearn-0 .. sklearn-<n-1>.")
    min_workers: int = setting(
        1, ge=1, le=1024, doc="DJL minWorkers per model: Python workers a loaded model keeps when idle."
    )
    max_workers: int | None = setting(
        None, ge=1, le=1024,
        doc="DJL maxWorkers per model; None: the instance type's vCPUs / omp_num_threads (one hot model may use "
        "every core).",
    )
    job_queue_size: int = setting(
        1000, ge=1, le=100000, doc="DJL job_queue_size per model: requests waiting beyond it get 503 at once."
    )
    omp_num_threads: int = setting(
        1, ge=1, le=448, doc="OMP/MKL/OpenBLAS threads per worker (container environment): 1 for tiny models."
    )
    max_idle_time_seconds: int = setting(600, ge=1, le=86400, doc="DJL max_idle_time: idle workers are removed.")
    autoscaling: MultiModelAutoscaling = setting(default_factory=MultiModelAutoscaling)
    alarms: MultiModelAlarms = setting(default_factory=MultiModelAlarms)

    @property
    def profile(self) -> RuntimeProfile:
        return profile_for("multi_model", self.runtime)

    @property
    def vcpus(self) -> int | None:
        try:
            return InstanceType.parse(self.instance_type).vcpus
        except ValueError:
            return None

    def resolved_max_workers(self) -> int | None:
        """max_workers, or vCPUs / omp_num_threads (None when the instance type's vCPUs are unknown)."""
        if self.max_workers is not None:
            return self.max_workers
        return None if self.vcpus is None else max(1, self.vcpus // max(1, self.omp_num_threads))

    def serving_properties(self) -> dict[str, int]:
        """The worker settings every published package's serving.properties carries."""
        return {
            "minWorkers": self.min_workers,
            "maxWorkers": self.resolved_max_workers() or self.min_workers,
            "job_queue_size": self.job_queue_size,
            "max_idle_time": self.max_idle_time_seconds,
        }

    def container_environment(self) -> dict[str, str]:
        """Thread settings of the serving container (each DJL Python worker is one process)."""
        threads = str(self.omp_num_threads)
        return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}

    def problems(self) -> list[tuple[str, str]]:
        found = capacity_problem(self.instance_count, self.autoscaling)
        found += variant_problems(
            self.instance_type, volume_size_gb=self.volume_size_gb, autoscaling=self.autoscaling.enabled, cpu_only=True
        )
        found += self._worker_problems()
        found += self._image_problems()
        return found

    def _worker_problems(self) -> list[tuple[str, str]]:
        found = []
        vcpus = self.vcpus
        max_workers = self.resolved_max_workers()
        if max_workers is None:
            found.append(("max_workers", f"required: the vCPUs of {self.instance_type} are not known here"))
        elif self.min_workers > max_workers:
            found.append(("min_workers", f"got {self.min_workers}, allowed: at most max_workers ({max_workers})"))
        if vcpus is not None and max_workers is not None and max_workers * self.omp_num_threads > vcpus:
            found.append((
                "max_workers",
                f"got {max_workers} workers x omp_num_threads {self.omp_num_threads}, allowed: at most the "
                f"{vcpus} vCPUs of {self.instance_type} (more would make one model's workers compete for cores)",
            ))
        return found

    def _image_problems(self) -> list[tuple[str, str]]:
        try:
            profile = self.profile
        except ProfileError:  # an unknown runtime: its choices are reported on the key itself
            return []
        found = []
        if self.image_uri is not None and self.base_image is not None:
            found.append(("base_image", "only for the image built at deploy; image_uri names a prebuilt one"))
        for key, value, pattern in (("base_image", self.base_image, IMAGE_REFERENCE_PATTERN),
                                    ("image_uri", self.image_uri, ECR_IMAGE_URI_PATTERN)):
            if value is None or not re.fullmatch(pattern, value):  # a malformed value is reported by its pattern
                continue
            if not tag_matches(image_tag(value), profile):
                found.append((
                    key,
                    f"got {value!r}, whose tag {image_tag(value)!r} is not built on runtime profile {profile.key} "
                    f"(DJL Serving {profile.framework_version}, Python {profile.python}, locked in "
                    f"runtime_profiles/{profile.key}/requirements.lock); allowed: a tag starting with "
                    f"{' or '.join(profile.image_tags)}, or set multi_model.runtime to the profile the image was "
                    f"built from",
                ))
        return found
