"""Managed Batch compute environments of Trainium hosts: EFA multi-node, and single-node."""
from __future__ import annotations

import math
import re
from typing import Mapping

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from ml_constructs import nag
from ml_constructs.trainium_batch.instances import TrainiumInstance
from ml_constructs.trainium_batch.launch_template import EfaLaunchTemplate, EfaSoftware
from ml_constructs.trainium_batch.network import ClusterNetwork

# ECS-optimized AL2023 with the Neuron driver and tools (Batch has no Neuron image type); it has no
# EFA software: the launch template's user data installs the EFA driver (launch_template.py).
# Read it once to pin ``ami_id``; the stacks never resolve it at deploy (docs/training.md).
NEURON_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/neuron/recommended/image_id"
AMI_ID = re.compile(r"ami-[0-9a-f]{8}([0-9a-f]{9})?")
# Batch API UpdatePolicy.jobExecutionTimeoutMinutes: 1-7200 (default 30).
MAX_UPDATE_TIMEOUT_MINUTES = 7200
INSTANCE_ROLE_POLICY = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role]"
)


def update_timeout_problem(update_timeout_minutes: int, job_timeout_seconds: int) -> str | None:
    """Why an infrastructure update would stop running jobs (None when it cannot)."""
    needed = math.ceil(job_timeout_seconds / 60)
    if not 1 <= update_timeout_minutes <= MAX_UPDATE_TIMEOUT_MINUTES:
        return f"got {update_timeout_minutes} min, allowed range: 1 to {MAX_UPDATE_TIMEOUT_MINUTES} min"
    if update_timeout_minutes < needed:
        return (f"got {update_timeout_minutes} min, below the job timeout ({needed} min): an infrastructure update "
                "(new AMI, launch template change) would stop running jobs after it; allowed: "
                f"{needed} to {MAX_UPDATE_TIMEOUT_MINUTES} min")
    return None


def check_pins(ami_id: str, update_timeout: cdk.Duration) -> None:
    # A token (a CfnParameter of type AWS::EC2::Image::Id) is checked by CloudFormation at deploy.
    if not cdk.Token.is_unresolved(ami_id) and not AMI_ID.fullmatch(ami_id):
        raise ValueError(f"ami_id: got {ami_id!r}, expected an AMI id such as ami-0123456789abcdef0")
    minutes = update_timeout.to_minutes()
    if not 1 <= minutes <= MAX_UPDATE_TIMEOUT_MINUTES:
        raise ValueError(f"update_timeout: got {minutes:g} min, allowed range: 1 to {MAX_UPDATE_TIMEOUT_MINUTES} min")


def pin_image(compute_environment: batch.ManagedEc2EcsComputeEnvironment, ami_id: str) -> None:
    """Pin the AMI: a new AMI is a deliberate configuration change, not whatever SSM says at deploy.
    L1 override: the L2's images take an IMachineImage, which needs a region map or a lookup."""
    cfn = compute_environment.node.default_child
    assert isinstance(cfn, batch.CfnComputeEnvironment)
    cfn.add_property_override("ComputeResources.Ec2Configuration.0.ImageIdOverride", ami_id)


def on_demand_environment(
    scope: Construct,
    *,
    network: ClusterNetwork,
    security_groups: list[ec2.ISecurityGroup],
    instance: TrainiumInstance,
    max_instances: int,
    launch_template: ec2.ILaunchTemplate,
    launch_template_version: str,
    update_timeout: cdk.Duration,
    ami_id: str,
    instance_tags: Mapping[str, str] | None,
    placement_group: ec2.IPlacementGroup | None = None,
) -> batch.ManagedEc2EcsComputeEnvironment:
    """A managed, on-demand ECS compute environment (construct id ``Resource`` under ``scope``) of one
    Trainium type that scales from zero, on the pinned AMI and the launch template's exact version.

    aws-cdk-lib leaves the launch template version unpinned (so template edits would never reach
    the hosts) and has no tags-on-instances property: both are set on the L1 here.
    """
    environment = batch.ManagedEc2EcsComputeEnvironment(
        scope,
        "Resource",
        vpc=network.vpc,
        vpc_subnets=network.subnet_selection,
        security_groups=security_groups,
        instance_types=[ec2.InstanceType(instance.name)],
        use_optimal_instance_classes=False,
        spot=False,
        allocation_strategy=batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
        minv_cpus=0,
        maxv_cpus=max_instances * instance.vcpus,
        launch_template=launch_template,
        placement_group=placement_group,
        images=[batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023)],
        # An infrastructure update waits this long for running jobs (Batch's default: 30 min).
        update_timeout=update_timeout,
        terminate_on_update=False,
        replace_compute_environment=False,
    )
    pin_image(environment, ami_id)
    cfn = environment.node.default_child
    assert isinstance(cfn, batch.CfnComputeEnvironment)
    cfn.add_property_override("ComputeResources.LaunchTemplate.Version", launch_template_version)
    if instance_tags:
        cfn.add_property_override("ComputeResources.Tags", dict(instance_tags))
    nag.acknowledge(
        environment.instance_role,
        INSTANCE_ROLE_POLICY,
        "The ECS container instance role of Batch hosts: the agent registers with the Batch-owned ECS "
        "cluster, which AWS documents with this managed policy.",
    )
    return environment


class TrainiumComputeEnvironment(Construct):
    """On-demand Trainium hosts for multi-node parallel jobs.

    Creates: an EFA launch template (:class:`EfaLaunchTemplate`; ``efa_software``
    ``"install-at-boot"``, the default, needs ``network.egress == "nat_gateway"``), a cluster placement
    group, and a managed EC2 compute environment with exactly ``instance.name`` (never
    ``optimal``), ``BEST_FIT_PROGRESSIVE``, min vCPUs 0 and max vCPUs ``max_nodes`` x the
    instance's vCPUs, the pinned ``ami_id`` as ``ECS_AL2023``, an ``UpdatePolicy`` whose
    ``JobExecutionTimeoutMinutes`` is ``update_timeout`` (at least the longest job) and
    ``instance_tags`` on every host (the job role's right to terminate a failed host is
    scoped to them).

    Escape hatches on aws-cdk-lib's ``ManagedEc2EcsComputeEnvironment`` (docs/aws-limits.md):
      - ``SecurityGroupIds`` is removed: Batch rejects it together with launch-template
        network interfaces; the EFA security group sits on each interface instead (the
        node containers then get the VPC's default group: see :class:`ClusterNetwork`);
      - the launch template ``Version`` is pinned to its latest version number, so a
        template change updates the compute environment (the L2 renders no version);
      - ``ImageIdOverride`` and the instance ``Tags`` (no L2 property);
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
        ami_id: str,
        update_timeout: cdk.Duration,
        instance_tags: Mapping[str, str] | None = None,
        root_volume_gib: int = 200,
        capacity_reservation_id: str | None = None,
        efa_software: EfaSoftware = "install-at-boot",
    ) -> None:
        super().__init__(scope, construct_id)
        if not 1 <= max_nodes <= 256:
            raise ValueError(f"max_nodes: got {max_nodes}, allowed range: 1 to 256")
        if efa_software == "install-at-boot" and network.egress != "nat_gateway":
            raise ValueError(f"efa_software: got 'install-at-boot' with egress {network.egress!r}: the hosts download "
                             "aws-efa-installer, which isolated subnets cannot reach; allowed: a network with "
                             "egress='nat_gateway', or efa_software='in-ami' on an AMI that carries EFA")
        self.launch_template = EfaLaunchTemplate(
            self,
            "LaunchTemplate",
            instance=instance,
            security_group=network.efa_security_group,
            root_volume_gib=root_volume_gib,
            capacity_reservation_id=capacity_reservation_id,
            efa_software=efa_software,
        )
        check_pins(ami_id, update_timeout)
        self.placement_group = ec2.PlacementGroup(self, "PlacementGroup", strategy=ec2.PlacementGroupStrategy.CLUSTER)
        self.compute_environment = on_demand_environment(
            self, network=network, security_groups=[], instance=instance, max_instances=max_nodes,
            launch_template=self.launch_template.launch_template,
            launch_template_version=self.launch_template.latest_version_number,
            placement_group=self.placement_group, update_timeout=update_timeout, ami_id=ami_id,
            instance_tags=instance_tags,
        )
        # The EFA interfaces of the launch template carry the security group; Batch refuses both.
        cfn = self.compute_environment.node.default_child
        assert isinstance(cfn, batch.CfnComputeEnvironment)
        cfn.add_property_deletion_override("ComputeResources.SecurityGroupIds")

    @property
    def max_vcpus(self) -> int:
        return self.compute_environment.maxv_cpus


class SingleNodeComputeEnvironment(Construct):
    """On-demand hosts of one small Trainium type (e.g. trn1.2xlarge) for single-node jobs.

    Evaluation and batch inference use one NeuronCore pair: reserving a 16-device
    trn1.32xlarge for them wastes most of it. Creates a launch template (IMDSv2 with two
    hops, encrypted gp3 root volume), a security group allowing HTTPS out only (these jobs
    use the host's network), and a managed compute environment like the training one but
    without EFA or placement group, ``max_instances`` hosts at most.

    Attributes: ``compute_environment``, ``launch_template``, ``security_group``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: ClusterNetwork,
        instance: TrainiumInstance,
        ami_id: str,
        update_timeout: cdk.Duration,
        max_instances: int = 2,
        instance_tags: Mapping[str, str] | None = None,
        root_volume_gib: int = 200,
    ) -> None:
        super().__init__(scope, construct_id)
        check_pins(ami_id, update_timeout)
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=network.vpc, description="Single-node Trainium jobs: HTTPS out",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs and ECR")
        if network.endpoint_security_group is not None:
            network.endpoint_security_group.add_ingress_rule(
                self.security_group, ec2.Port.tcp(443), "HTTPS from single-node hosts"
            )
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            require_imdsv2=True,
            http_put_response_hop_limit=2,
            block_devices=[ec2.BlockDevice(
                device_name="/dev/xvda",
                volume=ec2.BlockDeviceVolume.ebs(root_volume_gib, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3),
            )],
        )
        self.compute_environment = on_demand_environment(
            self, network=network, security_groups=[self.security_group], instance=instance,
            max_instances=max_instances, launch_template=self.launch_template,
            launch_template_version=self.launch_template.latest_version_number,
            update_timeout=update_timeout, ami_id=ami_id, instance_tags=instance_tags,
        )
