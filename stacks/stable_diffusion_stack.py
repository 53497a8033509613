"""W1 serving: Stable Diffusion on an Inferentia2 real-time endpoint (LMI Neuron container)."""
from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from constructs import Construct

from config.stable_diffusion import StableDiffusionConfig
from ml_constructs.neuron_compile import NeuronCompilation, compilation_props
from ml_constructs.packaging import ModelPackageAsset, render_properties
from ml_constructs.sagemaker import ContainerImage, ModelData, RealtimeEndpoint, grant_read_s3_url
from stacks.component_hosting import async_inference, component_endpoint
from stacks.inference_common import endpoint_options, variant_settings
from stacks.base import PlatformStack
from stacks.storage_stack import ArtifactStorageStack

PACKAGES = Path(__file__).resolve().parent.parent / "model_packages"
PACKAGE_FOLDERS = {"no-code": "stable_diffusion_inf2_nocode", "byo-script": "stable_diffusion_inf2_byo"}


def entry_point_for(image_tag: str) -> str:
    """DJL Serving's Neuron handler: ``transformers-neuronx`` up to LMI 0.23, ``transformers_neuronx`` after."""
    match = re.match(r"(\d+)\.(\d+)", image_tag)
    if match and (int(match[1]), int(match[2])) <= (0, 23):
        return "djl_python.transformers-neuronx"
    return "djl_python.transformers_neuronx"


class StableDiffusionStack(PlatformStack):
    """The model package (rendered ``serving.properties``), its endpoint, and an output of its name.

    Where the compiled artifacts come from: the compile custom resource
    (``config.compile.enabled``, the default: ``self.compilation``), else the
    configured ``compiled_artifacts_url``, else ``compiled_artifacts_key`` under
    ``neuron_artifacts``.
    The URL reaches the container as ``OPTION_MODEL_ID`` (DJL Serving maps
    ``OPTION_<KEY>`` onto ``option.<key>``), so a deploy-time token works.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StableDiffusionConfig,
        storage: ArtifactStorageStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        locations = storage.locations_for(self)
        folder = PACKAGES / PACKAGE_FOLDERS[config.serving_mode]
        properties = {
            "option.tensor_parallel_degree": config.tensor_parallel_degree,
            "option.dtype": config.dtype,
            "option.entryPoint": entry_point_for(config.image_tag) if config.serving_mode == "no-code" else None,
        }
        package = ModelPackageAsset(
            self,
            "ModelPackage",
            source_dir=folder,
            extra_files={"serving.properties": render_properties(folder / "serving.properties", properties)},
        )
        self.compilation: NeuronCompilation | None = None
        if config.compile.enabled:
            # Compiled at deploy time, once per content hash; the endpoint waits for it.
            self.compilation = NeuronCompilation(
                self,
                "Compile",
                artifacts=locations.neuron_artifacts,
                serving_image=f"{config.image_repository}:{config.image_tag}",
                **compilation_props(config.compile),
            )
            model_id = self.compilation.artifacts_url
            grant_read_artifacts = self.compilation.grant_read_artifacts
        elif config.compiled_artifacts_url is not None:
            model_id = config.compiled_artifacts_url
            grant_read_artifacts = partial(grant_read_s3_url, url=model_id)
        else:
            artifacts = locations.neuron_artifacts.child(config.compiled_artifacts_key)
            model_id = artifacts.s3_url
            grant_read_artifacts = artifacts.grant_read
        key = locations.model_packages.key
        if config.hosting.uses_components:  # inference components, can scale to zero (config/hosting.py)
            self.endpoint = component_endpoint(
                self, "Endpoint", config, config.hosting,
                image=ContainerImage.deep_learning_container(config.image_repository, config.image_tag),
                model_data=ModelData.from_asset(package), environment={"OPTION_MODEL_ID": model_id}, key=key,
                tensor_parallel_degree=config.tensor_parallel_degree,
                model_latency_p99_ms=config.alarms.model_latency_p99_ms,
            )
        else:
            self.endpoint = RealtimeEndpoint(
                self,
                "Endpoint",
                image=ContainerImage.deep_learning_container(config.image_repository, config.image_tag),
                model_data=ModelData.from_asset(package),
                variant=variant_settings(config),
                environment={"OPTION_MODEL_ID": model_id},
                tensor_parallel_degree=config.tensor_parallel_degree,
                options=endpoint_options(
                    instance_type=config.instance_type, key=key, alarms=config.alarms, autoscaling=config.autoscaling
                ),
            )
        grant_read_artifacts(self.endpoint.role)  # the compiled artifacts it serves, nothing else
        self.async_inference = async_inference(self, config, self.endpoint, locations)  # None unless enabled
        self.model_package = package
