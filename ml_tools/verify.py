"""Check an environment after a deploy: each endpoint runs the config the stacks deployed and answers.

    python -m ml_tools verify --env prod [--region us-east-1] [--no-invoke] [--wake]

For each enabled workload that serves endpoints, the stack's outputs name
each endpoint and the endpoint config that deploy created (no
names are typed by hand). Each endpoint must be ``InService`` with exactly that
config active: after a failed guarded update SageMaker rolls back on its own
so a different active config
means the new one never took traffic. Then one small request per endpoint
must be answered (skip with ``--no-invoke``). Exit 0 when all pass; 1 with one
line per failure otherwise; 2 for a configuration error.

An endpoint that hosts inference components also has, per component, a name output:
each component must be ``InService`` on that endpoint with the model the deploy gave it
(otherwise its update was rolled back), and the request names it
(``InferenceComponentName``). A component scaled to zero (no copy) passes and is
reported as such, not invoked: a request would start a copy and wait minutes for an
instance. ``--wake`` invokes it anyway and waits through the cold start (up to
``--cold-start-wait`` seconds).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

# The descriptions of each endpoint's two outputs, which end with the endpoint construct's path
# (ml_constructs.sagemaker.endpoint_base; repeated here so this tool never imports aws-cdk-lib).
ENDPOINT_NAME_OUTPUT = re.compile(r"SageMaker endpoint (?P<path>\S+)")
ENDPOINT_CONFIG_OUTPUT = re.compile(r"SageMaker endpoint config deployed to (?P<path>\S+)")
# ml_constructs.sagemaker.inference_components: "<description> <endpoint path>/<component> (<hint>)".
COMPONENT_OUTPUT = re.compile(r"SageMaker inference component (?P<path>\S+)/(?P<component>[^/\s]+) \(.*\)")
COMPONENT_MODEL_OUTPUT = re.compile(r"SageMaker model deployed to inference component (?P<path>\S+)/(?P<component>[^/\s]+)")
# Stack states that mean the last deploy did not complete (or is still running).
UNSETTLED_STACK_STATES = ("ROLLBACK", "IN_PROGRESS", "FAILED")


@dataclass(frozen=True)
class DeployedComponent:
    name: str
    model_name: str | None  # the model the deploy gave it (None: a stack deployed before that output existed)


@dataclass(frozen=True)
class DeployedEndpoint:
    workload: str
    stack: str
    path: str
    endpoint_name: str
    endpoint_config_name: str
    components: tuple[DeployedComponent, ...] = ()  # inference components; none for instance-hosted endpoints


@dataclass(frozen=True)
class ComponentState:
    """An inference component as SageMaker describes it."""

    name: str
    desired_copies: int
    current_copies: int

    @property
    def scaled_to_zero(self) -> bool:
        return self.current_copies == 0

    def describe(self) -> str:
        if self.desired_copies == 0 and self.current_copies == 0:
            return "scaled to zero (0 copies)"
        return f"{self.current_copies} of {self.desired_copies} copies running"


@dataclass
class Report:
    passed: list[str]
    failed: list[str]
    idle: list[str]  # components scaled to zero (passed, not invoked)


@dataclass
class Clients:
    cloudformation: Any
    sagemaker: Any
    runtime: Any


class VerifyError(Exception):
    """One check failed; the message says which and why."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="the environment (config/environments/<env>.toml)")
    parser.add_argument("--config", help="the overlay file given to `cdk deploy -c config=...`, if any")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a `-c set:KEY=VALUE` given to `cdk deploy` (repeatable)")
    parser.add_argument("--region", help="AWS region (default: the environment's region, else boto3's)")
    parser.add_argument("--no-invoke", action="store_true", help="skip the smoke invocations")
    parser.add_argument("--wake", action="store_true",
                        help="invoke inference components scaled to zero too, waiting through the cold start")
    parser.add_argument("--cold-start-wait", type=float, default=None, metavar="SECONDS",
                        help="with --wake: how long to wait for a component scaled to zero (default 900)")


def deployed_endpoints(cloudformation: Any, workload: str, stack_name: str) -> list[DeployedEndpoint]:
    """The endpoints one stack's last deploy created, from its outputs."""
    from botocore.exceptions import ClientError

    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as err:
        raise VerifyError(f"{stack_name}: not deployed in this account and region "
                          f"({err.response.get('Error', {}).get('Message', err)})") from err
    status = stack["StackStatus"]
    if any(marker in status for marker in UNSETTLED_STACK_STATES):
        raise VerifyError(f"{stack_name}: stack status {status}; the last deploy did not complete")
    names: dict[str, str] = {}
    configs: dict[str, str] = {}
    components: dict[tuple[str, str], str] = {}
    models: dict[tuple[str, str], str] = {}
    for output in stack.get("Outputs", []):
        description, value = output.get("Description", ""), output.get("OutputValue", "")
        if match := ENDPOINT_CONFIG_OUTPUT.fullmatch(description):
            configs[match["path"]] = value
        elif match := COMPONENT_OUTPUT.fullmatch(description):
            components[match["path"], match["component"]] = value
        elif match := COMPONENT_MODEL_OUTPUT.fullmatch(description):
            models[match["path"], match["component"]] = value
        elif match := ENDPOINT_NAME_OUTPUT.fullmatch(description):
            names[match["path"]] = value
    found = [DeployedEndpoint(workload, stack_name, path, names[path], configs[path], tuple(
                 DeployedComponent(name, models.get(key)) for key, name in sorted(components.items()) if key[0] == path))
             for path in names if path in configs]
    if not found:
        raise VerifyError(f"{stack_name}: no endpoint config outputs (a stack deployed by an older version: "
                          "deploy it again)")
    return sorted(found, key=lambda e: e.path)


def check_active_config(sagemaker: Any, endpoint: DeployedEndpoint) -> None:
    """InService, with the deployed endpoint config active."""
    described = sagemaker.describe_endpoint(EndpointName=endpoint.endpoint_name)
    status = described["EndpointStatus"]
    active = described.get("EndpointConfigName")
    if status != "InService":
        reason = described.get("FailureReason")
        raise VerifyError(f"{endpoint.endpoint_name}: status {status}, expected InService"
                          + (f" ({reason})" if reason else ""))
    if active != endpoint.endpoint_config_name:
        raise VerifyError(
            f"{endpoint.endpoint_name}: active endpoint config {active}, but the stack deployed "
            f"{endpoint.endpoint_config_name}: the update was rolled back (an alarm fired or the new fleet failed; "
            "see the endpoint's events and its alarms)" + _rollback_recovery(sagemaker, active)
        )


RUNBOOK = "docs/operations.md#after-a-rolled-back-update"


def _not_found(err: Any) -> bool:
    """SageMaker's answer for a config or model that does not exist: a ValidationException "Could not find ..."."""
    error = err.response.get("Error", {})
    return error.get("Code") == "ValidationException" and "could not find" in error.get("Message", "").lower()


# What IAM answers when the caller's policy lacks the action (SageMaker: AccessDeniedException).
_DENIED = {"AccessDenied", "AccessDeniedException"}


def _exists(call: Callable[[], Any]) -> bool | None:
    """Whether what ``call`` describes exists: False when SageMaker answers "Could not find ...", None when the
    caller may not describe it (access denied: the rollback diagnosis still stands, only this part is unknown);
    other errors propagate."""
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as err:
        if _not_found(err):
            return False
        if err.response.get("Error", {}).get("Code") in _DENIED:
            return None
        raise
    return True


def _cannot_tell(unknown: list[str], actions: list[str]) -> str:
    verb = "exists" if len(unknown) == 1 else "exist"
    return (f"cannot tell whether {' and '.join(unknown)} still {verb}: access denied (the role running verify "
            f"needs {' and '.join(sorted(set(actions)))}); if CloudFormation deleted it, recreate it under the "
            f"same name with its previous settings before the next deploy ({RUNBOOK})")


def _rollback_recovery(sagemaker: Any, active: str) -> str:
    """What to do about a rolled-back endpoint: whether the live config and its models still exist
    (CloudFormation, believing the update done, deletes the replaced ones), and the next step."""
    gone: list[str] = []
    unknown: list[str] = []
    denied: list[str] = []
    described: dict = {}

    def describe_config() -> None:
        described.update(sagemaker.describe_endpoint_config(EndpointConfigName=active))

    config = _exists(describe_config)
    if config is False:
        gone.append(f"endpoint config {active}")
    elif config is None:
        unknown.append(f"endpoint config {active} (and its models)")
        denied.append("sagemaker:DescribeEndpointConfig")
    for model in sorted({v["ModelName"] for v in described.get("ProductionVariants", []) if v.get("ModelName")}):
        found = _exists(lambda model=model: sagemaker.describe_model(ModelName=model))
        if found is False:
            gone.append(f"model {model}")
        elif found is None:
            unknown.append(f"model {model}")
            denied.append("sagemaker:DescribeModel")
    if gone:
        also = f"; {_cannot_tell(unknown, denied)}" if unknown else ""
        return (f". What runs no longer exists in SageMaker: {', '.join(gone)} (CloudFormation deletes what an update "
                "replaced once it thinks the update succeeded); every later update of this endpoint fails with "
                f"\"Could not find endpoint configuration\" until you recreate {' and '.join(gone)} under the same "
                f"name(s) with their previous settings, then fix the cause and deploy again ({RUNBOOK}){also}")
    if unknown:
        return f". The live config is {active}; {_cannot_tell(unknown, denied)}"
    return (f". The live config {active} and its models still exist: fix the cause and deploy again, or deploy "
            f"the previous commit so that the stack matches what runs ({RUNBOOK})")


def _asynchronous(sagemaker: Any, endpoint: DeployedEndpoint) -> bool:
    """Whether the deployed endpoint config serves asynchronous inference (AsyncInferenceConfig)."""
    described = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint.endpoint_config_name)
    return bool(described.get("AsyncInferenceConfig"))


def check_component(sagemaker: Any, endpoint: DeployedEndpoint, deployed: DeployedComponent) -> ComponentState:
    """InService, on this endpoint, with the deployed model; its copy counts (0: scaled to zero, not a failure)."""
    component = deployed.name
    described = sagemaker.describe_inference_component(InferenceComponentName=component)
    status = described["InferenceComponentStatus"]
    where = f"{endpoint.endpoint_name} / {component}"
    if status != "InService":
        reason = described.get("FailureReason")
        raise VerifyError(f"{where}: inference component status {status}, expected InService"
                          + (f" ({reason})" if reason else ""))
    if described.get("EndpointName") != endpoint.endpoint_name:
        raise VerifyError(f"{where}: the component is on endpoint {described.get('EndpointName')}, "
                          f"not on {endpoint.endpoint_name}")
    running = described.get("Specification", {}).get("ModelName")
    if deployed.model_name is not None and running != deployed.model_name:
        found = _exists(lambda: sagemaker.describe_model(ModelName=running))
        if found is None:
            still_there = f"; {_cannot_tell([f'the running model {running}'], ['sagemaker:DescribeModel'])}"
        elif found:
            still_there = (f"; the running model {running} still exists: fix the cause and deploy again, or deploy "
                           f"the previous commit ({RUNBOOK})")
        else:
            still_there = (f"; the running model {running} no longer exists (CloudFormation deleted it after the update): "
                           f"recreate it under that name with its previous settings before the next deploy ({RUNBOOK})")
        raise VerifyError(f"{where}: the component runs model {running}, but the stack deployed {deployed.model_name}: "
                          "the update was rolled back (an alarm fired or the new copies failed; see the component's "
                          "alarms)" + still_there)
    runtime = described.get("RuntimeConfig", {})
    return ComponentState(component, int(runtime.get("DesiredCopyCount", 0)), int(runtime.get("CurrentCopyCount", 0)))


def _smoke_stable_diffusion(runtime: Any, endpoint: DeployedEndpoint) -> str:
    from ml_tools.invoke_sd import image_bytes
    from ml_tools.runtime import invoke_json

    content_type, body = invoke_json(
        runtime, endpoint.endpoint_name, {"prompt": "a red apple on a table", "parameters": {"num_inference_steps": 2}},
        accept="image/png",  # exactly one: the HF toolkit echoes it as the content type
    )
    try:
        return f"an image of {len(image_bytes(content_type, body))} bytes"
    except ValueError as err:
        raise VerifyError(f"{endpoint.endpoint_name}: {err}") from err


def _smoke_multi_model(runtime: Any, endpoint: DeployedEndpoint) -> str:
    from ml_tools.invoke_mme import model_name, predict

    try:
        predictions = predict(runtime, endpoint.endpoint_name, 0, [[1.0]])
    except (ValueError, KeyError, TypeError) as err:
        raise VerifyError(f"{endpoint.endpoint_name}: unexpected answer from {model_name(0)}: {err}") from err
    if not isinstance(predictions, list) or len(predictions) != 1:
        raise VerifyError(f"{endpoint.endpoint_name}: 1 input sent to {model_name(0)}, got {predictions!r}")
    return f"{model_name(0)} predicted {predictions[0]!r}"


def _smoke_llm(runtime: Any, endpoint: DeployedEndpoint) -> str:
    from ml_tools.runtime import invoke_json

    _, body = invoke_json(runtime, endpoint.endpoint_name,
                          {"inputs": ["The capital of France is"], "parameters": {"max_new_tokens": 8}})
    try:
        text = json.loads(body)[0]["generated_text"]
    except (ValueError, TypeError, KeyError, IndexError) as err:
        raise VerifyError(f"{endpoint.endpoint_name}: unexpected answer: {body[:200]!r}") from err
    return f"{len(text)} characters of text"


SMOKE: dict[str, Callable[[Any, DeployedEndpoint], str]] = {
    "stable_diffusion": _smoke_stable_diffusion,
    "multi_model": _smoke_multi_model,
    "llm": _smoke_llm,
}


def verify(stacks: dict[str, str], clients: Clients, *, invoke: bool = True, wake: bool = False,
           cold_start_wait_s: float | None = None, cold_start_retry: dict[str, Any] | None = None) -> Report:
    """Passed, failed and scaled-to-zero lines for every endpoint (and component) of ``stacks``
    (workload -> stack name). ``cold_start_retry``: extra arguments of
    :func:`ml_tools.cold_start.call_through_cold_start` (its ``sleep``, back-off)."""
    from botocore.exceptions import ClientError

    from ml_tools.runtime import EndpointError

    report = Report([], [], [])
    for workload, stack_name in stacks.items():
        try:
            endpoints = deployed_endpoints(clients.cloudformation, workload, stack_name)
        except VerifyError as err:
            report.failed.append(str(err))
            continue
        for endpoint in endpoints:
            try:
                check_active_config(clients.sagemaker, endpoint)
                line = f"{endpoint.endpoint_name}: InService on {endpoint.endpoint_config_name}"
                if endpoint.components:
                    report.passed.append(line)
                    for component in endpoint.components:
                        _verify_component(report, workload, endpoint, component, clients, invoke=invoke, wake=wake,
                                          cold_start_wait_s=cold_start_wait_s, retry=cold_start_retry or {})
                    continue
                if invoke and _asynchronous(clients.sagemaker, endpoint):
                    # InvokeEndpoint is refused on an asynchronous endpoint, and a request's answer lands
                    # in S3 minutes later: reported, not invoked.
                    line += ("; asynchronous, not invoked (try it with `python -m ml_tools invoke-sd --async "
                             f"--endpoint-name {endpoint.endpoint_name} ...`)")
                elif invoke:
                    started = time.monotonic()
                    answer = SMOKE[workload](clients.runtime, endpoint)
                    line += f"; answered {answer} in {time.monotonic() - started:.1f} s"
                report.passed.append(line)
            except (VerifyError, EndpointError) as err:
                report.failed.append(str(err))
            except ClientError as err:
                report.failed.append(f"{endpoint.endpoint_name}: {_client_error(err)}")
    return report


def _verify_component(report: Report, workload: str, endpoint: DeployedEndpoint, deployed: DeployedComponent,
                      clients: Clients, *,
                      invoke: bool, wake: bool, cold_start_wait_s: float | None, retry: dict[str, Any]) -> None:
    from botocore.exceptions import ClientError

    from ml_tools.cold_start import DEFAULT_MAX_WAIT_S, ColdStartClient
    from ml_tools.runtime import EndpointError

    component = deployed.name
    where = f"{endpoint.endpoint_name} / {component}"
    try:
        state = check_component(clients.sagemaker, endpoint, deployed)
        line = f"{where}: InService, {state.describe()}"
        if state.scaled_to_zero and not (invoke and wake):
            report.idle.append(f"{line}; not invoked: a request starts a copy and waits minutes for an instance "
                               "(--wake to invoke it through the cold start)")
            return
        if invoke:
            # No capacity answered at once unless --wake: only a copy that is running is smoke-tested.
            wait = (cold_start_wait_s if cold_start_wait_s is not None else DEFAULT_MAX_WAIT_S) if wake else 0.0
            runtime = ColdStartClient(clients.runtime, inference_component=component, max_wait_s=wait, **retry)
            started = time.monotonic()
            answer = SMOKE[workload](runtime, endpoint)
            line += f"; answered {answer} in {time.monotonic() - started:.1f} s"
            if runtime.last_cold_start is not None:
                line += f" ({runtime.last_cold_start.describe()})"
        report.passed.append(line)
    except (VerifyError, EndpointError) as err:
        message = str(err)
        if not message.startswith(where):  # the runtime's errors name the endpoint only
            message = f"{where}: {message.removeprefix(endpoint.endpoint_name + ': ')}"
        report.failed.append(message)
    except ClientError as err:
        report.failed.append(f"{where}: {_client_error(err)}")


def _client_error(err: Any) -> str:
    error = err.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', err)}"


def run(args: argparse.Namespace, *, clients: Clients | None = None) -> int:
    from config import ConfigError, load_config

    from ml_tools.runtime import set_overrides

    overrides = set_overrides(args.set)
    try:
        cfg = load_config(args.env, overlay_file=args.config, overrides=overrides)
    except ConfigError as err:
        print(f"verify: {err}", file=sys.stderr)
        return 2
    stacks = cfg.endpoint_stacks()
    if not stacks:
        print(f"verify: environment {args.env!r} enables no endpoint workload; nothing to verify", file=sys.stderr)
        return 1
    if clients is None:
        import boto3

        region = args.region or cfg.region
        clients = Clients(
            boto3.client("cloudformation", region_name=region),
            boto3.client("sagemaker", region_name=region),
            boto3.client("sagemaker-runtime", region_name=region),
        )
    report = verify(stacks, clients, invoke=not args.no_invoke, wake=getattr(args, "wake", False),
                    cold_start_wait_s=getattr(args, "cold_start_wait", None))
    for line in report.passed:
        print(f"ok    {line}")
    for line in report.idle:
        print(f"idle  {line}")
    for line in report.failed:
        print(f"FAIL  {line}", file=sys.stderr)
    idle = f", {len(report.idle)} scaled to zero (not invoked)" if report.idle else ""
    print(f"verify: {len(report.passed)} ok{idle}, {len(report.failed)} failure(s)",
          file=sys.stderr if report.failed else sys.stdout)
    return 1 if report.failed else 0
