"""The CloudFormation execution policy: what the CDK bootstrap's execution role may do.

`cdk bootstrap` gives its CloudFormation execution role ``AdministratorAccess`` unless
``--cloudformation-execution-policies`` names other managed policies
(https://docs.aws.amazon.com/cdk/v2/guide/bootstrapping-customizing.html). Every stack the pipeline
deploys runs as that role, so this policy is the pipeline's real reach. It allows:

- the services whose resource types the platform's templates hold (:data:`SERVICES`, one entry per
  CloudFormation type namespace; tests/test_bootstrap_github_oidc.py fails when a synthesized dev or
  prod template has a type no entry covers);
- IAM only on roles, instance profiles and policies whose names start with an environment's stack
  prefix (CloudFormation names them ``<stack name>-<logical id>-<suffix>``), plus AWS service-linked roles;
- reading the bootstrap version parameter the templates' rule checks.
"""
from __future__ import annotations

from aws_cdk import aws_iam as iam
from constructs import Construct

from bootstrap.config import EnvironmentTarget
from ml_constructs.nag import acknowledge_wildcard_actions, acknowledge_wildcard_resources

# CloudFormation type namespace -> IAM service prefix(es) that create, update and delete it.
SERVICES: dict[str, tuple[str, ...]] = {
    "AWS::ApplicationAutoScaling::": ("application-autoscaling",),
    "AWS::Batch::": ("batch",),
    "AWS::CloudWatch::": ("cloudwatch",),
    "AWS::EC2::": ("ec2",),
    "AWS::ECR::": ("ecr",),
    "AWS::Events::": ("events",),
    "AWS::KMS::": ("kms",),
    "AWS::Lambda::": ("lambda",),
    "AWS::Logs::": ("logs",),
    "AWS::S3::": ("s3",),
    "AWS::SNS::": ("sns",),
    "AWS::SSM::": ("ssm",),
    "AWS::SageMaker::": ("sagemaker",),
    "AWS::StepFunctions::": ("states",),
}
# Types handled without a service of their own: CDK's metadata, and custom resources, whose
# provider function CloudFormation invokes (lambda:InvokeFunction, part of "lambda" above).
NO_SERVICE = ("AWS::CDK::Metadata", "Custom::")
# Scoped separately below: never "iam:*" on every resource.
IAM_NAMESPACE = "AWS::IAM::"


def services_for(resource_type: str) -> tuple[str, ...] | None:
    """The IAM service prefixes the policy grants for ``resource_type``; None when nothing covers it."""
    if resource_type.startswith(IAM_NAMESPACE):
        return ("iam",)
    if resource_type.startswith(NO_SERVICE):
        return ()
    return next((v for k, v in SERVICES.items() if resource_type.startswith(k)), None)


def execution_policy(scope: Construct, construct_id: str, *, name: str, targets: tuple[EnvironmentTarget, ...],
                     qualifier: str) -> iam.ManagedPolicy:
    """The managed policy to pass to ``cdk bootstrap --cloudformation-execution-policies`` in the
    account of ``targets`` (all in one account)."""
    first = targets[0]
    iam_arn = f"arn:{first.partition}:iam::{first.account}:%s"
    names = sorted({t.stack_prefix for t in targets})
    owned = [iam_arn % f"{kind}/{prefix}*" for prefix in names for kind in ("role", "instance-profile", "policy")]
    regions = sorted({t.region for t in targets})
    statements = [
        iam.PolicyStatement(
            sid="ServicesTheStacksCreate",
            actions=sorted({f"{s}:*" for services in SERVICES.values() for s in services}),
            resources=["*"]),
        iam.PolicyStatement(sid="IamOfTheStacks", actions=["iam:*"], resources=owned),
        iam.PolicyStatement(
            sid="ServiceLinkedRoles",
            actions=["iam:CreateServiceLinkedRole", "iam:GetRole", "iam:PassRole"],
            resources=[iam_arn % "role/aws-service-role/*"]),
        iam.PolicyStatement(
            sid="ReadIamForResolution", actions=["iam:GetRole", "iam:GetPolicy", "iam:ListRoles"], resources=["*"]),
        iam.PolicyStatement(
            sid="BootstrapVersion", actions=["ssm:GetParameter", "ssm:GetParameters"],
            resources=[f"arn:{first.partition}:ssm:{r}:{first.account}:parameter/cdk-bootstrap/{qualifier}/*"
                       for r in regions]),
        iam.PolicyStatement(
            sid="NestedStacksAndChangeSets",
            actions=["cloudformation:CreateChangeSet", "cloudformation:DescribeStacks", "cloudformation:DescribeChangeSet"],
            resources=[f"arn:{first.partition}:cloudformation:{r}:{first.account}:stack/{p}*/*"
                       for r in regions for p in names]),
    ]
    policy = iam.ManagedPolicy(
        scope, construct_id, managed_policy_name=name, statements=statements,
        description=f"CloudFormation execution policy for cdk bootstrap (qualifier {qualifier}): the services of the "
                    f"{', '.join(t.name for t in targets)} stacks, IAM only under {', '.join(names)}")
    acknowledge_wildcard_actions(
        policy, [a for s in statements for a in s.actions if a.endswith("*")],
        "The CloudFormation execution role creates, updates and deletes the resources of these services that the "
        "stacks hold (the list follows the synthesized templates' resource types, tested); it replaces cdk "
        "bootstrap's AdministratorAccess. iam:* is limited to names under the stacks' prefix.")
    acknowledge_wildcard_resources(
        policy, [r for s in statements for r in s.resources if "*" in r],
        "The stacks' resource names are generated by CloudFormation (<stack name>-<logical id>-<suffix>): "
        "service statements are limited by service, IAM and CloudFormation by the stacks' name prefix, SSM to the "
        "bootstrap's own parameters, service-linked roles to AWS's service-role path.")
    return policy
