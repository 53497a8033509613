"""The cluster's interface endpoints are listed once, without CDK, for the network and the cost tool."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aws_cdk import aws_ec2 as ec2

from ml_constructs.trainium_batch.endpoints import INTERFACE_ENDPOINTS

REPO = Path(__file__).resolve().parents[1]


def test_each_endpoint_is_the_aws_service_the_network_means():
    # The CDK constants the network used before the list moved out of it.
    expected = {
        "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
        "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
        "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
        "Ecs": ec2.InterfaceVpcEndpointAwsService.ECS,
        "EcsAgent": ec2.InterfaceVpcEndpointAwsService.ECS_AGENT,
        "EcsTelemetry": ec2.InterfaceVpcEndpointAwsService.ECS_TELEMETRY,
        "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
        "Monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
        "Ec2": ec2.InterfaceVpcEndpointAwsService.EC2,
    }
    assert {name: service.short_name for name, service in expected.items()} == INTERFACE_ENDPOINTS


def test_the_cost_estimate_of_prod_counts_the_endpoints_without_starting_jsii():
    probe = (
        "import sys\n"
        "from ml_tools.__main__ import main\n"
        "code = main(['cost', '--env', 'prod', '--set', 'training.egress=vpc_endpoints',\n"
        "             '--set', 'training.efa_software=in-ami'])\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('aws_cdk', 'jsii', 'constructs'))\n"
        "print('LOADED', loaded)\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"{len(INTERFACE_ENDPOINTS)} interface VPC endpoints in 1 AZ" in result.stdout
    assert "LOADED []" in result.stdout
