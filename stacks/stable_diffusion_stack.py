"""W1: Stable Diffusion on an Inferentia2 real-time endpoint, compiled at deploy time.

The runtime profile (``config.runtime``) decides the image and the package:

* ``current``: Hugging Face Neuron inference container; the compile job exports an
  optimum-neuron pipeline plus ``code/inference.py`` and the endpoint serves that prefix
  uncompressed;
* ``seed``: the LMI 0.24 Neuron container (end-of-life warning); the compile job writes
  ``compiled_model/*.pt`` and the endpoint serves a DJL package (no-code or byo-script) whose
  ``option.model_id`` arrives as ``OPTION_MODEL_ID`` (mapped by DJL 0.24's ModelInfo).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from constructs import Construct

from config.stable_diffusion import StableDiffusionConfig
from ml_constructs.neuron_compile import NeuronCompilation, compilation_props
from ml_constructs.packaging import ModelPackageAsset, render_properties
from ml_constructs.sagemaker import ContainerImage, ModelData, RealtimeEndpoint, grant_read_s3_url
from ml_constructs.sagemaker.log_groups import MODEL_ERROR_TOKEN, LogTerm
from stacks.component_hosting import async_inference, component_endpoint
from stacks.inference_common import endpoint_options, variant_settings
from stacks.base import PlatformStack
from stacks.storage_stack import ArtifactStorageStack

PACKAGES = Path(__file__).resolve().parent.parent / "model_packages"
PACKAGE_FOLDERS = {"no-code": "stable_diffusion_inf2_nocode", "byo-script": "stable_diffusion_inf2_byo"}
EXPORTERS = {"optimum-neuron": "optimum-neuron", "no-code": "torch-neuronx", "byo-script": "torch-neuronx"}
# The line each runtime's serving stack writes once per request the model failed (docs/stable-diffusion.md,
# "Model-error alarms"). The model-error alarm is a rollback alarm: none of these failures is a 5XX on
# `current` (the toolkit answers every handler exception with 400) or on seed no-code (DJL answers 424).
MODEL_ERROR_LINES = {
    "optimum-neuron": LogTerm(MODEL_ERROR_TOKEN, "code/inference.py logs it once per failed pipeline call; the "
                              "Hugging Face inference toolkit answers every handler exception with 400"),
    "byo-script": LogTerm(MODEL_ERROR_TOKEN, "model.py logs it once per failed pipeline call and answers 5XX"),
    # djl-serving v0.24.0 engines/python/setup/djl_python/stable_diffusion_inf2.py, inference(): every exception
    # is logged with this message and answered 424 by Output().error(); client errors reach it too.
    "no-code": LogTerm("Neuron inference failed", "DJL Serving 0.24's built-in Stable Diffusion handler logs it "
                       "for every request it answers with 424, client errors included"),
}


class StableDiffusionStack(PlatformStack):
    """The compile custom resource, the endpoint (unless ``endpoint_enabled`` is false) and its package.

    Where the served artifacts come from: the compile custom resource (``config.compile.enabled``,
    the default: ``self.compilation``), else ``compiled_artifacts_url``, else
    ``compiled_artifacts_key`` under ``neuron_artifacts``. ``self.endpoint`` is None when
    ``endpoint_enabled`` is false (a first deploy that only builds the artifacts).
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
        profile, mode = config.profile, config.mode
        self.compilation: NeuronCompilation | None = None
        self.endpoint: RealtimeEndpoint | None = None
        self.model_package: ModelPackageAsset | None = None
        if config.compile.enabled:
            props = compilation_props(config.compile)
            if mode == "optimum-neuron":
                props["compiler_args"] = ""  # optimum-neuron chooses its flags
            if not config.endpoint_enabled:
                # Nothing consumes the artifacts yet: start the compile and let the deploy finish.
                props["wait_for_completion"] = False
            weights = None
            if config.compile.weights_prefix is not None:
                weights = locations.model_weights.child(config.compile.weights_prefix, "staged weights")
            # Compiled at deploy time, once per content hash, in the image it will be served with.
            self.compilation = NeuronCompilation(
                self, "Compile", artifacts=locations.neuron_artifacts, serving_image=config.serving_image,
                exporter=EXPORTERS[mode], weights=weights, **props,
            )
            url = self.compilation.artifacts_url
            grant_read_artifacts = self.compilation.grant_read_artifacts
        elif config.compiled_artifacts_url is not None:
            url = config.compiled_artifacts_url
            grant_read_artifacts = partial(grant_read_s3_url, url=url)
        else:
            artifacts = locations.neuron_artifacts.child(config.compiled_artifacts_key)
            url = artifacts.s3_url
            grant_read_artifacts = artifacts.grant_read
        self.async_inference = None
        if not config.endpoint_enabled:
            return
        image = ContainerImage.from_profile(profile, config.tag)
        if mode == "optimum-neuron":
            # The compile output is the model: pipeline plus code/inference.py, copied uncompressed.
            model_data = ModelData(url, "uncompressed_prefix", grant_read_artifacts)
            # One worker: without this the toolkit starts one per NeuronCore when optimum-neuron is
            # installed (mms_model_server.py), and each would load the UNet onto both cores.
            environment = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
        else:
            folder = PACKAGES / PACKAGE_FOLDERS[mode]
            properties = {
                "option.tensor_parallel_degree": config.tensor_parallel_degree,
                "option.dtype": config.dtype,
                "option.entryPoint": profile.settings["no_code_entry_point"] if mode == "no-code" else None,
            }
            self.model_package = ModelPackageAsset(
                self, "ModelPackage", source_dir=folder,
                extra_files={"serving.properties": render_properties(folder / "serving.properties", properties)},
            )
            model_data = ModelData.from_asset(self.model_package)
            environment = {"OPTION_MODEL_ID": url}
        key = locations.model_packages.key
        if config.hosting.uses_components:  # inference components, can scale to zero (config/hosting.py)
            self.endpoint = component_endpoint(
                self, "Endpoint", config, config.hosting, image=image, model_data=model_data,
                environment=environment, key=key, tensor_parallel_degree=config.tensor_parallel_degree,
                model_latency_p99_ms=config.alarms.model_latency_p99_ms,
            )
        else:
            self.endpoint = RealtimeEndpoint(
                self,
                "Endpoint",
                image=image,
                model_data=model_data,
                variant=variant_settings(config),
                environment=environment,
                tensor_parallel_degree=config.tensor_parallel_degree,
                options=endpoint_options(
                    instance_type=config.instance_type, key=key, alarms=config.alarms, autoscaling=config.autoscaling
                ),
            )
        # A model that loads but fails its requests: an alarm, and a rollback of a guarded update.
        self.endpoint.alarm_on_model_errors(MODEL_ERROR_LINES[mode])
        if mode != "optimum-neuron":
            grant_read_artifacts(self.endpoint.role)  # the compiled artifacts it serves, nothing else
        self.async_inference = async_inference(self, config, self.endpoint, locations)  # None unless enabled
