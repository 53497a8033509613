"""The compile custom resource's handlers against moto's S3 and Batch (no Docker)."""
from __future__ import annotations

import copy
import hashlib
import json
import time
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.batch.models import batch_backends
from moto.core import DEFAULT_ACCOUNT_ID

from ml_constructs.neuron_compile.runtime import handler

REGION = "us-west-2"
BUCKET = "models-bucket"


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", raising=False)
    with mock_aws(config={"batch": {"use_docker": False}}):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="BatchService", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        batch = boto3.client("batch", region_name=REGION)
        env = batch.create_compute_environment(
            computeEnvironmentName="compile", type="UNMANAGED", state="ENABLED", serviceRole=role
        )["computeEnvironmentArn"]
        queue = batch.create_job_queue(
            jobQueueName="compile", state="ENABLED", priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}],
        )["jobQueueArn"]
        job_def = batch.register_job_definition(
            jobDefinitionName="compile", type="container",
            containerProperties={"image": "neuron:latest", "vcpus": 1, "memory": 512, "command": ["true"]},
        )["jobDefinitionArn"]
        yield {"s3": s3, "batch": batch, "queue": queue, "job_def": job_def}


def props(aws: dict, **compile_overrides: str) -> dict[str, Any]:
    inputs = {"ModelId": "stabilityai/stable-diffusion-2-1-base", "Revision": "", "Height": "512",
              "Width": "512", "Dtype": "bf16", "CompilerArgs": "--model-type=unet-inference"}
    inputs.update(compile_overrides)
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()  # as the synth-time hash
    return {
        "ServiceToken": "arn:aws:lambda:us-west-2:123456789012:function:provider",
        "Hash": digest,
        "ArtifactsBucket": BUCKET,
        "ArtifactsPrefix": f"neuron-artifacts/{digest}/",
        "JobQueue": aws["queue"],
        "JobDefinition": aws["job_def"],
        "JobName": f"neuron-compile-{digest}",
        "LogGroup": "/ml/neuron-compile",
        "TimeoutSeconds": "3000",
        "WaitForCompletion": "true",
        "Compile": inputs,
    }


def event(request: str, properties: dict, *, old: dict | None = None, physical_id: str | None = None) -> dict:
    out: dict[str, Any] = {
        "RequestType": request, "RequestId": "r-1", "StackId": "arn:aws:cloudformation:us-west-2:1:stack/s/1",
        "LogicalResourceId": "Compile", "ResourceType": "Custom::NeuronCompilation",
        "ResourceProperties": properties,
    }
    if old is not None:
        out["OldResourceProperties"] = old
    if physical_id is not None:
        out["PhysicalResourceId"] = physical_id
    return out


def poll_event(start: dict, response: dict) -> dict:
    """What the Provider hands is_complete: the request merged with on_event's answer."""
    return {**start, **response}


def jobs(aws: dict) -> list[dict]:
    return aws["batch"].list_jobs(jobQueue=aws["queue"], filters=[{"name": "JOB_NAME", "values": ["*"]}])[
        "jobSummaryList"
    ]


def write_manifest(aws: dict, p: dict) -> None:
    aws["s3"].put_object(Bucket=BUCKET, Key=f"{p['ArtifactsPrefix']}unet/model.pt", Body=b"neff")
    aws["s3"].put_object(Bucket=BUCKET, Key=f"{p['ArtifactsPrefix']}manifest.json", Body=b"{}")


def moto_job(job_id: str):
    return batch_backends[DEFAULT_ACCOUNT_ID][REGION]._jobs[job_id]


def make_running(job_id: str) -> None:
    """moto's Docker-less Batch finishes jobs at once; put one back into RUNNING like a live compile."""
    job = moto_job(job_id)
    job.status = "RUNNING"
    job.job_stopped = False
    job.job_stopped_reason = None


def test_create_with_a_cache_miss_submits_exactly_one_job_with_the_inputs(aws):
    p = props(aws)
    start = event("Create", p)
    response = handler.on_event(start)
    assert response["PhysicalResourceId"] == p["Hash"]
    assert response["Data"]["ArtifactsUrl"] == f"s3://{BUCKET}/neuron-artifacts/{p['Hash']}/"
    (summary,) = jobs(aws)
    assert summary["jobName"] == p["JobName"] and summary["jobId"] == response["Data"]["JobId"]
    detail = aws["batch"].describe_jobs(jobs=[summary["jobId"]])["jobs"][0]
    env = {e["name"]: e["value"] for e in detail["container"]["environment"]}
    assert env["UPLOAD_URL"] == response["Data"]["ArtifactsUrl"]
    assert env["MODEL_ID"] == "stabilityai/stable-diffusion-2-1-base"
    assert (env["HEIGHT"], env["WIDTH"], env["DTYPE"]) == ("512", "512", "bf16")
    assert env["COMPILER_ARGS"] == "--model-type=unet-inference"
    assert env["EXPORTER"] == "torch-neuronx"  # the default when the resource names none (older templates)


def test_create_completes_when_the_job_succeeded_and_the_manifest_is_there(aws):
    p = props(aws)
    start = event("Create", p)
    response = handler.on_event(start)
    make_running(response["Data"]["JobId"])
    assert handler.is_complete(poll_event(start, response)) == {"IsComplete": False}
    moto_job(response["Data"]["JobId"]).status = "SUCCEEDED"
    write_manifest(aws, p)
    assert handler.is_complete(poll_event(start, response)) == {"IsComplete": True}


def test_a_written_manifest_completes_and_stops_a_container_kept_alive(aws):
    p = props(aws)
    start = event("Create", p)
    response = handler.on_event(start)
    job_id = response["Data"]["JobId"]
    make_running(job_id)  # e.g. an entrypoint that ends in "tail -f /dev/null"
    write_manifest(aws, p)
    assert handler.is_complete(poll_event(start, response)) == {"IsComplete": True}
    detail = aws["batch"].describe_jobs(jobs=[job_id])["jobs"][0]
    assert detail["statusReason"] == "compile finished (manifest.json written); stopping the container"


def test_a_cache_hit_stops_a_finished_job_still_kept_alive(aws):
    p = props(aws)
    p["WaitForCompletion"] = "false"
    job_id = handler.on_event(event("Create", p))["Data"]["JobId"] or jobs(aws)[0]["jobId"]
    make_running(job_id)
    write_manifest(aws, p)
    p["WaitForCompletion"] = "true"
    response = handler.on_event(event("Update", p, old=p, physical_id=p["Hash"]))
    assert response["Data"]["JobId"] == ""
    assert aws["batch"].describe_jobs(jobs=[job_id])["jobs"][0]["statusReason"].startswith("compile finished")


def test_a_succeeded_job_without_a_manifest_fails_the_resource(aws):
    p = props(aws)
    start = event("Create", p)
    response = handler.on_event(start)  # moto's job succeeds at once, but nothing was uploaded
    with pytest.raises(handler.CompileFailed, match="succeeded but wrote no .*manifest.json"):
        handler.is_complete(poll_event(start, response))


def test_cache_hit_submits_no_job_and_completes_at_once(aws):
    p = props(aws)
    write_manifest(aws, p)
    start = event("Create", p)
    response = handler.on_event(start)
    assert jobs(aws) == []
    assert response == {"PhysicalResourceId": p["Hash"], "Data": {
        "ArtifactsUrl": f"s3://{BUCKET}/{p['ArtifactsPrefix']}", "JobId": "", "Deadline": "", "Adopted": "false"}}
    assert handler.is_complete(poll_event(start, response)) == {"IsComplete": True}


def test_update_with_the_same_inputs_is_a_no_op(aws):
    p = props(aws)
    write_manifest(aws, p)
    response = handler.on_event(event("Update", p, old=copy.deepcopy(p), physical_id=p["Hash"]))
    assert response["PhysicalResourceId"] == p["Hash"]
    assert jobs(aws) == []


def test_update_while_the_same_compile_still_runs_adopts_that_job(aws):
    p = props(aws)
    first = handler.on_event(event("Create", p))
    make_running(first["Data"]["JobId"])
    again = handler.on_event(event("Update", p, old=copy.deepcopy(p), physical_id=p["Hash"]))
    assert again["Data"]["JobId"] == first["Data"]["JobId"]
    assert len(jobs(aws)) == 1


def test_changed_inputs_give_a_new_hash_and_a_new_job(aws):
    old = props(aws)
    write_manifest(aws, old)
    new = props(aws, Height="768", Width="768")
    response = handler.on_event(event("Update", new, old=old, physical_id=old["Hash"]))
    assert response["PhysicalResourceId"] == new["Hash"] != old["Hash"]
    assert response["Data"]["ArtifactsUrl"].endswith(f"/{new['Hash']}/")
    (summary,) = jobs(aws)
    assert summary["jobName"] == new["JobName"]


def test_job_failure_surfaces_the_status_reason_and_the_log_location(aws):
    p = props(aws)
    start = event("Create", p)
    response = handler.on_event(start)
    job = moto_job(response["Data"]["JobId"])
    job.status = "FAILED"
    job.job_stopped_reason = "Essential container in task exited"
    with pytest.raises(handler.CompileFailed) as exc:
        handler.is_complete(poll_event(start, response))
    message = str(exc.value)
    assert "failed: Essential container in task exited" in message
    assert f"stream {job.log_stream_name}" in message
    assert "log-groups/log-group/$252Fml$252Fneuron-compile/log-events/" in message


def test_deadline_leaves_the_job_running_and_says_what_to_do(aws):
    p = props(aws)
    start = event("Create", p)
    response = handler.on_event(start)
    job_id = response["Data"]["JobId"]
    make_running(job_id)
    moto_job(job_id).job_created_at = datetime.now() - timedelta(minutes=52)
    late = copy.deepcopy(response)
    late["Data"]["Deadline"] = str(int(time.time()) - 1)
    with pytest.raises(handler.CompileFailed) as exc:
        handler.is_complete(poll_event(start, late))
    message = str(exc.value)
    assert f"Neuron compile job {p['JobName']} ({job_id}), started by this deploy, is still RUNNING after 52 min" in message
    assert "this deploy waits at most 3000 s" in message and "The job keeps running" in message
    assert "run the same deploy again" in message and "stable_diffusion.endpoint_enabled=false" in message
    detail = aws["batch"].describe_jobs(jobs=[job_id])["jobs"][0]
    assert detail["status"] == "RUNNING" and "statusReason" not in detail


def test_the_rollback_after_a_deadline_keeps_the_job_and_the_next_deploy_adopts_it(aws):
    p = props(aws)
    start = event("Create", p)
    response = handler.on_event(start)
    job_id = response["Data"]["JobId"]
    make_running(job_id)
    handler.on_event(event("Delete", p, physical_id=p["Hash"]))  # CloudFormation rolls the failed deploy back
    assert aws["batch"].describe_jobs(jobs=[job_id])["jobs"][0]["status"] == "RUNNING"
    again = handler.on_event(event("Create", p))
    assert (again["Data"]["JobId"], again["Data"]["Adopted"]) == (job_id, "true")
    assert len(jobs(aws)) == 1
    late = copy.deepcopy(again)
    late["Data"]["Deadline"] = str(int(time.time()) - 1)
    with pytest.raises(handler.CompileFailed, match="started by an earlier deploy, is still RUNNING"):
        handler.is_complete(poll_event(event("Create", p), late))
    write_manifest(aws, p)  # the job finished between deploys: the next one serves its output
    final = handler.on_event(event("Create", p))
    assert final["Data"]["JobId"] == "" and handler.is_complete(poll_event(event("Create", p), final)) == {
        "IsComplete": True}


def test_without_waiting_the_job_starts_and_the_resource_completes_with_the_expected_url(aws):
    p = props(aws)
    p["WaitForCompletion"] = "false"
    start = event("Create", p)
    response = handler.on_event(start)
    assert len(jobs(aws)) == 1
    assert response["Data"]["JobId"] == ""
    assert response["Data"]["ArtifactsUrl"] == f"s3://{BUCKET}/{p['ArtifactsPrefix']}"
    assert handler.is_complete(poll_event(start, response)) == {"IsComplete": True}


def test_delete_keeps_a_running_job_and_the_artifacts(aws):
    p = props(aws)
    job_id = handler.on_event(event("Create", p))["Data"]["JobId"]
    make_running(job_id)
    write_manifest(aws, p)
    start = event("Delete", p, physical_id=p["Hash"])
    assert handler.on_event(start) == {"PhysicalResourceId": p["Hash"]}
    detail = aws["batch"].describe_jobs(jobs=[job_id])["jobs"][0]
    assert detail["status"] == "RUNNING" and "statusReason" not in detail
    assert aws["s3"].head_object(Bucket=BUCKET, Key=f"{p['ArtifactsPrefix']}manifest.json")
    assert handler.is_complete(start) == {"IsComplete": True}


def test_delete_leaves_finished_jobs_alone(aws):
    p = props(aws)
    job_id = handler.on_event(event("Create", p))["Data"]["JobId"]  # moto: already SUCCEEDED
    handler.on_event(event("Delete", p, physical_id=p["Hash"]))
    assert "statusReason" not in aws["batch"].describe_jobs(jobs=[job_id])["jobs"][0]


def test_delete_never_fails_when_the_queue_and_job_are_gone(aws):
    p = props(aws)
    p["JobQueue"] = f"arn:aws:batch:{REGION}:{DEFAULT_ACCOUNT_ID}:job-queue/deleted-already"
    response = handler.on_event(event("Delete", p, physical_id=p["Hash"]))
    assert response == {"PhysicalResourceId": p["Hash"]}


def test_delete_after_a_failed_create_keeps_the_framework_physical_id(aws):
    p = props(aws)
    assert handler.on_event(event("Delete", p, physical_id="r-1")) == {"PhysicalResourceId": "r-1"}


def test_the_handlers_call_only_the_apis_the_construct_grants(aws, monkeypatch):
    """Kept in step with the handler role in provider.py (asserted in test_neuron_compile_construct)."""
    calls: set[str] = set()
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a fresh session for this test only
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register(
        "before-call", lambda model, **_: calls.add(f"{model.service_model.service_name}:{model.name}"))
    p = props(aws)
    start = event("Create", p)
    response = handler.on_event(start)
    make_running(response["Data"]["JobId"])
    handler.is_complete(poll_event(start, response))
    write_manifest(aws, p)
    handler.is_complete(poll_event(start, response))  # a finished container kept alive is stopped
    aws["s3"].delete_object(Bucket=BUCKET, Key=f"{p['ArtifactsPrefix']}manifest.json")
    make_running(response["Data"]["JobId"])
    late = copy.deepcopy(response)
    late["Data"]["Deadline"] = "1"
    with pytest.raises(handler.CompileFailed):
        handler.is_complete(poll_event(start, late))
    handler.on_event(event("Delete", p, physical_id=p["Hash"]))
    assert calls == {"batch:SubmitJob", "batch:ListJobs", "batch:DescribeJobs", "batch:TerminateJob",
                     "s3:ListObjectsV2"}
