"""SageMaker hosting constructs: real-time and multi-model endpoints with synth-time validation.

Names are imported on first use, so ``instances`` (which ``config`` uses) loads without CDK.
"""
from __future__ import annotations

from ml_constructs._lazy import lazy_getattr

_EXPORTS = {
    "EndpointOptions": "endpoint_base",
    "VariantSettings": "endpoint_base",
    "ContainerImage": "images",
    "end_of_life_notice": "images",
    "ComponentSpec": "inference_components",
    "CopyScaling": "inference_components",
    "InferenceComponentEndpoint": "inference_components",
    "ManagedInstances": "inference_components",
    "InstanceType": "instances",
    "accelerator_count": "instances",
    "has_local_nvme": "instances",
    "variant_problems": "instances",
    "ModelData": "model_data",
    "grant_read_s3_url": "model_data",
    "EndpointAlarms": "monitoring",
    "MultiModelEndpoint": "multi_model_endpoint",
    "RealtimeEndpoint": "realtime_endpoint",
    "InvocationScaling": "scaling",
    "EndpointValidationError": "validation",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
