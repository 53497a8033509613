"""W3: large language models with tensor parallelism, on the runtime profile ``llm.runtime`` names."""
from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from config.llm import LlmConfig, LlmModel, construct_id_for, deepspeed_environment, lmi_environment
from config.sagemaker_endpoint import AlarmsConfig
from ml_constructs.sagemaker import ContainerImage, InferenceComponentEndpoint, ModelData, RealtimeEndpoint
from ml_constructs.sagemaker.instances import HOSTING_REGIONS
from runtime_profiles import RuntimeProfile
from stacks.component_hosting import component_endpoint
from stacks.base import PlatformStack
from stacks.inference_common import endpoint_options, variant_settings
from stacks.storage_stack import ArtifactStorageStack


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
