"""One account's GitHub OIDC trust: the identity provider and a deploy (and read) role per environment.

What it creates, for each environment whose account is this stack's account:

- ``<prefix>-github-deploy-<env>``: assumable only through GitHub's OIDC provider by a job of the
  configured repository that names the GitHub environment ``<env>`` (token ``sub`` =
  ``repo:OWNER/NAME:environment:<env>``, ``aud`` = ``sts.amazonaws.com``). It may do one thing:
  assume (and tag the session of) the CDK bootstrap roles of that account and region: deploy,
  file-publishing, image-publishing and lookup. Everything a deploy changes is done by those roles,
  so the pipeline holds no permission ``cdk bootstrap`` did not already grant.
- ``<prefix>-github-read-<env>`` (unless ``read_role = false``): the same trust for the GitHub
  environment ``<env>-read``, allowed to assume only the lookup role (read-only, no KMS decrypt):
  enough for ``cdk diff --method template`` and CloudFormation drift detection, and safe to hand to
  pull requests and a schedule without a reviewer.
- ``<prefix>-github-verify-<env>`` (unless ``verify_role = false``): the deploy role's trust; for the
  post-deploy check only: read the environment's stacks (``<stack_prefix>-<env>-*``: their outputs
  name the endpoints), describe and invoke SageMaker endpoints of the account and region. Kept apart
  so the deploy role holds nothing but the bootstrap roles.
- The account's GitHub OIDC provider, unless the configuration names an existing one to reuse.
- ``<prefix>-cdk-execution``: the managed policy to give ``cdk bootstrap
  --cloudformation-execution-policies`` instead of its default ``AdministratorAccess``
  (:mod:`bootstrap.execution_policy`); its ARN is the output ``CdkExecutionPolicyArn``.

The roles are exposed as :attr:`GitHubOidcStack.deploy_roles` / :attr:`read_roles` and their ARNs as
stack outputs (set them as the GitHub environments' ``AWS_ROLE_ARN`` variable).
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from bootstrap.config import GITHUB_OIDC_HOST, STS_AUDIENCE, BootstrapPlan, EnvironmentTarget
from bootstrap.execution_policy import execution_policy
from ml_constructs.nag import acknowledge_wildcard_resources

DEPLOY_BOOTSTRAP_ROLES = ("deploy", "file-publishing", "image-publishing", "lookup")
READ_BOOTSTRAP_ROLES = ("lookup",)


def bootstrap_role_arn(target: EnvironmentTarget, qualifier: str, kind: str) -> str:
    """The ARN `cdk bootstrap` gives role ``kind`` (cdk-<qualifier>-<kind>-role-<account>-<region>)."""
    return (f"arn:{target.partition}:iam::{target.account}:role/"
            f"cdk-{qualifier}-{kind}-role-{target.account}-{target.region}")


class GitHubOidcStack(cdk.Stack):
    """The OIDC provider (created or reused) and the per-environment roles of one account."""

    def __init__(self, scope: Construct, construct_id: str, *, plan: BootstrapPlan, account: str,
                 **kwargs) -> None:
        targets = plan.accounts[account]
        super().__init__(scope, construct_id,
                         env=cdk.Environment(account=account, region=targets[0].region), **kwargs)
        cfg = plan.config
        reuse = targets[0].access.oidc_provider_arn  # the loader checked that the account's envs agree
        if reuse is not None:
            self.provider_arn = reuse
        else:
            provider = iam.OidcProviderNative(
                self, "GitHubOidcProvider", url=f"https://{GITHUB_OIDC_HOST}", client_ids=[STS_AUDIENCE])
            self.provider_arn = provider.oidc_provider_arn
        provider_ref = iam.OpenIdConnectProvider.from_open_id_connect_provider_arn(
            self, "GitHubOidc", self.provider_arn)

        self.deploy_roles: dict[str, iam.Role] = {}
        self.read_roles: dict[str, iam.Role] = {}
        self.verify_roles: dict[str, iam.Role] = {}
        for target in targets:
            self.deploy_roles[target.name] = self._role(
                f"Deploy-{target.name}", f"{cfg.role_name_prefix}-github-deploy-{target.name}",
                plan.subject(target.name), provider_ref, target, DEPLOY_BOOTSTRAP_ROLES, plan)
            if target.access.read_role:
                self.read_roles[target.name] = self._role(
                    f"Read-{target.name}", f"{cfg.role_name_prefix}-github-read-{target.name}",
                    plan.subject(f"{target.name}-read"), provider_ref, target, READ_BOOTSTRAP_ROLES, plan)
            if target.access.verify_role:
                self.verify_roles[target.name] = self._verify_role(target, provider_ref, plan)
        cdk.CfnOutput(self, "GitHubOidcProviderArn", value=self.provider_arn)
        self.execution_policy = execution_policy(
            self, "CdkExecutionPolicy", name=f"{cfg.role_name_prefix}-cdk-execution", targets=targets,
            qualifier=cfg.cdk_qualifier)
        cdk.CfnOutput(self, "CdkExecutionPolicyArn", value=self.execution_policy.managed_policy_arn,
                      description="cdk bootstrap --cloudformation-execution-policies <this ARN>")

    def _verify_role(self, target: EnvironmentTarget, provider: iam.IOpenIdConnectProvider,
                     plan: BootstrapPlan) -> iam.Role:
        arn = f"arn:{target.partition}:%s:{target.region}:{target.account}:%s"
        role = self._trusted_role(
            f"Verify-{target.name}", f"{plan.config.role_name_prefix}-github-verify-{target.name}",
            plan.subject(target.name), provider, plan,
            f"post-deploy verification of {target.name}: reads its stacks, describes and invokes endpoints")
        stacks = arn % ("cloudformation", f"stack/{target.stack_prefix}*/*")
        endpoints = [arn % ("sagemaker", "endpoint/*"), arn % ("sagemaker", "endpoint-config/*")]
        role.add_to_policy(iam.PolicyStatement(
            sid="ReadEnvironmentStacks",
            actions=["cloudformation:DescribeStacks", "cloudformation:ListStackResources"],
            resources=[stacks]))
        role.add_to_policy(iam.PolicyStatement(
            sid="CheckEndpoints",
            actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:InvokeEndpoint"],
            resources=endpoints))
        # Endpoints that host inference components (dev's scale-to-zero ones): verify reads each component's
        # status and the model it runs; invoking one needs only sagemaker:InvokeEndpoint on the endpoint.
        components = arn % ("sagemaker", "inference-component/*")
        role.add_to_policy(iam.PolicyStatement(
            sid="CheckInferenceComponents", actions=["sagemaker:DescribeInferenceComponent"], resources=[components]))
        acknowledge_wildcard_resources(
            role, [components], "Inference component names are generated by CloudFormation and change on "
            "replacement; verify finds them through the stack outputs. Scoped to this account and region, "
            "describe only.")
        acknowledge_wildcard_resources(
            role, [stacks], "Stack ARNs end in an id CloudFormation assigns at creation; the name part is fixed to "
            "this environment's stacks (<stack_prefix>-<env>-*), so the role reads no other stack.")
        acknowledge_wildcard_resources(
            role, endpoints, "Endpoint and endpoint-config names are generated by CloudFormation and change on "
            "replacement; verify finds them through the stack outputs. Scoped to this account and region, "
            "describe and invoke only: no create, update or delete.")
        cdk.CfnOutput(self, f"Verify{target.name}RoleArn", value=role.role_arn,
                      description=f"AWS_VERIFY_ROLE_ARN of the GitHub environment {target.name}")
        return role

    def _trusted_role(self, construct_id: str, role_name: str, subject: str, provider: iam.IOpenIdConnectProvider,
                      plan: BootstrapPlan, purpose: str) -> iam.Role:
        return iam.Role(
            self, construct_id,
            role_name=role_name,
            description=f"GitHub Actions of {plan.config.repository}, environment {subject.rsplit(':', 1)[1]}: "
                        f"{purpose}",
            max_session_duration=cdk.Duration.hours(plan.config.max_session_hours),
            assumed_by=iam.OpenIdConnectPrincipal(provider, conditions={
                "StringEquals": {
                    f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                    f"{GITHUB_OIDC_HOST}:sub": subject,
                },
            }),
        )

    def _role(self, construct_id: str, role_name: str, subject: str, provider: iam.IOpenIdConnectProvider,
              target: EnvironmentTarget, kinds: tuple[str, ...], plan: BootstrapPlan) -> iam.Role:
        role = self._trusted_role(construct_id, role_name, subject, provider, plan,
                                  f"assumes CDK bootstrap roles ({', '.join(kinds)}) only")
        role.add_to_policy(iam.PolicyStatement(
            sid="AssumeCdkBootstrapRoles",
            actions=["sts:AssumeRole", "sts:TagSession"],
            resources=[bootstrap_role_arn(target, plan.config.cdk_qualifier, kind) for kind in kinds],
        ))
        cdk.CfnOutput(self, f"{construct_id}RoleArn", value=role.role_arn,
                      description=f"AWS_ROLE_ARN of the GitHub environment {subject.rsplit(':', 1)[1]}")
        return role
