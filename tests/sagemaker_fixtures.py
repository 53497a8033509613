"""Builders for SageMaker construct tests: a bare stack with an imported models bucket."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3

from ml_constructs.packaging import ModelPackageAsset
from ml_constructs.sagemaker import ContainerImage, ModelData, RealtimeEndpoint, VariantSettings
from ml_constructs.storage import ArtifactLocation

PACKAGE = Path(__file__).resolve().parent.parent / "model_packages" / "llm_deepspeed"
LMI = ContainerImage.deep_learning_container("djl-inference", "0.29.0-lmi11.0.0-cu124")


def bare_stack(app: cdk.App | None = None, name: str = "Test", **kwargs: Any) -> cdk.Stack:
    from tests.helpers import new_app

    return cdk.Stack(app or new_app(), name, **kwargs)


def weights_location(stack: cdk.Stack, prefix: str = "weights/opt/") -> ArtifactLocation:
    bucket = s3.Bucket.from_bucket_name(stack, f"Models{len(stack.node.children)}", "models-bucket")
    return ArtifactLocation(bucket, prefix, "models")


def realtime(stack: cdk.Stack, construct_id: str = "Endpoint", *, model_data: ModelData | None = None,
             image: ContainerImage = LMI, instance_type: str = "ml.g5.12xlarge", **kwargs: Any) -> RealtimeEndpoint:
    variant_keys = {f for f in VariantSettings.__dataclass_fields__} - {"instance_type"}
    variant = VariantSettings(instance_type=instance_type, **{k: kwargs.pop(k) for k in list(kwargs) if k in variant_keys})
    if model_data is None:
        model_data = ModelData.from_asset(ModelPackageAsset(stack, f"{construct_id}Package", source_dir=PACKAGE))
    return RealtimeEndpoint(stack, construct_id, image=image, model_data=model_data, variant=variant, **kwargs)
