"""What an environment needs from an account, read from its validated configuration (no AWS call).

Instance counts come from the cost tool's estimate (``ml_tools.cost.estimate``): its ceiling is
the count each endpoint and compute environment can reach, so the quotas asked for here and the
ceiling the cost tool prices are the same numbers.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ml_tools.cost import estimate

# EC2 On-Demand vCPU quotas (Service Quotas, service code ec2) of the accelerated families the
# Batch compute environments launch, by instance family prefix.
EC2_VCPU_QUOTAS: dict[str, tuple[str, str]] = {
    "trn": ("L-2C3B7624", "Running On-Demand Trn instances"),
    "inf": ("L-1945791B", "Running On-Demand Inf instances"),
}
# The image registry of AWS Deep Learning Containers in us-west-2, where the training profiles' base image lives.
_ECR_URI = re.compile(r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/"
                      r"(?P<repository>[^:@]+)(:(?P<tag>[^@]+)|@(?P<digest>sha256:[0-9a-f]{64}))$")
_COUNTED = re.compile(r"(?P<low>\d+)\.\.(?P<high>\d+) x (?P<type>[a-z0-9.]+)")


@dataclass(frozen=True)
class InstanceNeed:
    """One instance type at the most the environment can run of it at once."""

    instance_type: str
    count: int
    uses: tuple[str, ...]  # the cost tool's lines that run it

    @property
    def sagemaker(self) -> bool:
        return self.instance_type.startswith("ml.")


@dataclass(frozen=True)
class ImageNeed:
    """An image the deploy pulls: from ECR (account, region, repository, tag) or elsewhere (``reference``)."""

    what: str
    reference: str
    account: str | None = None
    region: str | None = None
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class ManifestNeed:
    """A manifest written when staging or compiling finished: ``<location output><key>``."""

    what: str
    output: str | None  # the Storage stack output holding the s3:// URL the key is under; None: ``key`` is a URL
    key: str
    fix: str


def instance_needs(cfg: Any) -> list[InstanceNeed]:
    """Every instance type at its ceiling, summed over the endpoints and compute environments using it."""
    counts: dict[str, int] = defaultdict(int)
    uses: dict[str, list[str]] = defaultdict(list)
    for line in estimate(cfg).lines:
        found = _COUNTED.search(line.item)
        if found is None:  # NAT gateways, VPC endpoints: no instance
            continue
        counts[found["type"]] += int(line.ceiling_units)
        uses[found["type"]].append(f"{line.stack}: {line.item}")
    return [InstanceNeed(t, counts[t], tuple(uses[t])) for t in sorted(counts)]


def vcpus_of(instance_type: str) -> int:
    """vCPUs of an EC2 instance type a Batch compute environment launches."""
    from ml_constructs.neuron_compile.rules import COMPILE_INSTANCES
    from ml_constructs.trainium_batch.instances import TRAINIUM_INSTANCES

    if instance_type in TRAINIUM_INSTANCES:
        return TRAINIUM_INSTANCES[instance_type].vcpus
    return COMPILE_INSTANCES[instance_type].vcpus


def vcpu_needs(cfg: Any) -> dict[str, tuple[int, list[str]]]:
    """EC2 quota family -> (vCPUs at the ceiling, what uses them)."""
    needs: dict[str, tuple[int, list[str]]] = {}
    for need in instance_needs(cfg):
        if need.sagemaker:
            continue
        family = next(f for f in EC2_VCPU_QUOTAS if need.instance_type.startswith(f))
        vcpus, uses = needs.get(family, (0, []))
        needs[family] = (vcpus + need.count * vcpus_of(need.instance_type),
                         uses + [f"{need.count} x {need.instance_type}"])
    return needs


def parse_image(what: str, reference: str) -> ImageNeed:
    match = _ECR_URI.fullmatch(reference)
    if match is None:
        return ImageNeed(what, reference)
    return ImageNeed(what, reference, match["account"], match["region"], match["repository"], match["tag"],
                     match["digest"])


def image_needs(cfg: Any, region: str, dlc_account: str | None) -> list[ImageNeed]:
    """Serving, compile and training images the environment names, or the bases of those it builds."""
    from config.schema import deep_learning_container_of

    def dlc(what: str, repository: str, tag: str) -> ImageNeed:
        reference = f"{dlc_account or '<DLC registry>'}.dkr.ecr.{region}.amazonaws.com/{repository}:{tag}"
        return ImageNeed(what, reference, dlc_account, region, repository, tag)

    found: list[ImageNeed] = []
    for workload, label in (("stable_diffusion", "Stable Diffusion serving image"),
                            ("llm", "LLM serving image"), ("multi_model", "multi-model serving image")):
        section = getattr(cfg, workload)
        if not section.enabled:
            continue
        repository, tag = deep_learning_container_of(section)
        if repository and tag:
            found.append(dlc(label, repository, tag))
        elif getattr(section, "image_uri", None):
            found.append(parse_image(label, section.image_uri))
        elif getattr(section, "profile", None) is not None and section.profile.dockerfile:
            base = getattr(section, "base_image", None) or section.profile.settings.get("base_image")
            if base:
                found.append(parse_image(f"base of the {label} built at deploy", base))
    sd = cfg.stable_diffusion
    if sd.enabled and sd.compile.enabled and sd.compile.image:
        repository, _, tag = sd.compile.image.rpartition(":")
        image = (parse_image("Neuron compile image", sd.compile.image) if "." in repository.split("/")[0]
                 else dlc("Neuron compile image", repository, tag))
        found.append(image)
    tr = cfg.training
    if tr.enabled:
        if tr.image_uri:
            found.append(parse_image("training image", tr.image_uri))
        elif tr.profile.settings.get("base_image"):
            found.append(parse_image("base of the training image built at deploy", tr.profile.settings["base_image"]))
    return found


def builds_images(cfg: Any) -> list[str]:
    """The images `cdk deploy` builds with Docker (empty: no Docker engine needed)."""
    built = []
    mm, tr = cfg.multi_model, cfg.training
    if mm.enabled and not mm.image_uri and mm.profile.dockerfile:
        built.append("multi-model serving image")
    if tr.enabled and not tr.image_uri and tr.profile.dockerfile:
        built.append("training image")
    return built


def manifest_needs(cfg: Any) -> list[ManifestNeed]:
    """Staged weights (``<prefix>.staged.json``, ml_tools.stage_weights) and compiled artifacts
    (``manifest.json``, the Neuron compile custom resource) the environment's endpoints and compile read."""
    from ml_constructs.neuron_compile.runtime.handler import MANIFEST
    from ml_tools.stage_weights import MANIFEST_SUFFIX

    def stage(name: str, prefix: str) -> str:
        return (f"python -m ml_tools stage-weights SNAPSHOT --env {cfg.environment} "
                + (f"--model {name}" if name != "stable-diffusion" else f"--prefix {prefix}"))

    found: list[ManifestNeed] = []
    if cfg.llm.enabled:
        for model in cfg.llm.resolved_models():
            found.append(ManifestNeed(f"weights of {model.name}", "ModelWeightsUrl",
                                      model.weights_prefix.rstrip("/") + MANIFEST_SUFFIX,
                                      stage(model.name, model.weights_prefix)))
    sd = cfg.stable_diffusion
    if sd.enabled and sd.compile.enabled and sd.compile.weights_prefix:
        found.append(ManifestNeed("Stable Diffusion weights for the compile", "ModelWeightsUrl",
                                  sd.compile.weights_prefix.rstrip("/") + MANIFEST_SUFFIX,
                                  stage("stable-diffusion", sd.compile.weights_prefix)))
    if sd.enabled and not sd.compile.enabled:
        fix = ("compile them (stable_diffusion.compile.enabled = true) or copy artifacts compiled elsewhere, "
               "with their manifest.json, to that prefix")
        if sd.compiled_artifacts_url:
            found.append(ManifestNeed("Stable Diffusion compiled artifacts", None, sd.compiled_artifacts_url + MANIFEST,
                                      fix))
        else:
            found.append(ManifestNeed("Stable Diffusion compiled artifacts", "NeuronArtifactsUrl",
                                      sd.compiled_artifacts_key + MANIFEST, fix))
    return found


def update_headroom(cfg: Any) -> dict[str, int]:
    """Instance type -> instances an endpoint update adds at the ceiling (blue/green: a second fleet; rolling:
    one batch), as the endpoint construct resolves each endpoint's deployment policy."""
    from dataclasses import fields

    from config.sagemaker_endpoint import DeploymentConfig
    from config.schema import endpoint_shapes
    from ml_constructs.sagemaker.deployment import DEFAULT_ALARM_WINDOW_SECONDS, DeploymentPolicy, VariantShape, resolve

    policy = DeploymentPolicy(**{f.name: getattr(cfg.deployment, f.name) for f in fields(DeploymentConfig)})
    models = {f"llm.models.{m.name}": m.instance_type for m in cfg.llm.resolved_models()} if cfg.llm.enabled else {}
    headroom: dict[str, int] = defaultdict(int)
    for endpoint, (low, high, autoscaled) in endpoint_shapes(cfg).items():
        instance_type = models.get(endpoint) or getattr(cfg, endpoint).instance_type
        shape = VariantShape(low, high, autoscaled, DEFAULT_ALARM_WINDOW_SECONDS)
        headroom[instance_type] += resolve(policy, shape, []).extra_instances
    return dict(headroom)
