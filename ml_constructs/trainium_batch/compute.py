"""A managed Batch compute environment of Trainium hosts with EFA in one placement group."""
from __future__ import annotations

from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from ml_constructs import nag
from ml_constructs.trainium_batch.instances import TrainiumInstance
from ml_constructs.trainium_batch.launch_template import EfaLaunchTemplate
from ml_constructs.trainium_batch.network import ClusterNetwork

# ECS-optimized AL2023 with the Neuron driver, runtime and EFA (Batch has no Neuron image type).
NEURON_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/neuron/recommended/image_id"


class TrainiumComputeEnvironment(Construct):
    """On-demand Trainium hosts for multi-node parallel jobs.

    Creates: an EFA launch template (:class:`EfaLaunchTemplate`), a cluster placement
    group, and a managed EC2 compute environment with exactly ``instance.name`` (never
    ``optimal``), ``BEST_FIT_PROGRESSIVE``, min vCPUs 0 and max vCPUs ``max_nodes`` x the
    instance's vCPUs, the ECS AL2023 Neuron AMI from SSM as ``ECS_AL2023``.

    Three escape hatches on aws-cdk-lib's ``ManagedEc2EcsComputeEnvironment`` (docs/aws-limits.md):
      - ``SecurityGroupIds`` is removed: Batch rejects it together with launch-template
        network interfaces; the EFA security group sits on each interface instead;
      - the launch template ``Version`` is pinned to its latest version number, so a
        template change updates the compute environment (the L2 renders no version);
      - no ``optimal`` instance type (``use_optimal_instance_classes=False``).
    Infrastructure updates use Batch's service-linked role (no ``service_role``).

    Attributes: ``compute_environment``, ``launch_template``, ``placement_group``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: ClusterNetwork,
        instance: TrainiumInstance,
        max_nodes: int,
        root_volume_gib: int = 200,
        capacity_reservation_id: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if not 1 <= max_nodes <= 256:
            raise ValueError(f"max_nodes: got {max_nodes}, allowed range: 1 to 256")
        self.launch_template = EfaLaunchTemplate(
            self,
            "LaunchTemplate",
            instance=instance,
            security_group=network.efa_security_group,
            root_volume_gib=root_volume_gib,
            capacity_reservation_id=capacity_reservation_id,
        )
        self.placement_group = ec2.PlacementGroup(self, "PlacementGroup", strategy=ec2.PlacementGroupStrategy.CLUSTER)
        self.compute_environment = batch.ManagedEc2EcsComputeEnvironment(
            self,
            "Resource",
            vpc=network.vpc,
            vpc_subnets=network.subnet_selection,
            security_groups=[],
            instance_types=[ec2.InstanceType(instance.name)],
            use_optimal_instance_classes=False,
            spot=False,
            allocation_strategy=batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
            minv_cpus=0,
            maxv_cpus=max_nodes * instance.vcpus,
            launch_template=self.launch_template.launch_template,
            placement_group=self.placement_group,
            images=[
                batch.EcsMachineImage(
                    # A CloudFormation SSM parameter, resolved at deploy: no synth-time lookup.
                    image=ec2.MachineImage.from_ssm_parameter(NEURON_AMI_PARAMETER),
                    image_type=batch.EcsMachineImageType.ECS_AL2023,
                )
            ],
        )
        cfn = self.compute_environment.node.default_child
        assert isinstance(cfn, batch.CfnComputeEnvironment)
        cfn.add_property_deletion_override("ComputeResources.SecurityGroupIds")
        cfn.add_property_override("ComputeResources.LaunchTemplate.Version", self.launch_template.latest_version_number)
        instance_role = self.compute_environment.instance_role
        nag.acknowledge(
            instance_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role]",
            "The ECS container instance role of Batch hosts: the agent registers with the Batch-owned ECS "
            "cluster, which AWS documents with this managed policy.",
        )

    @property
    def max_vcpus(self) -> int:
        return self.compute_environment.maxv_cpus
