#!/usr/bin/env python3
"""CloudFormation drift detection for every stack of a synthesized environment; fails loudly on drift.

    python scripts/drift_check.py [cdk.out] [--summary FILE]        (make drift ENV=prod)

The stacks are those of the cloud assembly (``make synth ENV=...`` writes it), so the check covers
exactly what the app deploys for that environment. For each stack it assumes the stack's CDK
lookup role (``cdk-<qualifier>-lookup-role-<account>-<region>``, read-only: ReadOnlyAccess without
kms:Decrypt, which includes drift detection) from the current credentials, like the CDK CLI does for
reads, starts CloudFormation drift detection, waits for it, and lists every resource whose live
configuration differs from its template (MODIFIED) or that was removed outside CloudFormation
(DELETED), with the property paths that differ. A stack of the assembly that is not deployed fails
too: the environment is not what main describes. A stack in the middle of an operation
(``*_IN_PROGRESS``: a deploy, a rollback) is skipped with a message, not checked: CloudFormation
runs drift detection only on a settled stack; the next scheduled check covers it.

Exit status: 0 no drift (skipped stacks included), 1 drift / missing stack / detection failed,
2 unusable assembly.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from botocore.exceptions import ClientError

DRIFTED_STATES = ["MODIFIED", "DELETED"]


@dataclass(frozen=True)
class StackTarget:
    """One stack of the assembly: where it lives and which role reads it."""

    name: str
    account: str
    region: str
    lookup_role_arn: str | None


@dataclass
class StackResult:
    stack: str
    status: str  # IN_SYNC, DRIFTED, NOT_DEPLOYED, DETECTION_FAILED, SKIPPED
    detail: str = ""
    resources: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status not in ("IN_SYNC", "SKIPPED")


def stacks_of(assembly: Path, caller_account: Callable[[], str]) -> list[StackTarget]:
    """The CloudFormation stacks of ``assembly/manifest.json``, placeholders resolved as the CDK CLI does."""
    manifest_file = assembly / "manifest.json"
    if not manifest_file.is_file():
        raise SystemExit(f"drift_check: {manifest_file} not found; run `make synth ENV=...` first")
    manifest = json.loads(manifest_file.read_text())
    targets = []
    for artifact_id, artifact in sorted(manifest.get("artifacts", {}).items()):
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        account, region = artifact["environment"].removeprefix("aws://").split("/", 1)
        if account == "unknown-account":
            account = caller_account()
        if region == "unknown-region":
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
            if not region:
                raise SystemExit(f"drift_check: {artifact_id} has no region; set AWS_REGION or pin the environment")
        props = artifact.get("properties", {})
        role = (props.get("lookupRole") or {}).get("arn")
        if role:
            role = (role.replace("${AWS::Partition}", _partition(region)).replace("${AWS::AccountId}", account)
                    .replace("${AWS::Region}", region))
        targets.append(StackTarget(props.get("stackName", artifact_id), account, region, role))
    if not targets:
        raise SystemExit(f"drift_check: no CloudFormation stacks in {manifest_file}")
    return targets


def check_stack(cfn: Any, stack: str, *, poll_seconds: float = 5.0, timeout_seconds: float = 1800,
                sleep: Callable[[float], None] = time.sleep) -> StackResult:
    """Run drift detection on one stack with a CloudFormation client and report what drifted."""
    try:
        status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        if status.endswith("_IN_PROGRESS"):
            return _mid_operation(stack, status)
        detection = cfn.detect_stack_drift(StackName=stack)["StackDriftDetectionId"]
    except ClientError as exc:
        message = exc.response["Error"].get("Message", "")
        if "does not exist" in message:
            return StackResult(stack, "NOT_DEPLOYED", "the stack is in the assembly but not deployed")
        # The stack may have started an operation since DescribeStacks answered: say so rather than fail.
        status = _status_or_none(cfn, stack)
        if status is not None and status.endswith("_IN_PROGRESS"):
            return _mid_operation(stack, status)
        return StackResult(stack, "DETECTION_FAILED", f"{exc.response['Error'].get('Code', 'error')}: {message}")
    waited = 0.0
    while True:
        status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection)
        if status["DetectionStatus"] != "DETECTION_IN_PROGRESS":
            break
        if waited >= timeout_seconds:
            return StackResult(stack, "DETECTION_FAILED", f"detection still running after {timeout_seconds:.0f} s")
        sleep(poll_seconds)
        waited += poll_seconds
    if status["DetectionStatus"] == "DETECTION_FAILED" and status.get("StackDriftStatus") != "DRIFTED":
        return StackResult(stack, "DETECTION_FAILED", status.get("DetectionStatusReason", "no reason given"))
    if status.get("StackDriftStatus") == "IN_SYNC":
        return StackResult(stack, "IN_SYNC")
    resources = []
    request: dict[str, Any] = {"StackName": stack, "StackResourceDriftStatusFilters": DRIFTED_STATES}
    while True:  # botocore has no paginator for this call: follow NextToken by hand
        page = cfn.describe_stack_resource_drifts(**request)
        for drift in page["StackResourceDrifts"]:
            paths = ", ".join(d["PropertyPath"] for d in drift.get("PropertyDifferences", []))
            resources.append(f"{drift['LogicalResourceId']} ({drift['ResourceType']}) "
                             f"{drift['StackResourceDriftStatus']}{': ' + paths if paths else ''}")
        if not page.get("NextToken"):
            break
        request["NextToken"] = page["NextToken"]
    return StackResult(stack, "DRIFTED", f"{len(resources)} resource(s) drifted", resources)


def _mid_operation(stack: str, status: str) -> StackResult:
    return StackResult(stack, "SKIPPED", f"stack status {status}: drift detection runs on a settled stack only; "
                       "not checked this time (run the check again once the operation has ended)")


def _status_or_none(cfn: Any, stack: str) -> str | None:
    try:
        return cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    except ClientError:
        return None


def markdown(results: list[StackResult]) -> str:
    lines = ["### Drift check", "", "| stack | status | detail |", "|---|---|---|"]
    lines += [f"| {r.stack} | {'**' + r.status + '**' if r.failed else r.status} | {r.detail} |" for r in results]
    for r in results:
        if r.resources:
            lines += ["", f"{r.stack}:", *[f"- {line}" for line in r.resources]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, *, session_factory: Callable[[], Any] | None = None,
         sleep: Callable[[float], None] = time.sleep) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assembly", nargs="?", default="cdk.out", type=Path)
    parser.add_argument("--summary", type=Path, help="append a Markdown report to this file")
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)

    if session_factory is None:
        import boto3

        session_factory = boto3.Session
    base = session_factory()
    targets = stacks_of(args.assembly, lambda: base.client("sts").get_caller_identity()["Account"])
    sessions: dict[str | None, Any] = {}
    results = []
    for target in targets:
        if target.lookup_role_arn not in sessions:
            sessions[target.lookup_role_arn] = _assume(base, target.lookup_role_arn, session_factory)
        cfn = sessions[target.lookup_role_arn].client("cloudformation", region_name=target.region)
        result = check_stack(cfn, target.name, poll_seconds=args.poll_seconds, sleep=sleep)
        results.append(result)
        print(f"drift_check: {result.stack}: {result.status}{' - ' + result.detail if result.detail else ''}")
        for line in result.resources:
            print(f"  {line}")
        if os.environ.get("GITHUB_ACTIONS") == "true" and (result.failed or result.status == "SKIPPED"):
            level = "error" if result.failed else "warning"
            print(f"::{level} title=Drift check: {result.stack}::{result.status} {result.detail}")
    if args.summary:
        with args.summary.open("a", encoding="utf-8") as out:
            out.write(markdown(results))
    failed = [r.stack for r in results if r.failed]
    if failed:
        print(f"drift_check: FAILED for {', '.join(failed)}", file=sys.stderr)
        return 1
    skipped = [r.stack for r in results if r.status == "SKIPPED"]
    print(f"drift_check: {len(results) - len(skipped)} stack(s) in sync"
          + (f", {len(skipped)} skipped mid-operation ({', '.join(skipped)})" if skipped else ""))
    return 0


def _assume(base: Any, role_arn: str | None, session_factory: Callable[..., Any]) -> Any:
    if role_arn is None:
        return base
    creds = base.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="drift-check")["Credentials"]
    return session_factory(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                           aws_session_token=creds["SessionToken"])


def _partition(region: str) -> str:
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"


if __name__ == "__main__":
    sys.exit(main())
