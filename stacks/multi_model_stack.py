"""W2: thousands of scikit-learn models behind one multi-model endpoint (DJL Serving on CPU)."""
from __future__ import annotations

import re

from aws_cdk import aws_ecr as ecr
from constructs import Construct

from config.multi_model import ECR_IMAGE_URI_PATTERN, MultiModelConfig
from ml_constructs.sagemaker import ContainerImage, ModelData, MultiModelEndpoint
from ml_constructs.sagemaker.multi_model_endpoint import CacheAlarms
from runtime_profiles.base_images import pinned_reference
from stacks.base import PlatformStack
from stacks.inference_common import endpoint_options, variant_settings
from stacks.storage_stack import ArtifactStorageStack

# What the image build needs from a profile folder; profile.toml and the test requirements
# stay out of the asset hash (editing a doc line must not rebuild the image).
IMAGE_ASSET_EXCLUDE = ["profile.toml", "test-requirements.txt", "**/__pycache__"]
_ECR_URI = re.compile(ECR_IMAGE_URI_PATTERN)


def serving_image(scope: Construct, config: MultiModelConfig) -> ContainerImage:
    """The runtime profile's Dockerfile built at deploy, or the prebuilt ``image_uri``."""
    profile = config.profile
    if config.image_uri is None:
        # By digest where runtime_profiles/base-images.lock records one (make pin-images): a tag can be re-pushed.
        base = pinned_reference(config.base_image or profile.settings["base_image"])
        return ContainerImage.from_asset(
            str(profile.folder), build_args={"BASE_IMAGE": base}, exclude=IMAGE_ASSET_EXCLUDE,
            end_of_life=profile.end_of_life, description=f"runtime profile {profile.key} image",
        )
    match = _ECR_URI.fullmatch(config.image_uri)
    if match is None:  # config validation admits ECR URIs only; a construct user may still get here
        raise ValueError(f"multi_model.image_uri: got {config.image_uri!r}, allowed: an ECR image URI with a tag")
    partition = "aws-cn" if match["cn"] else "aws"
    repository = ecr.Repository.from_repository_attributes(
        scope, "ServingImageRepository",
        repository_arn=f"arn:{partition}:ecr:{match['region']}:{match['account']}:repository/{match['name']}",
        repository_name=match["name"],
    )
    return ContainerImage(match["name"], match["tag"], repository, end_of_life=profile.end_of_life)


class MultiModelStack(PlatformStack):
    """The endpoint over the ``multi_model_packages`` prefix (``endpoint``).

    The stack deploys no model: a publisher uploads ``<prefix><name>.tar.gz``
    objects and clients invoke with ``TargetModel="<name>.tar.gz"``. The
    prefix's URL is the storage stack's ``MultiModelPackagesUrl`` output (an
    output here would only re-export that import). The serving image is built
    from ``runtime_profiles/multi_model/<runtime>/`` at deploy unless
    ``image_uri`` names a prebuilt one.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: MultiModelConfig, storage: ArtifactStorageStack, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        prefix = storage.locations_for(self).multi_model_packages
        alarms = config.alarms
        self.endpoint = MultiModelEndpoint(
            self,
            "Endpoint",
            image=serving_image(self, config),
            model_data=ModelData.multi_model_prefix(prefix),
            variant=variant_settings(config),
            model_cache=config.model_cache == "Enabled",
            environment=config.container_environment(),
            options=endpoint_options(
                instance_type=config.instance_type, key=prefix.key, alarms=alarms, autoscaling=config.autoscaling
            ),
            cache_alarms=CacheAlarms(
                cache_hit_min=alarms.model_cache_hit_min,
                loading_wait_p99_ms=alarms.model_loading_wait_p99_ms,
                downloading_p99_ms=alarms.model_downloading_p99_ms,
            ),
        )
