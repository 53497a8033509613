"""W2: thousands of scikit-learn models behind one multi-model endpoint (DJL Serving on CPU)."""
from __future__ import annotations

from constructs import Construct

from config.multi_model import MultiModelConfig
from ml_constructs.sagemaker import ContainerImage, ModelData, MultiModelEndpoint
from stacks.inference_common import endpoint_options, variant_settings
from stacks.base import PlatformStack
from stacks.storage_stack import ArtifactStorageStack


class MultiModelStack(PlatformStack):
    """The endpoint over the ``multi_model_packages`` prefix (``endpoint``).

    The stack deploys no model: a publisher uploads ``<prefix><name>.tar.gz``
    objects and clients invoke with ``TargetModel="<name>.tar.gz"``. The
    prefix's URL is the storage stack's ``MultiModelPackagesUrl`` output (an
    output here would only re-export that import).
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: MultiModelConfig, storage: ArtifactStorageStack, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        prefix = storage.locations_for(self).multi_model_packages
        self.endpoint = MultiModelEndpoint(
            self,
            "Endpoint",
            image=ContainerImage.deep_learning_container(config.image_repository, config.image_tag),
            model_data=ModelData.multi_model_prefix(prefix),
            variant=variant_settings(config),
            model_cache=config.model_cache == "Enabled",
            options=endpoint_options(
                instance_type=config.instance_type, key=prefix.key, alarms=config.alarms, autoscaling=config.autoscaling
            ),
        )
