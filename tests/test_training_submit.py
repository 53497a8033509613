"""`python -m ml_tools.submit_training_job` against moto's Batch."""
from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest
from moto import mock_aws

from ml_tools import submit_training_job
from tests.helpers import ROOT

REGION = "us-east-1"


@pytest.fixture
def batch():
    with mock_aws(config={"batch": {"use_docker": False}}):
        iam = boto3.client("iam", region_name=REGION)
        client = boto3.client("batch", region_name=REGION)
        role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        ce = client.create_compute_environment(
            computeEnvironmentName="trn1",
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=role,
        )["computeEnvironmentArn"]
        policy = client.create_scheduling_policy(
            name="shares", fairsharePolicy={"shareDistribution": [{"shareIdentifier": "teamA", "weightFactor": 1.0}]}
        )["arn"]
        client.create_job_queue(
            jobQueueName="training",
            state="ENABLED",
            priority=1,
            schedulingPolicyArn=policy,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
        )
        client.register_job_definition(
            jobDefinitionName="train",
            type="container",
            containerProperties={"image": "busybox", "command": ["true"], "resourceRequirements": [
                {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}]},
        )
        client.register_job_definition(
            jobDefinitionName="train-mnp",
            type="multinode",
            nodeProperties={"numNodes": 4, "mainNode": 0, "nodeRangeProperties": [{"targetNodes": "0:", "container": {
                "image": "busybox", "command": ["true"], "resourceRequirements": [
                    {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}]}}]},
        )
        sent = []  # the SubmitJob requests as boto3 sends them
        client.meta.events.register("provide-client-params.batch.SubmitJob", lambda params, **_: sent.append(params))
        client.sent = sent
        yield client


def test_submits_under_the_share_with_the_node_count(batch, capsys):
    code = submit_training_job.main(
        ["--queue", "training", "--job-definition", "train-mnp", "--share", "teamA", "--nodes", "4",
         "--job-name", "exp-1", "--env", "LR=0.001"],
        client=batch,
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    (request,) = batch.sent
    assert request["shareIdentifier"] == "teamA"
    assert request["nodeOverrides"] == {
        "numNodes": 4,
        "nodePropertyOverrides": [{"targetNodes": "0:", "containerOverrides": {"environment": [{"name": "LR", "value": "0.001"}]}}],
    }
    # cost attribution: the share and the run, on the job and its ECS tasks
    assert request["tags"] == {"ShareIdentifier": "teamA", "RunId": "exp-1"} and request["propagateTags"] is True
    (job,) = batch.describe_jobs(jobs=[printed["jobId"]])["jobs"]
    assert job["jobName"] == "exp-1"  # moto keeps the job but does not echo shareIdentifier back
    assert job["jobQueue"].endswith(":job-queue/training")


def test_multi_node_compile_on_the_training_topology(batch):
    command = "python3 -m trainium_runtime.entrypoint compile --steps 5"
    submit_training_job.main(
        ["--queue", "training", "--job-definition", "train-mnp", "--share", "teamA", "--nodes", "8", "--command", command,
         "--training-nodes", "8", "--env", "RUN_ID=llm-exp-42"],
        client=batch,
    )
    (request,) = batch.sent
    assert request["nodeOverrides"] == {
        "numNodes": 8,
        "nodePropertyOverrides": [{"targetNodes": "0:", "containerOverrides": {
            "environment": [{"name": "RUN_ID", "value": "llm-exp-42"}], "command": command.split()}}],
    }
    assert request["tags"]["RunId"] == "llm-exp-42"


def test_without_nodes_a_multi_node_definition_still_gets_node_overrides(batch):
    # containerOverrides on a multi-node definition is what Batch refuses: --env must reach every node.
    submit_training_job.main(
        ["--queue", "training", "--job-definition", "train-mnp", "--share", "teamA", "--env", "A=1"], client=batch
    )
    (request,) = batch.sent
    assert "containerOverrides" not in request
    assert request["nodeOverrides"] == {
        "nodePropertyOverrides": [{"targetNodes": "0:", "containerOverrides": {"environment": [{"name": "A", "value": "1"}]}}]
    }


def test_a_node_count_for_a_single_node_definition_is_refused(batch, capsys):
    code = submit_training_job.main(
        ["--queue", "training", "--job-definition", "train", "--share", "teamA", "--nodes", "4"], client=batch
    )
    assert code == 2 and batch.sent == []
    assert "--nodes: the job definition is single-node" in capsys.readouterr().err


def test_an_unknown_job_definition_is_refused(batch, capsys):
    code = submit_training_job.main(["--queue", "training", "--job-definition", "nope", "--share", "teamA"], client=batch)
    assert code == 2 and batch.sent == [] and "'nope' not found" in capsys.readouterr().err


def test_without_nodes_environment_goes_to_the_container(batch, capsys):
    submit_training_job.main(
        ["--queue", "training", "--job-definition", "train", "--share", "teamA", "--env", "A=1", "--scheduling-priority", "5"],
        client=batch,
    )
    (request,) = batch.sent
    assert "nodeOverrides" not in request
    assert request["containerOverrides"] == {"environment": [{"name": "A", "value": "1"}]}
    assert request["schedulingPriorityOverride"] == 5
    assert request["jobName"].startswith("teamA-")
    assert json.loads(capsys.readouterr().out)["jobName"] == request["jobName"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--share", "team-a"], "--share: got 'team-a', expected 1-255 letters and digits"),
        (["--share", "teamA", "--nodes", "0"], "--nodes: got 0, allowed range: 1 to 256"),
        (["--share", "teamA", "--env", "AWS_BATCH_X=1"], "--env: got 'AWS_BATCH_X=1'"),
        (["--share", "teamA", "--env", "NOVALUE"], "--env: got 'NOVALUE'"),
        (["--share", "teamA", "--job-name", "bad.name"], "--job-name: got 'bad.name'"),
        (["--share", "teamA", "--scheduling-priority", "10000"], "--scheduling-priority: got 10000"),
        (["--share", "teamA", "--command", "echo 'open"], "--command: cannot split"),
        (["--share", "teamA", "--command", " "], "--command: got an empty command"),
        ([], "the following arguments are required: --share"),
    ],
)
def test_bad_arguments_are_refused_before_calling_aws(extra, message, capsys):
    with pytest.raises(SystemExit) as exc:
        submit_training_job.main(["--queue", "q", "--job-definition", "d", *extra], client=object())
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_runs_as_a_module_from_the_repository_root():
    result = subprocess.run(
        [sys.executable, "-m", "ml_tools.submit_training_job", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "--share" in result.stdout and "--nodes" in result.stdout


# ---- refused before any host starts (botocore Stubber: moto drops nodeProperties and
# computeResources from its Describe answers) ---------------------------------------------

def stubbed(*, num_nodes=4, max_vcpus=512, submit=False, compile_check=False):
    from botocore.stub import Stubber

    client = boto3.client("batch", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    definition = {"jobDefinitionName": "train-mnp", "jobDefinitionArn": "arn:aws:batch:us-east-1:1:job-definition/train-mnp:3",
                  "revision": 3, "type": "multinode", "nodeProperties": {"numNodes": num_nodes, "mainNode": 0,
                                                                         "nodeRangeProperties": []}}
    stub.add_response("describe_job_definitions", {"jobDefinitions": [definition]})  # the definition's type
    stub.add_response("describe_job_queues", {"jobQueues": [{
        "jobQueueName": "training", "jobQueueArn": "arn:aws:batch:us-east-1:1:job-queue/training", "state": "ENABLED",
        "priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "arn:ce/trn1"}]}]})
    stub.add_response("describe_compute_environments", {"computeEnvironments": [{
        "computeEnvironmentName": "trn1-cluster", "computeEnvironmentArn": "arn:ce/trn1", "ecsClusterArn": "arn:ecs",
        "computeResources": {"type": "EC2", "minvCpus": 0, "maxvCpus": max_vcpus, "instanceTypes": ["trn1.32xlarge"],
                             "subnets": ["subnet-1"]}}]})
    if compile_check:  # the training's node count, from the definition
        stub.add_response("describe_job_definitions", {"jobDefinitions": [definition]})
    if submit:
        stub.add_response("submit_job", {"jobName": "j", "jobId": "id-1"})
    stub.activate()
    return client


def submit(client, *extra):
    return submit_training_job.main(
        ["--queue", "training", "--job-definition", "train-mnp", "--share", "teamA", *extra], client=client)


def test_more_nodes_than_the_compute_environment_holds_is_refused(capsys):
    assert submit(stubbed(max_vcpus=512), "--nodes", "8") == 2
    assert capsys.readouterr().err.strip() == (
        "submit-training-job: --nodes: got 8, but compute environment trn1-cluster holds at most 4 nodes "
        "(maxvCpus 512 / 128 vCPUs per trn1.32xlarge): the job would wait RUNNABLE forever")


def test_a_compile_for_another_topology_than_training_is_refused(capsys):
    compile_command = "python3 -m trainium_runtime.entrypoint compile --steps 5"
    assert submit(stubbed(num_nodes=4, max_vcpus=2048, compile_check=True), "--nodes", "8", "--command", compile_command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--nodes: got 8 for an ahead-of-time compile, but training runs on 4 nodes" in err


def test_a_compile_for_the_declared_training_topology_is_submitted(capsys):
    compile_command = "python3 -m trainium_runtime.entrypoint compile --steps 5"
    client = stubbed(num_nodes=4, max_vcpus=2048, submit=True)
    assert submit(client, "--nodes", "8", "--training-nodes", "8", "--command", compile_command) == 0


@pytest.mark.parametrize("program, message", [
    ("-m trainium_runtime.train_refrence train", "program -m trainium_runtime.train_refrence does not exist in the training image"),
    ("/opt/runtime/trainium_runtime/missing.py", "program /opt/runtime/trainium_runtime/missing.py does not exist"),
])
def test_a_runtime_program_that_does_not_exist_is_refused(program, message, capsys):
    with pytest.raises(SystemExit):
        submit_training_job.parse_args(["--queue", "q", "--job-definition", "d", "--share", "teamA",
                                        "--command", f"python3 -m trainium_runtime.entrypoint train -- {program}"])
    err = capsys.readouterr().err
    assert message in err and "train_reference" in err or "holds ml_constructs" in err


def test_an_existing_runtime_program_and_your_own_are_accepted():
    for program in ("-m trainium_runtime.train_reference train", "/opt/app/train.py"):
        submit_training_job.parse_args(["--queue", "q", "--job-definition", "d", "--share", "teamA",
                                        "--command", f"python3 -m trainium_runtime.entrypoint train -- {program}"])
