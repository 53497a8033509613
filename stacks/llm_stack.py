"""W3: large language models with tensor parallelism, on the runtime profile ``llm.runtime`` names."""
from __future__ import annotations

import json

import aws_cdk as cdk
from constructs import Construct

from config.llm import LlmConfig, LlmModel, construct_id_for
from config.sagemaker_endpoint import AlarmsConfig
from ml_constructs.sagemaker import ContainerImage, InferenceComponentEndpoint, ModelData, RealtimeEndpoint
from ml_constructs.sagemaker.instances import HOSTING_REGIONS
from runtime_profiles import RuntimeProfile
from stacks.component_hosting import component_endpoint
from stacks.base import PlatformStack
from stacks.inference_common import endpoint_options, variant_settings
from stacks.storage_stack import ArtifactStorageStack

# /opt/ml/model, where SageMaker places ModelDataSource files (LMI's default model store).
MODEL_DIR = "/opt/ml/model"


def lmi_environment(model: LlmModel) -> dict[str, str]:
    """The current profile's serving configuration: LMI options as ``OPTION_<KEY>`` variables.

    LMI's own vLLM handler loads the weights SageMaker placed in /opt/ml/model, so no
    model id is set (djl-serving v0.36.0 serving/docs/lmi/deployment_guide/configurations.md).
    """
    options: dict[str, object] = {
        "tensor_parallel_degree": model.tensor_parallel_degree,
        "dtype": model.dtype,
        "max_rolling_batch_size": model.max_batch_size,
        # The model's context. vLLM 0.15.1 refuses a request whose prompt plus requested max_tokens
        # exceed it, before the cap below applies (docs/llm.md, "What the endpoint answers").
        "max_model_len": model.max_model_len,
        # A server-wide limit on the tokens one request generates: vLLM cuts a larger max_tokens to it.
        "override_generation_config": json.dumps({"max_new_tokens": model.max_new_tokens}),
        # LMI's own load timeout (default 1800 s) must not end before SageMaker's health check does.
        "model_loading_timeout": model.container_startup_health_check_timeout_seconds,
    }
    if model.quantize is not None:
        options["quantize"] = model.quantize
    options.update(model.serving_options)
    return {f"OPTION_{key.upper()}": str(value) for key, value in options.items()}


def deepspeed_environment(model: LlmModel) -> dict[str, str]:
    """The seed profile's configuration, read by DJL Serving 0.19 (the degree) and model.py (the rest)."""
    return {
        "TENSOR_PARALLEL_DEGREE": str(model.tensor_parallel_degree),
        "MODEL_DTYPE": model.dtype,
        "MAX_NEW_TOKENS": str(model.max_new_tokens),
        "MAX_BATCH_SIZE": str(model.max_batch_size),
    }


class LlmStack(PlatformStack):
    """One endpoint per enabled model of ``config.resolved_models()`` (``endpoints[name]``).

    Every model reads its weights uncompressed from ``model_weights/<weights_prefix>``
    (``ModelDataSource``: SageMaker copies the prefix to /opt/ml/model before the container
    starts; nothing is downloaded or installed by the container). Stage them first with
    ``python -m ml_tools stage-weights`` (docs/llm.md).

    ``current`` profile: LMI's vLLM handler, configured through ``OPTION_*`` variables.
    ``seed`` profile: ``model_packages/llm_deepspeed`` (``model.py``, ``serving.properties``)
    must be staged into the same prefix as the weights; its settings arrive as variables.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: LlmConfig, storage: ArtifactStorageStack, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._locations = storage.locations_for(self)
        self.profile: RuntimeProfile = config.profile
        self._image = ContainerImage.from_profile(self.profile, config.image_tag)
        self.endpoints: dict[str, RealtimeEndpoint | InferenceComponentEndpoint] = {}
        for model in config.resolved_models():
            self.endpoints[model.name] = self._serve(model)
            self._check_region(model)

    def _check_region(self, model: LlmModel) -> None:
        """An environment-agnostic synth cannot check the region (config does when it is pinned):
        a template rule refuses the deploy in a region where SageMaker does not host the instance type."""
        regions = HOSTING_REGIONS.get(model.instance_type)
        if regions is None or not cdk.Token.is_unresolved(self.region):
            return
        cdk.CfnRule(self, f"{construct_id_for(model.name)}InstanceTypeInThisRegion", assertions=[cdk.CfnRuleAssertion(
            assert_=cdk.Fn.condition_contains(sorted(regions), cdk.Aws.REGION),
            assert_description=f"llm.models.{model.name}.instance_type {model.instance_type} is hosted by SageMaker "
            f"only in {', '.join(sorted(regions))}: deploy there or choose another instance type (docs/llm.md)",
        )])

    def _serve(self, model: LlmModel) -> RealtimeEndpoint | InferenceComponentEndpoint:
        scope = Construct(self, construct_id_for(model.name))
        weights = self._locations.model_weights.child(model.weights_prefix)
        # A profile that ships its own handler (seed: model.py) reads variables; LMI reads OPTION_*.
        own_handler = bool(self.profile.settings.get("handler"))
        environment = deepspeed_environment(model) if own_handler else lmi_environment(model)
        model_data = ModelData.from_s3_prefix(weights)
        key = self._locations.model_weights.key
        if model.hosting.uses_components:  # inference components, can scale to zero (config/hosting.py)
            return component_endpoint(
                scope, "Endpoint", model, model.hosting, image=self._image, model_data=model_data,
                environment=environment, key=key, tensor_parallel_degree=model.tensor_parallel_degree,
                model_latency_p99_ms=model.model_latency_p99_ms,
            )
        return RealtimeEndpoint(
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
