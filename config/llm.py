"""Configuration of workload W3: BLOOM-176B and OPT-30B with tensor parallelism.

``runtime`` picks the container stack (``runtime_profiles/llm/``): ``current`` is LMI with
vLLM and the container's own handler; ``seed`` is the documented DJL Serving 0.19 DeepSpeed
stack with this project's handler (end-of-life). The defaults differ by profile
(``RUNTIME_DEFAULTS``): vLLM has no DeepSpeed INT8, so on ``current`` BLOOM-176B is served
from the published bigscience/bloom checkpoint in bf16 on ``ml.p4de.24xlarge`` (8 x A100
80 GB), where the seed runs DeepSpeed INT8 on ``ml.p4d.24xlarge``.

``models`` is a table keyed by model name. The built-in models (``BUILTIN_MODELS``, with the
catalogue facts in ``MODEL_CATALOGUE``) are always in it with their documented values; an
entry in an environment file or a ``-c set:llm.models.<name>.<key>=...`` flag changes only
the keys it names. A new name adds a model and must give every key without a default
(``REQUIRED_FOR_NEW``), including its parameter count, attention heads and context length;
``enabled = false`` drops one.

Checked at synth (docs/llm.md): the weights fit the GPUs the model is sharded over
(config/llm_fit.py), the tensor parallel degree divides the attention heads and does not
exceed the GPUs, the image's accelerator matches the instance, ``max_new_tokens`` can be
generated within the 60-second invocation limit, prompt plus new tokens fit the context,
the inference AMI suits the instance, extra LMI options are ones that LMI version knows, and
(with a pinned region) SageMaker hosts the instance type there (``instances.hosting_region_problem``).
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Mapping

from config.llm_fit import Precision, degree_problem, fit_problem, generation_problem
from config.runtime import image_tag_problems, profile_for, runtime_setting
from config.sagemaker_endpoint import IMAGE_TAG_PATTERN, INSTANCE_TYPE_PATTERN
from config.hosting import HostingConfig
from config.typed import setting
from ml_constructs.sagemaker.instances import (
    InstanceType, UnknownInstanceType, hosting_region_problem, variant_problems,
)
from runtime_profiles import RuntimeProfile, profile_names

Dtype = Literal["int8", "fp16", "bf16", "fp32"]
Quantize = Literal["fp8", "bitsandbytes"]
MODEL_NAME_PATTERN = r"[a-z0-9][a-z0-9\-]{0,30}"
OPTION_KEY_PATTERN = r"[a-z][a-z0-9_]{0,63}"
# LMI options the stack renders from the model's own keys: not settable through serving_options.
RENDERED_OPTIONS = {
    "tensor_parallel_degree": "tensor_parallel_degree", "dtype": "dtype", "quantize": "quantize",
    "max_rolling_batch_size": "max_batch_size", "max_model_len": "context_length",
    "model_loading_timeout": "container_startup_health_check_timeout_seconds",
    "override_generation_config": "max_new_tokens",
}


@dataclass(frozen=True)
class ModelSpec:
    """Facts of a model's architecture (its Hugging Face ``config.json``)."""

    parameters_billion: float
    attention_heads: int
    context_length: int


# bigscience/bloom config.json: n_head 112, seq_length 2048; 176,247,271,424 parameters.
# facebook/opt-30b config.json: num_attention_heads 56, max_position_embeddings 2048; about 30.0 B parameters.
MODEL_CATALOGUE: dict[str, ModelSpec] = {
    "bloom-176b": ModelSpec(parameters_billion=176.2, attention_heads=112, context_length=2048),
    "opt-30b": ModelSpec(parameters_billion=30.0, attention_heads=56, context_length=2048),
}


@dataclass(frozen=True)
class LlmModel:
    """One served model, with every value resolved."""

    name: str
    instance_type: str
    tensor_parallel_degree: int
    dtype: str
    weights_prefix: str
    parameters_billion: float
    attention_heads: int
    context_length: int
    max_new_tokens: int
    max_input_tokens: int
    max_batch_size: int
    tokens_per_second: float
    enabled: bool = True
    instance_count: int = 1
    volume_size_gb: int | None = None
    model_data_download_timeout_seconds: int = 2400
    container_startup_health_check_timeout_seconds: int = 2400
    model_latency_p99_ms: float = 60000.0
    prequantized_bits: int | None = None
    quantize: str | None = None
    inference_ami_version: str | None = None
    serving_options: Mapping[str, str] = field(default_factory=dict)

    @property
    def precision(self) -> Precision:
        return Precision(self.dtype, self.prequantized_bits, self.quantize)

    hosting: HostingConfig = HostingConfig()

    @property
    def max_model_len(self) -> int:
        """LMI's max_model_len: the model's whole context. vLLM refuses (before any cap applies) a
        request whose prompt plus requested tokens exceed it, so a lower value only refuses more."""
        return self.context_length


# Throughput assumptions: the reported DeepSpeed runs generated 4 x 256 tokens per request
# (batch 4) at 37.1 tokens/s (BLOOM-176B INT8, p4d.24xlarge) and 90.6 tokens/s (OPT-30B FP16,
# g5.24xlarge), that is 9.25 and 22.6 tokens/s per sequence. vLLM is not slower on the same
# GPUs, so these bound both profiles; measure and raise them for your traffic (docs/llm.md).
BUILTIN_MODELS: dict[str, LlmModel] = {
    "bloom-176b": LlmModel(
        name="bloom-176b",
        instance_type="ml.p4d.24xlarge",
        tensor_parallel_degree=8,
        dtype="int8",
        weights_prefix="bloom-176b/",
        **dataclasses.asdict(MODEL_CATALOGUE["bloom-176b"]),
        max_new_tokens=400,  # 43 s at 9.25 tokens/s
        max_input_tokens=1024,
        max_batch_size=4,
        tokens_per_second=9.25,
        model_latency_p99_ms=48000.0,  # the generation budget
    ),
    "opt-30b": LlmModel(
        name="opt-30b",
        instance_type="ml.g5.24xlarge",
        tensor_parallel_degree=4,
        dtype="fp16",
        weights_prefix="opt-30b/",
        **dataclasses.asdict(MODEL_CATALOGUE["opt-30b"]),
        max_new_tokens=1024,  # 45 s at 22.6 tokens/s
        max_input_tokens=1024,
        max_batch_size=4,
        tokens_per_second=22.6,
        model_latency_p99_ms=48000.0,
    ),
}
# Per runtime profile, what differs from BUILTIN_MODELS (the seed values are the documented ones).
RUNTIME_DEFAULTS: dict[str, dict[str, dict[str, object]]] = {
    # Another checkpoint (8-bit, pre-quantized) than the seed's, so its own prefix: switching runtimes
    # never serves one runtime's files (or DJL's engine=DeepSpeed serving.properties) to the other.
    # The stock bigscience/bloom checkpoint in bf16 (its training precision) needs 328 GiB: it fits the
    # 8 x 80 GB of a p4de, not the 8 x 40 GB of a p4d (docs/llm.md, "Fit"). Its own prefix: the seed
    # stages model.py and an engine=DeepSpeed serving.properties with its copy of the weights, which
    # LMI must never read.
    "current": {"bloom-176b": {"dtype": "bf16", "instance_type": "ml.p4de.24xlarge",
                               "weights_prefix": "bloom-176b-bf16/"}},
}


@dataclass(frozen=True)
class LlmModelSettings:
    """Overrides of one model; unset keys keep the built-in value (required for new models)."""

    enabled: bool | None = setting(None, doc="false: this model is not deployed.")
    instance_type: str | None = setting(None, pattern=INSTANCE_TYPE_PATTERN)
    instance_count: int | None = setting(None, ge=1, le=100)
    tensor_parallel_degree: int | None = setting(None, ge=1, le=64)
    dtype: Dtype | None = setting(None, doc="Precision of the weights (int8: DeepSpeed's INT8, seed profile only).")
    prequantized_bits: int | None = setting(
        None, choices=(0, 4, 8),
        doc="The staged checkpoint is already quantized to this many bits (current profile); 0: it is not.")
    quantize: Quantize | None = setting(None, doc="LMI runtime quantization (option.quantize), current profile.")
    weights_prefix: str | None = setting(
        None, pattern=r"[A-Za-z0-9_.\-][A-Za-z0-9_.\-/]*/", doc="Child of model_weights holding the weights."
    )
    parameters_billion: float | None = setting(None, ge=0.001, le=10000, doc="Catalogue: parameter count.")
    attention_heads: int | None = setting(None, ge=1, le=4096, doc="Catalogue: attention heads.")
    context_length: int | None = setting(None, ge=16, le=10_000_000, doc="Catalogue: maximum sequence length.")
    max_new_tokens: int | None = setting(None, ge=1, le=1_000_000, doc="Most tokens one request may generate.")
    max_input_tokens: int | None = setting(
        None, ge=1, le=10_000_000,
        doc="Prompt tokens served with max_new_tokens: the two must fit the context (the endpoint itself takes any "
        "prompt up to the context minus the tokens a request asks for).")
    max_batch_size: int | None = setting(None, ge=1, le=1024, doc="Sequences generated at once.")
    tokens_per_second: float | None = setting(
        None, ge=0.01, le=100000, doc="Assumed decode rate per sequence at max_batch_size (measure it).")
    volume_size_gb: int | None = setting(None, ge=1, le=512, doc="Only on instance types without local NVMe.")
    model_data_download_timeout_seconds: int | None = setting(None, ge=60, le=3600)
    container_startup_health_check_timeout_seconds: int | None = setting(None, ge=60, le=3600)
    model_latency_p99_ms: float | None = setting(None, ge=1, le=3600000)
    inference_ami_version: str | None = setting(
        None, pattern=r"[a-z0-9\-]+", doc="ProductionVariant.InferenceAmiVersion; default: the runtime profile's.")
    serving_options: dict[str, str] | None = setting(
        None, doc="Extra LMI options (option.<key>, rendered as OPTION_<KEY>), current profile only.")
    hosting: HostingConfig | None = setting(None, doc="instances or inference components (config/hosting.py).")


REQUIRED_FOR_NEW = (
    "instance_type", "tensor_parallel_degree", "dtype", "weights_prefix", "parameters_billion", "attention_heads",
    "context_length", "max_new_tokens", "max_input_tokens", "max_batch_size", "tokens_per_second",
)


def construct_id_for(model_name: str) -> str:
    """The endpoint's construct id in the LLM stack: ``bloom-176b`` -> ``Bloom176b``."""
    return "".join(part.capitalize() for part in model_name.split("-"))


@dataclass(frozen=True)
class LlmConfig:
    """Workload W3: BLOOM-176B and OPT-30B with tensor parallelism."""

    enabled: bool = setting(True, doc="false: the stack is not synthesized in this environment.")
    runtime: str = runtime_setting("llm")
    image_tag: str | None = setting(
        None, pattern=IMAGE_TAG_PATTERN, doc="Default: the runtime profile's; must be one of its verified tags.")
    models: dict[str, LlmModelSettings] = setting(default_factory=dict, doc="Overrides and additions, by model name.")

    @property
    def profile(self) -> RuntimeProfile:
        return profile_for("llm", self.runtime)

    def resolved_models(self) -> list[LlmModel]:
        """Built-in models merged with the profile's defaults and the overrides, by name, enabled ones only."""
        out = []
        for name in sorted(set(BUILTIN_MODELS) | set(self.models)):
            model = _resolve(name, self.models.get(name), self.runtime, self.profile)
            if model is not None and model.enabled:
                out.append(model)
        return out

    def problems(self) -> list[tuple[str, str]]:
        if self.runtime not in profile_names("llm"):
            return []  # reported against the runtime key's choices; nothing else can be checked
        found = image_tag_problems(self.profile, self.image_tag)
        for name, override in self.models.items():
            if not re.fullmatch(MODEL_NAME_PATTERN, name):
                found.append((f"models.{name}", f"model name {name!r} does not match {MODEL_NAME_PATTERN}"))
            if name not in BUILTIN_MODELS:
                missing = [k for k in REQUIRED_FOR_NEW if getattr(override, k) is None]
                if missing:
                    found.append((
                        f"models.{name}",
                        f"a new model needs {', '.join(missing)} (built-in models: {', '.join(sorted(BUILTIN_MODELS))})",
                    ))
            if override.max_batch_size is not None and override.tokens_per_second is None and name in BUILTIN_MODELS:
                found.append((f"models.{name}.tokens_per_second", "not set, required when max_batch_size changes: "
                              "the assumed decode rate per sequence is measured at max_batch_size",
                              (f"models.{name}.max_batch_size",)))
        by_construct_id: dict[str, str] = {}
        for model in self.resolved_models():
            clash = by_construct_id.setdefault(construct_id_for(model.name), model.name)
            if clash != model.name:
                found.append((f"models.{model.name}", f"model name {model.name!r} names the same endpoint "
                              f"({construct_id_for(model.name)}) as {clash!r}; allowed: names that differ after "
                              "dropping '-' and case"))
            for key, message, *because in self._model_problems(model):
                found.append((f"models.{model.name}.{key}", message,
                              tuple(f"models.{model.name}.{k}" for k in (because[0] if because else ()))))
        return found

    def region_problems(self, region: str | None) -> list[tuple[str, str]]:
        """With a pinned region: SageMaker must host each enabled model's instance type there."""
        if region is None or not self.enabled or self.runtime not in profile_names("llm"):
            return []  # unpinned: the LLM stack's template rule checks the region at deploy time
        found = []
        for model in self.resolved_models():
            problem = hosting_region_problem(model.instance_type, region)
            if problem:
                found.append((f"models.{model.name}.instance_type",
                              f"got {model.instance_type!r} with region {region!r}: {problem}; allowed here: "
                              f"{_region_alternative(model)}"))
        return found

    def _model_problems(self, model: LlmModel) -> list[tuple]:
        """(key, message) or (key, message, other keys whose values led to it), keys relative to the model."""
        profile = self.profile
        found = variant_problems(
            model.instance_type,
            volume_size_gb=model.volume_size_gb,
            tensor_parallel_degree=model.tensor_parallel_degree,
            inference_ami_version=model.inference_ami_version,
        )
        try:
            instance = InstanceType.parse(model.instance_type)
        except UnknownInstanceType:
            return found  # reported by variant_problems
        accelerator = profile.settings.get("accelerator")
        if accelerator == "gpu" and instance.accelerator_kind != "gpu":
            found.append(("instance_type", f"got {model.instance_type!r}, allowed: a GPU instance type (ml.p*, ml.g*): "
                          f"runtime profile {profile.key} runs the CUDA image {profile.image_repository}:"
                          f"{self.image_tag or profile.default_tag}"))
            return found
        if model.tensor_parallel_degree < 1 or model.tokens_per_second <= 0:
            return found  # out of range: reported by the key's own check
        degree = degree_problem(model.attention_heads, model.instance_type, model.tensor_parallel_degree)
        if degree:
            found.append(("tensor_parallel_degree", degree))
        found += _precision_problems(model, profile)
        fit = fit_problem(model.name, model.parameters_billion, model.attention_heads, model.instance_type,
                          model.tensor_parallel_degree, model.precision) if not found else None
        if fit:  # reported at dtype; the precision keys and the placement decide it too
            found.append(("dtype", fit, ("prequantized_bits", "quantize", "instance_type", "tensor_parallel_degree")))
        generation = generation_problem(model.max_new_tokens, model.tokens_per_second, model.max_batch_size)
        if generation:
            found.append(("max_new_tokens", generation, ("tokens_per_second", "max_batch_size")))
        if model.max_new_tokens >= model.context_length:
            found.append(("max_new_tokens", f"got {model.max_new_tokens}, allowed: at most "
                          f"{model.context_length - 1} (the model's context is {model.context_length} tokens, "
                          "shared by the prompt and the generated tokens)", ("context_length",)))
        elif model.max_input_tokens + model.max_new_tokens > model.context_length:
            found.append(("max_input_tokens", f"got {model.max_input_tokens} + max_new_tokens {model.max_new_tokens} = "
                          f"{model.max_input_tokens + model.max_new_tokens}, allowed: at most the model's context "
                          f"length {model.context_length}, so at most {model.context_length - model.max_new_tokens}"))
        found += _option_problems(model, profile)
        return found


def _region_alternative(model: LlmModel) -> str:
    """What serves the model where its instance type is not hosted."""
    if model.name == "bloom-176b":
        return ("runtime 'seed' on ml.p4d.24xlarge (DeepSpeed INT8), an 8-bit checkpoint on ml.p4d.24xlarge "
                "(prequantized_bits = 8), or deploy to a region listed")
    return "an instance type hosted in this region, or deploy to a region listed"


def _precision_problems(model: LlmModel, profile: RuntimeProfile) -> list[tuple[str, str]]:
    found = []
    if profile.name == "seed":
        if model.prequantized_bits is not None or model.quantize is not None:
            key = "prequantized_bits" if model.prequantized_bits is not None else "quantize"
            found.append((key, f"got {getattr(model, key)!r}, allowed: not set with runtime profile {profile.key} "
                          "(DeepSpeed quantizes with dtype = 'int8')"))
        return found
    if model.dtype == "int8":
        found.append(("dtype", f"got 'int8', allowed with runtime profile {profile.key}: fp16, bf16, fp32 "
                      "(8-bit weights: prequantized_bits = 8 for a pre-quantized checkpoint, or quantize = 'fp8')"))
    if model.quantize is not None:
        allowed = tuple(profile.settings.get("runtime_quantization", ()))
        if model.quantize not in allowed:
            found.append(("quantize", f"got {model.quantize!r}, allowed: {', '.join(allowed) or 'not set'}"))
        if model.prequantized_bits is not None:
            found.append(("quantize", f"got {model.quantize!r} with prequantized_bits {model.prequantized_bits}, "
                          "allowed: not set for a pre-quantized checkpoint (LMI reads its quantization from config.json)"))
    return found


def _option_problems(model: LlmModel, profile: RuntimeProfile) -> list[tuple[str, str]]:
    known = tuple(profile.settings.get("lmi_options", ()))
    found = []
    for key in model.serving_options:
        where = f"serving_options.{key}"
        if not known:
            found.append((where, f"got {key!r}, allowed: none (runtime profile {profile.key} takes no LMI options)"))
        elif not re.fullmatch(OPTION_KEY_PATTERN, key) or key not in known:
            found.append((where, f"got {key!r}, allowed: an LMI option of {profile.image_repository}:"
                          f"{profile.default_tag}: {', '.join(sorted(set(known) - set(RENDERED_OPTIONS)))}"))
        elif key in RENDERED_OPTIONS:
            found.append((where, f"got {key!r}, allowed: set llm.models.{model.name}.{RENDERED_OPTIONS[key]} instead "
                          "(the stack renders this option from it)"))
    return found


def _resolve(name: str, override: LlmModelSettings | None, runtime: str, profile: RuntimeProfile) -> LlmModel | None:
    given = {f.name: getattr(override, f.name) for f in dataclasses.fields(LlmModelSettings)} if override else {}
    given = {k: v for k, v in given.items() if v is not None}
    if "serving_options" in given:
        given["serving_options"] = MappingProxyType(dict(given["serving_options"]))
    if given.get("prequantized_bits") == 0:
        given["prequantized_bits"] = None  # explicitly not pre-quantized: replaces a built-in default
    if "inference_ami_version" not in given and profile.settings.get("inference_ami_version"):
        given["inference_ami_version"] = profile.settings["inference_ami_version"]
    base = BUILTIN_MODELS.get(name)
    if base is not None:
        defaults = RUNTIME_DEFAULTS.get(runtime, {}).get(name, {})
        return dataclasses.replace(base, **{**defaults, **given})
    if any(k not in given for k in REQUIRED_FOR_NEW):
        return None  # reported by LlmConfig.problems
    return LlmModel(name=name, **given)


# ---- What each runtime profile's container reads (rendered by stacks/llm_stack.py) ----------------


def lmi_environment(model: LlmModel) -> dict[str, str]:
    """The current profile's serving configuration: LMI options as ``OPTION_<KEY>`` variables.

    LMI's own vLLM handler loads the weights SageMaker placed in /opt/ml/model, so no
    model id is set (djl-serving v0.36.0 serving/docs/lmi/deployment_guide/configurations.md).
    """
    options: dict[str, object] = {
        "tensor_parallel_degree": model.tensor_parallel_degree,
        "dtype": model.dtype,
        "max_rolling_batch_size": model.max_batch_size,
        # The model's context. vLLM 0.15.1 refuses a request whose prompt plus requested max_tokens
        # exceed it, before the cap below applies (docs/llm.md, "What the endpoint answers").
        "max_model_len": model.max_model_len,
        # A server-wide limit on the tokens one request generates: vLLM cuts a larger max_tokens to it.
        "override_generation_config": json.dumps({"max_new_tokens": model.max_new_tokens}),
        # LMI's own load timeout (default 1800 s) must not end before SageMaker's health check does.
        "model_loading_timeout": model.container_startup_health_check_timeout_seconds,
    }
    if model.quantize is not None:
        options["quantize"] = model.quantize
    options.update(model.serving_options)
    return {f"OPTION_{key.upper()}": str(value) for key, value in options.items()}


def deepspeed_environment(model: LlmModel) -> dict[str, str]:
    """The seed profile's configuration: DJL Serving 0.19 reads the degree and load timeout, model.py the rest."""
    return {
        "TENSOR_PARALLEL_DEGREE": str(model.tensor_parallel_degree),
        "MODEL_DTYPE": model.dtype,
        "MAX_NEW_TOKENS": str(model.max_new_tokens),
        "MAX_BATCH_SIZE": str(model.max_batch_size),
        # DJL 0.19 gives up loading after 240 s unless told otherwise (PyEnv.java getModelLoadingTimeout,
        # 0.19.0-dlc); loading BLOOM-176B takes longer, and SageMaker waits the health check's 2400 s.
        "MODEL_LOADING_TIMEOUT": str(model.container_startup_health_check_timeout_seconds),
    }
