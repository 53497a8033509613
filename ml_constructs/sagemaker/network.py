"""Private networking for SageMaker models: a VPC without internet access, and the
AWS service endpoints a model needs inside it.

With ``VpcConfig`` a model's container reaches only what the VPC offers. This VPC
has isolated subnets (no NAT gateway, no internet gateway) and endpoints for what
hosting and the serving containers use: S3 (gateway: model data and the image
layers ECR serves from S3), ECR (API and registry), CloudWatch Logs and metrics,
STS, and the SageMaker runtime (for clients in the VPC).
"""
from __future__ import annotations

from typing import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from ml_constructs import nag
from ml_constructs.sagemaker.network_endpoints import AVAILABILITY_ZONES, INTERFACE_ENDPOINTS

# What a model's execution role needs to attach the model to the VPC (SageMaker creates ENIs as the role).
ENI_ACTIONS = (
    "ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission", "ec2:DescribeDhcpOptions", "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs",
)


class EndpointNetwork(Construct):
    """A VPC for SageMaker models, reachable by nothing outside it.

    Props
      cidr: the VPC's range. Default 10.40.0.0/16.
      max_azs: AZs with a subnet each. Default 2 (SageMaker spreads instances over the subnets;
        each interface endpoint is billed per AZ: ``network_endpoints``).
      log_key: encrypts the flow log group. Default: CloudWatch Logs' own encryption.
      removal_policy: of the flow log group. Default: DESTROY.

    Default settings: isolated subnets only (no NAT, no internet gateway); flow logs of
    rejected traffic, kept a year; the models' security group sends HTTPS only, which
    can reach nothing but the VPC's endpoints; the default security group denies all; the S3 gateway
    endpoint's policy admits this account's buckets and the ECR layer bucket of the region.

    Creates ``vpc``, ``security_group`` (for the models), ``s3_endpoint`` and ``interface_endpoints``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cidr: str = "10.40.0.0/16",
        max_azs: int = AVAILABILITY_ZONES,
        log_key: kms.IKey | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.vpc = ec2.Vpc(
            self, "Vpc", ip_addresses=ec2.IpAddresses.cidr(cidr), max_azs=max_azs, nat_gateways=0,
            subnet_configuration=[ec2.SubnetConfiguration(name="Models", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)],
            restrict_default_security_group=True,
        )
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=logs.RetentionDays.ONE_YEAR, encryption_key=log_key,
                                  removal_policy=removal_policy)
        self.vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                              traffic_type=ec2.FlowLogTrafficType.REJECT)
        self.security_group = ec2.SecurityGroup(
            self, "Models", vpc=self.vpc, allow_all_outbound=False,
            description="SageMaker models: HTTPS to the VPC service endpoints only",
        )
        # S3's gateway endpoint answers on S3's public addresses (a prefix list only a lookup could name);
        # the subnets have no route out of the VPC, so HTTPS reaches the VPC endpoints and nothing else.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443),
                                            "HTTPS to the VPC endpoints (no route leaves the VPC)")
        self.s3_endpoint = self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        self.s3_endpoint.add_to_policy(iam.PolicyStatement(
            sid="ThisAccountsBuckets", principals=[iam.AnyPrincipal()],
            actions=["s3:GetObject", "s3:ListBucket", "s3:PutObject"], resources=["*"],
            conditions={"StringEquals": {"aws:ResourceAccount": stack.account}},
        ))
        self.s3_endpoint.add_to_policy(iam.PolicyStatement(
            sid="EcrImageLayers", principals=[iam.AnyPrincipal()], actions=["s3:GetObject"],
            # ECR serves image layers from this AWS-owned bucket (the ECR interface endpoint docs).
            resources=[f"arn:{stack.partition}:s3:::prod-{stack.region}-starport-layer-bucket/*"],
        ))
        # The literal range rather than the VPC's CidrBlock attribute: cdk-nag checks ingress sources it can read.
        self.endpoint_security_group = ec2.SecurityGroup(
            self, "Endpoints", vpc=self.vpc, allow_all_outbound=False,
            description="AWS service interface endpoints: HTTPS from the VPC",
        )
        self.endpoint_security_group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), "HTTPS from the VPC")
        self.interface_endpoints = {
            name: self.vpc.add_interface_endpoint(
                name, service=ec2.InterfaceVpcEndpointAwsService(service), private_dns_enabled=True, open=False,
                security_groups=[self.endpoint_security_group],
            )
            for name, service in INTERFACE_ENDPOINTS.items()
        }

    @property
    def subnet_ids(self) -> Sequence[str]:
        return self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids


def grant_vpc_access(role: iam.IRole) -> None:
    """The ENI permissions SageMaker uses, as the model's role, to place a model in a VPC."""
    iam.Grant.add_to_principal(grantee=role, actions=list(ENI_ACTIONS), resource_arns=["*"])
    if isinstance(role, iam.Role):
        nag.acknowledge_wildcard_resources(
            role, ["*"],
            "cloudwatch:PutMetricData, ecr:GetAuthorizationToken and the EC2 network-interface actions SageMaker "
            "uses to attach the model to its VPC support no resource-level permissions (Describe*) or act on "
            "interfaces that do not exist yet; metric data is limited by the cloudwatch:namespace condition.",
        )
