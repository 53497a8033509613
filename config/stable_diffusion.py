"""Configuration of workload W1: Stable Diffusion on Inferentia2: the endpoint and its Neuron compile step."""
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
from config.neuron_compile import NeuronCompileConfig
from config.typed import setting
from ml_constructs.neuron_compile.rules import image_problems, pairing_problems
from ml_constructs.sagemaker.instances import variant_problems

S3_URL_PATTERN = r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/\S*"
RELATIVE_PREFIX_PATTERN = r"[A-Za-z0-9!_.*'()\-][A-Za-z0-9!_.*'()\-/]*/"


@dataclass(frozen=True)
class StableDiffusionAutoscaling(AutoscalingConfig):
    """Off by default (W1 serves from one instance); when on, 0.8 requests/s per inf2.xlarge
    (SD 2.1, 512x512, 30 steps: 1,186 ms P95 per image)."""

    max_rps_per_instance: float = setting(0.8, ge=0.001, le=100000)


@dataclass(frozen=True)
class StableDiffusionAlarms(AlarmsConfig):
    """SD 2.1 768x768 at 30 steps takes 4.1 s P95 on inf2.xlarge."""

    model_latency_p99_ms: float = setting(10000.0, ge=1, le=3600000)


@dataclass(frozen=True)
class StableDiffusionConfig:
    """Workload W1: Stable Diffusion on Inferentia2: the endpoint and its Neuron compile step."""

    enabled: bool = setting(True, doc="false: the stack is not synthesized in this environment.")
    serving_mode: Literal["no-code", "byo-script"] = setting(
        "no-code",
        doc="no-code: DJL Serving's Stable Diffusion handler (model_packages/stable_diffusion_inf2_nocode); "
        "byo-script: model.py (model_packages/stable_diffusion_inf2_byo).",
    )
    compile: NeuronCompileConfig = setting(
        default_factory=NeuronCompileConfig,
        doc="The compile custom resource; its output is what the endpoint serves. Set compile.enabled=false "
        "to serve artifacts compiled elsewhere (compiled_artifacts_key or compiled_artifacts_url).",
    )
    compiled_artifacts_key: str = setting(
        "stable-diffusion-2-1-base/",
        pattern=RELATIVE_PREFIX_PATTERN,
        doc="With compile.enabled=false: compiled Neuron artifacts, relative to the neuron_artifacts prefix.",
    )
    compiled_artifacts_url: str | None = setting(
        None,
        pattern=S3_URL_PATTERN,
        doc="With compile.enabled=false: an s3:// URL that replaces compiled_artifacts_key (read access is granted on it).",
    )
    image_repository: str = setting("djl-inference", pattern=IMAGE_REPOSITORY_PATTERN)
    image_tag: str = setting(
        "0.24.0-neuronx-sdk2.14.1",
        pattern=IMAGE_TAG_PATTERN,
        doc="LMI Neuron image; 0.22-0.25 load compiled_model/*.pt. Compile with the same Neuron SDK.",
    )
    tensor_parallel_degree: int = setting(2, ge=1, le=64, doc="NeuronCores used; ml.inf2.xlarge has 2.")
    dtype: Literal["bf16", "fp16", "fp32"] = setting("bf16")
    instance_type: str = setting("ml.inf2.xlarge", pattern=INSTANCE_TYPE_PATTERN)
    instance_count: int = setting(1, ge=1, le=100)
    volume_size_gb: int | None = setting(400, ge=1, le=512)
    model_data_download_timeout_seconds: int | None = setting(None, ge=60, le=3600)
    container_startup_health_check_timeout_seconds: int | None = setting(360, ge=60, le=3600)
    autoscaling: StableDiffusionAutoscaling = setting(default_factory=StableDiffusionAutoscaling)
    alarms: StableDiffusionAlarms = setting(default_factory=StableDiffusionAlarms)

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.compiled_artifacts_url is not None and not self.compiled_artifacts_url.endswith("/"):
            found.append(("compiled_artifacts_url", f"got {self.compiled_artifacts_url!r}, allowed: an S3 prefix ending with '/'"))
        if self.compile.enabled and self.compiled_artifacts_url is not None:
            found.append(("compiled_artifacts_url", (f"got {self.compiled_artifacts_url!r} while compile.enabled is true; "
                          "allowed: unset, or set compile.enabled=false to serve artifacts compiled elsewhere")))
        if self.compile.enabled and self.compile.dtype != self.dtype:
            found.append(("compile.dtype", (f"got {self.compile.dtype!r}, allowed: {self.dtype!r} (the serving dtype); "
                          "the endpoint loads the compiled graphs in the dtype they were traced with")))
        if self.compile.enabled and self.compile.image is not None and not image_problems(self.compile.image):
            serving_image = f"{self.image_repository}:{self.image_tag}"
            found += [("compile.image", p) for p in pairing_problems(self.compile.image, serving_image)]
        found += variant_problems(
            self.instance_type,
            volume_size_gb=self.volume_size_gb,
            tensor_parallel_degree=self.tensor_parallel_degree,
            autoscaling=self.autoscaling.enabled,
        )
        return found + capacity_problem(self.instance_count, self.autoscaling)

