"""The scheduled drift check (scripts/drift_check.py) against CloudFormation's real API shapes.

moto has no drift detection, so botocore's Stubber answers: it validates every request and
response against the service model, and fails if the script calls anything unexpected or with
other parameters. What a user would notice: a drifted or missing stack that passes the check, or
a check that reads with the wrong role.
"""
from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from scripts import drift_check

ACCOUNT = "111111111111"
LOOKUP = f"arn:aws:iam::{ACCOUNT}:role/cdk-hnb659fds-lookup-role-{ACCOUNT}-eu-west-1"
CREDS = {"AccessKeyId": "ASIAEXAMPLEEXAMPLE00", "SecretAccessKey": "s" * 40, "SessionToken": "t" * 40,
         "Expiration": "2030-01-01T00:00:00Z"}


def write_assembly(tmp_path: Path, stacks: list[str], environment: str = f"aws://{ACCOUNT}/eu-west-1") -> Path:
    """A cloud assembly manifest shaped like `cdk synth` writes it (stacks plus their asset artifacts)."""
    artifacts = {}
    for name in stacks:
        artifacts[f"{name}.assets"] = {"type": "cdk:asset-manifest", "properties": {"file": f"{name}.assets.json"}}
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "environment": environment,
            "properties": {
                "templateFile": f"{name}.template.json",
                "assumeRoleArn": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/"
                                 "cdk-hnb659fds-deploy-role-${AWS::AccountId}-${AWS::Region}",
                "lookupRole": {"arn": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/"
                                      "cdk-hnb659fds-lookup-role-${AWS::AccountId}-${AWS::Region}",
                               "requiresBootstrapStackVersion": 8},
            },
            "displayName": name,
        }
    (tmp_path / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}))
    return tmp_path


class FakeSessions:
    """Stands in for boto3.Session: hands out real clients wrapped in Stubbers, and records who asked."""

    def __init__(self):
        self.created: list[dict] = []
        self.sts = boto3.client("sts", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
        self.cfn = boto3.client("cloudformation", region_name="eu-west-1", aws_access_key_id="a",
                                aws_secret_access_key="b")
        self.sts_stub, self.cfn_stub = Stubber(self.sts), Stubber(self.cfn)
        self.cfn_regions: list[str] = []

    def __call__(self, **credentials):
        self.created.append(credentials)
        outer = self

        class Session:
            def client(self, service, region_name=None):
                if service == "sts":
                    return outer.sts
                outer.cfn_regions.append(region_name)
                return outer.cfn

        return Session()

    def __enter__(self):
        self.sts_stub.activate()
        self.cfn_stub.activate()
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            return  # let the test's own failure show
        self.sts_stub.assert_no_pending_responses()
        self.cfn_stub.assert_no_pending_responses()


def expect_assume(fake: FakeSessions):
    fake.sts_stub.add_response("assume_role", {"Credentials": CREDS},
                               {"RoleArn": LOOKUP, "RoleSessionName": "drift-check"})


def expect_status(fake: FakeSessions, stack: str, status: str = "UPDATE_COMPLETE"):
    fake.cfn_stub.add_response("describe_stacks", {"Stacks": [{
        "StackName": stack, "StackStatus": status, "CreationTime": "2026-11-30T00:00:00Z"}]}, {"StackName": stack})


def expect_detection(fake: FakeSessions, stack: str, drift_status: str, detection_status="DETECTION_COMPLETE",
                     in_progress_polls=0, reason=None):
    expect_status(fake, stack)
    fake.cfn_stub.add_response("detect_stack_drift", {"StackDriftDetectionId": f"id-{stack}"}, {"StackName": stack})
    base = {"StackId": f"arn:aws:cloudformation:eu-west-1:{ACCOUNT}:stack/{stack}/1", "StackDriftDetectionId":
            f"id-{stack}", "Timestamp": "2026-11-30T00:00:00Z"}
    for _ in range(in_progress_polls):
        fake.cfn_stub.add_response("describe_stack_drift_detection_status",
                                   {**base, "DetectionStatus": "DETECTION_IN_PROGRESS"},
                                   {"StackDriftDetectionId": f"id-{stack}"})
    final = {**base, "DetectionStatus": detection_status, "StackDriftStatus": drift_status}
    if reason:
        final["DetectionStatusReason"] = reason
    fake.cfn_stub.add_response("describe_stack_drift_detection_status", final, {"StackDriftDetectionId": f"id-{stack}"})


def run(tmp_path, fake, *extra):
    return drift_check.main([str(tmp_path), "--poll-seconds", "1", *extra], session_factory=fake, sleep=lambda s: None)


def test_stacks_in_sync_pass_after_waiting_for_detection(tmp_path, capsys):
    write_assembly(tmp_path, ["MlAccel-prod-Storage", "MlAccel-prod-Llm"])
    with FakeSessions() as fake:
        expect_assume(fake)
        expect_detection(fake, "MlAccel-prod-Llm", "IN_SYNC", in_progress_polls=2)
        expect_detection(fake, "MlAccel-prod-Storage", "IN_SYNC")
        assert run(tmp_path, fake) == 0
    # Read through the stack's lookup role (assumed once), in the stack's region.
    assert fake.created[1]["aws_session_token"] == CREDS["SessionToken"]
    assert fake.cfn_regions == ["eu-west-1", "eu-west-1"]
    assert "2 stack(s) in sync" in capsys.readouterr().out


def test_a_drifted_stack_fails_and_names_resources_and_properties(tmp_path, capsys):
    write_assembly(tmp_path, ["MlAccel-prod-Storage"])
    summary = tmp_path / "summary.md"
    with FakeSessions() as fake:
        expect_assume(fake)
        expect_detection(fake, "MlAccel-prod-Storage", "DRIFTED")
        fake.cfn_stub.add_response("describe_stack_resource_drifts", {"StackResourceDrifts": [{
            "StackId": "x", "LogicalResourceId": "ModelsBucket1234", "ResourceType": "AWS::S3::Bucket",
            "StackResourceDriftStatus": "MODIFIED", "Timestamp": "2026-11-30T00:00:00Z",
            "PropertyDifferences": [{"PropertyPath": "/VersioningConfiguration/Status", "ExpectedValue": "Enabled",
                                     "ActualValue": "Suspended", "DifferenceType": "NOT_EQUAL"}]}]},
            {"StackName": "MlAccel-prod-Storage", "StackResourceDriftStatusFilters": ["MODIFIED", "DELETED"]})
        assert run(tmp_path, fake, "--summary", str(summary)) == 1
    captured = capsys.readouterr()
    assert "MlAccel-prod-Storage: DRIFTED" in captured.out
    assert "ModelsBucket1234 (AWS::S3::Bucket) MODIFIED: /VersioningConfiguration/Status" in captured.out
    assert "FAILED for MlAccel-prod-Storage" in captured.err
    assert "| MlAccel-prod-Storage | **DRIFTED** |" in summary.read_text()


def test_a_stack_that_is_not_deployed_fails(tmp_path, capsys):
    write_assembly(tmp_path, ["MlAccel-prod-Training"])
    with FakeSessions() as fake:
        expect_assume(fake)
        fake.cfn_stub.add_client_error("describe_stacks", "ValidationError",
                                       "Stack with id MlAccel-prod-Training does not exist", 400,
                                       expected_params={"StackName": "MlAccel-prod-Training"})
        assert run(tmp_path, fake) == 1
    assert "MlAccel-prod-Training: NOT_DEPLOYED" in capsys.readouterr().out


def test_a_stack_mid_update_is_skipped_with_a_message_and_the_others_are_checked(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    write_assembly(tmp_path, ["MlAccel-prod-Storage", "MlAccel-prod-Llm"])
    summary = tmp_path / "summary.md"
    with FakeSessions() as fake:
        expect_assume(fake)
        expect_status(fake, "MlAccel-prod-Llm", "UPDATE_IN_PROGRESS")  # no DetectStackDrift for it
        expect_detection(fake, "MlAccel-prod-Storage", "IN_SYNC")
        assert run(tmp_path, fake, "--summary", str(summary)) == 0
    out = capsys.readouterr().out
    assert ("drift_check: MlAccel-prod-Llm: SKIPPED - stack status UPDATE_IN_PROGRESS: drift detection runs on a "
            "settled stack only") in out
    assert "::warning title=Drift check: MlAccel-prod-Llm::SKIPPED" in out
    assert "drift_check: 1 stack(s) in sync, 1 skipped mid-operation (MlAccel-prod-Llm)" in out
    assert "| MlAccel-prod-Llm | SKIPPED |" in summary.read_text()


def test_a_stack_that_starts_an_update_before_detection_is_skipped_and_other_errors_fail_in_one_line(tmp_path, capsys):
    write_assembly(tmp_path, ["MlAccel-prod-Storage", "MlAccel-prod-Llm"])
    with FakeSessions() as fake:
        expect_assume(fake)
        expect_status(fake, "MlAccel-prod-Llm")
        fake.cfn_stub.add_client_error("detect_stack_drift", "ValidationError", "Stack is being updated", 400,
                                       expected_params={"StackName": "MlAccel-prod-Llm"})
        expect_status(fake, "MlAccel-prod-Llm", "UPDATE_ROLLBACK_IN_PROGRESS")
        expect_status(fake, "MlAccel-prod-Storage")
        fake.cfn_stub.add_client_error("detect_stack_drift", "AccessDenied", "not authorized", 403,
                                       expected_params={"StackName": "MlAccel-prod-Storage"})
        expect_status(fake, "MlAccel-prod-Storage")
        assert run(tmp_path, fake) == 1
    out = capsys.readouterr().out
    assert "MlAccel-prod-Llm: SKIPPED - stack status UPDATE_ROLLBACK_IN_PROGRESS" in out
    assert "MlAccel-prod-Storage: DETECTION_FAILED - AccessDenied: not authorized" in out


def test_a_failed_detection_fails_with_its_reason(tmp_path, capsys):
    write_assembly(tmp_path, ["MlAccel-prod-Storage"])
    with FakeSessions() as fake:
        expect_assume(fake)
        expect_detection(fake, "MlAccel-prod-Storage", "UNKNOWN", detection_status="DETECTION_FAILED",
                         reason="Failed to detect drift on resource [Key]: access denied")
        assert run(tmp_path, fake) == 1
    assert "DETECTION_FAILED - Failed to detect drift on resource [Key]: access denied" in capsys.readouterr().out


def test_an_environment_agnostic_assembly_reads_the_callers_account(tmp_path, monkeypatch):
    """`make synth` of an unpinned environment: the account comes from the credentials, the region from AWS_REGION."""
    write_assembly(tmp_path, ["MlAccel-dev-Storage"], environment="aws://unknown-account/unknown-region")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    with FakeSessions() as fake:
        fake.sts_stub.add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/MlAccel-github-read-dev/x", "UserId": "AROAEXAMPLE"})
        expect_assume(fake)
        expect_detection(fake, "MlAccel-dev-Storage", "IN_SYNC")
        assert run(tmp_path, fake) == 0


def test_no_assembly_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="run `make synth ENV=...` first"):
        drift_check.main([str(tmp_path)], session_factory=lambda **kw: None)
