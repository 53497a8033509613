"""Custom resource handlers: compile once per content hash with an AWS Batch job.

Runs behind aws-cdk-lib's ``custom_resources.Provider``: ``on_event`` starts
work, ``is_complete`` is polled until it says done or raises (a raised message
becomes the stack event's reason). boto3 only, no bundling.

Create/Update: a ``manifest.json`` under the output prefix means the compile is
done (the compile script writes it last), so redeploys and unrelated updates
return at once. Otherwise one Batch job is submitted, or a still-active job
with the same name (same hash) is adopted, never a second one.
A deploy never terminates a compile because of its own deadline: past it, the
deploy fails with the job id, the time the job has run and what to do next, and
the job keeps running; the next deploy adopts it (same name = same hash) or finds
its manifest. Delete keeps running jobs too (a rollback after that failure deletes
the resource, and hours of compiling must survive it) and keeps the artifacts; a
job ends by finishing, by the job definition's timeout, or when the stack's job
queue is deleted (Batch terminates the jobs of a deleted queue).
The physical resource id is the content hash, so changed inputs mean a new id.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict
from urllib.parse import quote

import boto3
from botocore.exceptions import ClientError

MANIFEST = "manifest.json"
ACTIVE_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"level": record.levelname, "service": SERVICE, "message": record.getMessage()}
        entry.update(getattr(record, "extra_fields", {}))
        return json.dumps(entry, default=str)


# Module level, configured by environment variables the construct sets (Powertools style).
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "neuron-compile")
logger = logging.getLogger(SERVICE)
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))
if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(_JsonFormatter())
    logger.addHandler(_handler)
    logger.propagate = False


def _log(level: int, message: str, **fields: Any) -> None:
    logger.log(level, message, extra={"extra_fields": fields})


# ---------------------------------------------------------------- typed events


class CompileInputs(TypedDict):
    ModelId: str
    Revision: str
    Height: str
    Width: str
    Dtype: str
    CompilerArgs: str
    Exporter: NotRequired[str]


class ResourceProperties(TypedDict):
    """What the construct passes (CloudFormation hands every scalar over as a string)."""

    ServiceToken: str
    Hash: str
    ArtifactsBucket: str
    ArtifactsPrefix: str  # neuron-artifacts/<hash>/
    JobQueue: str
    JobDefinition: str
    JobName: str
    LogGroup: str
    TimeoutSeconds: str
    WaitForCompletion: str  # "true" | "false"
    Compile: CompileInputs


class CustomResourceEvent(TypedDict):
    RequestType: Literal["Create", "Update", "Delete"]
    RequestId: str
    StackId: str
    LogicalResourceId: str
    ResourceType: str
    ResourceProperties: ResourceProperties
    OldResourceProperties: NotRequired[ResourceProperties]
    PhysicalResourceId: NotRequired[str]
    Data: NotRequired[dict[str, str]]  # on_event's Data, handed to is_complete by the Provider


class OnEventResponse(TypedDict):
    PhysicalResourceId: str
    Data: NotRequired[dict[str, str]]


class IsCompleteResponse(TypedDict):
    IsComplete: bool
    Data: NotRequired[dict[str, str]]


class CompileFailed(RuntimeError):
    """The compile did not produce artifacts; the message becomes the stack event's reason."""


@dataclass(frozen=True)
class Compile:
    props: ResourceProperties

    @property
    def artifacts_url(self) -> str:
        return f"s3://{self.props['ArtifactsBucket']}/{self.props['ArtifactsPrefix']}"

    @property
    def manifest_key(self) -> str:
        return f"{self.props['ArtifactsPrefix']}{MANIFEST}"


def _batch() -> Any:
    return boto3.client("batch")


def _s3() -> Any:
    return boto3.client("s3")


# ---------------------------------------------------------------- entry points


def on_event(event: CustomResourceEvent, context: Any = None) -> OnEventResponse:
    request = event["RequestType"]
    _log(logging.INFO, "on_event", request=request, hash=event["ResourceProperties"].get("Hash"))
    if request == "Create":
        return on_create(event)
    if request == "Update":
        return on_update(event)
    if request == "Delete":
        return on_delete(event)
    raise ValueError(f"unknown RequestType {request!r}")


def is_complete(event: CustomResourceEvent, context: Any = None) -> IsCompleteResponse:
    if event["RequestType"] == "Delete":
        return {"IsComplete": True}  # on_delete terminates synchronously; nothing to wait for
    compile_ = Compile(event["ResourceProperties"])
    data = event.get("Data", {})
    job_id = data.get("JobId", "")
    if not job_id:  # cache hit, or started without waiting
        return {"IsComplete": True}
    job = _describe(job_id)
    status = job["status"]
    # The manifest is written last, so it alone says the compile is done. Some Deep Learning
    # Container entrypoints keep the container alive after the command ("tail -f /dev/null"):
    # such a job is stopped here instead of running into its timeout.
    if _manifest_exists(compile_):
        if status in ACTIVE_STATUSES:
            _terminate(job_id, "compile finished (manifest.json written); stopping the container")
        _log(logging.INFO, "compile succeeded", job_id=job_id, url=compile_.artifacts_url)
        return {"IsComplete": True}
    if status == "SUCCEEDED":
        raise CompileFailed(
            f"Neuron compile job {job['jobName']} ({job_id}) succeeded but wrote no "
            f"{compile_.artifacts_url}{MANIFEST}; {_log_location(job, compile_)}"
        )
    if status == "FAILED":
        raise CompileFailed(f"Neuron compile job {job['jobName']} ({job_id}) failed: {_failure_reason(job)}; "
                            f"{_log_location(job, compile_)}")
    deadline = float(data.get("Deadline", "0") or 0)
    if time.time() > deadline:
        raise CompileFailed(_still_running_message(job, compile_, adopted=data.get("Adopted") == "true"))
    _log(logging.INFO, "compile still running", job_id=job_id, status=status)
    return {"IsComplete": False}


# ---------------------------------------------------------------- lifecycle


def on_create(event: CustomResourceEvent) -> OnEventResponse:
    return _start(Compile(event["ResourceProperties"]))


def on_update(event: CustomResourceEvent) -> OnEventResponse:
    # Same hash: same physical id; the manifest check makes it a no-op once compiled.
    # New hash: new physical id; CloudFormation then deletes the old one.
    return _start(Compile(event["ResourceProperties"]))


def on_delete(event: CustomResourceEvent) -> OnEventResponse:
    props = event["ResourceProperties"]
    physical_id = event.get("PhysicalResourceId", props.get("Hash", ""))
    try:
        active = _active_jobs(props["JobQueue"], props["JobName"])
    except ClientError as exc:  # the queue is gone already: so are its jobs
        _log(logging.WARNING, "no job queue to look in", error=str(exc))
        active = []
    for job_id in active:
        # Also the rollback of a deploy that ran past its deadline: the next deploy adopts this job.
        _log(logging.WARNING, "compile job left running", job_id=job_id, job_name=props["JobName"])
    return {"PhysicalResourceId": physical_id}  # artifacts are kept


def _start(compile_: Compile) -> OnEventResponse:
    props = compile_.props
    data = {"ArtifactsUrl": compile_.artifacts_url, "JobId": "", "Deadline": "", "Adopted": "false"}
    if _manifest_exists(compile_):
        _log(logging.INFO, "cache hit: artifacts already compiled", url=compile_.artifacts_url)
        for job_id in _active_jobs(props["JobQueue"], props["JobName"]):  # a finished job kept alive
            _terminate(job_id, "compile finished (manifest.json written); stopping the container")
        return {"PhysicalResourceId": props["Hash"], "Data": data}
    active = _active_jobs(props["JobQueue"], props["JobName"])
    job_id = active[0] if active else _submit(compile_)
    data["Adopted"] = "true" if active else "false"
    if props["WaitForCompletion"] == "true":
        data["JobId"] = job_id
        data["Deadline"] = str(int(time.time()) + int(props["TimeoutSeconds"]))
    return {"PhysicalResourceId": props["Hash"], "Data": data}


def _submit(compile_: Compile) -> str:
    props, inputs = compile_.props, compile_.props["Compile"]
    environment = {
        "MODEL_ID": inputs["ModelId"],
        "MODEL_REVISION": inputs["Revision"],
        "HEIGHT": inputs["Height"],
        "WIDTH": inputs["Width"],
        "DTYPE": inputs["Dtype"],
        "COMPILER_ARGS": inputs["CompilerArgs"],
        "EXPORTER": inputs.get("Exporter", "torch-neuronx"),
        "UPLOAD_URL": compile_.artifacts_url,
    }
    response = _batch().submit_job(
        jobName=props["JobName"],
        jobQueue=props["JobQueue"],
        jobDefinition=props["JobDefinition"],
        containerOverrides={"environment": [{"name": k, "value": v} for k, v in sorted(environment.items())]},
    )
    _log(logging.INFO, "submitted compile job", job_id=response["jobId"], url=compile_.artifacts_url)
    return response["jobId"]


# ---------------------------------------------------------------- AWS calls


def _manifest_exists(compile_: Compile) -> bool:
    # Listing with the exact key as prefix needs only s3:ListBucket scoped to that key
    # (HeadObject would need s3:GetObject, and answers 403, not 404, without ListBucket).
    listed = _s3().list_objects_v2(Bucket=compile_.props["ArtifactsBucket"], Prefix=compile_.manifest_key, MaxKeys=1)
    return any(o["Key"] == compile_.manifest_key for o in listed.get("Contents", []))


def _active_jobs(queue: str, job_name: str) -> list[str]:
    found: list[str] = []
    pages = _batch().get_paginator("list_jobs").paginate(
        jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [job_name]}]
    )
    for page in pages:
        # With filters, ListJobs returns every status: keep the active ones.
        found += [j["jobId"] for j in page["jobSummaryList"] if j["status"] in ACTIVE_STATUSES and j["jobName"] == job_name]
    return found


def _describe(job_id: str) -> dict[str, Any]:
    jobs = _batch().describe_jobs(jobs=[job_id])["jobs"]
    if not jobs:
        raise CompileFailed(f"Neuron compile job {job_id} no longer exists (Batch keeps jobs for about 7 days)")
    return jobs[0]


def _terminate(job_id: str, reason: str) -> None:
    # TerminateJob also cancels jobs that have not started yet.
    _batch().terminate_job(jobId=job_id, reason=reason)
    _log(logging.WARNING, "terminated compile job", job_id=job_id, reason=reason)


def _still_running_message(job: dict[str, Any], compile_: Compile, *, adopted: bool) -> str:
    started = job.get("createdAt")
    elapsed = f"{(time.time() - started / 1000) / 60:.0f} min" if started else "an unknown time"
    origin = "started by an earlier deploy" if adopted else "started by this deploy"
    return (
        f"Neuron compile job {job['jobName']} ({job['jobId']}), {origin}, is still {job['status']} after "
        f"{elapsed}; this deploy waits at most {compile_.props['TimeoutSeconds']} s. The job keeps running "
        "(it is never stopped for a deploy's deadline; Batch ends it at the job timeout). Next: run the same "
        "deploy again, now or once the job has finished: it adopts the running job or serves its output. "
        "On a stack's first deploy the rollback deletes the job queue and with it the job: deploy first with "
        "stable_diffusion.endpoint_enabled=false, which compiles without the endpoint and without waiting. "
        f"Progress: {_log_location(job, compile_)}"
    )


def _failure_reason(job: dict[str, Any]) -> str:
    parts = [job.get("statusReason") or "no status reason"]
    container = job.get("container") or {}
    if container.get("exitCode") is not None:
        parts.append(f"exit code {container['exitCode']}")
    if container.get("reason"):
        parts.append(container["reason"])
    return ", ".join(parts)


def _log_location(job: dict[str, Any], compile_: Compile) -> str:
    stream = (job.get("container") or {}).get("logStreamName")
    group = compile_.props["LogGroup"]
    if not stream:
        return f"no log stream yet (log group {group})"
    region = boto3.session.Session().region_name or "us-east-1"

    def enc(part: str) -> str:  # the CloudWatch console double-encodes path parts
        return quote(part, safe="").replace("%", "$25")

    url = (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
           f"#logsV2:log-groups/log-group/{enc(group)}/log-events/{enc(stream)}")
    return f"log group {group}, stream {stream}: {url}"
