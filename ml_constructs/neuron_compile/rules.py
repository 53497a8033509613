"""Synth-time rules for a Neuron compilation: compiler flags, images, instance types.

Pure Python (no aws-cdk-lib), shared by the configuration schema and the
construct, so a bad value fails ``cdk synth`` with the same message wherever
it was given.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ml_constructs.neuron_flags import INFERENTIA2_TARGETS, neuron_cc_flag_problems

# ---------------------------------------------------------------- model and shapes

HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
S3_PREFIX = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/([^\s]+/)")
DTYPES = ("bf16", "fp16", "fp32")
PINNED_REVISION = re.compile(r"[0-9a-f]{40}")
# neuronx-cc flags per component, from AWS's Neuron Stable Diffusion samples: the UNet and the
# VAE decoder are compiled with --model-type=unet-inference, the text encoder and post_quant_conv
# with the default model type.
DEFAULT_COMPONENT_ARGS: dict[str, str] = {
    "text_encoder": "--target=inf2",
    "unet": "--target=inf2 --model-type=unet-inference",
    "vae_decoder": "--target=inf2 --model-type=unet-inference",
    "vae_post_quant_conv": "--target=inf2",
}


def model_problems(model_id: str, revision: str | None) -> list[tuple[str, str]]:
    """(field, message) for a model id that is neither a hub id nor an S3 prefix, or a misplaced revision."""
    found = []
    if not (HUB_ID.fullmatch(model_id) or S3_PREFIX.fullmatch(model_id)):
        found.append(("model_id", (f"got {model_id!r}; expected a Hugging Face hub id such as "
                      "'stabilityai/stable-diffusion-2-1-base' or an S3 prefix ending in '/' (s3://bucket/prefix/)")))
    if revision and model_id.startswith("s3://"):
        found.append(("revision", f"got {revision!r}; a revision only applies to a hub id, not to {model_id!r}"))
    return found


def shape_problems(name: str, value: int) -> list[tuple[str, str]]:
    """Stable Diffusion's latent space is 1/8 of the image: sides are multiples of 8."""
    if 64 <= value <= 2048 and value % 8 == 0:
        return []
    return [(name, f"got {value}; allowed: a multiple of 8 from 64 to 2048")]


def compiler_args_problems(args: str) -> list[str]:
    """Every problem in a ``neuronx-cc`` flag string; the graphs serve on Inferentia2."""
    return neuron_cc_flag_problems(args, allowed_targets=INFERENTIA2_TARGETS)


# ---------------------------------------------------------------- instance types


@dataclass(frozen=True)
class CompileInstance:
    """What a compile job may ask of one instance (ECS keeps a little memory for itself)."""

    vcpus: int
    memory_gib: int
    neuron_devices: int
    job_memory_mib: int


# inf2.8xlarge: 1 Inferentia2 chip, 32 vCPU, 128 GiB (compiling Stable Diffusion needs ~128 GiB
# host memory; it is killed on an inf2.xlarge). trn1.2xlarge: 1 Trainium chip, 8 vCPU, 32 GiB.
COMPILE_INSTANCES: dict[str, CompileInstance] = {
    "inf2.8xlarge": CompileInstance(vcpus=32, memory_gib=128, neuron_devices=1, job_memory_mib=120 * 1024),
    "trn1.2xlarge": CompileInstance(vcpus=8, memory_gib=32, neuron_devices=1, job_memory_mib=29 * 1024),
}


# ---------------------------------------------------------------- images

_SDK_IN_TAG = re.compile(r"(?:^|-)sdk(\d+\.\d+\.\d+)(?:-|$)")

# Recommended compile image per serving image: the same Neuron SDK release. The
# Neuron LMI images (djl-inference ...-neuronx-sdk...) ship torch-neuronx and
# neuronx-cc themselves, so compiling with the serving image matches by construction.
KNOWN_PAIRINGS: dict[str, str] = {
    # W1's runtime profiles (runtime_profiles/stable_diffusion/): each compiles in its serving image.
    "huggingface-pytorch-inference-neuronx:2.8.0-transformers4.55.4-neuronx-py310-sdk2.26.0-ubuntu22.04": (
        "huggingface-pytorch-inference-neuronx:2.8.0-transformers4.55.4-neuronx-py310-sdk2.26.0-ubuntu22.04"
    ),
    "djl-inference:0.24.0-neuronx-sdk2.14.1": "djl-inference:0.24.0-neuronx-sdk2.14.1",
    "djl-inference:0.30.0-neuronx-sdk2.20.1": "djl-inference:0.30.0-neuronx-sdk2.20.1",
    "djl-inference:0.29.0-neuronx-sdk2.19.1": "djl-inference:0.29.0-neuronx-sdk2.19.1",
    "pytorch-inference-neuronx:2.1.2-neuronx-py310-sdk2.20.2-ubuntu20.04": (
        "pytorch-inference-neuronx:2.1.2-neuronx-py310-sdk2.20.2-ubuntu20.04"
    ),
    "pytorch-inference-neuronx:2.5.1-neuronx-py310-sdk2.22.0-ubuntu22.04": (
        "pytorch-inference-neuronx:2.5.1-neuronx-py310-sdk2.22.0-ubuntu22.04"
    ),
}


def neuron_sdk_of(image: str) -> str | None:
    """The Neuron SDK version in a Deep Learning Container tag (``...-sdk2.20.1...``)."""
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
    found = _SDK_IN_TAG.search(tag)
    return found.group(1) if found else None


def image_problems(image: str) -> list[str]:
    """``repository:tag`` (AWS DLC registry of the region) or a full image URI with a tag."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9._/-]*(\.[a-z]+)?[a-z0-9._/-]*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", image):
        return [f"got {image!r}; expected 'repository:tag' (an AWS Deep Learning Container) or a full image URI with a tag"]
    if neuron_sdk_of(image) is None:
        return [(f"got {image!r}; its tag names no Neuron SDK version ('sdkX.Y.Z'), so the pairing "
                "with the serving image cannot be checked")]
    return []


def pairing_problems(compile_image: str, serving_image: str) -> list[str]:
    """NEFFs are tied to the compiler: the compile and serving images must carry the same Neuron SDK."""
    compile_sdk, serving_sdk = neuron_sdk_of(compile_image), neuron_sdk_of(serving_image)
    if serving_sdk is None:
        return [(f"serving image {serving_image!r} names no Neuron SDK version ('sdkX.Y.Z') in its tag; "
                "the compiled artifacts cannot be matched to it")]
    if compile_sdk != serving_sdk:
        hint = KNOWN_PAIRINGS.get(serving_image.rpartition("/")[2])
        suggestion = f"; use {hint!r}" if hint else ""
        return [(f"compile image {compile_image!r} has Neuron SDK {compile_sdk}, the serving image "
                f"{serving_image!r} has {serving_sdk}; artifacts compiled by one SDK do not load on "
                f"another{suggestion}")]
    return []
