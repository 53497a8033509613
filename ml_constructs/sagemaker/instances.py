"""What the project knows about SageMaker hosting instance types.

One place for the facts the validation rules need (docs/aws-limits.md, SageMaker):
accelerators per instance (NeuronCores on Inferentia2/Trainium, GPUs on
p/g families), local NVMe instance storage (no ``VolumeSizeInGB`` and no
endpoint-config KMS key), burstable types (cannot autoscale) and vCPUs
(SageMaker's ``CPUUtilization`` is summed over vCPUs: 0-100 x vCPUs), memory per
GPU (what decides whether a model's weights fit) and the inference AMI versions
(``ProductionVariant.InferenceAmiVersion``) each accelerator kind accepts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

AcceleratorKind = Literal["neuron_core", "gpu"]

_INSTANCE_TYPE = re.compile(r"^ml\.(?P<family>[a-z]+\d+[a-z\-]*)\.(?P<size>[a-z0-9]+)$")

# (family, size) -> accelerators. NeuronCores for inf2/trn1 (2 per chip), GPUs otherwise: what
# tensor parallelism counts (a Neuron model is sharded over NeuronCores).
_ACCELERATORS: dict[str, tuple[AcceleratorKind, dict[str, int]]] = {
    "inf2": ("neuron_core", {"xlarge": 2, "8xlarge": 2, "24xlarge": 12, "48xlarge": 24}),
    "trn1": ("neuron_core", {"2xlarge": 2, "32xlarge": 32}),
    "trn1n": ("neuron_core", {"32xlarge": 32}),
    "p4d": ("gpu", {"24xlarge": 8}),
    "p4de": ("gpu", {"24xlarge": 8}),
    "p5": ("gpu", {"48xlarge": 8}),
    "g5": (
        "gpu",
        {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8},
    ),
    "g6": (
        "gpu",
        {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8},
    ),
    "g4dn": ("gpu", {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4}),
    "p3": ("gpu", {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8}),
}
# NeuronCores per accelerator device (chip): 2 on Inferentia2 and Trainium1 (NeuronCore-v2; Neuron
# docs, "Inferentia2 Architecture", "Trainium Architecture"). Inference components count *devices*
# (``NumberOfAcceleratorDevicesRequired``): chips there, GPUs on p/g families (docs/sagemaker-endpoints.md,
# "Inference components on Inferentia2 and Trainium").
_NEURON_CORES_PER_DEVICE: dict[str, int] = {"inf2": 2, "trn1": 2, "trn1n": 2}
# GPU family -> memory of one GPU in GiB (NVIDIA's datasheets, as the EC2 instance-type pages list them):
# A100 40 GB (p4d), A100 80 GB (p4de), H100 80 GB (p5), H200 141 GB (p5e, p5en), A10G 24 GB (g5),
# L4 24 GB (g6), L40S 48 GB (g6e), T4 16 GB (g4dn), V100 16 GB (p3).
_GPU_MEMORY_GIB: dict[str, int] = {
    "p4d": 40, "p4de": 80, "p5": 80, "p5e": 141, "p5en": 141, "g5": 24, "g6": 24, "g6e": 48, "g4dn": 16, "p3": 16,
}
# ProductionVariant.InferenceAmiVersion -> the accelerator kind it is built for (SageMaker API
# reference, ProductionVariant; botocore's ProductionVariantInferenceAmiVersion enum).
INFERENCE_AMI_VERSIONS: dict[str, AcceleratorKind] = {
    "al2-ami-sagemaker-inference-gpu-2": "gpu",  # NVIDIA driver 535, CUDA 12.2
    "al2-ami-sagemaker-inference-gpu-2-1": "gpu",  # driver 535, CUDA 12.2, CUDA-compat mounting disabled
    "al2-ami-sagemaker-inference-gpu-3-1": "gpu",  # driver 550, CUDA 12.4, CUDA-compat mounting disabled
    "al2023-ami-sagemaker-inference-gpu-4-1": "gpu",  # driver 580, CUDA 13.0, CUDA-compat mounting disabled
    "al2-ami-sagemaker-inference-neuron-2": "neuron_core",  # Inferentia2 and Trainium, Neuron driver 2.19
}
# Families with local NVMe storage although their name carries no 'd' (AWS SDK rule).
_NVME_WITHOUT_D = frozenset({"g5", "g6", "p5", "trn1", "trn1n"})
_SIZE_VCPUS = {"medium": 2, "large": 2, "xlarge": 4}
# Instance memory in GiB (the EC2 instance type pages). Inference components are checked
# against it: a copy's MinMemoryRequiredInMb must fit on one instance.
_GPU_SIZES_GIB = {"xlarge": 16, "2xlarge": 32, "4xlarge": 64, "8xlarge": 128, "12xlarge": 192, "16xlarge": 256,
                  "24xlarge": 384, "48xlarge": 768}
_MEMORY_GIB: dict[str, dict[str, int]] = {
    "inf2": {"xlarge": 16, "8xlarge": 128, "24xlarge": 384, "48xlarge": 768},
    "trn1": {"2xlarge": 32, "32xlarge": 512},
    "trn1n": {"32xlarge": 512},
    "p4d": {"24xlarge": 1152},
    "p4de": {"24xlarge": 1152},
    "p5": {"48xlarge": 2048},
    "p3": {"2xlarge": 61, "8xlarge": 244, "16xlarge": 488},
    "g5": _GPU_SIZES_GIB,
    "g6": _GPU_SIZES_GIB,
    "g4dn": {k: v for k, v in _GPU_SIZES_GIB.items() if k != "24xlarge" and k != "48xlarge"},
    "m5": {"large": 8, "xlarge": 16, "2xlarge": 32, "4xlarge": 64, "12xlarge": 192, "24xlarge": 384},
    "c5": {"large": 4, "xlarge": 8, "2xlarge": 16, "4xlarge": 32, "9xlarge": 72, "18xlarge": 144},
    "c5d": {"large": 4, "xlarge": 8, "2xlarge": 16, "4xlarge": 32, "9xlarge": 72, "18xlarge": 144},
}

# Every SageMaker real-time hosting instance type, by family: AWS's price list for SageMaker
# hosting as of late 2026 (docs/aws-limits.md, "Hosting instance types"). A type outside it fails
# synth instead of the deploy; add a newly launched type here.
_HOSTING_SIZES: dict[str, tuple[str, ...]] = {family: tuple(sizes.split()) for family, sizes in {
    "c4": "large xlarge 2xlarge 4xlarge 8xlarge",
    "c5": "large xlarge 2xlarge 4xlarge 9xlarge 12xlarge 18xlarge 24xlarge",
    "c5d": "large xlarge 2xlarge 4xlarge 9xlarge 18xlarge",
    "c6g": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
    "c6gd": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
    "c6gn": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
    "c6i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
    "c7g": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
    "c7i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
    "c8g": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
    "g4dn": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
    "g5": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
    "g6": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
    "g6e": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
    "g7": "2xlarge 4xlarge 8xlarge 12xlarge 24xlarge 48xlarge",
    "g7e": "2xlarge 4xlarge 8xlarge 12xlarge 24xlarge 48xlarge",
    "inf1": "xlarge 2xlarge 6xlarge 24xlarge",
    "inf2": "xlarge 8xlarge 24xlarge 48xlarge",
    "m4": "xlarge 2xlarge 4xlarge 10xlarge 16xlarge",
    "m5": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge",
    "m5d": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge",
    "m6g": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
    "m6gd": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
    "m6i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
    "m7g": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
    "m7gd": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
    "m7i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
    "p4d": "24xlarge",
    "p4de": "24xlarge",
    "p5": "4xlarge 48xlarge",
    "p5en": "48xlarge",
    "p6-b200": "48xlarge",
    "p6-b300": "48xlarge",
    "r5": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge",
    "r5d": "large xlarge 2xlarge 4xlarge 12xlarge 24xlarge",
    "r6g": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
    "r6gd": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
    "r6i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
    "r7g": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
    "r7gd": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
    "r7i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
    "r8g": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
    "t2": "medium large xlarge 2xlarge",
    "t3": "nano micro small medium large xlarge 2xlarge",
    "trn1": "2xlarge 32xlarge",
    "trn1n": "32xlarge",
}.items()}
# Families whose NeuronCore-v2 runs what torch-neuronx / neuronx-cc compile (Inferentia2, Trainium);
# Inferentia1 (inf1) needs artifacts of the older torch-neuron instead (docs/aws-limits.md).
NEURONX_FAMILIES = frozenset({"inf2", "trn1", "trn1n"})


class UnknownInstanceType(ValueError):
    """Not of the form ``ml.<family>.<size>``."""


@dataclass(frozen=True)
class InstanceType:
    """Parsed ``ml.<family>.<size>`` with the facts validation needs."""

    name: str
    family: str
    size: str

    @classmethod
    def parse(cls, name: str) -> "InstanceType":
        match = _INSTANCE_TYPE.match(name)
        if not match:
            raise UnknownInstanceType(f"{name!r} is not a SageMaker instance type of the form ml.<family>.<size>")
        return cls(name, match["family"], match["size"])

    @property
    def accelerator_kind(self) -> AcceleratorKind | None:
        known = _ACCELERATORS.get(self.family)
        if known:
            return known[0]
        # Any other p*/g* family is a GPU family; inf*/trn* are Neuron.
        if self.family.startswith(("p", "g")):
            return "gpu"
        if self.family.startswith(("inf", "trn")):
            return "neuron_core"
        return None

    @property
    def accelerator_count(self) -> int | None:
        """NeuronCores or GPUs; 0 for CPU instances; None when not catalogued."""
        if self.accelerator_kind is None:
            return 0
        known = _ACCELERATORS.get(self.family)
        return known[1].get(self.size) if known else None

    @property
    def cores_per_device(self) -> int:
        """NeuronCores per Neuron chip (2 on inf2/trn1); 1 for a GPU (one device, one unit of parallelism)."""
        return _NEURON_CORES_PER_DEVICE.get(self.family, 1)

    @property
    def accelerator_devices(self) -> int | None:
        """Accelerator devices: Neuron chips (inf2/trn1) or GPUs; 0 for CPU instances; None when not catalogued.

        What ``NumberOfAcceleratorDevicesRequired`` of an inference component counts
        (ml.inf2.xlarge: 1 device with 2 NeuronCores; ml.trn1.32xlarge: 16 devices, 32 NeuronCores).
        """
        count = self.accelerator_count
        return None if count is None else count // self.cores_per_device

    @property
    def gpu_memory_gib(self) -> int | None:
        """Memory of one GPU in GiB; None for non-GPU or uncatalogued families."""
        return _GPU_MEMORY_GIB.get(self.family) if self.accelerator_kind == "gpu" else None

    @property
    def accelerator_memory_gib(self) -> int | None:
        """Total GPU memory of the instance in GiB (GPUs x memory per GPU); None when not catalogued."""
        per_gpu, count = self.gpu_memory_gib, self.accelerator_count
        return per_gpu * count if per_gpu is not None and count else None

    @property
    def has_local_nvme(self) -> bool:
        """Local NVMe instance storage: rejects VolumeSizeInGB and an endpoint-config KMS key."""
        generation_suffix = re.sub(r"^[a-z]+\d+", "", self.family)
        return "d" in generation_suffix or self.family in _NVME_WITHOUT_D

    @property
    def is_burstable(self) -> bool:
        return re.fullmatch(r"t\d+[a-z]*", self.family) is not None

    @property
    def is_cpu_only(self) -> bool:
        return self.accelerator_kind is None

    @property
    def memory_gib(self) -> int | None:
        """Instance memory; None when not catalogued."""
        return _MEMORY_GIB.get(self.family, {}).get(self.size)

    @property
    def vcpus(self) -> int | None:
        """vCPUs by EC2's size naming (N x xlarge = 4N vCPUs); None for sizes it does not cover."""
        if self.size in _SIZE_VCPUS:
            return _SIZE_VCPUS[self.size]
        match = re.fullmatch(r"(\d+)xlarge", self.size)
        return 4 * int(match[1]) if match else None


def catalogued_instance_types() -> list[str]:
    """Every ``ml.<family>.<size>`` whose accelerators or memory this module knows (the price table covers them)."""
    names = {f"ml.{family}.{size}" for family, (_kind, sizes) in _ACCELERATORS.items() for size in sizes}
    names |= {f"ml.{family}.{size}" for family, sizes in _MEMORY_GIB.items() for size in sizes}
    return sorted(names)


def accelerator_count(instance_type: str) -> int | None:
    """NeuronCores (inf2/trn1) or GPUs of ``instance_type``; 0 for CPU types, None if unknown.

    Model packages check ``option.tensor_parallel_degree`` against this.
    """
    return InstanceType.parse(instance_type).accelerator_count


def has_local_nvme(instance_type: str) -> bool:
    return InstanceType.parse(instance_type).has_local_nvme


def gpu_instance_types() -> list[str]:
    """Every catalogued GPU instance type with known GPU memory, smallest total memory first."""
    found = [
        InstanceType.parse(f"ml.{family}.{size}")
        for family, (kind, sizes) in _ACCELERATORS.items() if kind == "gpu" and family in _GPU_MEMORY_GIB
        for size in sizes
    ]
    return [i.name for i in sorted(found, key=lambda i: (i.accelerator_memory_gib, i.accelerator_count, i.name))]


def inference_ami_problem(instance_type: str, ami_version: str) -> str | None:
    """Why ``ami_version`` cannot run ``instance_type`` (``got ..., allowed: ...``), or None."""
    kind = INFERENCE_AMI_VERSIONS.get(ami_version)
    if kind is None:
        return f"got {ami_version!r}, allowed: {', '.join(INFERENCE_AMI_VERSIONS)} (SageMaker ProductionVariant)"
    try:
        instance = InstanceType.parse(instance_type)
    except UnknownInstanceType:
        return None  # the instance type itself is reported
    if instance.accelerator_kind != kind:
        fitting = [name for name, k in INFERENCE_AMI_VERSIONS.items() if k == instance.accelerator_kind]
        what = {"gpu": "GPU", "neuron_core": "Inferentia2/Trainium"}[kind]
        allowed = ", ".join(fitting) if fitting else f"not set ({instance_type} has no accelerators)"
        return f"got {ami_version!r} (built for {what} instances) for {instance_type}, allowed: {allowed}"
    return None


def variant_problems(
    instance_type: str,
    *,
    volume_size_gb: int | None = None,
    tensor_parallel_degree: int | None = None,
    autoscaling: bool = False,
    cpu_only: bool = False,
    inference_ami_version: str | None = None,
    neuron_compiled: bool | None = None,
) -> list[tuple[str, str]]:
    """``(setting, message)`` for the rules that depend on the instance type.

    The endpoint constructs enforce the same rules; configuration calls this so
    a bad combination is reported with its config key and where it came from,
    before any construct exists. ``neuron_compiled`` (True or False) adds
    :func:`neuron_match_problems`; None leaves the model's kind unchecked.
    """
    unknown = hosting_type_problems(instance_type)
    if unknown:
        return unknown
    instance = InstanceType.parse(instance_type)
    found = []
    if neuron_compiled is not None:
        found += neuron_match_problems(instance_type, neuron_compiled=neuron_compiled)
    if volume_size_gb is not None and instance.has_local_nvme:
        found.append(("volume_size_gb", f"got {volume_size_gb!r}, allowed: not set: {instance_type} has local NVMe "
                      "instance storage"))
    accelerators = instance.accelerator_count
    if tensor_parallel_degree is not None and accelerators is not None and tensor_parallel_degree > max(accelerators, 1):
        kind = "NeuronCores" if instance.accelerator_kind == "neuron_core" else "GPUs"
        allowed = f"at most {accelerators} ({instance_type} has {accelerators} {kind})" if accelerators else (
            f"1 ({instance_type} has no accelerators)")
        found.append(("tensor_parallel_degree", f"got {tensor_parallel_degree!r}, allowed: {allowed}"))
    if autoscaling and instance.is_burstable:
        found.append(("instance_type", f"got {instance_type!r}, allowed: a non-burstable instance type "
                      "(ml.t* cannot autoscale)"))
    if inference_ami_version is not None:
        problem = inference_ami_problem(instance_type, inference_ami_version)
        if problem:
            found.append(("inference_ami_version", problem))
    if cpu_only and not instance.is_cpu_only:
        found.append(("instance_type", f"got {instance_type!r}, allowed: a CPU instance type (multi-model endpoints "
                      "with this container do not run on Inferentia, Trainium or GPU instances)"))
    return found


def hosting_type_problems(instance_type: str, key: str = "instance_type") -> list[tuple[str, str]]:
    """``(key, message)`` when ``instance_type`` is not a SageMaker hosting instance type."""
    try:
        instance = InstanceType.parse(instance_type)
    except UnknownInstanceType as exc:
        return [(key, f"got {instance_type!r}, allowed: ml.<family>.<size> ({exc})")]
    sizes = _HOSTING_SIZES.get(instance.family)
    if sizes is None:
        return [(key, f"got {instance_type!r}: SageMaker hosting has no instance family {instance.family!r}; "
                 f"allowed families: {', '.join(sorted(_HOSTING_SIZES))}")]
    if instance.size not in sizes:
        return [(key, f"got {instance_type!r}: SageMaker hosting has no {instance.size} in family "
                 f"{instance.family}; allowed: {', '.join(f'ml.{instance.family}.{size}' for size in sizes)}")]
    return []


def neuron_match_problems(instance_type: str, *, neuron_compiled: bool, key: str = "instance_type") -> list[tuple[str, str]]:
    """``(key, message)`` when a model's compilation and its instance type do not fit together.

    ``neuron_compiled``: the model is Neuron artifacts (torch-neuronx, neuronx-cc), which only
    Inferentia2/Trainium run; a model that is not cannot use their NeuronCores (a GPU or CPU
    model on an inf2/trn1 instance pays for accelerators it cannot load onto).
    """
    try:
        family = InstanceType.parse(instance_type).family
    except UnknownInstanceType:
        return []  # hosting_type_problems reports the form
    if neuron_compiled and family not in NEURONX_FAMILIES:
        return [(key, f"got {instance_type!r}, allowed: an Inferentia2 or Trainium type "
                 f"({', '.join(f'ml.{f}.*' for f in sorted(NEURONX_FAMILIES))}): the model is compiled for "
                 "Neuron, and Neuron artifacts only run on NeuronCores")]
    if not neuron_compiled and family.startswith(("inf", "trn")):
        return [(key, f"got {instance_type!r}, allowed: a GPU or CPU instance type: this model is not compiled "
                 "for Neuron, so it cannot run on Inferentia or Trainium NeuronCores")]
    return []


# Instance types SageMaker hosts in a few regions only, and those regions; types not listed here
# are not checked by region. SageMaker hosts a type only where EC2 offers it, and EC2 offers P4de
# (8 x A100 80 GB) in US East (N. Virginia) and US West (Oregon) (https://aws.amazon.com/ec2/instance-types/p4/;
# SageMaker's Real-Time Inference price list, https://aws.amazon.com/sagemaker/pricing/, is where
# to confirm a region before widening this). Recorded, not re-read from the build machines, which
# have no web access: docs/llm.md says how the first deploy confirms it.
HOSTING_REGIONS: dict[str, frozenset[str]] = {
    "ml.p4de.24xlarge": frozenset({"us-east-1", "us-west-2"}),
}


def hosting_region_problem(instance_type: str, region: str) -> str | None:
    """Why SageMaker cannot host ``instance_type`` in ``region`` (None: it can, or it is not recorded)."""
    regions = HOSTING_REGIONS.get(instance_type)
    if regions is None or region in regions:
        return None
    return f"SageMaker hosts {instance_type} only in {', '.join(sorted(regions))}"
