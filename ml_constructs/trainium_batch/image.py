"""The training image: built from a runtime profile's Dockerfile at deploy, or an image someone pushed."""
from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from ml_constructs.trainium_batch.limits import ECR_URI, image_uri_problem
from runtime_profiles.base_images import pinned_reference

if TYPE_CHECKING:  # the profile reader is pure Python; imported for the type only
    from runtime_profiles import RuntimeProfile

# What the build needs from a profile folder is the Dockerfile, the locks and the runtime (a
# link to ../runtime, copied as files); the rest stays out of the asset hash, so editing a
# profile's docs does not rebuild the image.
IMAGE_ASSET_EXCLUDE = ["profile.toml", "test-requirements.txt", "**/__pycache__", "**/*.pyc", "**/README.md"]


def training_image(
    scope: Construct, image_uri: str | None, profile: "RuntimeProfile"
) -> tuple[ecs.ContainerImage, bool]:
    """``(image, from_ecr)``: ``from_ecr`` is True when the execution role pulls from ECR.

    ``None`` builds ``profile``'s Dockerfile (``runtime_profiles/training/<name>/``) as an
    asset, ``FROM`` the profile's ``settings.base_image`` (a build arg). An ECR URI is
    imported as a repository so the execution role gets pull rights on exactly that
    repository. The asset is built for linux/amd64 (trn1 hosts), whatever machine builds it.
    An end-of-life profile adds a synth warning on ``scope`` either way (an image someone
    pushed was built on the profile that ``runtime`` names), and so does a supported profile
    that is the last of its line (``settings.last_of_line``: no newer image will follow).
    """
    if profile.end_of_life:
        cdk.Annotations.of(scope).add_warning_v2(
            "mlaccel:training-runtime-end-of-life",
            f"training runtime profile {profile.key} ({profile.image}) is end-of-life: {profile.end_of_life}",
        )
    last_of_line = profile.settings.get("last_of_line")
    if last_of_line:
        cdk.Annotations.of(scope).add_warning_v2(
            "mlaccel:training-runtime-last-of-line",
            f"training runtime profile {profile.key} ({profile.image}) is the last of its line: {last_of_line}",
        )
    if image_uri is None:
        if profile.dockerfile is None:
            raise ValueError(f"runtime profile {profile.key} has no Dockerfile to build the training image from")
        image = ecs.ContainerImage.from_asset(
            str(profile.folder),
            # FROM tag@digest once `make pin-images` recorded one (runtime_profiles/base-images.lock).
            build_args={"BASE_IMAGE": pinned_reference(profile.settings["base_image"])},
            exclude=IMAGE_ASSET_EXCLUDE,
            follow_symlinks=cdk.SymlinkFollowMode.ALWAYS,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        return image, True
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
