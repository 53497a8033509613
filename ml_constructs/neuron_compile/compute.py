"""The compile job's compute: an optional small VPC, one managed EC2 compute environment, a queue."""
from __future__ import annotations

import math

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from ml_constructs import nag
from ml_constructs.neuron_compile.rules import COMPILE_INSTANCES
# The same Neuron AMI and stuck-job handling as the training cluster's.
from ml_constructs.trainium_batch.compute import MAX_UPDATE_TIMEOUT_MINUTES, NEURON_AMI_PARAMETER
from ml_constructs.trainium_batch.queue import STUCK_RUNNABLE_REASONS


def compile_vpc(scope: Construct, construct_id: str, *, log_retention: logs.RetentionDays) -> ec2.Vpc:
    """Private subnets in two AZs (inf2 is not offered in every AZ), one NAT for the hub download,
    an S3 gateway endpoint (artifacts and weights do not pass the NAT), and flow logs."""
    flow_logs = logs.LogGroup(scope, f"{construct_id}FlowLogs", retention=log_retention,
                              removal_policy=cdk.RemovalPolicy.DESTROY)
    return ec2.Vpc(
        scope,
        construct_id,
        max_azs=2,
        nat_gateways=1,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=26),
            ec2.SubnetConfiguration(name="Compile", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
        ],
        gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
        flow_logs={"FlowLogs": ec2.FlowLogOptions(
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs), traffic_type=ec2.FlowLogTrafficType.ALL
        )},
    )


class CompileQueue(Construct):
    """A single-node job queue on on-demand ``instance_type`` hosts, scaled from zero.

    Creates ``compute_environment`` (managed EC2, the Neuron AMI, BEST_FIT_PROGRESSIVE,
    no ``optimal`` instance type, min 0 vCPUs, max one instance), ``launch_template``
    (encrypted gp3 root volume for the multi-GB container image, IMDSv2 only; its
    version is pinned so edits reach the compute environment) and ``job_queue``, which
    cancels jobs stuck RUNNABLE for lack of capacity instead of letting a deploy hang.

    The compute environment's ``UpdatePolicy`` lets an infrastructure update (a new AMI from
    the SSM parameter, a launch template change) wait ``job_timeout`` for a running compile
    instead of Batch's default 30 minutes, after which the compile would be stopped.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        vpc_subnets: ec2.SubnetSelection | None,
        instance_type: str,
        root_volume_gib: int,
        runnable_time_limit: cdk.Duration,
        job_timeout: cdk.Duration = cdk.Duration.hours(3),
    ) -> None:
        super().__init__(scope, construct_id)
        update_minutes = math.ceil(job_timeout.to_seconds() / 60)
        if update_minutes > MAX_UPDATE_TIMEOUT_MINUTES:
            raise ValueError(f"job_timeout: got {update_minutes} min, at most {MAX_UPDATE_TIMEOUT_MINUTES} min "
                             "(an infrastructure update cannot wait longer for a running job)")
        instance = COMPILE_INSTANCES[instance_type]
        selection = vpc_subnets or ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.subnets = vpc.select_subnets(**selection._values)  # jsii struct -> keyword arguments
        user_data = ec2.MultipartUserData()  # Batch only merges MIME multi-part user data
        ecs_config = ec2.UserData.for_linux()
        # The DLC image is many GB: never pull it again when the host already has it.
        ecs_config.add_commands("echo ECS_IMAGE_PULL_BEHAVIOR=prefer-cached >> /etc/ecs/ecs.config")
        user_data.add_part(ec2.MultipartBody.from_user_data(ecs_config))
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            require_imdsv2=True,
            user_data=user_data,
            block_devices=[ec2.BlockDevice(
                device_name="/dev/xvda",
                volume=ec2.BlockDeviceVolume.ebs(root_volume_gib, encrypted=True,
                                                 volume_type=ec2.EbsDeviceVolumeType.GP3),
            )],
        )
        self.compute_environment = batch.ManagedEc2EcsComputeEnvironment(
            self,
            "ComputeEnvironment",
            vpc=vpc,
            vpc_subnets=selection,
            instance_types=[ec2.InstanceType(instance_type)],
            use_optimal_instance_classes=False,
            allocation_strategy=batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
            spot=False,
            minv_cpus=0,
            maxv_cpus=instance.vcpus,
            launch_template=self.launch_template,
            # An infrastructure update waits for a running compile instead of Batch's default 30 min.
            update_timeout=cdk.Duration.minutes(update_minutes),
            terminate_on_update=False,
            images=[batch.EcsMachineImage(
                image=ec2.MachineImage.from_ssm_parameter(NEURON_AMI_PARAMETER),
                image_type=batch.EcsMachineImageType.ECS_AL2023,
            )],
        )
        # Escape hatch: the L2 renders the launch template without a version, so later
        # edits of the template would never reach the hosts (docs/aws-limits.md).
        cfn_env = self.compute_environment.node.default_child
        cfn_env.add_property_override("ComputeResources.LaunchTemplate.Version",
                                      self.launch_template.latest_version_number)
        nag.acknowledge(
            self.compute_environment,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role]",
            "The compile hosts' instance role needs the ECS agent's permissions to join the Batch-managed "
            "ECS cluster; this AWS managed policy is the documented instance role policy for Batch.",
        )
        self.job_queue = batch.JobQueue(
            self,
            "JobQueue",
            compute_environments=[batch.OrderedComputeEnvironment(compute_environment=self.compute_environment, order=1)],
            job_state_time_limit_actions=[
                batch.JobStateTimeLimitAction(max_time=runnable_time_limit, reason=reason)
                for reason in STUCK_RUNNABLE_REASONS
            ],
        )
