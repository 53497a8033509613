"""Where AWS Deep Learning Containers exist: registry accounts and per-tag region gaps.

No aws-cdk-lib import: the configuration layer checks region and image tag
with the same tables the constructs use.

Sources (docs/operations.md#regions):

* registry accounts aws-cdk-lib's region facts (``FactName.DLC_REPOSITORY_ACCOUNT``,
  aws-cdk-lib 2.275.0) lack, from aws/sagemaker-python-sdk
  ``src/sagemaker/image_uri_config/djl-lmi.json`` (af-south-1, ap-northeast-3,
  ca-west-1, il-central-1) and ``huggingface-llm-neuronx.json`` (ap-southeast-5,
  ap-southeast-7, mx-central-1);
* the regions of each image tag this project uses, from the same SDK's
  ``djl-deepspeed.json``, ``djl-neuronx.json`` and ``djl-lmi.json`` (seed profiles);
* the regions of the current profiles' images, from the same SDK at tag v3.20.0,
  ``sagemaker-core/src/sagemaker/core/image_uri_config/``: ``huggingface-neuronx.json``
  (inference 4.55.4 / pytorch2.8.0 / sdk2.26.0, the
  ``huggingface-pytorch-inference-neuronx:2.8.0-transformers4.55.4-neuronx-py310-sdk2.26.0-ubuntu22.04``
  image) and ``djl-lmi.json`` (release 0.36.0: the SDK lists regions per DJL release, one
  registry set for every ``0.36.0-lmi<N>`` build, ``0.36.0-lmi20.0.0-cu128`` among them, as
  aws/deep-learning-containers ``docs/src/data/djl-inference/0.36-lmi20.0.0-gpu.yml`` lists it).
"""
from __future__ import annotations

# Commercial regions with DLC registries that aws-cdk-lib's region facts do not list.
EXTRA_REGISTRY_ACCOUNTS: dict[str, str] = {
    "af-south-1": "626614931356",
    "ap-northeast-3": "364406365360",
    "ap-southeast-5": "550225433462",
    "ap-southeast-7": "590183813437",
    "ca-west-1": "204538143572",
    "il-central-1": "780543022126",
    "mx-central-1": "637423239942",
}

_NEURONX_REGIONS = frozenset({
    "ap-northeast-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2", "ca-west-1", "eu-central-1", "eu-west-1",
    "eu-west-3", "sa-east-1", "us-east-1", "us-east-2", "us-west-2",
})
_DEEPSPEED_REGIONS = frozenset({
    "af-south-1", "ap-east-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-southeast-1",
    "ap-southeast-2", "ap-southeast-3", "ca-central-1", "cn-north-1", "cn-northwest-1", "eu-central-1", "eu-north-1",
    "eu-south-1", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-south-1", "sa-east-1", "us-east-1",
    "us-east-2", "us-west-1", "us-west-2",
})
_LMI_REGIONS = _DEEPSPEED_REGIONS | {"ca-west-1", "me-central-1", "us-gov-east-1", "us-gov-west-1"}
# djl-lmi.json 0.36.0 (v3.20.0): every earlier DJL LMI region plus the newer and isolated ones.
_LMI_036_REGIONS = _LMI_REGIONS | {
    "ap-east-2", "ap-south-2", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
    "eu-central-2", "eu-isoe-west-1", "eu-south-2", "eusc-de-east-1", "mx-central-1", "us-iso-east-1",
    "us-isob-east-1", "us-isof-east-1", "us-isof-south-1",
}
# huggingface-neuronx.json inference 4.55.4 / pytorch2.8.0 (v3.20.0): Inferentia2 regions only.
_HF_NEURONX_SDK226_REGIONS = frozenset({
    "ap-northeast-1", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-4",
    "ap-southeast-5", "ap-southeast-7", "ca-west-1", "cn-north-1", "cn-northwest-1", "eu-central-1", "eu-central-2",
    "eu-south-2", "eu-west-1", "eu-west-3", "il-central-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2",
    "us-gov-east-1", "us-gov-west-1", "us-west-2",
})

# (repository, tag prefix) -> the regions whose registry holds it. A tag not listed is not checked.
TAG_REGIONS: dict[tuple[str, str], frozenset[str]] = {
    **{("djl-inference", f"{v}-neuronx-"): _NEURONX_REGIONS for v in
       ("0.22.1", "0.23.0", "0.24.0", "0.25.0", "0.26.0", "0.27.0", "0.28.0", "0.29.0")},
    **{("djl-inference", f"{v}-deepspeed"): _DEEPSPEED_REGIONS for v in ("0.19.0", "0.20.0", "0.21.0", "0.22.1")},
    **{("djl-inference", f"{v}-lmi"): _LMI_REGIONS for v in ("0.28.0", "0.29.0", "0.30.0")},
    ("djl-inference", "0.36.0-lmi"): _LMI_036_REGIONS,
    ("huggingface-pytorch-inference-neuronx", "2.8.0-transformers4.55.4-neuronx-py310-sdk2.26.0-"):
        _HF_NEURONX_SDK226_REGIONS,
}


def tag_regions(repository: str, tag: str) -> frozenset[str] | None:
    """The regions known to hold ``repository:tag``, or None when the tag's regions are not known here."""
    for (repo, prefix), regions in TAG_REGIONS.items():
        if repo == repository and tag.startswith(prefix):
            return regions
    return None


def tag_problem(repository: str, tag: str, region: str) -> str | None:
    """Why ``repository:tag`` cannot be pulled in ``region``, or None (present, or not known)."""
    regions = tag_regions(repository, tag)
    if regions is None or region in regions:
        return None
    return (f"{repository}:{tag} is not published in {region}; regions that have it: {', '.join(sorted(regions))} "
            "(copy the image to your own ECR repository to use it elsewhere)")
