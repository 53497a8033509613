"""The training image: built from ``runtime/`` at deploy, or an image someone pushed."""
from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from ml_constructs.trainium_batch.limits import ECR_URI, image_uri_problem

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
# The asset hash depends on the shipped files only (deterministic synth).
RUNTIME_EXCLUDE = ["**/__pycache__", "**/*.pyc"]


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
    match = ECR_URI.fullmatch(image_uri)
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
