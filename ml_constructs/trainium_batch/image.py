"""The training image: built from ``runtime/`` at deploy, or an image someone pushed."""
from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from constructs import Construct

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
# The asset hash depends on the shipped files only (deterministic synth).
RUNTIME_EXCLUDE = ["**/__pycache__", "**/*.pyc"]
_ECR_URI = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?P<cn>\.cn)?/"
    r"(?P<name>[a-z0-9][a-z0-9._/-]*)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127})|@(?P<digest>sha256:[0-9a-f]{64}))"
)
IMAGE_URI_HELP = "an image with a tag or digest, e.g. 123456789012.dkr.ecr.us-west-2.amazonaws.com/trainium-training:1"


def image_uri_problem(uri: str) -> str | None:
    """None if ``uri`` names one image version (a tag or a digest), else what is wrong."""
    if _ECR_URI.fullmatch(uri):
        return None
    if re.fullmatch(r"[a-z0-9.-]+(:\d+)?/[a-z0-9._/-]+(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|@sha256:[0-9a-f]{64})", uri):
        return None
    return f"got {uri!r}, expected {IMAGE_URI_HELP}"


def training_image(scope: Construct, image_uri: str | None) -> tuple[ecs.ContainerImage, bool]:
    """``(image, from_ecr)``: ``from_ecr`` is True when the execution role pulls from ECR.

    ``None`` builds ``runtime/Dockerfile`` as an asset. An ECR URI is imported as a
    repository so the execution role gets pull rights on exactly that repository.
    """
    if image_uri is None:
        return ecs.ContainerImage.from_asset(str(RUNTIME_DIR), exclude=RUNTIME_EXCLUDE), True
    problem = image_uri_problem(image_uri)
    if problem:
        raise ValueError(f"image_uri: {problem}")
    match = _ECR_URI.fullmatch(image_uri)
    if match is None:
        return ecs.ContainerImage.from_registry(image_uri), False
    partition = "aws-cn" if match["cn"] else "aws"
    repository = ecr.Repository.from_repository_attributes(
        scope,
        "ImageRepository",
        repository_arn=f"arn:{partition}:ecr:{match['region']}:{match['account']}:repository/{match['name']}",
        repository_name=match["name"],
    )
    return ecs.ContainerImage.from_ecr_repository(repository, match["tag"] or match["digest"]), True
