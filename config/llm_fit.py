"""Does an LLM fit its instance, and can it answer within SageMaker's 60-second invocation limit?

Pure arithmetic on the model catalogue and the instance catalogue, run at synth time so a
model that cannot load, or a limit that cannot be served in real time, is a configuration
error instead of a failed deployment an hour later (docs/llm.md, "Fit" and "Limits").

Fit: the weights need ``parameters x bytes per parameter``. Bytes per parameter follow the
weights' precision: 2 for fp16/bf16, 4 for fp32, 1 for int8 (DeepSpeed's INT8 kernels) or an
8-bit pre-quantized checkpoint, 0.5 for a 4-bit one. Runtime quantization (LMI's
``option.quantize``) loads the checkpoint at its original precision first and quantizes
afterwards (vLLM's quantization guide), so the load needs the unquantized size. The
weights may take at most ``WEIGHT_SHARE`` of the memory of the GPUs the model is sharded
over (``tensor_parallel_degree`` x memory per GPU); the rest holds the CUDA context,
activations and the KV cache.

Limits: a real-time ``InvokeEndpoint`` call must answer within 60 seconds. Generating
``max_new_tokens`` at the assumed per-sequence decode rate (measured at ``max_batch_size``)
must take at most ``GENERATION_BUDGET_SECONDS``; the rest of the minute is left for the
prompt's prefill, queueing and the network.
"""
from __future__ import annotations

from dataclasses import dataclass

from ml_constructs.sagemaker.instances import InstanceType, UnknownInstanceType, gpu_instance_types

GIB = 1024**3
WEIGHT_SHARE = 0.8
INVOKE_LIMIT_SECONDS = 60
GENERATION_BUDGET_SECONDS = 48.0
DTYPE_BYTES = {"int8": 1.0, "fp16": 2.0, "bf16": 2.0, "fp32": 4.0}
# option.quantize (LMI runtime quantization) -> bytes per parameter once quantized.
# fp8: 8-bit weights (W8A16 Marlin kernels on Ampere); bitsandbytes: vLLM's in-flight 4-bit.
RUNTIME_QUANTIZATION_BYTES = {"fp8": 1.0, "bitsandbytes": 0.5}


@dataclass(frozen=True)
class Precision:
    """How the weights are stored on the GPUs, and how they are loaded."""

    dtype: str
    prequantized_bits: int | None = None
    quantize: str | None = None

    @property
    def bytes_per_parameter(self) -> float:
        if self.prequantized_bits is not None:
            return self.prequantized_bits / 8
        if self.quantize is not None:
            return RUNTIME_QUANTIZATION_BYTES[self.quantize]
        return DTYPE_BYTES[self.dtype]

    @property
    def load_bytes_per_parameter(self) -> float:
        """Runtime quantization loads at the checkpoint's precision first."""
        if self.quantize is not None and self.prequantized_bits is None:
            return max(DTYPE_BYTES[self.dtype], self.bytes_per_parameter)
        return self.bytes_per_parameter

    def describe(self) -> str:
        if self.prequantized_bits is not None:
            return f"{self.prequantized_bits}-bit pre-quantized weights"
        if self.quantize is not None:
            return f"{self.dtype} weights quantized at load ({self.quantize})"
        return self.dtype


def weights_gib(parameters_billion: float, bytes_per_parameter: float) -> float:
    return parameters_billion * 1e9 * bytes_per_parameter / GIB


def usable_gib(instance: InstanceType, tensor_parallel_degree: int) -> float | None:
    """Memory the weights may take on ``tensor_parallel_degree`` GPUs of ``instance`` (None: unknown)."""
    if instance.gpu_memory_gib is None:
        return None
    return WEIGHT_SHARE * tensor_parallel_degree * instance.gpu_memory_gib


def fit_problem(
    name: str, parameters_billion: float, attention_heads: int, instance_type: str, tensor_parallel_degree: int,
    precision: Precision,
) -> str | None:
    """Why the weights don't fit (naming sizes and what would fit), or None."""
    try:
        instance = InstanceType.parse(instance_type)
    except UnknownInstanceType:
        return None
    usable = usable_gib(instance, tensor_parallel_degree)
    if usable is None:
        return None
    need = weights_gib(parameters_billion, precision.load_bytes_per_parameter)
    if need <= usable:
        return None
    serve = weights_gib(parameters_billion, precision.bytes_per_parameter)
    sizes = f"{serve:.1f} GiB of weights" + (
        f", {need:.1f} GiB while loading before quantization" if need > serve else "")
    offered = (f"{instance_type} with tensor_parallel_degree {tensor_parallel_degree} offers "
               f"{tensor_parallel_degree} x {instance.gpu_memory_gib} GiB, of which {WEIGHT_SHARE:.0%} "
               f"({usable:.1f} GiB) may hold weights")
    return (f"{name} ({parameters_billion:g} B parameters) as {precision.describe()} needs {sizes}; {offered}. "
            f"Would fit: {_what_fits(name, parameters_billion, attention_heads, instance, precision)}")


def _what_fits(name: str, parameters_billion: float, heads: int, instance: InstanceType, precision: Precision) -> str:
    options = []
    degree = _largest_degree(heads, instance.accelerator_count or 0)
    for bits in (8, 4):
        if bits / 8 < precision.load_bytes_per_parameter:
            size = weights_gib(parameters_billion, bits / 8)
            usable = usable_gib(instance, degree) if degree else None
            if usable is not None and size <= usable:
                options.append(f"prequantized_bits = {bits} ({size:.1f} GiB) on {instance.name} "
                               f"with tensor_parallel_degree {degree}")
                break
    larger = []
    for candidate_name in gpu_instance_types():
        candidate = InstanceType.parse(candidate_name)
        degree = _largest_degree(heads, candidate.accelerator_count or 0)
        usable = usable_gib(candidate, degree) if degree else None
        if usable is not None and weights_gib(parameters_billion, precision.load_bytes_per_parameter) <= usable:
            larger.append(f"{candidate_name} (tensor_parallel_degree {degree})")
        if len(larger) == 3:
            break
    if larger:
        options.append(f"{precision.describe()} on {', '.join(larger)}")
    return "; or ".join(options) if options else f"no catalogued GPU instance holds {name} at this precision"


def _largest_degree(heads: int, accelerators: int) -> int:
    """The largest tensor parallel degree that divides ``heads`` and fits ``accelerators`` (0: none)."""
    return max((d for d in range(1, accelerators + 1) if heads % d == 0), default=0)


def degree_problem(attention_heads: int, instance_type: str, tensor_parallel_degree: int) -> str | None:
    """Tensor parallelism splits the attention heads evenly: the degree must divide them."""
    if attention_heads % tensor_parallel_degree == 0:
        return None
    try:
        accelerators = InstanceType.parse(instance_type).accelerator_count or 1
    except UnknownInstanceType:
        accelerators = tensor_parallel_degree
    allowed = [d for d in range(1, max(accelerators, 1) + 1) if attention_heads % d == 0]
    return (f"got {tensor_parallel_degree}, allowed: a divisor of the model's {attention_heads} attention heads "
            f"that {instance_type} can hold: {', '.join(map(str, allowed))}")


def generation_problem(max_new_tokens: int, tokens_per_second: float, max_batch_size: int) -> str | None:
    """``max_new_tokens`` must be generated within the budget at the assumed rate."""
    seconds = max_new_tokens / tokens_per_second
    if seconds <= GENERATION_BUDGET_SECONDS:
        return None
    most = int(GENERATION_BUDGET_SECONDS * tokens_per_second)
    return (f"got {max_new_tokens}, allowed: at most {most} at the assumed {tokens_per_second:g} tokens/s per "
            f"sequence with max_batch_size {max_batch_size} ({max_new_tokens} tokens take about {seconds:.0f} s; a "
            f"real-time invocation must answer within {INVOKE_LIMIT_SECONDS} s, {GENERATION_BUDGET_SECONDS:g} s "
            "of which are budgeted for generation). For longer generations use asynchronous inference (docs/llm.md)")


def checkpoint_bits(quantization: dict) -> int | None:
    """Weight bits a ``config.json`` ``quantization_config`` declares (None: not stated)."""
    method = str(quantization.get("quant_method", "")).lower()
    if method == "bitsandbytes":
        return 8 if quantization.get("load_in_8bit") else 4
    if method == "fp8":
        return 8
    for key in ("bits", "w_bit"):
        if isinstance(quantization.get(key), int):
            return quantization[key]
    for group in (quantization.get("config_groups") or {}).values():  # compressed-tensors
        bits = (group.get("weights") or {}).get("num_bits") if isinstance(group, dict) else None
        if isinstance(bits, int):
            return bits
    return None


def checkpoint_problem(quantization: dict | None, tensor_parallel_degree: int, prequantized_bits: int | None) -> str | None:
    """Why vLLM 0.15.1 (LMI 20) cannot serve a checkpoint as configured, from its config.json, or None.

    From vLLM 0.15.1's loaders: a pre-quantized bitsandbytes checkpoint is refused with tensor
    parallelism (``model_executor/model_loader/bitsandbytes_loader.py``); AWQ is 4-bit only
    (``model_executor/layers/quantization/awq.py``). The configured ``prequantized_bits`` must
    match the checkpoint, since the fit check sized the GPUs with it.
    """
    if quantization is None:
        if prequantized_bits is not None:
            return (f"config.json has no quantization_config, but prequantized_bits is {prequantized_bits}: stage a "
                    f"{prequantized_bits}-bit checkpoint, or set prequantized_bits = 0")
        return None
    method = str(quantization.get("quant_method", "unknown"))
    bits = checkpoint_bits(quantization)
    if method == "bitsandbytes" and tensor_parallel_degree > 1:
        return (f"a pre-quantized bitsandbytes checkpoint with tensor_parallel_degree {tensor_parallel_degree}: vLLM "
                "0.15.1 loads those with tensor_parallel_degree 1 only; allowed with tensor parallelism: a GPTQ, "
                "compressed-tensors (W8A16, W8A8) or FP8 checkpoint, or the unquantized one")
    if method == "awq" and bits not in (None, 4):
        return (f"an AWQ checkpoint of {bits} bits: vLLM 0.15.1 loads 4-bit AWQ only; allowed for 8 bits: a GPTQ, "
                "compressed-tensors (W8A16, W8A8) or FP8 checkpoint")
    if prequantized_bits is None:
        return (f"config.json declares {method} quantization ({bits or 'unstated'} bits), but prequantized_bits is not "
                f"set: set prequantized_bits = {bits or '<its bits>'} so the fit check sizes the GPUs for it")
    if bits is not None and bits != prequantized_bits:
        return (f"config.json declares {bits}-bit {method} weights, but prequantized_bits is {prequantized_bits}: set "
                f"prequantized_bits = {bits}, or stage a {prequantized_bits}-bit checkpoint")
    return None
