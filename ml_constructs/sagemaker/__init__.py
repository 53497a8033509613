"""SageMaker hosting constructs: real-time and multi-model endpoints with synth-time validation."""
from ml_constructs.sagemaker.endpoint_base import EndpointOptions, VariantSettings
from ml_constructs.sagemaker.images import ContainerImage, end_of_life_notice
from ml_constructs.sagemaker.instances import InstanceType, accelerator_count, has_local_nvme
from ml_constructs.sagemaker.model_data import ModelData, grant_read_s3_url
from ml_constructs.sagemaker.monitoring import EndpointAlarms
from ml_constructs.sagemaker.multi_model_endpoint import MultiModelEndpoint
from ml_constructs.sagemaker.realtime_endpoint import RealtimeEndpoint
from ml_constructs.sagemaker.scaling import InvocationScaling
from ml_constructs.sagemaker.validation import EndpointValidationError

__all__ = [
    "ContainerImage",
    "EndpointAlarms",
    "EndpointOptions",
    "EndpointValidationError",
    "InstanceType",
    "InvocationScaling",
    "ModelData",
    "MultiModelEndpoint",
    "RealtimeEndpoint",
    "VariantSettings",
    "accelerator_count",
    "end_of_life_notice",
    "grant_read_s3_url",
    "has_local_nvme",
]
