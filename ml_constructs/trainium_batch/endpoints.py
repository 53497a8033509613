"""The interface VPC endpoints of the training cluster's network, without CDK.

``network.ClusterNetwork`` creates one endpoint per entry; the cost tool counts them. Kept
free of ``aws_cdk`` so that ``python -m ml_tools cost`` does not start jsii.
"""
from __future__ import annotations

# Logical id -> AWS service short name (com.amazonaws.<region>.<short name>): what a Batch
# ECS host and its containers call when they have no internet route.
INTERFACE_ENDPOINTS = {
    "EcrApi": "ecr.api",
    "EcrDocker": "ecr.dkr",
    "Logs": "logs",
    "Ecs": "ecs",
    "EcsAgent": "ecs-agent",
    "EcsTelemetry": "ecs-telemetry",
    "Sts": "sts",
    # The training heartbeat (PutMetricData) and a failed host terminating itself (EC2 API).
    "Monitoring": "monitoring",
    "Ec2": "ec2",
}
