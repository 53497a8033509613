"""The GitHub OIDC bootstrap app: who can assume the deploy roles, what they may do, bad input.

A mistake here is a security hole (another repository, a pull request or another environment
could deploy) or a pipeline that can't deploy at all, so the tests read the synthesized trust and
permission policies the way IAM will.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cfnlint.api import ManualArgs, lint_file

from bootstrap.app import build
from bootstrap.config import ConfigError, load_bootstrap_plan
from tests.cfn_lint_policy import IGNORED_RULES, LINT_REGIONS
from tests.helpers import ROOT, new_app, resources_of_type

REPO = "my-org/ml-platform"
DEV_ACCOUNT, PROD_ACCOUNT = "111111111111", "222222222222"
PROVIDER_HOST = "token.actions.githubusercontent.com"


def write_envs(directory: Path, accounts: dict[str, tuple[str, str] | None], bases: dict[str, str] | None = None) -> Path:
    """Platform environment files: name -> (account, region), or None for an unpinned environment.

    Each file starts with its ``base`` as the platform's loader requires: ``bases[name]``, else "defaults" (a root).
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name, pinned in accounts.items():
        text = f'base = "{(bases or {}).get(name, "defaults")}"\n'
        text += f'account = "{pinned[0]}"\nregion = "{pinned[1]}"\n' if pinned else "retain_data = false\n"
        if pinned:  # a pinned environment names its training cluster's AZ and AMI (config/training.py)
            text += '[training]\navailability_zone = "use1-az1"\nami_id = "ami-0123456789abcdef0"\n'
            # BLOOM's default ml.p4de.24xlarge is hosted in us-east-1 and us-west-2 only (docs/llm.md, "Regions").
            text += '[llm.models.bloom-176b]\ninstance_type = "ml.p5.48xlarge"\n'
        (directory / f"{name}.toml").write_text(text)
    return directory


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def synth(tmp_path: Path, config_text: str, accounts: dict[str, tuple[str, str] | None]):
    envs = write_envs(tmp_path / "envs", accounts)
    plan = load_bootstrap_plan(write_config(tmp_path / "github.toml", config_text), environments_dir=envs)
    app = new_app(tmp_path / "out")
    stacks = build(app, plan)
    assembly = app.synth()  # cdk-nag (AwsSolutions) is registered by build(): a finding raises here
    return {account: assembly.get_stack_by_name(stack.stack_name) for account, stack in stacks.items()}


TWO_ACCOUNTS = {"dev": (DEV_ACCOUNT, "us-east-1"), "prod": (PROD_ACCOUNT, "eu-west-1")}
STANDARD = f'repository = "{REPO}"\n[environments.dev]\n[environments.prod]\n'


@pytest.fixture(scope="module")
def standard(tmp_path_factory):
    return synth(tmp_path_factory.mktemp("bootstrap"), STANDARD, TWO_ACCOUNTS)


def roles(template: dict) -> dict[str, dict]:
    return {r["Properties"]["RoleName"]: r for r in resources_of_type(template, "AWS::IAM::Role").values()}


def permissions_of(template: dict, role_logical_id: str) -> list[dict]:
    statements = []
    for policy in resources_of_type(template, "AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def logical_id(template: dict, role_name: str) -> str:
    return next(k for k, v in resources_of_type(template, "AWS::IAM::Role").items()
                if v["Properties"]["RoleName"] == role_name)


def bootstrap_roles(account: str, region: str, *kinds: str) -> list[str]:
    return [f"arn:aws:iam::{account}:role/cdk-hnb659fds-{kind}-role-{account}-{region}" for kind in kinds]


# ---- trust: only this repository, only that GitHub environment -------------------------------------

@pytest.mark.parametrize("env, account, github_environment, role_name", [
    ("dev", DEV_ACCOUNT, "dev", "MlAccel-github-deploy-dev"),
    ("prod", PROD_ACCOUNT, "prod", "MlAccel-github-deploy-prod"),
    ("dev", DEV_ACCOUNT, "dev-read", "MlAccel-github-read-dev"),
    ("prod", PROD_ACCOUNT, "prod-read", "MlAccel-github-read-prod"),
    ("dev", DEV_ACCOUNT, "dev", "MlAccel-github-verify-dev"),
])
def test_each_role_trusts_only_this_repository_in_its_github_environment(standard, env, account,
                                                                         github_environment, role_name):
    template = standard[account].template
    trust = roles(template)[role_name]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert len(trust) == 1, "a second statement would widen who can assume the role"
    (statement,) = trust
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    provider_id = next(iter(resources_of_type(template, "AWS::IAM::OIDCProvider")))
    assert statement["Principal"] == {"Federated": {"Ref": provider_id}}
    # Exact matches only: a StringLike with a wildcard would admit other repositories or branches.
    assert statement["Condition"] == {"StringEquals": {
        f"{PROVIDER_HOST}:aud": "sts.amazonaws.com",
        f"{PROVIDER_HOST}:sub": f"repo:{REPO}:environment:{github_environment}",
    }}


def test_each_account_holds_only_its_own_environments_roles(standard):
    assert sorted(roles(standard[DEV_ACCOUNT].template)) == [
        "MlAccel-github-deploy-dev", "MlAccel-github-preflight-dev", "MlAccel-github-read-dev",
        "MlAccel-github-verify-dev"]
    assert sorted(roles(standard[PROD_ACCOUNT].template)) == [
        "MlAccel-github-deploy-prod", "MlAccel-github-preflight-prod", "MlAccel-github-read-prod",
        "MlAccel-github-verify-prod"]
    assert standard[DEV_ACCOUNT].environment.account == DEV_ACCOUNT
    assert standard[PROD_ACCOUNT].environment.region == "eu-west-1"


def test_the_provider_is_github_for_the_sts_audience(standard):
    (provider,) = resources_of_type(standard[DEV_ACCOUNT].template, "AWS::IAM::OIDCProvider").values()
    assert provider["Properties"]["Url"] == f"https://{PROVIDER_HOST}"
    assert provider["Properties"]["ClientIdList"] == ["sts.amazonaws.com"]


# ---- permissions: only the CDK bootstrap roles of that account and region ----------------------------

@pytest.mark.parametrize("account, region, env", [(DEV_ACCOUNT, "us-east-1", "dev"),
                                                  (PROD_ACCOUNT, "eu-west-1", "prod")])
def test_deploy_role_may_only_assume_the_cdk_bootstrap_roles_of_its_account(standard, account, region, env):
    template = standard[account].template
    role = roles(template)[f"MlAccel-github-deploy-{env}"]
    assert "ManagedPolicyArns" not in role["Properties"] and "Policies" not in role["Properties"]
    statements = permissions_of(template, logical_id(template, f"MlAccel-github-deploy-{env}"))
    assert statements == [{
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Effect": "Allow",
        "Resource": bootstrap_roles(account, region, "deploy", "file-publishing", "image-publishing", "lookup"),
        "Sid": "AssumeCdkBootstrapRoles",
    }]
    # The deploy job asks for a session that outlasts its worst-case deploy (scripts/deploy_budget.py); IAM
    # refuses AssumeRoleWithWebIdentity for longer than the role's MaxSessionDuration.
    deploy_job = yaml.safe_load((ROOT / ".github/workflows/deploy.yml").read_text())["jobs"][env]
    asked = [s["with"]["role-duration-seconds"] for s in deploy_job["steps"]
             if "role-duration-seconds" in s.get("with", {})]
    assert asked and role["Properties"]["MaxSessionDuration"] >= max(asked) > 3600


def test_read_role_may_only_assume_the_lookup_role(standard):
    template = standard[PROD_ACCOUNT].template
    statements = permissions_of(template, logical_id(template, "MlAccel-github-read-prod"))
    assert [s["Resource"] for s in statements] == bootstrap_roles(PROD_ACCOUNT, "eu-west-1", "lookup")
    assert all(s["Action"] == ["sts:AssumeRole", "sts:TagSession"] for s in statements)


def test_verify_role_reads_only_its_environments_stacks_and_describes_or_invokes_endpoints(standard):
    template = standard[PROD_ACCOUNT].template
    statements = {s["Sid"]: s for s in permissions_of(template, logical_id(template, "MlAccel-github-verify-prod"))}
    assert statements["ReadEnvironmentStacks"]["Action"] == ["cloudformation:DescribeStacks",
                                                             "cloudformation:ListStackResources"]
    assert statements["ReadEnvironmentStacks"]["Resource"] == \
        f"arn:aws:cloudformation:eu-west-1:{PROD_ACCOUNT}:stack/MlAccel-prod-*/*"
    assert statements["CheckEndpoints"]["Action"] == ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig",
                                                      "sagemaker:InvokeEndpoint"]
    assert sorted(statements["CheckEndpoints"]["Resource"]) == [
        f"arn:aws:sagemaker:eu-west-1:{PROD_ACCOUNT}:endpoint-config/*",
        f"arn:aws:sagemaker:eu-west-1:{PROD_ACCOUNT}:endpoint/*"]
    assert statements["CheckInferenceComponents"]["Action"] == "sagemaker:DescribeInferenceComponent"
    assert statements["CheckInferenceComponents"]["Resource"] == \
        f"arn:aws:sagemaker:eu-west-1:{PROD_ACCOUNT}:inference-component/*"
    assert statements["CheckRolledBackModels"]["Action"] == "sagemaker:DescribeModel"
    assert statements["CheckRolledBackModels"]["Resource"] == f"arn:aws:sagemaker:eu-west-1:{PROD_ACCOUNT}:model/*"
    assert sorted(statements) == ["CheckEndpoints", "CheckInferenceComponents", "CheckRolledBackModels",
                                  "ReadEnvironmentStacks"]


def test_role_arns_are_stack_outputs_for_the_github_environment_variables(standard):
    outputs = standard[DEV_ACCOUNT].template["Outputs"]
    described = {o.get("Description", ""): o["Value"] for o in outputs.values()}
    assert described["AWS_ROLE_ARN of the GitHub environment dev"] == {
        "Fn::GetAtt": [logical_id(standard[DEV_ACCOUNT].template, "MlAccel-github-deploy-dev"), "Arn"]}
    assert "AWS_ROLE_ARN of the GitHub environment dev-read" in described


def test_templates_are_cfn_lint_clean(standard):
    config = ManualArgs(regions=LINT_REGIONS, ignore_checks=sorted(IGNORED_RULES))
    for stack in standard.values():
        findings = lint_file(Path(stack.template_full_path), config=config)
        assert [str(f) for f in findings] == []


# ---- options -----------------------------------------------------------------------------------------

def test_an_existing_provider_is_reused_not_created(tmp_path):
    arn = f"arn:aws:iam::{DEV_ACCOUNT}:oidc-provider/{PROVIDER_HOST}"
    stacks = synth(tmp_path, f'repository = "{REPO}"\n[environments.dev]\noidc_provider_arn = "{arn}"\n',
                   {"dev": (DEV_ACCOUNT, "us-east-1")})
    template = stacks[DEV_ACCOUNT].template
    assert resources_of_type(template, "AWS::IAM::OIDCProvider") == {}
    trust = roles(template)["MlAccel-github-deploy-dev"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust[0]["Principal"] == {"Federated": arn}


def test_environments_sharing_an_account_share_one_provider_and_one_stack(tmp_path):
    stacks = synth(tmp_path, STANDARD + "read_role = false\nverify_role = false\n",
                   {"dev": (DEV_ACCOUNT, "us-east-1"), "prod": (DEV_ACCOUNT, "us-west-2")})
    assert list(stacks) == [DEV_ACCOUNT]
    template = stacks[DEV_ACCOUNT].template
    assert len(resources_of_type(template, "AWS::IAM::OIDCProvider")) == 1
    # prod's read role was switched off; each role targets its own environment's region.
    assert sorted(roles(template)) == ["MlAccel-github-deploy-dev", "MlAccel-github-deploy-prod",
                                       "MlAccel-github-preflight-dev", "MlAccel-github-preflight-prod",
                                       "MlAccel-github-read-dev", "MlAccel-github-verify-dev"]
    prod = permissions_of(template, logical_id(template, "MlAccel-github-deploy-prod"))
    assert all(arn.endswith(f"-{DEV_ACCOUNT}-us-west-2") for arn in prod[0]["Resource"])


def test_a_custom_qualifier_and_prefix_name_the_roles(tmp_path):
    stacks = synth(tmp_path, f'repository = "{REPO}"\ncdk_qualifier = "team7"\nrole_name_prefix = "Ml"\n'
                   "[environments.dev]\nread_role = false\n", {"dev": (DEV_ACCOUNT, "us-east-1")})
    template = stacks[DEV_ACCOUNT].template
    (statement,) = permissions_of(template, logical_id(template, "Ml-github-deploy-dev"))
    assert statement["Resource"][0] == f"arn:aws:iam::{DEV_ACCOUNT}:role/cdk-team7-deploy-role-{DEV_ACCOUNT}-us-east-1"


# ---- bad input: key, value, what is allowed, where it came from --------------------------------------

def problems_of(tmp_path: Path, config_text: str, accounts=None) -> str:
    envs = write_envs(tmp_path / "envs", accounts or TWO_ACCOUNTS)
    with pytest.raises(ConfigError) as exc:
        load_bootstrap_plan(write_config(tmp_path / "github.toml", config_text), environments_dir=envs)
    return str(exc.value)


def test_environment_without_a_pinned_account_is_refused(tmp_path):
    message = problems_of(tmp_path, STANDARD, {"dev": None, "prod": (PROD_ACCOUNT, "eu-west-1")})
    assert "environments.dev:" in message
    assert "no pinned account: got account = None" in message
    assert "allowed: a 12-digit account id with its region" in message
    assert "envs/dev.toml" in message and "(from " in message and "github.toml)" in message
    assert "environments.prod" not in message


def test_an_environment_inherits_its_account_from_its_base_as_its_stacks_do(tmp_path):
    """The bootstrap reads environments through the platform's loader, so the roles go where the stacks deploy."""
    envs = write_envs(tmp_path / "envs", {"prod": (PROD_ACCOUNT, "eu-west-1"), "staging": None}, {"staging": "prod"})
    plan = load_bootstrap_plan(write_config(tmp_path / "github.toml", f'repository = "{REPO}"\n[environments.staging]\n'),
                               environments_dir=envs)
    (target,) = plan.targets
    assert (target.name, target.account, target.region) == ("staging", PROD_ACCOUNT, "eu-west-1")


def test_an_environment_file_without_base_is_refused_naming_the_file(tmp_path):
    envs = write_envs(tmp_path / "envs", TWO_ACCOUNTS)
    (envs / "dev.toml").write_text(f'account = "{DEV_ACCOUNT}"\nregion = "us-east-1"\n')
    with pytest.raises(ConfigError) as exc:
        load_bootstrap_plan(write_config(tmp_path / "github.toml", STANDARD), environments_dir=envs)
    message = str(exc.value)
    assert message.startswith("Invalid bootstrap configuration")
    assert "base: missing; every environment file starts with base = " in message and "envs/dev.toml)" in message
    assert "envs/prod.toml" not in message


@pytest.mark.parametrize("repository", ["ml-platform", "my-org/", "/ml-platform", "my-org/ml/platform",
                                        "https://github.com/my-org/ml-platform", "my org/ml-platform", ""])
def test_repository_must_be_owner_slash_name(tmp_path, repository):
    message = problems_of(tmp_path, f'repository = "{repository}"\n[environments.dev]\n')
    assert f"repository: got {repository!r}, allowed: owner/name" in message
    assert "github.toml)" in message


def test_provider_arn_from_another_account_is_refused(tmp_path):
    arn = f"arn:aws:iam::{PROD_ACCOUNT}:oidc-provider/{PROVIDER_HOST}"
    message = problems_of(tmp_path, f'repository = "{REPO}"\n[environments.dev]\noidc_provider_arn = "{arn}"\n')
    assert f"environments.dev.oidc_provider_arn: got {arn!r}, a provider in account {PROD_ACCOUNT}" in message
    assert f"allowed: a provider in dev's account {DEV_ACCOUNT}" in message
    assert "github.toml)" in message


@pytest.mark.parametrize("arn", ["arn:aws:iam::111111111111:oidc-provider/accounts.google.com",
                                 "arn:aws:iam::111111111111:role/github", "token.actions.githubusercontent.com"])
def test_provider_arn_must_be_a_github_oidc_provider(tmp_path, arn):
    message = problems_of(tmp_path, f'repository = "{REPO}"\n[environments.dev]\noidc_provider_arn = "{arn}"\n')
    assert f"environments.dev.oidc_provider_arn: got {arn!r}, allowed: arn:aws:iam::<account>:oidc-provider/" \
           f"{PROVIDER_HOST}" in message


def test_unknown_environment_is_refused_with_the_known_ones(tmp_path):
    message = problems_of(tmp_path, f'repository = "{REPO}"\n[environments.staging]\n')
    assert "environments.staging: unknown environment 'staging'; allowed: dev, prod" in message


def test_role_names_longer_than_iam_allows_are_refused(tmp_path):
    long_env = "integration-" + "x" * 30
    message = problems_of(tmp_path, f'repository = "{REPO}"\nrole_name_prefix = "MlAcceleratorPlatformTeamA"\n'
                          f"[environments.{long_env}]\n", {long_env: (DEV_ACCOUNT, "us-east-1")})
    assert f"environments.{long_env}: role names such as 'MlAcceleratorPlatformTeamA-github-preflight-{long_env}' " \
           "would be 86 characters; allowed: at most 64 (IAM)" in message


def test_environments_sharing_an_account_must_agree_on_the_provider(tmp_path):
    arn = f"arn:aws:iam::{DEV_ACCOUNT}:oidc-provider/{PROVIDER_HOST}"
    message = problems_of(tmp_path, f'repository = "{REPO}"\n[environments.dev]\noidc_provider_arn = "{arn}"\n'
                          "[environments.prod]\n", {"dev": (DEV_ACCOUNT, "us-east-1"),
                                                    "prod": (DEV_ACCOUNT, "us-east-1")})
    assert f"environments: environments dev, prod share account {DEV_ACCOUNT}" in message


@pytest.mark.parametrize("text, expected", [
    (f'repository = "{REPO}"\n', "environments: no environment given"),
    (f'repository = "{REPO}"\ncdk_qualifier = "Team-7"\n[environments.dev]\n', "cdk_qualifier: got 'Team-7'"),
    (f'repository = "{REPO}"\nmax_session_hours = 24\n[environments.dev]\n',
     "max_session_hours: got 24, allowed range: 1 to 12"),
    (f'repository = "{REPO}"\n[environments.dev]\nread_roles = false\n',
     "environments.dev.read_roles: unknown key 'read_roles'; allowed keys: oidc_provider_arn, read_role, verify_role"),
    ('[environments.dev]\n', "repository: required, expected a string"),
])
def test_other_settings_are_checked(tmp_path, text, expected):
    assert expected in problems_of(tmp_path, text)


def test_the_app_reports_configuration_errors_without_a_traceback(tmp_path):
    """Through the real entry point, as `make bootstrap-synth` runs it: exit 1, the problems, no stack trace."""
    config = write_config(tmp_path / "github.toml", 'repository = "not-a-repo"\n[environments.dev]\n')
    env = {**os.environ, "CDK_OUTDIR": str(tmp_path / "out"), "CDK_CONTEXT_JSON": json.dumps({"config": str(config)})}
    result = subprocess.run([sys.executable, "-m", "bootstrap.app"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1
    assert "bootstrap synth aborted, nothing was synthesized." in result.stderr
    assert "repository: got 'not-a-repo', allowed: owner/name" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_cdk_nag_runs_on_the_bootstrap_app_so_a_wildcard_grant_fails_synth(tmp_path):
    """The standard synth passing means nag-clean only because build() registers AwsSolutions: prove it does."""
    from aws_cdk import aws_iam as iam

    envs = write_envs(tmp_path / "envs", {"dev": (DEV_ACCOUNT, "us-east-1")})
    plan = load_bootstrap_plan(write_config(tmp_path / "github.toml", f'repository = "{REPO}"\n[environments.dev]\n'),
                               environments_dir=envs)
    app = new_app(tmp_path / "out")
    stack = build(app, plan)[DEV_ACCOUNT]
    stack.deploy_roles["dev"].add_to_policy(iam.PolicyStatement(actions=["sts:AssumeRole"], resources=["*"]))
    with pytest.raises(RuntimeError, match=r"AwsSolutions-IAM5"):
        app.synth()


# ---- the CloudFormation execution policy (cdk bootstrap --cloudformation-execution-policies) -----------

def execution_policy_of(template: dict) -> dict:
    (policy,) = resources_of_type(template, "AWS::IAM::ManagedPolicy").values()
    return policy["Properties"]


def test_execution_policy_grants_no_admin_and_scopes_iam_to_the_stacks(standard):
    props = execution_policy_of(standard[DEV_ACCOUNT].template)
    assert props["ManagedPolicyName"] == "MlAccel-cdk-execution"
    for statement in props["PolicyDocument"]["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert statement["Effect"] == "Allow"
        assert "*" not in actions and "*:*" not in actions
        iam_writes = [a for a in actions if a.startswith("iam:") and not a.startswith(("iam:Get", "iam:List"))]
        if iam_writes:  # IAM changes only under the environment's stack prefix or AWS's service-role path
            assert all(r.startswith(f"arn:aws:iam::{DEV_ACCOUNT}:") for r in resources), statement
            assert all("/MlAccel-dev-" in r or "/aws-service-role/" in r for r in resources), statement


def test_execution_policy_arn_is_an_output_for_cdk_bootstrap(standard):
    outputs = standard[PROD_ACCOUNT].template["Outputs"]
    (arn,) = [o for k, o in outputs.items() if k.startswith("CdkExecutionPolicyArn")]
    assert "cloudformation-execution-policies" in arn["Description"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_execution_policy_covers_every_resource_type_the_platform_deploys(standard, platform_synth, env):
    """A new resource type in a dev or prod template fails here until bootstrap/execution_policy.py
    allows its service: otherwise the first deploy after the change stops with AccessDenied."""
    from bootstrap.execution_policy import services_for

    _, assembly = platform_synth(env)
    types = {r["Type"] for stack in assembly.stacks for r in stack.template["Resources"].values()}
    granted = set()
    for statement in execution_policy_of(standard[DEV_ACCOUNT].template)["PolicyDocument"]["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        granted |= {a.split(":")[0] for a in actions if a.endswith(":*")}
    uncovered = sorted(t for t in types if services_for(t) is None)
    assert not uncovered, f"add these types' services to SERVICES in bootstrap/execution_policy.py: {uncovered}"
    missing = sorted(t for t in types if not set(services_for(t)) <= granted)
    assert not missing, missing
    assert "AWS::SageMaker::Endpoint" in types and "AWS::IAM::Role" in types  # the synth is the real platform


def test_the_bootstrap_stack_deploys_with_the_administrators_credentials_not_the_execution_role(standard):
    """Through the bootstrap roles, CloudFormation would act as the execution role, whose policy (created
    by this very stack) allows IAM only on the workload stacks' names: updating these roles would fail."""
    for stack in standard.values():
        assert stack.assume_role_arn is None and stack.cloud_formation_execution_role_arn is None
