"""Private networking for accelerator clusters: one AZ, private egress, an EFA security group,
and the rules multi-node containers need on the VPC's default security group."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from ml_constructs.trainium_batch.endpoints import INTERFACE_ENDPOINTS

Egress = Literal["vpc_endpoints", "nat_gateway"]
# An AZ ID (use1-az6) names the same physical zone in every account; an AZ name (us-east-1a) does not.
AZ_ID = re.compile(r"[a-z]{2,4}\d-az\d{1,2}")
# What the node containers talk over TCP to each other: torchrun's rendezvous (29500), the
# pre-flight barrier (29400), the Neuron runtime's root communicator (NEURON_RT_ROOT_COMM_ID)
# and the collectives' bootstrap sockets, which use ephemeral ports: so every TCP port, but
# only from the group itself.
NODE_TCP = ec2.Port.tcp_range(0, 65535)



@dataclass(frozen=True)
class ExistingVpc:
    """Ids of a VPC and its private subnets in one AZ (imported, never looked up)."""

    vpc_id: str
    subnet_ids: Sequence[str]
    availability_zone: str
    default_security_group_id: str  # the VPC's default group: multi-node containers get it


class ClusterNetwork(Construct):
    """A VPC (new or imported) whose private subnets sit in one AZ, for tightly coupled clusters.

    Creates (new VPC):
      - a VPC with private subnets in ``availability_zone`` only (a cluster placement
        group and EFA need one AZ);
      - an S3 gateway endpoint (free: image layers, data and checkpoints stay off the NAT's
        per-GB charge);
      - ``egress="nat_gateway"`` (default): a public subnet with one NAT gateway (internet
        egress, which the hosts' EFA install at boot needs); ``"vpc_endpoints"``: isolated
        subnets and interface endpoints for ECR (api, dkr), CloudWatch Logs and metrics, ECS
        (incl. agent and telemetry), STS and EC2;
      - VPC flow logs (all traffic) to a CloudWatch log group.
    Imported VPC: the EFA security group and the node container rules below; the subnets
    must already have egress, and ``egress`` says which kind (``egress`` attribute).

    Node containers: a multi-node job's containers run in ``awsvpc`` mode, each with its own
    network interface carrying the compute environment's security groups, or the VPC's
    default group when it has none (AWS Batch user guide, "Compute environment considerations
    for MNP"). A compute environment whose launch template defines (EFA) network interfaces
    can have no security groups, so the containers always get the default group. A created
    VPC's default group is stripped of AWS's rules (``restrict_default_security_group``) and
    gets exactly these, as separate rule resources: TCP (all ports) from and to itself, HTTPS
    out (in isolated subnets that reaches only the VPC endpoints and the S3 gateway endpoint).
    An imported VPC's default group (``default_security_group_id``) gets the same rules added;
    what it already allows stays (AWS's default: all traffic from itself and all outbound).
    ``availability_zone`` may be an AZ name (``us-west-2d``), an AZ ID (``usw2-az4``) or a token
    that resolves to an AZ ID at deploy (a ``CfnParameter``).

    Default settings: ``egress="nat_gateway"``, flow log retention 30 days.

    Attributes: ``vpc``, ``egress``, ``subnets`` (the cluster subnets), ``efa_security_group``
    (allows all traffic from and to itself, as EFA requires), ``node_security_group_id``
    (the default group the node containers get), ``endpoint_security_group`` (None without
    endpoints), ``flow_log_group`` (None if imported).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        availability_zone: str | None = None,
        existing_vpc: ExistingVpc | None = None,
        cidr: str = "10.64.0.0/16",
        egress: Egress = "nat_gateway",
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        if egress not in ("vpc_endpoints", "nat_gateway"):
            raise ValueError(f"egress: got {egress!r}, allowed: 'vpc_endpoints', 'nat_gateway'")
        self.egress: Egress = egress
        self.flow_log_group: logs.LogGroup | None = None
        if availability_zone is None and existing_vpc is None:
            raise ValueError("availability_zone: required (trn1 is offered in some AZs only); an AZ name or ID")
        if existing_vpc is not None:
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=existing_vpc.vpc_id,
                availability_zones=[existing_vpc.availability_zone],
            )
            self.subnets = [
                ec2.Subnet.from_subnet_attributes(
                    self, f"Subnet{i}", subnet_id=subnet_id, availability_zone=existing_vpc.availability_zone
                )
                for i, subnet_id in enumerate(existing_vpc.subnet_ids)
            ]
            self.node_security_group_id = existing_vpc.default_security_group_id
        else:
            assert availability_zone is not None
            self.vpc, self.subnets = self._new_vpc(availability_zone, cidr, egress, log_retention, removal_policy)
            assert isinstance(self.vpc, ec2.Vpc)
            self.node_security_group_id = self.vpc.vpc_default_security_group
        self.endpoint_security_group: ec2.SecurityGroup | None = None
        self.efa_security_group = ec2.SecurityGroup(
            self,
            "EfaSecurityGroup",
            vpc=self.vpc,
            description="EFA: all traffic between cluster nodes; egress for AWS APIs",
            allow_all_outbound=False,
        )
        # EFA's SRD traffic is not TCP/UDP: the group must allow every protocol from and to itself.
        self.efa_security_group.add_ingress_rule(self.efa_security_group, ec2.Port.all_traffic(), "EFA from cluster")
        self.efa_security_group.add_egress_rule(self.efa_security_group, ec2.Port.all_traffic(), "EFA to cluster")
        self.efa_security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs and ECR")
        if existing_vpc is None:
            self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        if existing_vpc is None and egress == "vpc_endpoints":
            self._add_endpoints()
        self._add_node_rules()

    @property
    def subnet_selection(self) -> ec2.SubnetSelection:
        return ec2.SubnetSelection(subnets=self.subnets)

    def _new_vpc(
        self,
        availability_zone: str,
        cidr: str,
        egress: Egress,
        retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
    ) -> tuple[ec2.IVpc, list[ec2.ISubnet]]:
        private_type = (
            ec2.SubnetType.PRIVATE_ISOLATED if egress == "vpc_endpoints" else ec2.SubnetType.PRIVATE_WITH_EGRESS
        )
        subnets = [ec2.SubnetConfiguration(name="Cluster", subnet_type=private_type, cidr_mask=20)]
        if egress == "nat_gateway":
            subnets.append(ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24))
        vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(cidr),
            # An explicit AZ needs no lookup. An AZ ID is written as the subnets' AvailabilityZoneId below.
            availability_zones=[availability_zone],
            nat_gateways=1 if egress == "nat_gateway" else 0,
            subnet_configuration=subnets,
            restrict_default_security_group=True,
        )
        self.flow_log_group = logs.LogGroup(self, "FlowLogs", retention=retention, removal_policy=removal_policy)
        vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_log_group))
        cluster_subnets = vpc.select_subnets(subnet_type=private_type).subnets
        if AZ_ID.fullmatch(availability_zone) or cdk.Token.is_unresolved(availability_zone):
            # ec2.Vpc only knows AZ names; CloudFormation subnets take either (L1 override). A
            # token (a deploy-time parameter) is an AZ ID: the one spelling that works in every account.
            for subnet in vpc.public_subnets + vpc.private_subnets + vpc.isolated_subnets:
                cfn = subnet.node.default_child
                assert isinstance(cfn, ec2.CfnSubnet)
                cfn.add_property_deletion_override("AvailabilityZone")
                cfn.add_property_override("AvailabilityZoneId", availability_zone)
        return vpc, cluster_subnets

    def _add_endpoints(self) -> None:
        assert isinstance(self.vpc, ec2.Vpc)
        # Only the cluster's hosts and containers may reach the endpoints (not the whole VPC CIDR).
        self.endpoint_security_group = ec2.SecurityGroup(
            self, "EndpointSecurityGroup", vpc=self.vpc, description="VPC endpoints: HTTPS from the cluster", allow_all_outbound=False
        )
        self.endpoint_security_group.add_ingress_rule(self.efa_security_group, ec2.Port.tcp(443), "HTTPS from the hosts")
        for name, service in INTERFACE_ENDPOINTS.items():
            self.vpc.add_interface_endpoint(
                name, service=ec2.InterfaceVpcEndpointAwsService(service), subnets=self.subnet_selection, security_groups=[self.endpoint_security_group], open=False
            )

    def _add_node_rules(self) -> None:
        """The node containers' rules on the default group, as separate L1 rule resources
        (an imported or VPC-owned group has no L2 to add rules to)."""
        group = self.node_security_group_id
        ec2.CfnSecurityGroupIngress(
            self, "NodeIngressFromNodes", group_id=group, source_security_group_id=group, ip_protocol="tcp",
            from_port=0, to_port=65535, description="Node containers: rendezvous, barrier, Neuron collectives' sockets",
        )
        ec2.CfnSecurityGroupEgress(
            self, "NodeEgressToNodes", group_id=group, destination_security_group_id=group, ip_protocol="tcp",
            from_port=0, to_port=65535, description="Node containers: rendezvous, barrier, Neuron collectives' sockets",
        )
        ec2.CfnSecurityGroupEgress(
            self, "NodeEgressHttps", group_id=group, cidr_ip="0.0.0.0/0", ip_protocol="tcp", from_port=443, to_port=443,
            description="Node containers: S3 (gateway endpoint), STS, CloudWatch over HTTPS",
        )
        if self.endpoint_security_group is not None:
            ec2.CfnSecurityGroupIngress(
                self, "EndpointIngressFromNodes", group_id=self.endpoint_security_group.security_group_id,
                source_security_group_id=group, ip_protocol="tcp", from_port=443, to_port=443,
                description="HTTPS from the node containers",
            )
