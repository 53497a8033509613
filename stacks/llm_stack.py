"""W3: large language models with tensor parallelism on the LMI DeepSpeed container."""
from __future__ import annotations

from pathlib import Path

from constructs import Construct

from config.llm import LlmConfig, LlmModel, construct_id_for
from config.sagemaker_endpoint import AlarmsConfig
from ml_constructs.packaging import ModelPackageAsset, render_properties
from ml_constructs.sagemaker import ContainerImage, InferenceComponentEndpoint, ModelData, RealtimeEndpoint
from stacks.component_hosting import component_endpoint
from stacks.inference_common import endpoint_options, variant_settings
from stacks.base import PlatformStack
from stacks.storage_stack import ArtifactStorageStack

PACKAGE = Path(__file__).resolve().parent.parent / "model_packages" / "llm_deepspeed"


class LlmStack(PlatformStack):
    """One endpoint per enabled model of ``config.resolved_models()`` (``endpoints[name]``).

    The weights live under ``model_weights/<weights_prefix>``. By default the
    package's ``model.py`` downloads them (``MODEL_S3_BUCKET``/``MODEL_S3_PREFIX``)
    on rank 0; with ``use_uncompressed_model_data`` SageMaker copies that
    prefix itself (``ModelDataSource``, no tarball), so the package files
    (``serving.properties``, ``model.py``) must be published next to the weights.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: LlmConfig, storage: ArtifactStorageStack, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._locations = storage.locations_for(self)
        self._image = ContainerImage.deep_learning_container(config.image_repository, config.image_tag)
        self.endpoints: dict[str, RealtimeEndpoint | InferenceComponentEndpoint] = {}
        for model in config.resolved_models():
            self.endpoints[model.name] = self._serve(model)

    def _serve(self, model: LlmModel) -> RealtimeEndpoint | InferenceComponentEndpoint:
        scope = Construct(self, construct_id_for(model.name))
        weights = self._locations.model_weights.child(model.weights_prefix)
        if model.use_uncompressed_model_data:
            model_data = ModelData.from_s3_prefix(weights)
        else:
            properties = {"option.tensor_parallel_degree": model.tensor_parallel_degree, "option.dtype": model.dtype}
            package = ModelPackageAsset(
                scope,
                "ModelPackage",
                source_dir=PACKAGE,
                extra_files={"serving.properties": render_properties(PACKAGE / "serving.properties", properties)},
            )
            model_data = ModelData.from_asset(package)
        key = self._locations.model_weights.key
        environment = {
            "MODEL_S3_BUCKET": weights.bucket.bucket_name,
            "MODEL_S3_PREFIX": weights.prefix,
            "TENSOR_PARALLEL_DEGREE": str(model.tensor_parallel_degree),
        }
        if model.hosting.uses_components:  # inference components, can scale to zero (config/hosting.py)
            endpoint = component_endpoint(
                scope, "Endpoint", model, model.hosting, image=self._image, model_data=model_data,
                environment=environment, key=key, tensor_parallel_degree=model.tensor_parallel_degree,
                model_latency_p99_ms=model.model_latency_p99_ms,
            )
        else:
            endpoint = RealtimeEndpoint(
                scope,
                "Endpoint",
                image=self._image,
                model_data=model_data,
                variant=variant_settings(model),
                environment=environment,
                tensor_parallel_degree=model.tensor_parallel_degree,
                options=endpoint_options(
                    instance_type=model.instance_type,
                    key=key,
                    alarms=AlarmsConfig(),
                    model_latency_p99_ms=model.model_latency_p99_ms,
                ),
            )
        # model.py downloads the weights itself in the default mode; ModelDataSource
        # reads the same prefix, and ModelData.from_s3_prefix already granted it.
        if not model.use_uncompressed_model_data:
            weights.grant_read(endpoint.role)
        return endpoint
