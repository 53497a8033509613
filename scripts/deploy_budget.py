#!/usr/bin/env python3
"""How long one `make deploy` can take, worst case, and whether the pipeline allows it.

    python scripts/deploy_budget.py cdk.out [--env prod] [--workflow .github/workflows/deploy.yml]

Reads the synthesized templates (what CloudFormation will run, after every default was applied),
computes the longest a deploy of the assembly can run before CloudFormation settles, and checks the
deploy job of ``--env`` in the workflow: its AWS session (``role-duration-seconds``) must outlast the
deploy, its ``timeout-minutes`` the whole job, within GitHub's 6-hour job limit and the deploy
role's ``max_session_hours`` (bootstrap/github.toml, at most 12 h). Exit 1 with one line per
shortfall, naming the setting to change. The formula and its assumptions: docs/continuous-delivery.md,
"How long a deploy may take".

Per endpoint (``AWS::SageMaker::Endpoint`` and each ``AWS::SageMaker::InferenceComponent``):

    start    = LAUNCH + download timeout + startup health-check timeout     (unset: the API maximum, 3600 s)
    blue/green: update = start + bake x traffic steps + termination wait;  rollback = LAUNCH
    rolling:    update = batches x (start + bake);                        rollback = rollback batches x start
    no deployment config (SageMaker's own update): update = start;        rollback = start
    worst    = min(update, MaximumExecutionTimeoutInSeconds if set) + rollback

Per stack: STACK_BASE + the longest custom resource (its ServiceTimeout, else CloudFormation's 3600 s)
+ the longest endpoint (CloudFormation updates resources that don't reference each other in parallel).
Per environment: the longest chain of stacks through their dependencies (`cdk deploy --concurrency`
deploys independent stacks at the same time).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Assumptions, not API facts (the docs say how the first deploy measures them):
LAUNCH_SECONDS = 600  # SageMaker launching an instance and pulling the image, before the download timer
STACK_BASE_SECONDS = 900  # everything else a stack creates or updates (IAM, alarms, Lambda, VPC ...)
SETUP_SECONDS = 600  # checkout, Python, npm ci, before the credentials are fetched
SYNTH_PUBLISH_SECONDS = 1200  # synth, image builds and asset uploads, under the deploy credentials
VERIFY_SECONDS = 900  # make verify after the deploy (its own role and session)
# API facts:
TIMEOUT_MAX_SECONDS = 3600  # ModelDataDownload/ContainerStartupHealthCheck: 60-3600 s, no documented default
CUSTOM_RESOURCE_DEFAULT_SECONDS = 3600  # CloudFormation's custom resource timeout when ServiceTimeout is unset
GITHUB_JOB_LIMIT_MINUTES = 360  # a GitHub-hosted runner's job limit
SESSION_LIMIT_HOURS = 12  # IAM MaxSessionDuration
SECTIONS = {"Llm": "llm", "MultiModel": "multi_model", "StableDiffusion": "stable_diffusion", "Training": "training"}


@dataclass(frozen=True)
class Update:
    """The worst case of one endpoint or inference component."""

    name: str
    strategy: str
    update: int
    rollback: int
    detail: str

    @property
    def seconds(self) -> int:
        return self.update + self.rollback


@dataclass
class StackBudget:
    name: str
    depends_on: list[str]
    updates: list[Update] = field(default_factory=list)
    custom_resource_seconds: int = 0

    @property
    def seconds(self) -> int:
        return STACK_BASE_SECONDS + self.custom_resource_seconds + max((u.seconds for u in self.updates), default=0)


def _resource_id(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


def _start(download: int | None, startup: int | None) -> tuple[int, str]:
    d = TIMEOUT_MAX_SECONDS if download is None else int(download)
    s = TIMEOUT_MAX_SECONDS if startup is None else int(startup)
    return LAUNCH_SECONDS + d + s, f"launch {LAUNCH_SECONDS} + download {d} + startup {s}"


def _batches(size: dict[str, Any], count: int) -> int:
    value = int(size["Value"])
    if size["Type"] == "CAPACITY_PERCENT":
        return math.ceil(100 / value)
    return math.ceil(count / value)


def _rolling(name: str, policy: dict[str, Any], start: int, text: str, count: int) -> Update:
    bake = int(policy.get("WaitIntervalInSeconds", 0))
    batches = _batches(policy["MaximumBatchSize"], count)
    back = _batches(policy.get("RollbackMaximumBatchSize", {"Type": "CAPACITY_PERCENT", "Value": 100}), count)
    update = batches * (start + bake)
    update = min(update, int(policy.get("MaximumExecutionTimeoutInSeconds", update)))
    return Update(name, "rolling", update, back * start,
                  f"{batches} batch(es) x ({text} + bake {bake}); rollback {back} x {start}")


def _scaled_ceiling(resources: dict[str, Any], lid: str, count: int) -> int:
    """An autoscaled variant or component can be updated at its scaling target's maximum, not its start count."""
    for target in resources.values():
        if target["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget" and lid in json.dumps(target["Properties"]):
            count = max(count, int(target["Properties"]["MaxCapacity"]))
    return count


def _endpoint(template: dict[str, Any], lid: str) -> Update:
    resources = template["Resources"]
    props = resources[lid]["Properties"]
    config = resources.get(_resource_id(props.get("EndpointConfigName")) or "", {}).get("Properties", {})
    variants = config.get("ProductionVariants", [])
    starts = []
    count = 1
    for v in variants:
        # A variant without a model hosts inference components: nothing to download or start on it.
        download, startup = (v.get("ModelDataDownloadTimeoutInSeconds"), v.get("ContainerStartupHealthCheckTimeoutInSeconds"))
        starts.append(_start(download, startup) if "ModelName" in v else (LAUNCH_SECONDS, f"launch {LAUNCH_SECONDS}"))
        count = max(count, int(v.get("InitialInstanceCount", 1)), int(v.get("ManagedInstanceScaling", {}).get("MaxInstanceCount", 1)))
    count = _scaled_ceiling(resources, lid, count)
    start, text = max(starts, default=(LAUNCH_SECONDS, f"launch {LAUNCH_SECONDS}"))
    deployment = props.get("DeploymentConfig", {})
    if "RollingUpdatePolicy" in deployment:
        return _rolling(lid, deployment["RollingUpdatePolicy"], start, text, count)
    if "BlueGreenUpdatePolicy" in deployment:
        policy = deployment["BlueGreenUpdatePolicy"]
        routing = policy["TrafficRoutingConfiguration"]
        bake = int(routing.get("WaitIntervalInSeconds", 0))
        steps = math.ceil(100 / int(routing["LinearStepSize"]["Value"])) if routing["Type"] == "LINEAR" else 1
        term = int(policy.get("TerminationWaitInSeconds", 0))
        update = start + steps * bake + term
        update = min(update, int(policy.get("MaximumExecutionTimeoutInSeconds", update)))
        # A rollback shifts traffic back to the old fleet, still running through the bakes.
        return Update(lid, "blue/green", update, LAUNCH_SECONDS,
                      f"{text} + bake {bake} x {steps} + termination wait {term}; rollback {LAUNCH_SECONDS}")
    return Update(lid, "SageMaker default", start, start, f"{text}; rollback {start}")


def _component(template: dict[str, Any], lid: str) -> Update:
    props = template["Resources"][lid]["Properties"]
    startup = props.get("Specification", {}).get("StartupParameters", {})
    start, text = _start(startup.get("ModelDataDownloadTimeoutInSeconds"),
                         startup.get("ContainerStartupHealthCheckTimeoutInSeconds"))
    rolling = props.get("DeploymentConfig", {}).get("RollingUpdatePolicy")
    if rolling:
        copies = _scaled_ceiling(template["Resources"], lid, int(props.get("RuntimeConfig", {}).get("CopyCount", 1)))
        return _rolling(lid, rolling, start, text, copies)
    return Update(lid, "SageMaker default", start, start, f"{text}; rollback {start}")


def stack_budget(name: str, template: dict[str, Any], depends_on: list[str]) -> StackBudget:
    budget = StackBudget(name, depends_on)
    for lid, resource in template.get("Resources", {}).items():
        kind = resource["Type"]
        if kind == "AWS::SageMaker::Endpoint":
            budget.updates.append(_endpoint(template, lid))
        elif kind == "AWS::SageMaker::InferenceComponent":
            budget.updates.append(_component(template, lid))
        elif kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
            timeout = int(resource["Properties"].get("ServiceTimeout", CUSTOM_RESOURCE_DEFAULT_SECONDS))
            budget.custom_resource_seconds = max(budget.custom_resource_seconds, timeout)
    return budget


def assembly_budget(assembly: Path) -> list[StackBudget]:
    """One budget per stack of the cloud assembly ``assembly`` (a cdk.out directory)."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    stacks = {k: v for k, v in manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack"}
    return [stack_budget(name, json.loads((assembly / a["properties"]["templateFile"]).read_text()),
                         [d for d in a.get("dependencies", []) if d in stacks])
            for name, a in stacks.items()]


def assembly_env(stacks: list[StackBudget]) -> str | None:
    """The environment whose stacks the assembly holds (stack names are <stack_prefix>-<env>-<name>)."""
    from config import known_environments

    found = [e for e in known_environments() if stacks and all(f"-{e}-" in s.name for s in stacks)]
    return found[0] if len(found) == 1 else None


def critical_path(stacks: list[StackBudget]) -> tuple[int, list[str]]:
    """The longest chain through the stacks' dependencies: its seconds and stack names."""
    by_name = {s.name: s for s in stacks}
    memo: dict[str, tuple[int, list[str]]] = {}

    def longest(name: str) -> tuple[int, list[str]]:
        if name not in memo:
            before = max((longest(d) for d in by_name[name].depends_on), default=(0, []))
            memo[name] = (before[0] + by_name[name].seconds, [*before[1], name])
        return memo[name]

    return max((longest(s.name) for s in stacks), default=(0, []))


@dataclass(frozen=True)
class Needs:
    deploy_seconds: int
    path: list[str]

    @property
    def session_seconds(self) -> int:
        return SYNTH_PUBLISH_SECONDS + self.deploy_seconds

    @property
    def timeout_minutes(self) -> int:
        return math.ceil((SETUP_SECONDS + self.session_seconds + VERIFY_SECONDS) / 60)


def needs(stacks: list[StackBudget]) -> Needs:
    seconds, path = critical_path(stacks)
    return Needs(seconds, path)


def deploy_job(workflow: dict[str, Any], env: str) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """(job id, job, its deploy credentials step's `with`) of the job that deploys ``env``: the last
    configure-aws-credentials step before `make deploy` (preflight's read-only role comes earlier, verify's later)."""
    for job_id, job in workflow.get("jobs", {}).items():
        if job.get("environment") != env:
            continue
        credentials: dict[str, Any] = {}
        for step in job.get("steps", []):
            if "configure-aws-credentials" in step.get("uses", ""):
                credentials = step.get("with", {})
            elif "make deploy" in step.get("run", ""):
                return job_id, job, credentials
        return job_id, job, {}
    return None


def max_session_hours(bootstrap_config: Path) -> int:
    from bootstrap.config import GitHubDeployConfig

    data = tomllib.loads(bootstrap_config.read_text())
    return int(data.get("max_session_hours", GitHubDeployConfig.__dataclass_fields__["max_session_hours"].default))


def _fix(stacks: list[StackBudget], path: list[str]) -> str:
    longest = max((s for s in stacks if s.name in path), key=lambda s: s.seconds)
    section = SECTIONS.get(longest.name.rsplit("-", 1)[-1])
    if section is None or not longest.updates:
        return f"{longest.name} is the longest stack"
    return (f"or shorten {longest.name}: {section}'s container_startup_health_check_timeout_seconds and "
            "model_data_download_timeout_seconds, or deployment.wait_interval_seconds / termination_wait_seconds / "
            "batch_size")


def check(stacks: list[StackBudget], env: str, workflow_file: Path, bootstrap_config: Path) -> list[str]:
    """Every shortfall of the workflow's deploy job for ``env`` against the assembly's worst case."""
    import yaml

    need = needs(stacks)
    where = workflow_file.name
    found = deploy_job(yaml.safe_load(workflow_file.read_text()), env)
    if found is None:
        return [f"{where}: no job names the GitHub environment {env!r}"]
    job_id, job, creds = found
    fix = _fix(stacks, need.path)
    problems = []
    session = creds.get("role-duration-seconds")
    hours = max_session_hours(bootstrap_config)
    if session is None:
        problems.append(f"{where} job {job_id!r}: its configure-aws-credentials step before `make deploy` sets no "
                        f"role-duration-seconds (default 3600 s); the worst case needs {need.session_seconds} s")
    else:
        if int(session) < need.session_seconds:
            problems.append(f"{where} job {job_id!r}: role-duration-seconds = {session} is below the worst case "
                            f"{need.session_seconds} s ({' -> '.join(need.path)}); raise it, {fix}")
        if int(session) > hours * 3600:
            problems.append(f"{where} job {job_id!r}: role-duration-seconds = {session} exceeds the deploy role's "
                            f"max_session_hours = {hours} ({bootstrap_config.name}); raise max_session_hours "
                            f"(at most {SESSION_LIMIT_HOURS}) and redeploy the bootstrap stack")
    timeout = job.get("timeout-minutes")
    if timeout is None or int(timeout) < need.timeout_minutes:
        problems.append(f"{where} job {job_id!r}: timeout-minutes = {timeout} is below the worst case "
                        f"{need.timeout_minutes} min; raise it, {fix}")
    if need.timeout_minutes > GITHUB_JOB_LIMIT_MINUTES:
        problems.append(f"{env}: the worst case {need.timeout_minutes} min exceeds GitHub's {GITHUB_JOB_LIMIT_MINUTES}-"
                        f"minute job limit; {fix.removeprefix('or ')}, or deploy the stacks in separate jobs")
    elif timeout is not None and int(timeout) > GITHUB_JOB_LIMIT_MINUTES:
        problems.append(f"{where} job {job_id!r}: timeout-minutes = {timeout} exceeds GitHub's "
                        f"{GITHUB_JOB_LIMIT_MINUTES}-minute job limit")
    return problems


def report(stacks: list[StackBudget]) -> str:
    need = needs(stacks)
    lines = []
    for s in stacks:
        lines.append(f"{s.name}: {s.seconds} s (base {STACK_BASE_SECONDS} + custom resources "
                     f"{s.custom_resource_seconds} + longest endpoint)")
        lines.extend(f"  {u.name} [{u.strategy}]: {u.seconds} s = {u.detail}" for u in s.updates)
    lines.append(f"longest chain {' -> '.join(need.path)}: {need.deploy_seconds} s; session >= "
                 f"{need.session_seconds} s, job timeout >= {need.timeout_minutes} min")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assembly", type=Path)
    parser.add_argument("--env", help="default: the environment whose stacks the assembly holds")
    parser.add_argument("--workflow", type=Path, default=ROOT / ".github/workflows/deploy.yml")
    parser.add_argument("--bootstrap-config", type=Path, default=ROOT / "bootstrap/github.toml")
    args = parser.parse_args(argv)
    stacks = assembly_budget(args.assembly)
    held = assembly_env(stacks)
    env = args.env or held
    if env is None or (held is not None and env != held):
        print(f"deploy budget: {args.assembly} holds the stacks of {held or 'no single environment'}; "
              f"got --env {args.env}", file=sys.stderr)
        return 1
    print(report(stacks))
    problems = check(stacks, env, args.workflow, args.bootstrap_config)
    for problem in problems:
        print(f"deploy budget: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
