"""What a user sees when AWS says no: one line with what to do, exit code 2, for every tool.

The translator sits in ``python -m ml_tools`` (ml_tools/__main__.py), so these tests go
through the command line as a user would. AWS answers come from moto or from botocore's
Stubber (a real client whose response parsing is botocore's own).
"""
from __future__ import annotations

import inspect
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from ml_tools.__main__ import main as cli_main
from ml_tools.runtime import runtime_client

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_aws_setup(monkeypatch, tmp_path: Path):
    """A machine where nobody ran `aws configure`: no region, no credentials, no instance metadata."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"):
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


def stubbed_runtime(monkeypatch, module: str) -> Stubber:
    client = boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    def same_signature(*args, **kwargs):
        inspect.signature(runtime_client).bind(*args, **kwargs)  # a call the real one would refuse fails here too
        return client

    monkeypatch.setattr(f"ml_tools.{module}.runtime_client", same_signature)
    return Stubber(client)


def test_no_region(no_aws_setup, capsys):
    assert cli_main(["invoke-mme", "--endpoint-name", "mme", "1"]) == 2
    assert one_line(capsys).startswith("invoke-mme: no AWS region: pass --region REGION or set AWS_REGION")


def test_no_credentials(no_aws_setup, capsys):
    assert cli_main(["invoke-llm", "--endpoint-name", "llm", "--region", "us-east-1", "hi"]) == 2
    line = one_line(capsys)
    assert line.startswith("invoke-llm: no usable AWS credentials") and "aws sso login" in line


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("AccessDeniedException", "User: arn:aws:iam::1:user/x is not authorized to perform: sagemaker:InvokeEndpoint",
         "invoke-sd: access denied to InvokeEndpoint (AccessDeniedException: User: arn:aws:iam::1:user/x is not "
         "authorized to perform: sagemaker:InvokeEndpoint); the identity in use (`aws sts get-caller-identity`)"),
        ("ValidationError", "Endpoint sd of account 123456789012 not found.",
         "invoke-sd: Endpoint sd of account 123456789012 not found; check --endpoint-name (or --env) and --region"),
        ("ExpiredTokenException", "The security token included in the request is expired",
         "invoke-sd: AWS did not accept the credentials (ExpiredTokenException"),
    ],
)
def test_aws_refusals_of_the_call_itself(monkeypatch, capsys, code, message, expected):
    with stubbed_runtime(monkeypatch, "invoke_sd") as stub:
        stub.add_client_error("invoke_endpoint", code, message, http_status_code=400)
        assert cli_main(["invoke-sd", "--endpoint-name", "sd", "a cat"]) == 2
    assert one_line(capsys).startswith(expected)


def test_the_endpoints_own_error_stays_exit_code_1(monkeypatch, capsys):
    with stubbed_runtime(monkeypatch, "invoke_mme") as stub:
        stub.add_client_error("invoke_endpoint", "ModelError", "Received server error (500) from primary",
                              http_status_code=424, modeled_fields={"OriginalStatusCode": 500, "OriginalMessage": "boom"})
        assert cli_main(["invoke-mme", "--endpoint-name", "mme", "1"]) == 1
    assert "the model answered 500: boom" in one_line(capsys)


def test_missing_stack_when_the_endpoint_comes_from_env(fake_credentials, capsys):
    with mock_aws():
        assert cli_main(["invoke-sd", "--env", "dev", "a cat"]) == 2
    line = one_line(capsys)
    assert line.startswith("invoke-sd: Stack with id MlAccel-dev-StableDiffusion does not exist; deploy it")


def test_missing_job_definition(fake_credentials, capsys):
    with mock_aws(config={"batch": {"use_docker": False}}):
        code = cli_main(["submit-training-job", "--queue", "q", "--job-definition", "nope", "--share", "teamA"])
    assert code == 2
    line = one_line(capsys)
    # The tool reads the definition's type before submitting, so the miss is found there (no ClientException).
    assert line.startswith("submit-training-job: --job-definition: 'nope' not found (or not ACTIVE); deploy the "
                           "training stack (`npx cdk deploy -c env=<env> MlAccel-<env>-Training`)")
    assert "TrainingJobDefinitionArn" in line


def test_an_unknown_env_names_the_tools_option(fake_credentials, capsys):
    assert cli_main(["invoke-sd", "--env", "staging", "a cat"]) == 2
    line = one_line(capsys)
    assert "unknown environment 'staging'" in line and "(from --env)" in line and "-c env" not in line


def test_an_endpoint_is_needed_one_way_or_the_other(capsys):
    assert cli_main(["invoke-mme", "1"]) == 2
    assert one_line(capsys) == "invoke-mme: --endpoint-name NAME or --env ENV is required\n"


def _deploy_outputs(stack: str, outputs: dict[str, tuple[str, str]]) -> None:
    """A stack with the outputs the endpoint constructs give (hashed keys, descriptive descriptions)."""
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {key: {"Value": value, "Description": f"SageMaker endpoint {path}"}
                            for key, (path, value) in outputs.items()}}
    boto3.client("cloudformation").create_stack(StackName=stack, TemplateBody=json.dumps(template))


def test_env_finds_the_endpoint_name_in_the_stack_outputs(fake_credentials, monkeypatch, capsys):
    with mock_aws():
        _deploy_outputs("MlAccel-dev-MultiModel", {"EndpointEndpointName0F1E2D3C": ("MlAccel-dev-MultiModel/Endpoint",
                                                                                    "Endpoint-abc123")})
        with stubbed_runtime(monkeypatch, "invoke_mme") as stub:
            body = json.dumps({"predictions": [3.0]}).encode()
            stub.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(body), len(body)),
                                                  "ContentType": "application/json"},
                              {"EndpointName": "Endpoint-abc123", "ContentType": "application/json",
                               "Accept": "application/json", "Body": json.dumps({"inputs": [[1.0]]}),
                               "TargetModel": "sklearn-0.tar.gz"})
            assert cli_main(["invoke-mme", "--env", "dev", "1"]) == 0
    answer, latency = capsys.readouterr().out.splitlines()  # invoke-mme reports the latency after the answer
    assert answer == "1 -> 3" and latency.startswith("latency: first call ")


def test_env_with_several_endpoints_picks_one_by_model_name_or_lists_them(fake_credentials, monkeypatch, capsys):
    from ml_tools.runtime import endpoint_from_env

    with mock_aws():
        _deploy_outputs("MlAccel-prod-Llm", {
            "Bloom176bEndpointEndpointName11": ("MlAccel-prod-Llm/Bloom176b/Endpoint", "bloom-ep"),
            "Opt30bEndpointEndpointName22": ("MlAccel-prod-Llm/Opt30b/Endpoint", "opt-ep"),
        })
        assert endpoint_from_env("prod", "Llm", None, select="opt-30b") == "opt-ep"
        assert cli_main(["invoke-llm", "--env", "prod", "hello"]) == 2
    line = one_line(capsys)
    assert "stack MlAccel-prod-Llm has 2 matching endpoint outputs: bloom-ep (MlAccel-prod-Llm/Bloom176b/Endpoint), " \
           "opt-ep (MlAccel-prod-Llm/Opt30b/Endpoint); pass --endpoint-name (or --model-name NAME" in line


def test_the_load_test_stops_at_a_configuration_error_before_any_user_starts(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true")
    run = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(REPO / "ml_tools" / "loadtest" / "locustfile.py"), "--headless",
         "-u", "5", "-r", "5", "-t", "30s", "--endpoint-name", "mme", "--only-summary"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert run.returncode == 2
    assert "locust: no AWS region: pass --region REGION" in run.stderr
    assert "Traceback" not in run.stderr and "invoke_endpoint" not in run.stderr


def test_invoke_mme_offers_no_cold_start_options_it_would_ignore(capsys):
    # It does not wrap its client with ml_tools.cold_start (a multi-model endpoint has no inference components).
    with pytest.raises(SystemExit):
        cli_main(["invoke-mme", "--endpoint-name", "mme", "--cold-start-wait", "60", "1"])
    assert "unrecognized arguments: --cold-start-wait" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["cost", "verify", "preflight"])
def test_a_setting_without_a_value_is_one_line_naming_it(no_aws_setup, capsys, command):
    # Before any AWS call: the configuration is read first.
    assert cli_main([command, "--env", "dev", "--set", "multi_model.instance_count"]) == 2
    assert capsys.readouterr().err.strip() == f"{command}: --set 'multi_model.instance_count': expected KEY=VALUE"
