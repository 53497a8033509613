"""The bootstrap app's preflight role: the deploy role's trust, exactly the policy preflight's calls need.

The role's statements are built from ``ml_tools.preflight.policy``, whose guarded clients refuse any
call not listed there (tests/tools/test_preflight.py), so the role and the code cannot drift apart.
What a user would notice: CI's preflight denied a call it makes, or a role that can change something.
"""
from __future__ import annotations

from ml_tools.preflight.policy import CALLS
from tests import test_bootstrap_github_oidc as oidc
from tests.test_bootstrap_github_oidc import (
    DEV_ACCOUNT, PROD_ACCOUNT, PROVIDER_HOST, REPO, logical_id, permissions_of, roles)

standard = oidc.standard  # the bootstrap app synthesized once per module, as in test_bootstrap_github_oidc


def _as_set(value) -> set[str]:
    return {value} if isinstance(value, str) else set(value)


def test_preflight_role_allows_exactly_the_calls_preflight_makes_read_only(standard):
    template = standard[PROD_ACCOUNT].template
    statements = {s["Sid"]: s for s in permissions_of(template, logical_id(template, "MlAccel-github-preflight-prod"))}
    actions = set().union(*(_as_set(s["Action"]) for s in statements.values()))
    assert actions == set(CALLS.values())
    assert all(s["Effect"] == "Allow" for s in statements.values())
    assert not any(a.split(":")[1].startswith(("Put", "Create", "Delete", "Update", "Request", "Invoke", "Run"))
                   for a in actions)
    assert statements["ReadCdkBootstrapVersion"]["Resource"] == (
        f"arn:aws:ssm:eu-west-1:{PROD_ACCOUNT}:parameter/cdk-bootstrap/hnb659fds/version")
    assert statements["ReadEnvironmentStacks"]["Resource"] == (
        f"arn:aws:cloudformation:eu-west-1:{PROD_ACCOUNT}:stack/MlAccel-prod-*/*")
    assert statements["FindStagedManifests"]["Resource"] == "arn:aws:s3:::mlaccel-prod-storage-*"
    assert "arn:aws:ecr:*:*:repository/djl-inference" in statements["CheckImagesExist"]["Resource"]


def test_preflight_role_has_the_deploy_roles_trust_and_an_output(standard):
    template = standard[DEV_ACCOUNT].template
    trust = roles(template)["MlAccel-github-preflight-dev"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Condition"]["StringEquals"][f"{PROVIDER_HOST}:sub"] for s in trust] == [
        f"repo:{REPO}:environment:dev"]
    described = {o.get("Description", "") for o in template["Outputs"].values()}
    assert "AWS_PREFLIGHT_ROLE_ARN of the GitHub environment dev" in described
