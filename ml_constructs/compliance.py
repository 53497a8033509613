"""NIST 800-53 Rev. 5 baseline for the whole app: fixes where a fix exists, exact acknowledgements elsewhere.

One aspect, registered by the app factory next to the cdk-nag packs, so the
workload constructs stay free of compliance plumbing:

* every CloudWatch log group without a key is encrypted with the platform key
  (environments with ``storage.encryption = "kms"``; the key's policy admits
  CloudWatch Logs for this account's log groups);
* findings that are the design are acknowledged on the resource they concern,
  by their exact rule id, each with the reason it holds there. A resource this
  aspect does not recognise is left alone, so a new one shows up as a finding.
"""
from __future__ import annotations

from typing import Callable

import aws_cdk as cdk
import jsii
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from constructs import IConstruct

from ml_constructs import nag

NIST = "NIST.800.53.R5"


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge ``NIST.800.53.R5-<rule>`` on ``scope``."""
    nag.acknowledge(scope, f"{NIST}-{rule}", reason, pack=NIST)


@jsii.implements(cdk.IAspect)
class Nist80053Baseline:
    """The fixes and acknowledgements described in the module docs.

    ``log_key_arn_for(stack)``: the platform key's ARN as ``stack`` can reference it, or
    None where the environment has no customer managed key.
    """

    def __init__(self, log_key_arn_for: Callable[[cdk.Stack], str | None]) -> None:
        self._log_key_arn_for = log_key_arn_for

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, logs.CfnLogGroup):
            self._encrypt(node)
        elif isinstance(node, iam.CfnPolicy):
            acknowledge(node, "IAMNoInlinePolicy",
                        "CDK grants write each role's least-privilege statements into a policy attached to that one "
                        "role; a customer managed policy per role would be the same document with a second name.")
        elif isinstance(node, lambda_.CfnFunction) and _under(node, "Provider"):
            for rule, reason in _DEPLOY_TIME_HANDLER.items():
                acknowledge(node, rule, reason)
        elif isinstance(node, ec2.PublicSubnet):
            self._public_subnet(node)
        elif isinstance(node, ec2.CfnSecurityGroupIngress) and _self_referencing(node):
            acknowledge(node, "EC2RestrictedCommonPorts",
                        "EFA needs all traffic between the instances of one cluster; the rule admits it only from "
                        "the same security group, not from any address.")

    def _encrypt(self, log_group: logs.CfnLogGroup) -> None:
        if log_group.kms_key_id is not None:
            return
        key_arn = self._log_key_arn_for(cdk.Stack.of(log_group))
        if key_arn is not None:
            log_group.kms_key_id = key_arn
        else:
            acknowledge(log_group, "CloudWatchLogGroupEncrypted",
                        "This environment has no customer managed key (storage.encryption = 's3'); CloudWatch Logs "
                        "encrypts the group with its own keys.")

    @staticmethod
    def _public_subnet(subnet: ec2.PublicSubnet) -> None:
        reason = ("A public subnet here only holds the NAT gateway that gives the private subnets their route "
                  "out (compile hosts download from the Hugging Face Hub); no instance is launched in it.")
        acknowledge(subnet, "VPCSubnetAutoAssignPublicIpDisabled", reason)
        acknowledge(subnet, "VPCNoUnrestrictedRouteToIGW", reason)


_DEPLOY_TIME_HANDLER = {
    "LambdaConcurrency": "A custom resource handler that CloudFormation calls a few times per deploy; reserved "
                         "concurrency would only reserve account capacity it never uses.",
    "LambdaDLQ": "Invoked synchronously by CloudFormation's provider framework and Step Functions, which receive "
                 "and report every failure; a dead-letter queue only catches asynchronous invocations.",
    "LambdaInsideVPC": "The handler calls AWS APIs only (Batch, S3, CloudFormation), through their public "
                       "endpoints with IAM; it reaches nothing inside a VPC.",
}


def _self_referencing(rule: ec2.CfnSecurityGroupIngress) -> bool:
    stack = cdk.Stack.of(rule)
    return rule.source_security_group_id is not None and (
        stack.resolve(rule.source_security_group_id) == stack.resolve(rule.group_id))


def _under(node: IConstruct, construct_id: str) -> bool:
    return any(scope.node.id == construct_id for scope in node.node.scopes)


def acknowledge_endpoint_config_key(endpoint_config: sagemaker.CfnEndpointConfig, *, local_nvme: bool) -> None:
    """The endpoint-config KMS finding where SageMaker cannot take a key, or the environment has none."""
    acknowledge(
        endpoint_config, "SageMakerEndpointConfigurationKMSKeyConfigured",
        "The instance type has local NVMe instance storage, which a hardware module on the instance encrypts; "
        "CreateEndpointConfig rejects a KmsKeyId for such instances." if local_nvme else
        "No customer managed key in this environment (storage.encryption = 's3'): SageMaker encrypts the ML "
        "storage volume with its AWS managed key.",
    )
