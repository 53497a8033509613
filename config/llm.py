"""Configuration of workload W3: BLOOM-176B and OPT-30B with tensor parallelism (LMI DeepSpeed).

``models`` is a table keyed by model name. The built-in models (``BUILTIN_MODELS``)
are always in it with their documented values; an entry in an environment file
or a ``-c set:llm.models.<name>.<key>=...`` flag changes only the keys it names
(so one value can be overridden without restating the rest). A new name adds a
model and must give every key that has no default; ``enabled = false`` drops one.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Literal

from config.hosting import HostingConfig
from config.sagemaker_endpoint import IMAGE_REPOSITORY_PATTERN, IMAGE_TAG_PATTERN, INSTANCE_TYPE_PATTERN
from config.typed import setting
from ml_constructs.sagemaker.instances import variant_problems

Dtype = Literal["int8", "fp16", "bf16", "fp32"]
MODEL_NAME_PATTERN = r"[a-z0-9][a-z0-9\-]{0,30}"


@dataclass(frozen=True)
class LlmModel:
    """One served model, with every value resolved."""

    name: str
    instance_type: str
    tensor_parallel_degree: int
    dtype: str
    weights_prefix: str
    enabled: bool = True
    instance_count: int = 1
    volume_size_gb: int | None = None
    model_data_download_timeout_seconds: int = 2400
    container_startup_health_check_timeout_seconds: int = 2400
    use_uncompressed_model_data: bool = False
    model_latency_p99_ms: float = 60000.0
    hosting: HostingConfig = HostingConfig()


BUILTIN_MODELS: dict[str, LlmModel] = {
    "bloom-176b": LlmModel(
        name="bloom-176b",
        instance_type="ml.p4d.24xlarge",
        tensor_parallel_degree=8,
        dtype="int8",
        weights_prefix="bloom-176b/",
        model_latency_p99_ms=40000.0,  # reported P99 32,179 ms for 4 x 256 tokens
    ),
    "opt-30b": LlmModel(
        name="opt-30b",
        instance_type="ml.g5.24xlarge",
        tensor_parallel_degree=4,
        dtype="fp16",
        weights_prefix="opt-30b/",
        model_latency_p99_ms=15000.0,  # reported P99 11,576 ms
    ),
}


@dataclass(frozen=True)
class LlmModelSettings:
    """Overrides of one model; unset keys keep the built-in value (required for new models)."""

    enabled: bool | None = setting(None, doc="false: this model is not deployed.")
    instance_type: str | None = setting(None, pattern=INSTANCE_TYPE_PATTERN)
    instance_count: int | None = setting(None, ge=1, le=100)
    tensor_parallel_degree: int | None = setting(None, ge=1, le=64)
    dtype: Dtype | None = setting(None)
    weights_prefix: str | None = setting(
        None, pattern=r"[A-Za-z0-9_.\-][A-Za-z0-9_.\-/]*/", doc="Child of model_weights holding the weights."
    )
    volume_size_gb: int | None = setting(None, ge=1, le=512, doc="Only on instance types without local NVMe.")
    model_data_download_timeout_seconds: int | None = setting(None, ge=60, le=3600)
    container_startup_health_check_timeout_seconds: int | None = setting(None, ge=60, le=3600)
    use_uncompressed_model_data: bool | None = setting(
        None, doc="true: load weights_prefix as uncompressed model data (ModelDataSource) instead of downloading."
    )
    model_latency_p99_ms: float | None = setting(None, ge=1, le=3600000)
    hosting: HostingConfig | None = setting(None, doc="instances or inference components (config/hosting.py).")


_REQUIRED_FOR_NEW = ("instance_type", "tensor_parallel_degree", "dtype", "weights_prefix")


def construct_id_for(model_name: str) -> str:
    """The endpoint's construct id in the LLM stack: ``bloom-176b`` -> ``Bloom176b``."""
    return "".join(part.capitalize() for part in model_name.split("-"))


@dataclass(frozen=True)
class LlmConfig:
    """Workload W3: BLOOM-176B and OPT-30B with tensor parallelism (LMI DeepSpeed)."""

    enabled: bool = setting(True, doc="false: the stack is not synthesized in this environment.")
    image_repository: str = setting("djl-inference", pattern=IMAGE_REPOSITORY_PATTERN)
    image_tag: str = setting("0.19.0-deepspeed0.7.3-cu113", pattern=IMAGE_TAG_PATTERN, doc="LMI DeepSpeed (W3).")
    models: dict[str, LlmModelSettings] = setting(default_factory=dict, doc="Overrides and additions, by model name.")

    def resolved_models(self) -> list[LlmModel]:
        """Built-in models merged with overrides, sorted by name, enabled ones only."""
        out = []
        for name in sorted(set(BUILTIN_MODELS) | set(self.models)):
            model = _resolve(name, self.models.get(name))
            if model is not None and model.enabled:
                out.append(model)
        return out

    def problems(self) -> list[tuple[str, str]]:
        found = []
        for name, override in self.models.items():
            if not re.fullmatch(MODEL_NAME_PATTERN, name):
                found.append((f"models.{name}", f"model name {name!r} does not match {MODEL_NAME_PATTERN}"))
            if name not in BUILTIN_MODELS:
                missing = [k for k in _REQUIRED_FOR_NEW if getattr(override, k) is None]
                if missing:
                    found.append((
                        f"models.{name}",
                        f"a new model needs {', '.join(missing)} (built-in models: {', '.join(sorted(BUILTIN_MODELS))})",
                    ))
        by_construct_id: dict[str, str] = {}
        for model in self.resolved_models():
            clash = by_construct_id.setdefault(construct_id_for(model.name), model.name)
            if clash != model.name:
                found.append((f"models.{model.name}", f"model name {model.name!r} names the same endpoint "
                              f"({construct_id_for(model.name)}) as {clash!r}; allowed: names that differ after "
                              "dropping '-' and case"))
            found += [
                (f"models.{model.name}.{key}", message)
                for key, message in variant_problems(
                    model.instance_type,
                    volume_size_gb=model.volume_size_gb,
                    tensor_parallel_degree=model.tensor_parallel_degree,
                )
            ]
        return found


def _resolve(name: str, override: LlmModelSettings | None) -> LlmModel | None:
    given = {f.name: getattr(override, f.name) for f in dataclasses.fields(LlmModelSettings)} if override else {}
    given = {k: v for k, v in given.items() if v is not None}
    base = BUILTIN_MODELS.get(name)
    if base is not None:
        return dataclasses.replace(base, **given)
    if any(k not in given for k in _REQUIRED_FOR_NEW):
        return None  # reported by LlmConfig.problems
    return LlmModel(name=name, **given)
