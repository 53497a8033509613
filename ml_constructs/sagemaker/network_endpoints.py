"""What the private endpoint network (``network.EndpointNetwork``) is made of, without CDK.

``EndpointNetwork`` creates one interface endpoint per entry in each of its AZs; the cost
tool counts them. Kept free of ``aws_cdk`` so that ``python -m ml_tools cost`` does not start jsii.
"""
from __future__ import annotations

# Logical id -> AWS service short name (com.amazonaws.<region>.<short name>): what hosting and the
# serving containers call from isolated subnets (S3 is a gateway endpoint: no hourly charge).
INTERFACE_ENDPOINTS = {
    "EcrApi": "ecr.api",
    "EcrDocker": "ecr.dkr",
    "Logs": "logs",
    "Monitoring": "monitoring",
    "Sts": "sts",
    "SageMakerRuntime": "sagemaker.runtime",
}
# Isolated subnets, one per AZ; each interface endpoint has a network interface (and an hourly charge) in each.
AVAILABILITY_ZONES = 2
