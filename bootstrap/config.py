"""Configuration of the GitHub OIDC bootstrap app: which repository may deploy which environment.

Read once by ``bootstrap/app.py`` from ``bootstrap/github.toml`` (or ``-c config=FILE``), built
with the platform configuration's :class:`~config.typed.Builder` and validated once. Each
environment's account and region are not repeated here: they come from the platform configuration
(``config/environments/<env>.toml``), so the roles and the stacks they deploy always agree.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from config.loader import ENVIRONMENTS_DIR, known_environments, load_config
from config.schema import PlatformConfig
from config.typed import Builder, ConfigError, Problem, setting

__all__ = ["BootstrapPlan", "ConfigError", "EnvironmentAccess", "GitHubDeployConfig", "load_bootstrap_plan"]

DEFAULT_FILE = Path(__file__).resolve().parent / "github.toml"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
# GitHub: owner names are alphanumerics and single hyphens; repository names add '.' and '_'.
REPOSITORY_PATTERN = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}"
# `cdk bootstrap --qualifier`: lower-case alphanumerics, at most 10 characters.
QUALIFIER_PATTERN = r"[a-z0-9]{1,10}"
IAM_ROLE_NAME_MAX = 64
OIDC_ARN_PATTERN = r"arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):oidc-provider/(.+)"


@dataclass(frozen=True)
class EnvironmentAccess:
    """What one environment's GitHub jobs may do in that environment's account."""

    oidc_provider_arn: str | None = setting(
        None, doc="Reuse the account's existing GitHub OIDC provider (an account holds one per URL); "
        "None: the stack creates it.")
    read_role: bool = setting(
        True, doc="Also create a read-only role for the GitHub environment '<env>-read' (pull-request diff, "
        "drift check): it may assume only the CDK lookup role.")
    verify_role: bool = setting(
        True, doc="Also create a role for the post-deploy check (`python -m ml_tools verify`) for the same GitHub "
        "environment as the deploy role: it may read this environment's stacks and describe and invoke the "
        "account's SageMaker endpoints in the region, nothing else.")

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.oidc_provider_arn is not None:
            match = re.fullmatch(OIDC_ARN_PATTERN, self.oidc_provider_arn)
            if not match or match.group(3) != GITHUB_OIDC_HOST:
                found.append(("oidc_provider_arn", f"got {self.oidc_provider_arn!r}, allowed: "
                              f"arn:aws:iam::<account>:oidc-provider/{GITHUB_OIDC_HOST}"))
        return found


@dataclass(frozen=True)
class GitHubDeployConfig:
    """The whole bootstrap configuration (``bootstrap/github.toml``)."""

    repository: str = setting(doc="owner/name of the GitHub repository whose workflows deploy.")
    environments: dict[str, EnvironmentAccess] = setting(
        default_factory=dict, doc="One table per environment that gets a deploy role (a config/environments name).")
    cdk_qualifier: str = setting("hnb659fds", doc="The qualifier given to `cdk bootstrap` (its default here).")
    role_name_prefix: str = setting("MlAccel", pattern=r"[A-Za-z][A-Za-z0-9]{0,30}")
    max_session_hours: int = setting(
        6, ge=1, le=12, doc="The roles' MaxSessionDuration: the longest session a job may ask for "
        "(role-duration-seconds). scripts/deploy_budget.py checks the deploy jobs' sessions against it.")

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if not re.fullmatch(REPOSITORY_PATTERN, self.repository):
            found.append(("repository", f"got {self.repository!r}, allowed: owner/name as GitHub spells it "
                          "(for example my-org/ml-platform)"))
        if not re.fullmatch(QUALIFIER_PATTERN, self.cdk_qualifier):
            found.append(("cdk_qualifier", f"got {self.cdk_qualifier!r}, allowed: 1-10 lower-case letters or "
                          "digits (the value given to cdk bootstrap --qualifier)"))
        if not self.environments:
            found.append(("environments", "no environment given; add a table such as [environments.dev]"))
        return found


@dataclass(frozen=True)
class EnvironmentTarget:
    """One environment with everything its roles need, validated."""

    name: str
    account: str
    region: str
    partition: str
    stack_prefix: str
    access: EnvironmentAccess
    # The environment's validated platform configuration: what its preflight role may read follows from it
    # (image URIs, compiled-artifact bucket), exactly as `preflight --print-policy --env <name>` builds it.
    platform: PlatformConfig | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class BootstrapPlan:
    """The validated configuration and the environments' accounts, grouped into one stack per account."""

    config: GitHubDeployConfig
    targets: tuple[EnvironmentTarget, ...]
    accounts: Mapping[str, tuple[EnvironmentTarget, ...]] = field(default_factory=dict)

    def subject(self, github_environment: str) -> str:
        """The OIDC token's ``sub`` claim for a job of this repository that names ``github_environment``."""
        return f"repo:{self.config.repository}:environment:{github_environment}"


def load_bootstrap_plan(
    path: str | Path | None = None,
    *,
    environments_dir: Path = ENVIRONMENTS_DIR,
) -> BootstrapPlan:
    """Read, build and validate the bootstrap configuration; raise :class:`ConfigError` with every problem."""
    file = Path(path) if path is not None else DEFAULT_FILE
    display = _display(file)
    try:
        data: Any = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([Problem("(file)", f"cannot read bootstrap configuration: {exc.strerror}", display)]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem("(file)", f"not valid TOML: {exc}", display)]) from None

    builder = Builder({}, default_source=display)
    cfg = builder.build(GitHubDeployConfig, data, "")
    if builder.problems:
        raise ConfigError(builder.problems, header="Invalid bootstrap configuration")

    problems: list[Problem] = []
    known = known_environments(environments_dir)
    targets = []
    for name, access in cfg.environments.items():
        key = f"environments.{name}"
        if name not in known:
            problems.append(Problem(key, f"unknown environment {name!r}; allowed: {', '.join(known)} "
                                    f"(the files in {_display(environments_dir)})", display))
            continue
        env_file = _display(environments_dir / f"{name}.toml")
        longest = f"{cfg.role_name_prefix}-github-preflight-{name}"  # the longest of the role names
        if len(longest) > IAM_ROLE_NAME_MAX:
            problems.append(Problem(key, f"role names such as {longest!r} would be {len(longest)} characters; allowed: "
                                    f"at most {IAM_ROLE_NAME_MAX} (IAM): shorten role_name_prefix or the "
                                    "environment's name", display))
            continue
        try:
            platform = load_config(name, environments_dir=environments_dir)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if platform.account is None or platform.region is None:
            problems.append(Problem(key, f"a deploy role was requested for environment {name!r}, which has no pinned "
                                    f"account: got account = {platform.account!r}; allowed: a 12-digit account id "
                                    f"with its region, set in {env_file}", display))
            continue
        partition = _partition(platform.region)
        if access.oidc_provider_arn is not None:
            match = re.fullmatch(OIDC_ARN_PATTERN, access.oidc_provider_arn)
            if match and (match.group(2) != platform.account or match.group(1) != partition):
                problems.append(Problem(f"{key}.oidc_provider_arn", f"got {access.oidc_provider_arn!r}, a provider in "
                                        f"account {match.group(2)}; allowed: a provider in {name}'s account "
                                        f"{platform.account} ({partition}, from {env_file})", display))
                continue
        targets.append(EnvironmentTarget(name, platform.account, platform.region, partition,
                                         f"{platform.stack_prefix}-{name}-", access, platform))

    accounts: dict[str, list[EnvironmentTarget]] = {}
    for target in targets:
        accounts.setdefault(target.account, []).append(target)
    for account, members in sorted(accounts.items()):
        arns = {m.access.oidc_provider_arn for m in members}
        if len(arns) > 1:
            names = ", ".join(m.name for m in members)
            problems.append(Problem("environments", f"environments {names} share account {account}, which holds one "
                                    f"GitHub OIDC provider; got oidc_provider_arn values {sorted(map(str, arns))}; "
                                    "allowed: the same ARN in each, or none (the stack creates it)", display))
    if problems:
        raise ConfigError(problems, header="Invalid bootstrap configuration")
    return BootstrapPlan(cfg, tuple(targets), {a: tuple(m) for a, m in sorted(accounts.items())})


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
