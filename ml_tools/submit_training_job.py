"""Submit a job to the Trainium fair-share queue under a team's share.

    python -m ml_tools.submit_training_job --queue QUEUE --job-definition DEFINITION \\
        --share teamA --nodes 4 [--job-name NAME] [--env KEY=VALUE ...] [--command "..."] [--region REGION]

QUEUE and DEFINITION are names or ARNs (the training stack outputs the ARNs).
``--share`` is required: a fair-share queue rejects jobs without a share identifier,
and IAM (``batch:ShareIdentifier``) decides which share a team may use.
``--nodes`` overrides the node count of a multi-node job definition; without it the
definition's count is used. ``--env`` / ``--command`` reach every node of a multi-node job
(``nodeOverrides``, target ``0:``) or the container of a single-node one: the tool reads the
definition's type first (``batch:DescribeJobDefinitions``), since Batch accepts only
``nodeOverrides`` for a multi-node definition and only ``containerOverrides`` otherwise.
Every job is tagged ``ShareIdentifier`` and ``RunId`` (``--env RUN_ID=...`` or the job name),
propagated to its ECS tasks, so Batch split cost allocation can attribute its cost.
Prints the submitted job as JSON.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from typing import Any, Sequence

SHARE_PATTERN = re.compile(r"[A-Za-z0-9]{1,255}")
JOB_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_NODES = 256


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ml_tools.submit_training_job", description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", required=True, help="job queue name or ARN")
    parser.add_argument("--job-definition", required=True, help="job definition name[:revision] or ARN")
    parser.add_argument("--share", required=True, help="share identifier of your team (letters and digits)")
    parser.add_argument("--nodes", type=int, help=f"nodes of a multi-node job (1-{MAX_NODES})")
    parser.add_argument("--job-name", help="default: <share>-<UTC time>")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment, repeatable")
    parser.add_argument("--command", help="override the container command (one shell-quoted string)")
    parser.add_argument("--scheduling-priority", type=int, help="priority within the share (0-9999, higher first)")
    parser.add_argument("--region", help="AWS region (default: the SDK's)")
    args = parser.parse_args(argv)
    problems = []
    if not SHARE_PATTERN.fullmatch(args.share):
        problems.append(f"--share: got {args.share!r}, expected 1-255 letters and digits")
    if args.nodes is not None and not 1 <= args.nodes <= MAX_NODES:
        problems.append(f"--nodes: got {args.nodes}, allowed range: 1 to {MAX_NODES}")
    if args.job_name is not None and not JOB_NAME_PATTERN.fullmatch(args.job_name):
        problems.append(f"--job-name: got {args.job_name!r}, expected up to 128 letters, digits, '-', '_'")
    if args.scheduling_priority is not None and not 0 <= args.scheduling_priority <= 9999:
        problems.append(f"--scheduling-priority: got {args.scheduling_priority}, allowed range: 0 to 9999")
    if args.command is not None:
        try:
            if not shlex.split(args.command):
                problems.append("--command: got an empty command")
        except ValueError as exc:
            problems.append(f"--command: cannot split {args.command!r}: {exc}")
    for item in args.env:
        key, sep, _ = item.partition("=")
        if not sep or not ENV_NAME_PATTERN.fullmatch(key) or key.startswith("AWS_BATCH"):
            problems.append(f"--env: got {item!r}, expected KEY=VALUE with a KEY not starting with AWS_BATCH")
    if problems:
        parser.error("; ".join(problems))
    return args


class SubmitError(Exception):
    """A request Batch would refuse, found before sending it."""


def definition_type(client: Any, job_definition: str) -> str:
    """``multinode`` or ``container``: the type of the definition SubmitJob will use."""
    if job_definition.startswith("arn:") or ":" in job_definition:
        found = client.describe_job_definitions(jobDefinitions=[job_definition])["jobDefinitions"]
    else:  # a bare name means its latest active revision
        found = client.describe_job_definitions(jobDefinitionName=job_definition, status="ACTIVE")["jobDefinitions"]
    if not found:
        from ml_tools.runtime import TRAINING_STACK_HINT

        raise SubmitError(f"--job-definition: {job_definition!r} not found (or not ACTIVE); {TRAINING_STACK_HINT}")
    return max(found, key=lambda d: d.get("revision", 0))["type"]


def build_request(args: argparse.Namespace, now: float | None = None, *, multi_node: bool | None = None) -> dict[str, Any]:
    """The SubmitJob request: share identifier and cost tags always, overrides of the right kind.

    ``multi_node`` defaults to whether ``--nodes`` was given."""
    multi_node = args.nodes is not None if multi_node is None else multi_node
    if args.nodes is not None and not multi_node:
        raise SubmitError("--nodes: the job definition is single-node; only a multi-node definition takes a node count")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    job_name = args.job_name or f"{args.share}-{stamp}"
    env = dict(item.partition("=")[::2] for item in args.env)
    request: dict[str, Any] = {
        "jobName": job_name,
        "jobQueue": args.queue,
        "jobDefinition": args.job_definition,
        "shareIdentifier": args.share,
        "tags": {"ShareIdentifier": args.share, "RunId": env.get("RUN_ID") or job_name},
        "propagateTags": True,
    }
    if args.scheduling_priority is not None:
        request["schedulingPriorityOverride"] = args.scheduling_priority
    overrides: dict[str, Any] = {}
    if args.env:
        overrides["environment"] = [{"name": k, "value": v} for k, _, v in (item.partition("=") for item in args.env)]
    if args.command:
        overrides["command"] = shlex.split(args.command)
    if multi_node:
        node_overrides: dict[str, Any] = {}
        if args.nodes is not None:
            node_overrides["numNodes"] = args.nodes
        if overrides:
            node_overrides["nodePropertyOverrides"] = [{"targetNodes": "0:", "containerOverrides": overrides}]
        if node_overrides:
            request["nodeOverrides"] = node_overrides
    elif overrides:
        request["containerOverrides"] = overrides
    return request


def main(argv: Sequence[str] | None = None, client: Any = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if client is None:
        import boto3

        client = boto3.client("batch", region_name=args.region)
    try:
        multi_node = definition_type(client, args.job_definition) == "multinode"
        request = build_request(args, multi_node=multi_node)
    except SubmitError as exc:
        print(f"submit-training-job: {exc}", file=sys.stderr)  # the prefix every tool's one-line errors carry
        return 2
    response = client.submit_job(**request)
    print(json.dumps({k: response[k] for k in ("jobId", "jobName", "jobArn") if k in response}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
