"""The bootstrap app's preflight role: the deploy role's trust, exactly the policy preflight's calls need.

The role's statements are built from ``ml_tools.preflight.policy``, whose guarded clients refuse any
call not listed there (tests/tools/test_preflight.py), so the role and the code cannot drift apart.
The role is built from the environment's configuration, so it equals what ``preflight --env NAME
--print-policy`` prints for that environment. What a user would notice: CI's preflight denied a call it
makes (an image or bucket the environment names), or a role that can change something.
"""
from __future__ import annotations

import json
from functools import partial

import pytest

from bootstrap.app import build
from bootstrap.config import load_bootstrap_plan
from ml_tools.preflight.policy import CALLS
from tests import test_bootstrap_github_oidc as oidc
from tests.test_bootstrap_github_oidc import (
    DEV_ACCOUNT, PROD_ACCOUNT, PROVIDER_HOST, REPO, logical_id, permissions_of, roles)
from tests.helpers import new_app

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


# An environment that names its own images and compiled artifacts: the preflight role must let CI's preflight
# read them, exactly as the policy `preflight --print-policy --env NAME` prints for that environment.
OWN_IMAGES = {  # environment -> (extra lines of its [training] table, extra tables)
    "dev": ("", '[stable_diffusion]\ncompiled_artifacts_url = "s3://team-compiled-artifacts/sd21/"\n'
                '[stable_diffusion.compile]\nenabled = false\n'),
    "prod": ('image_uri = "222222222222.dkr.ecr.eu-west-1.amazonaws.com/team-trainium:3"\n',
             '[multi_model]\nimage_uri = "222222222222.dkr.ecr.eu-west-1.amazonaws.com/team-mme:0.36.0-cpu-full-7"\n'),
}


@pytest.fixture(scope="module")
def own_images(tmp_path_factory):
    """The bootstrap app synthesized from pinned environment files that set OWN_IMAGES, and their directory."""
    tmp = tmp_path_factory.mktemp("own-images")
    envs = tmp / "envs"
    envs.mkdir()
    for name, (training, tables) in OWN_IMAGES.items():
        account, region = oidc.TWO_ACCOUNTS[name]
        (envs / f"{name}.toml").write_text(  # pinned as tests.test_bootstrap_github_oidc.write_envs pins
            f'base = "defaults"\naccount = "{account}"\nregion = "{region}"\n'
            f'[training]\navailability_zone = "use1-az1"\nami_id = "ami-0123456789abcdef0"\n{training}'
            f'[llm.models.bloom-176b]\ninstance_type = "ml.p5.48xlarge"\n{tables}')
    plan = load_bootstrap_plan(oidc.write_config(tmp / "github.toml", oidc.STANDARD), environments_dir=envs)
    app = new_app(tmp / "out")
    stacks = build(app, plan)
    assembly = app.synth()  # cdk-nag runs: the environment's own repositories are acknowledged wildcards too
    return {a: assembly.get_stack_by_name(s.stack_name) for a, s in stacks.items()}, envs


@pytest.mark.parametrize("env, account", [("dev", DEV_ACCOUNT), ("prod", PROD_ACCOUNT)])
def test_preflight_role_policy_is_the_printed_policy_of_its_environment(own_images, env, account, monkeypatch,
                                                                        capsys):
    import config as config_package
    from ml_tools.__main__ import main

    stacks, envs = own_images
    # The CLI reads these environment files instead of config/environments/ (the bootstrap test's pinned ones).
    monkeypatch.setattr(config_package, "load_config", partial(config_package.load_config, environments_dir=envs))
    assert main(["preflight", "--env", env, "--print-policy"]) == 0
    printed = json.loads(capsys.readouterr().out)["Statement"]
    template = stacks[account].template
    synthesized = permissions_of(template, logical_id(template, f"MlAccel-github-preflight-{env}"))
    assert [_normalized(s) for s in synthesized] == [_normalized(s) for s in printed]
    # What the environment names is in it (the bootstrap once left both out).
    resources = set().union(*(_as_set(s["Resource"]) for s in printed))
    if env == "dev":
        assert "arn:aws:s3:::team-compiled-artifacts" in resources
    else:
        assert {"arn:aws:ecr:*:*:repository/team-mme", "arn:aws:ecr:*:*:repository/team-trainium"} <= resources


def _normalized(statement: dict) -> tuple:
    return (statement["Sid"], statement["Effect"], sorted(_as_set(statement["Action"])),
            sorted(_as_set(statement["Resource"])))
