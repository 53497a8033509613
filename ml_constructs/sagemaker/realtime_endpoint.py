"""A SageMaker real-time endpoint serving one model."""
from __future__ import annotations

from typing import Mapping

from constructs import Construct

from ml_constructs.sagemaker.endpoint_base import EndpointOptions, SageMakerEndpointBase, VariantSettings, parse_instance
from ml_constructs.sagemaker.images import ContainerImage
from ml_constructs.sagemaker.model_data import ModelData
from ml_constructs.sagemaker.validation import Problems, is_token


class RealtimeEndpoint(SageMakerEndpointBase):
    """One model on one production variant, validated at synth time.

    Props
      image: the serving container (``ContainerImage.deep_learning_container``
        resolves the per-region DLC account; ``from_ecr_repository`` any ECR image).
      model_data: ``ModelData.from_asset`` / ``from_s3_object`` (a ``.tar.gz``)
        or ``from_s3_prefix`` (uncompressed, ``CompressionType: None``).
      variant: instance type and count, ``volume_size_gb`` (1-512),
        ``model_data_download_timeout_seconds`` and
        ``container_startup_health_check_timeout_seconds`` (60-3600).
      environment: the container's environment variables.
      tensor_parallel_degree: checked against the instance's NeuronCores / GPUs.
      options: role, volume KMS key, autoscaling, alarms, endpoint name.

    Default settings
      A least-privilege execution role (reads only its model data, pulls only
      its image's repository, writes only SageMaker logs and metrics), created
      with its policy before the model; alarms on 5XX errors, model latency
      p99 and the instance's utilisation; no autoscaling.

    Creates ``role``, ``model``, ``endpoint_config``, ``endpoint``, optionally
    ``scalable_target``, ``alarms`` and a stack output with the endpoint name.
    Synth fails with :class:`EndpointValidationError` listing every invalid
    setting; an end-of-life image tag adds a synth warning.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        image: ContainerImage,
        model_data: ModelData,
        variant: VariantSettings,
        environment: Mapping[str, str] | None = None,
        tensor_parallel_degree: int | None = None,
        options: EndpointOptions | None = None,
    ) -> None:
        problems = Problems()
        instance = parse_instance(problems, variant.instance_type)
        if model_data.kind == "model_prefix":
            problems.add("model_data", "a multi-model prefix", "a .tar.gz or an uncompressed prefix (use MultiModelEndpoint)")
        if tensor_parallel_degree is not None and not is_token(tensor_parallel_degree):
            accelerators = instance.accelerator_count if instance else None
            if tensor_parallel_degree < 1:
                problems.add("tensor_parallel_degree", tensor_parallel_degree, "1 or more")
            elif accelerators is not None and tensor_parallel_degree > max(accelerators, 1):
                kind = "NeuronCores" if instance and instance.accelerator_kind == "neuron_core" else "GPUs"
                problems.add(
                    "tensor_parallel_degree",
                    tensor_parallel_degree,
                    f"at most {accelerators} ({variant.instance_type} has {accelerators} {kind})"
                    if accelerators
                    else f"1 ({variant.instance_type} has no accelerators)",
                )
        self.tensor_parallel_degree = tensor_parallel_degree
        super().__init__(
            scope,
            construct_id,
            image=image,
            model_data=model_data,
            variant=variant,
            environment=environment,
            options=options or EndpointOptions(),
            container_extra={},
            problems=problems,
            instance=instance,
        )
