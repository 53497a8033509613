"""The default SageMaker execution role: what one model needs and nothing more."""
from __future__ import annotations

from aws_cdk import aws_iam as iam
from constructs import Construct

from ml_constructs import nag

LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents")
# Namespaces SageMaker hosting and its serving containers publish to.
METRIC_NAMESPACES = ("/aws/sagemaker/*", "AWS/SageMaker*")


def create_execution_role(scope: Construct, construct_id: str) -> iam.Role:
    """A role SageMaker assumes for one model: metrics only; callers add the log groups
    (:func:`ml_constructs.sagemaker.log_groups.grant_log_writes`: the endpoint's and components'
    own groups, which the stack creates), data and image grants."""
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
        description="SageMaker execution role of one model: its artifacts, its image, its logs and metrics",
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringLike": {"cloudwatch:namespace": list(METRIC_NAMESPACES)}},
        )
    )
    nag.acknowledge_wildcard_resources(
        role,
        ["*"],
        "cloudwatch:PutMetricData and ecr:GetAuthorizationToken support no resource-level permissions; "
        "metric data is limited to SageMaker namespaces by the cloudwatch:namespace condition.",
    )
    return role
