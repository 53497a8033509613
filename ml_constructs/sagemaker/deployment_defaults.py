"""App-wide endpoint settings: the deployment policy and the network placement per environment."""
from __future__ import annotations

from typing import TYPE_CHECKING, Collection

import aws_cdk as cdk
import jsii
from constructs import IConstruct

from ml_constructs.sagemaker.deployment import DeploymentPolicy

if TYPE_CHECKING:
    from ml_constructs.sagemaker.network import EndpointNetwork


@jsii.implements(cdk.IAspect)
class DeploymentDefaults:
    """Applies ``policy`` to every endpoint construct whose ``EndpointOptions.deployment`` (an
    inference component endpoint: its ``deployment`` prop) was None.

    The platform sets it once per environment (configuration key ``deployment``), so
    the workload stacks need not pass it through; an endpoint given its own policy keeps it.
    """

    def __init__(self, policy: DeploymentPolicy) -> None:
        self.policy = policy

    def visit(self, node: IConstruct) -> None:
        from ml_constructs.sagemaker.endpoint_base import SageMakerEndpointBase
        from ml_constructs.sagemaker.inference_components import InferenceComponentEndpoint

        if isinstance(node, (SageMakerEndpointBase, InferenceComponentEndpoint)) and node.deployment_is_default:
            node.use_deployment(self.policy)


@jsii.implements(cdk.IAspect)
class EndpointPlacement:
    """Puts every endpoint's models in ``network`` (when given), and isolates the models of the
    stacks whose paths are in ``isolated_stacks`` (their containers fetch nothing themselves).

    Both endpoint kinds: instance-hosted (:class:`SageMakerEndpointBase`) and inference-component
    endpoints (:class:`InferenceComponentEndpoint`, all of its components' models)."""

    def __init__(self, network: "EndpointNetwork | None", isolated_stacks: Collection[str] = ()) -> None:
        self.network = network
        self.isolated_stacks = set(isolated_stacks)

    def visit(self, node: IConstruct) -> None:
        from ml_constructs.sagemaker.endpoint_base import SageMakerEndpointBase
        from ml_constructs.sagemaker.inference_components import InferenceComponentEndpoint

        if isinstance(node, SageMakerEndpointBase):
            placed = node.model.vpc_config is not None
        elif isinstance(node, InferenceComponentEndpoint):
            placed = node.in_vpc
        else:
            return
        if self.network is not None and not placed:
            node.place_in_vpc(self.network.subnet_ids, [self.network.security_group.security_group_id])
        if cdk.Stack.of(node).node.path in self.isolated_stacks:
            node.isolate_network()
