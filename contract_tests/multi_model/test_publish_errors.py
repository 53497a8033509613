"""What a publish-models user sees when S3 says no, or is not reachable: one line, exit code 2.

These run here, in the environment built from the profile's lock, because the publisher
refuses any other environment before it trains a model or touches S3 (the version lock).
The dev venv's tests/tools/test_tool_errors.py covers the other tools' errors.
"""
from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from ml_tools.__main__ import main as cli_main


@pytest.fixture
def no_aws_setup(monkeypatch, tmp_path: Path):
    """A machine where nobody ran `aws configure`: no region, no credentials, no instance metadata."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # boto3 caches the credentials it found earlier


@pytest.fixture
def fake_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_missing_bucket(fake_credentials, capsys):
    with mock_aws():
        assert cli_main(["publish-models", "s3://no-such-bucket/mme/", "--count", "1"]) == 2
    line = one_line(capsys)
    assert line.startswith("publish-models: bucket no-such-bucket does not exist (NoSuchBucket")
    assert "deploy the storage stack" in line


def test_access_denied_on_head_object_is_not_taken_for_a_missing_package(fake_credentials, monkeypatch, capsys):
    """A 403 on HeadObject (no s3:GetObject) must stop the publish, not re-upload everything."""
    client = boto3.client("s3", region_name="us-east-1")
    stub = Stubber(client)
    stub.add_client_error("head_object", "403", "Forbidden", http_status_code=403)
    monkeypatch.setattr(boto3, "client", lambda *args, **kwargs: client)
    with stub:
        assert cli_main(["publish-models", "s3://models/mme/", "--count", "1", "--concurrency", "1"]) == 2
        stub.assert_no_pending_responses()  # the HeadObject was asked, and no PutObject was attempted after it
    assert one_line(capsys).startswith("publish-models: access denied to HeadObject (403: Forbidden)")


def test_publish_dry_run_works_offline(no_aws_setup, capsys):
    assert cli_main(["publish-models", "s3://models/mme/", "--count", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("would upload 2, unchanged 0, under s3://models/mme/ (S3 not read: Unable to locate credentials)")
