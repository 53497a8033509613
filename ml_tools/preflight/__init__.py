"""Before a deploy: check an account and region against an environment, read-only.

    python -m ml_tools preflight --env prod                  (make preflight ENV=prod)
    python -m ml_tools preflight --env prod --region us-west-2
    python -m ml_tools preflight --env prod --print-policy   # the IAM policy its calls need

One row per check: what the environment needs, what the account has, pass / FAIL / cannot check,
and the fix. Checked: credentials, account and region against the environment's pins; the CDK
bootstrap version; SageMaker endpoint-usage quotas of every instance type at its ceiling and the
EC2 vCPU quotas of the AWS Batch hosts (applied values, else the AWS default); instance type offerings in the zones
used; the pinned training AMI; the images pulled (or the bases of those built); staged weights
and compiled artifacts (their manifests); a Docker engine when images are built; the cost floor
and ceiling (``ml_tools.cost``). Exit 1 when a check fails ("cannot check" too with ``--strict``),
2 for bad input (unknown environment, no credentials, a region without SageMaker or AWS Batch).
"""
from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from ml_tools.preflight.checks import CANNOT, CHECKS, FAIL, Context, Row, docker_info
from ml_tools.preflight.policy import guard, known_repositories, policy_document
from ml_tools.preflight.report import render

DEFAULT_QUALIFIER = "hnb659fds"  # `cdk bootstrap`'s default; cdk.json sets no other


def configure(parser: argparse.ArgumentParser) -> None:
    from config import known_environments

    parser.add_argument("--env", required=True, help=f"environment ({', '.join(known_environments())})")
    parser.add_argument("--config", help="an overlay file, as with cdk synth -c config=FILE")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a single setting, as with cdk synth -c set:KEY=VALUE (repeatable)")
    parser.add_argument("--region", help="region to check (default: the environment's pin, else the AWS profile's)")
    parser.add_argument("--qualifier", default=DEFAULT_QUALIFIER, help="the CDK bootstrap qualifier")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a check cannot run, too")
    parser.add_argument("--print-policy", action="store_true",
                        help="print the IAM policy the checks need (JSON) and exit; no AWS call")


def run(args: argparse.Namespace, *, session: Any = None,
        docker: Callable[[], tuple[bool, str]] | None = None) -> int:
    import boto3

    from ml_tools.runtime import ToolError

    cfg = _load(args)
    session = session or boto3.session.Session()
    region = args.region or cfg.region or session.region_name
    if region is None:
        raise ToolError("no AWS region: pass --region REGION, pin region in the environment, or set AWS_REGION")
    if args.print_policy:
        print(json.dumps(environment_policy(cfg, region, cfg.account or "<account>", args.qualifier), indent=2))
        return 0
    _check_services(cfg, region, session)
    clients: dict[tuple[str, str], Any] = {}

    def client(service: str, where: str | None = None) -> Any:
        key = (service, where or region)
        if key not in clients:
            clients[key] = guard(session.client(service, region_name=key[1]))
        return clients[key]

    account = client("sts").get_caller_identity()["Account"]  # no credentials: exit 2 (ml_tools.__main__)
    ctx = Context(cfg, region, account, client, docker or docker_info, args.qualifier)
    rows: list[Row] = [row for check in CHECKS for row in check(ctx)]
    print(render(cfg.environment, account, region, rows))
    failed = [r for r in rows if r.status == FAIL or (args.strict and r.status == CANNOT)]
    return 1 if failed else 0


def _load(args: argparse.Namespace) -> Any:
    """The validated environment; an unknown environment or a bad setting is one line (exit 2)."""
    from config import ConfigError, load_config
    from ml_tools.runtime import ToolError, set_overrides

    try:
        return load_config(args.env, overlay_file=getattr(args, "config", None),
                           overrides=set_overrides(getattr(args, "set", [])),
                           env_source="--env")
    except ConfigError as err:
        raise ToolError(" ".join(str(err).split("\n  - ")).replace("\n", " ")) from err


def _check_services(cfg: Any, region: str, session: Any) -> None:
    from ml_tools.runtime import ToolError

    used = {"sagemaker": bool(cfg.endpoint_stacks()),
            "batch": cfg.training.enabled or (cfg.stable_diffusion.enabled and cfg.stable_diffusion.compile.enabled)}
    for service, needed in used.items():
        if needed and region not in session.get_available_regions(service, partition_name=partition_of(region)):
            name = {"sagemaker": "Amazon SageMaker", "batch": "AWS Batch"}[service]
            raise ToolError(f"region {region!r} has no {name}, which environment {cfg.environment!r} uses; "
                            f"regions with it: aws ec2 describe-regions, or choose another with --region")


def partition_of(region: str) -> str:
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"


def environment_policy(cfg: Any, region: str, account: str, qualifier: str = DEFAULT_QUALIFIER) -> dict:
    """The IAM policy ``python -m ml_tools preflight --env <cfg.environment>`` needs in ``account``/``region``."""
    sd = cfg.stable_diffusion
    extra = [sd.compiled_artifacts_url.removeprefix("s3://").split("/")[0]] if sd.compiled_artifacts_url else []
    return policy_document(partition=partition_of(region), account=account, region=region,
                           stacks=f"{cfg.stack_prefix}-{cfg.environment}-", qualifier=qualifier,
                           ecr_repositories=known_repositories(cfg), extra_buckets=extra)


__all__ = ["configure", "run", "environment_policy", "Row"]
