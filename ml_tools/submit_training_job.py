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

Refused before any host starts, in one line naming the value and the limit: a node count
above what the queue's compute environment holds (its ``maxvCpus`` over the instance's
vCPUs), an ahead-of-time compile whose node count differs from the training's (the
compiled graphs carry the collective replica groups of one topology; ``--training-nodes``
names the training's when it is not the definition's), and a program of the image's
runtime (``-m trainium_runtime.<module>`` or a path under ``/opt/runtime/trainium_runtime/``)
that does not exist.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

SHARE_PATTERN = re.compile(r"[A-Za-z0-9]{1,255}")
JOB_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_NODES = 256
# What the training image holds under /opt/runtime/trainium_runtime (the Dockerfile copies it).
RUNTIME = Path(__file__).resolve().parents[1] / "ml_constructs" / "trainium_batch" / "runtime"
IMAGE_RUNTIME = "/opt/runtime/trainium_runtime/"
# vCPUs of the Trainium instance types (EC2 instance type pages).
INSTANCE_VCPUS = {"trn1.32xlarge": 128, "trn1n.32xlarge": 128, "trn1.2xlarge": 8}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ml_tools.submit_training_job", description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", required=True, help="job queue name or ARN")
    parser.add_argument("--job-definition", required=True, help="job definition name[:revision] or ARN")
    parser.add_argument("--share", required=True, help="share identifier of your team (letters and digits)")
    parser.add_argument("--nodes", type=int, help=f"nodes of a multi-node job (1-{MAX_NODES})")
    parser.add_argument("--training-nodes", type=int,
                        help="compile only: the node count the training will run with (default: the definition's)")
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
        else:
            problem = program_problem(shlex.split(args.command))
            if problem:
                problems.append(f"--command: {problem}")
    for item in args.env:
        key, sep, _ = item.partition("=")
        if not sep or not ENV_NAME_PATTERN.fullmatch(key) or key.startswith("AWS_BATCH"):
            problems.append(f"--env: got {item!r}, expected KEY=VALUE with a KEY not starting with AWS_BATCH")
    if problems:
        parser.error("; ".join(problems))
    return args


def program_problem(command: Sequence[str]) -> str | None:
    """Why the runtime program after ``--`` does not exist in the image, or None (also for programs of your own)."""
    if "--" not in command:
        return None
    program = list(command[command.index("--") + 1:])
    if program[:1] == ["-m"] and len(program) > 1 and program[1].startswith("trainium_runtime."):
        module = program[1].removeprefix("trainium_runtime.")
        if not (RUNTIME / f"{module.replace('.', '/')}.py").is_file():
            known = ", ".join(sorted(p.stem for p in RUNTIME.glob("*.py") if not p.stem.startswith("_")))
            return f"program -m {program[1]} does not exist in the training image; its runtime has: {known}"
    elif program and program[0].startswith(IMAGE_RUNTIME):
        if not (RUNTIME / program[0].removeprefix(IMAGE_RUNTIME)).is_file():
            return f"program {program[0]} does not exist in the training image ({IMAGE_RUNTIME} holds ml_constructs/trainium_batch/runtime)"
    return None


def is_compile(command: Sequence[str] | None) -> bool:
    return bool(command) and "trainium_runtime.entrypoint" in command and "compile" in command


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


def node_capacity(client: Any, queue: str) -> tuple[int, str] | None:
    """``(nodes, why)``: how many nodes the queue's compute environments hold, or None when unknown."""
    queues = client.describe_job_queues(jobQueues=[queue])["jobQueues"]
    if not queues:
        raise SubmitError(f"--queue: {queue!r} not found")
    arns = [entry["computeEnvironment"] for entry in queues[0].get("computeEnvironmentOrder", [])]
    best: tuple[int, str] | None = None
    for environment in client.describe_compute_environments(computeEnvironments=arns)["computeEnvironments"] if arns else []:
        resources = environment.get("computeResources") or {}
        vcpus = [INSTANCE_VCPUS[t] for t in resources.get("instanceTypes", []) if t in INSTANCE_VCPUS]
        if "maxvCpus" not in resources or not vcpus:
            continue
        nodes = resources["maxvCpus"] // max(vcpus)
        why = (f"compute environment {environment['computeEnvironmentName']} holds at most {nodes} nodes "
               f"(maxvCpus {resources['maxvCpus']} / {max(vcpus)} vCPUs per {resources['instanceTypes'][0]})")
        if best is None or nodes > best[0]:
            best = (nodes, why)
    return best


def definition_nodes(client: Any, job_definition: str) -> int | None:
    found = client.describe_job_definitions(jobDefinitions=[job_definition])["jobDefinitions"] if (
        job_definition.startswith("arn:") or ":" in job_definition) else client.describe_job_definitions(
        jobDefinitionName=job_definition, status="ACTIVE")["jobDefinitions"]
    if not found:
        return None
    return (max(found, key=lambda d: d.get("revision", 0)).get("nodeProperties") or {}).get("numNodes")


def topology_problems(args: argparse.Namespace, client: Any) -> list[str]:
    """A node count the compute environment cannot hold; a compile for another topology than training's."""
    problems = []
    command = shlex.split(args.command) if args.command else None
    nodes = args.nodes if args.nodes is not None else definition_nodes(client, args.job_definition)
    if nodes is not None:
        capacity = node_capacity(client, args.queue)
        if capacity is not None and nodes > capacity[0]:
            problems.append(f"--nodes: got {nodes}, but {capacity[1]}: the job would wait RUNNABLE forever")
    if is_compile(command) and args.nodes is not None:
        training = args.training_nodes if args.training_nodes is not None else definition_nodes(client, args.job_definition)
        if training is not None and training != args.nodes:
            problems.append(f"--nodes: got {args.nodes} for an ahead-of-time compile, but training runs on {training} "
                            "nodes: the compiled graphs hold the collective replica groups of one topology (a cache "
                            f"miss on any other); compile with --nodes {training}, or pass --training-nodes {args.nodes} "
                            "and train with that many")
    elif args.training_nodes is not None and not is_compile(command):
        problems.append("--training-nodes: only for an ahead-of-time compile (--command \"... entrypoint compile ...\")")
    return problems


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
        problems = topology_problems(args, client) if multi_node else []
        if problems:
            raise SubmitError("; ".join(problems))
        request = build_request(args, multi_node=multi_node)
    except SubmitError as exc:
        print(f"submit-training-job: {exc}", file=sys.stderr)  # the prefix every tool's one-line errors carry
        return 2
    response = client.submit_job(**request)
    print(json.dumps({k: response[k] for k in ("jobId", "jobName", "jobArn") if k in response}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
