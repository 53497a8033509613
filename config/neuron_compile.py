"""Configuration of W1's compile step: Neuron compilation as a custom resource.

Wired into the Stable Diffusion section by the stack that consumes it; the
defaults are the workload's documented values (SD 2.1 base, 512x512, bf16,
compiled on an inf2.8xlarge because compiling needs about 128 GiB of host memory).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from config.typed import setting
from ml_constructs.neuron_compile.rules import (
    DEFAULT_COMPONENT_ARGS,
    PINNED_REVISION,
    compiler_args_problems,
    image_problems,
    model_problems,
    shape_problems,
)

RELATIVE_PREFIX_PATTERN = r"[A-Za-z0-9!_.*'()\-][A-Za-z0-9!_.*'()\-/]*/"


@dataclass(frozen=True)
class ComponentCompilerArgs:
    """neuronx-cc flags per compiled component (runtime "seed"; optimum-neuron exports choose their own).

    Defaults from AWS's Neuron Stable Diffusion samples: ``--model-type=unet-inference`` for the
    UNet and the VAE decoder only.
    """

    text_encoder: str = setting(DEFAULT_COMPONENT_ARGS["text_encoder"])
    unet: str = setting(DEFAULT_COMPONENT_ARGS["unet"])
    vae_decoder: str = setting(DEFAULT_COMPONENT_ARGS["vae_decoder"])
    vae_post_quant_conv: str = setting(DEFAULT_COMPONENT_ARGS["vae_post_quant_conv"])

    def as_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in DEFAULT_COMPONENT_ARGS}

    def problems(self) -> list[tuple[str, str]]:
        return [(name, p) for name, flags in self.as_dict().items() for p in compiler_args_problems(flags)]


@dataclass(frozen=True)
class NeuronCompileConfig:
    """Ahead-of-time Neuron compilation of the Stable Diffusion model, cached by content."""

    enabled: bool = setting(True, doc="false: no compile resource; the serving config names the artifacts itself.")
    model_id: str = setting(
        "stabilityai/stable-diffusion-2-1-base",
        doc="Hugging Face hub id (owner/name) or an S3 prefix of private weights (s3://bucket/prefix/).",
    )
    revision: str | None = setting(
        None, pattern=r"[A-Za-z0-9._/-]{1,100}", doc="Hub revision (commit, branch or tag); only for hub ids."
    )
    weights_prefix: str | None = setting(
        None,
        pattern=RELATIVE_PREFIX_PATTERN,
        doc="Weights staged into this project's model_weights prefix (python -m ml_tools stage-weights), "
        "relative to it, e.g. 'stable-diffusion-2-1-base/<commit>/'; replaces model_id.",
    )
    require_pinned_weights: bool = setting(
        False,
        doc="true (prod): the weights must be fixed: revision a 40-hex commit, or an S3 prefix (weights_prefix "
        "or an s3:// model_id), so the content hash covers what is compiled.",
    )
    height: int = setting(512, doc="Image height in pixels, a multiple of 8 from 64 to 2048: a static shape.")
    width: int = setting(512, doc="Image width in pixels, a multiple of 8 from 64 to 2048: a static shape.")
    dtype: Literal["bf16", "fp16", "fp32"] = setting("bf16", doc="Weights' data type when tracing.")
    compiler_args: ComponentCompilerArgs = setting(
        default_factory=ComponentCompilerArgs,
        doc="neuronx-cc flags per component; unknown options and invalid values (such as '--optlevel O1') "
        "are rejected.",
    )
    instance_type: Literal["inf2.8xlarge", "trn1.2xlarge"] = setting(
        "inf2.8xlarge", doc="Compile host: inf2.8xlarge (128 GiB) fits Stable Diffusion; trn1.2xlarge has 32 GiB."
    )
    image: str | None = setting(
        None,
        doc="Compile image (DLC 'repository:tag' or a full URI); None: the serving image, whose Neuron SDK "
        "matches by construction. Its tag must name the same Neuron SDK (sdkX.Y.Z) as the serving image.",
    )
    timeout_minutes: int = setting(
        50, ge=5, le=55, doc="How long a deploy waits for the compile (CloudFormation allows a custom resource 1 hour)."
    )
    job_timeout_minutes: int = setting(
        180, ge=10, le=1440, doc="Batch kills the compile job after this long (also when not waiting for it)."
    )
    wait_for_completion: bool = setting(
        True, doc="false: the deploy starts the compile and goes on; a later deploy finds the finished artifacts."
    )

    def problems(self) -> list[tuple[str, str]]:
        found = model_problems(self.model_id, self.revision)
        found += shape_problems("height", self.height) + shape_problems("width", self.width)
        if self.weights_prefix is not None and self.revision is not None:
            found.append(("revision", f"got {self.revision!r} with weights_prefix {self.weights_prefix!r}; allowed: unset "
                          "(staged weights are fixed by their prefix)"))
        pinned = (self.weights_prefix is not None or self.model_id.startswith("s3://")
                  or (self.revision is not None and PINNED_REVISION.fullmatch(self.revision)))
        if self.enabled and self.require_pinned_weights and not pinned:
            found.append(("revision", (f"got {self.revision!r} for {self.model_id!r}; allowed with "
                          "require_pinned_weights: a 40-hex commit of the hub repository, or weights staged in S3 "
                          "(weights_prefix, or an s3:// model_id): otherwise the compile downloads whatever the hub "
                          "serves that day and the content hash does not cover it")))
        if self.image is not None:
            found += [("image", p) for p in image_problems(self.image)]
        if self.job_timeout_minutes < self.timeout_minutes:
            found.append(("job_timeout_minutes", (f"got {self.job_timeout_minutes}, below timeout_minutes="
                          f"{self.timeout_minutes}; the job would be killed while the deploy still waits for it")))
        return found
