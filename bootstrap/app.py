#!/usr/bin/env python3
"""The GitHub OIDC bootstrap app: one stack per account, deployed once by an administrator.

    npx cdk synth  --app "python -m bootstrap.app" --output cdk.out.bootstrap      (make bootstrap-synth)
    npx cdk deploy --app "python -m bootstrap.app" --output cdk.out.bootstrap MlAccel-GitHubOidc-111111111111
    ... -c config=path/to/github.toml    (default: bootstrap/github.toml)
"""
import json
import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from bootstrap.config import ConfigError, load_bootstrap_plan
from bootstrap.github_oidc_stack import GitHubOidcStack

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def build(app: cdk.App, plan) -> dict[str, GitHubOidcStack]:
    """Add one GitHubOidc stack per account to ``app``, with cdk-nag on."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks())
    prefix = plan.config.role_name_prefix
    return {
        account: GitHubOidcStack(
            app, f"{prefix}-GitHubOidc-{account}", plan=plan, account=account,
            # Deployed with the administrator's own credentials, not through the CDK bootstrap roles: the
            # CloudFormation execution policy this stack creates may not manage these roles or itself.
            synthesizer=cdk.CliCredentialsStackSynthesizer(),
            description=f"GitHub OIDC deploy roles for {plan.config.repository} "
                        f"({', '.join(t.name for t in targets)})")
        for account, targets in plan.accounts.items()
    }


def main() -> None:
    app = cdk.App(context=json.loads(CDK_JSON.read_text())["context"])
    try:
        plan = load_bootstrap_plan(app.node.try_get_context("config"))
    except ConfigError as exc:
        sys.exit(f"bootstrap synth aborted, nothing was synthesized.\n{exc}")
    build(app, plan)
    app.synth()


if __name__ == "__main__":
    main()
