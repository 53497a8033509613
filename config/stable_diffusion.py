"""Configuration of workload W1: Stable Diffusion on Inferentia2 (compile step and endpoint).

The ``runtime`` key picks the runtime profile (runtime_profiles/stable_diffusion/): ``current``
(Hugging Face Neuron inference container, optimum-neuron) or ``seed`` (the documented LMI 0.24
Neuron stack, end-of-life). The profile fixes the image, the serving modes and the Neuron SDK.
"""
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
from config.hosting import AsyncInferenceConfig, HostingConfig
from config.neuron_compile import NeuronCompileConfig
from config.runtime import image_tag_problems, profile_for, runtime_setting
from runtime_profiles import profile_names
from config.typed import setting
from ml_constructs.neuron_compile.rules import neuron_sdk_of
from ml_constructs.sagemaker.instances import variant_problems

WORKLOAD = "stable_diffusion"
SERVING_MODES = ("optimum-neuron", "no-code", "byo-script")
# What DJL 0.24's Stable Diffusion handler accepts (stable_diffusion_inf2.py, get_torch_dtype_from_str).
DJL_HANDLER_DTYPES = ("bf16", "fp32")

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
    """Workload W1: Stable Diffusion on Inferentia2 (compile step and endpoint)."""

    enabled: bool = setting(True, doc="false: the stack is not synthesized in this environment.")
    runtime: str = runtime_setting(WORKLOAD)
    endpoint_enabled: bool = setting(
        True,
        doc="false: only the compiled artifacts are built (a first deploy of a long compile); "
        "set true once they exist.",
    )
    serving_mode: Literal["optimum-neuron", "no-code", "byo-script"] | None = setting(
        None,
        doc="None: the runtime profile's first mode. current: optimum-neuron "
        "(model_packages/stable_diffusion_compile/optimum_serving). seed: no-code (DJL Serving's handler, "
        "model_packages/stable_diffusion_inf2_nocode) or byo-script (model_packages/stable_diffusion_inf2_byo).",
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
        doc="With compile.enabled=false: an s3:// URL that replaces compiled_artifacts_key (S3 read access is granted "
        "on it; a bucket encrypted with a customer managed KMS key also needs kms:Decrypt for the endpoint's role, "
        "which the stack does not grant).",
    )
    image_repository: str | None = setting(
        None, pattern=IMAGE_REPOSITORY_PATTERN, doc="None: the runtime profile's; another repository is refused."
    )
    image_tag: str | None = setting(
        None,
        pattern=IMAGE_TAG_PATTERN,
        doc="None: the runtime profile's default tag; otherwise one of the tags whose contract it verified.",
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
    hosting: HostingConfig = setting(default_factory=HostingConfig, doc="instances or inference components (config/hosting.py).")
    async_inference: AsyncInferenceConfig = setting(default_factory=AsyncInferenceConfig, doc="config/hosting.py")

    @property
    def profile(self):
        return profile_for(WORKLOAD, self.runtime)

    @property
    def mode(self) -> str:
        """The serving mode in effect (``serving_mode`` or the profile's first)."""
        return self.serving_mode or self.profile.settings["serving_modes"][0]

    @property
    def tag(self) -> str:
        return self.image_tag or self.profile.default_tag

    @property
    def serving_image(self) -> str:
        return f"{self.profile.image_repository}:{self.tag}"

    def problems(self) -> list[tuple[str, str]]:
        if self.runtime not in profile_names(WORKLOAD):
            return []  # the runtime key's own check names the choices; nothing else can be judged
        found = self._runtime_problems()
        if self.compiled_artifacts_url is not None and not self.compiled_artifacts_url.endswith("/"):
            found.append(("compiled_artifacts_url", f"got {self.compiled_artifacts_url!r}, allowed: an S3 prefix ending with '/'"))
        if self.compile.enabled and self.compiled_artifacts_url is not None:
            found.append(("compiled_artifacts_url", (f"got {self.compiled_artifacts_url!r} while compile.enabled is true; "
                          "allowed: unset, or set compile.enabled=false to serve artifacts compiled elsewhere")))
        if self.compile.enabled and self.compile.dtype != self.dtype:
            found.append(("compile.dtype", (f"got {self.compile.dtype!r}, allowed: {self.dtype!r} (the serving dtype); "
                          "the endpoint loads the compiled graphs in the dtype they were traced with")))
        found += variant_problems(
            self.instance_type,
            volume_size_gb=self.volume_size_gb,
            tensor_parallel_degree=self.tensor_parallel_degree,
            autoscaling=self.autoscaling.enabled,
        )
        return found + capacity_problem(self.instance_count, self.autoscaling)


    def _runtime_problems(self) -> list[tuple[str, str]]:
        """The profile's contract: its modes, tags, repository, Neuron SDK and hardware."""
        profile = self.profile
        modes = tuple(profile.settings["serving_modes"])
        found = []
        if self.mode not in modes:
            found.append(("serving_mode", f"got {self.mode!r}, allowed for runtime {self.runtime!r}: "
                          f"{', '.join(map(repr, modes))} (runtime_profiles/{profile.key}/profile.toml)"))
        found += image_tag_problems(profile, self.image_tag)
        if self.image_repository is not None and self.image_repository != profile.image_repository:
            found.append(("image_repository", f"got {self.image_repository!r}, allowed for runtime "
                          f"{self.runtime!r}: {profile.image_repository!r}; the {self.mode} package only runs "
                          f"on the image its profile was verified against"))
        if self.mode == "no-code" and self.dtype not in DJL_HANDLER_DTYPES:
            found.append(("dtype", f"got {self.dtype!r}, allowed with serving_mode 'no-code': "
                          f"{', '.join(map(repr, DJL_HANDLER_DTYPES))} (DJL 0.24's Stable Diffusion handler)"))
        if self.mode == "optimum-neuron" and self.compile.compiler_args != type(self.compile.compiler_args)():
            found.append(("compile.compiler_args", "got non-default flags with serving_mode 'optimum-neuron', "
                          "allowed: the defaults; optimum-neuron chooses its own neuronx-cc flags (they apply to "
                          "runtime 'seed')"))
        if not self.instance_type.startswith("ml.inf2."):
            found.append(("instance_type", f"got {self.instance_type!r}, allowed: an ml.inf2.* instance type; the "
                          "model is compiled for Inferentia2 NeuronCores"))
        if self.compile.image is not None and neuron_sdk_of(self.compile.image) not in (None, profile.neuron_sdk):
            found.append(("compile.image", f"got {self.compile.image!r} (Neuron SDK {neuron_sdk_of(self.compile.image)}), "
                          f"allowed: an image with Neuron SDK {profile.neuron_sdk}, the serving image's "
                          f"({self.serving_image}); artifacts compiled by one SDK do not load on another"))
        if self.mode == "no-code" and self.compile.enabled and self.compile.height != self.compile.width:
            found.append(("compile.height", f"got {self.compile.height} with compile.width {self.compile.width}, allowed "
                          "with serving_mode 'no-code': equal to compile.width; DJL 0.24's handler sends no size, so "
                          "diffusers renders the pipeline's one default size, which the compile sets to the compiled "
                          "size only when it is square (or use serving_mode 'byo-script')"))
        if self.endpoint_enabled and self.compile.enabled and not self.compile.wait_for_completion:
            found.append(("compile.wait_for_completion", "got false with endpoint_enabled true, allowed: true; the "
                          "endpoint would start on an empty artifacts prefix and fail (on a first deploy the rollback "
                          "deletes the compile queue, ending the compile). Two steps instead: deploy with "
                          "endpoint_enabled=false, then with endpoint_enabled=true once the compile finished"))
        if not self.endpoint_enabled and not self.compile.enabled:
            found.append(("endpoint_enabled", "got false with compile.enabled false, allowed: true; the stack "
                          "would deploy nothing"))
        return found
