"""An app-wide deployment policy for endpoints that were not given one."""
from __future__ import annotations

import aws_cdk as cdk
import jsii
from constructs import IConstruct

from ml_constructs.sagemaker.deployment import DeploymentPolicy


@jsii.implements(cdk.IAspect)
class DeploymentDefaults:
    """Applies ``policy`` to every endpoint construct whose ``EndpointOptions.deployment`` was None.

    The platform sets it once per environment (configuration key ``deployment``), so
    the workload stacks need not pass it through; an endpoint given its own policy keeps it.
    """

    def __init__(self, policy: DeploymentPolicy) -> None:
        self.policy = policy

    def visit(self, node: IConstruct) -> None:
        from ml_constructs.sagemaker.endpoint_base import SageMakerEndpointBase

        if isinstance(node, SageMakerEndpointBase) and node.deployment_is_default:
            node.use_deployment(self.policy)
