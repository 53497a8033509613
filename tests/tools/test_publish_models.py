"""The multi-model publisher's options, configuration and version lock, in the dev venv.

Training, packaging and uploading run in the serving image's environment instead:
contract_tests/multi_model/test_publish_round_trip.py.
"""
from __future__ import annotations

import argparse
import json
from importlib import metadata

import boto3
import pytest
from moto import mock_aws

from ml_tools import publish_models as pm
from ml_tools.__main__ import main as cli_main
from runtime_profiles import load_profile

BUCKET = "models"
CURRENT = load_profile("multi_model", "current")


class NoCalls:
    """An S3 client that fails the test if the publisher touches it."""

    def __getattr__(self, name):
        raise AssertionError(f"S3 called ({name}) although the publisher should have refused")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    pm.configure(parser)
    return parser.parse_args(list(argv))


def args(*extra: str) -> argparse.Namespace:
    return parse(f"s3://{BUCKET}/multi-model/ep", *extra)


@pytest.fixture
def no_build(monkeypatch):
    monkeypatch.setattr(pm, "build_packages", lambda *a, **k: pytest.fail("packages built after a refusal"))


def test_lock_problems_name_found_and_expected_versions():
    found = {"numpy": "2.4.6", "scikit-learn": "1.9.1"}

    def version(name: str) -> str:
        if name == "skops":
            raise metadata.PackageNotFoundError(name)
        return found.get(name, CURRENT.packages[name])

    assert pm.lock_problems(CURRENT, version=version, python="3.12") == [
        "Python: found 3.12, the image has 3.11",
        "numpy: found 2.4.6, the lock has 2.3.5",
        "scikit-learn: found 1.9.1, the lock has 1.7.2",
        "skops: found not installed, the lock has 0.13.0",
    ]
    assert pm.lock_problems(CURRENT, version=CURRENT.packages.__getitem__, python="3.11") == []


def test_an_environment_other_than_the_lock_is_refused_before_anything_is_built(monkeypatch, no_build, capsys):
    real = pm.lock_problems
    monkeypatch.setattr(pm, "lock_problems", lambda profile: real(
        profile, version=lambda name: "9.9" if name == "numpy" else profile.packages[name], python="3.12"))
    assert pm.run(args("--count", "2"), client=NoCalls()) == 2
    err = capsys.readouterr().err
    assert "does not match runtime profile multi_model/current" in err
    assert "runtime_profiles/multi_model/current/requirements.lock" in err
    assert "Python: found 3.12, the image has 3.11; numpy: found 9.9, the lock has 2.3.5" in err
    assert "$(python -m runtime_profiles.env python multi_model/current) -m ml_tools publish-models" in err


def test_the_seed_runtime_checks_against_the_seed_lock(monkeypatch, no_build, capsys):
    real = pm.lock_problems
    current_versions = dict(CURRENT.packages)
    monkeypatch.setattr(pm, "lock_problems", lambda profile: real(
        profile, version=lambda name: current_versions.get(name, "absent"), python="3.11"))
    assert pm.run(args("--runtime", "seed"), client=NoCalls()) == 2
    err = capsys.readouterr().err
    assert "runtime profile multi_model/seed" in err and "Python: found 3.11, the image has 3.8" in err
    assert "scikit-learn: found 1.7.2, the lock has 1.3.2" in err


def test_an_unknown_runtime_is_refused(no_build, capsys):
    assert pm.run(args("--runtime", "nightly"), client=NoCalls()) == 2
    assert "--runtime: no runtime profile multi_model/nightly (known for multi_model: current, seed)" in (
        capsys.readouterr().err)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--count", "0"], "--count: got 0, allowed: 1 to 100000"),
        (["--concurrency", "0"], "--concurrency: got 0, allowed: 1 to 256"),
        (["--min-workers", "4", "--max-workers", "2"], "--min-workers (4) must not exceed --max-workers (2)"),
        (["--min-workers", "0"], "--min-workers (minWorkers): got 0, allowed: 1 or more"),
        (["--job-queue-size", "0"], "--job-queue-size (job_queue_size): got 0, allowed: 1 or more"),
        (["--max-idle-time", "0"], "--max-idle-time (max_idle_time): got 0, allowed: 1 or more"),
        (["--model-file", "/nonexistent/model.skops"], "--model-file: /nonexistent/model.skops does not exist"),
        (["--model-file", "/dev/null", "--distinct-models"], "--model-file and --distinct-models exclude each other"),
    ],
)
def test_bad_options_are_rejected(extra, message, no_build, capsys):
    assert pm.run(args(*extra), client=NoCalls()) == 2
    assert message in capsys.readouterr().err


def test_a_model_file_that_is_not_skops_is_refused(tmp_path, no_build, capsys):
    path = tmp_path / "model.joblib"
    path.write_bytes(b"\x80\x04pickle")
    assert pm.run(args("--model-file", str(path)), client=NoCalls()) == 2
    assert "--model-file: not a skops file (no schema.json in a zip archive)" in capsys.readouterr().err


def test_worker_settings_default_to_the_configuration():
    parsed = args()
    assert pm.apply_environment(parsed) == []
    # No --env: the configuration's defaults (ml.c5d.18xlarge, 72 vCPUs, one thread per worker).
    assert parsed.workers == {"minWorkers": 1, "maxWorkers": 72, "job_queue_size": 1000, "max_idle_time": 600}
    assert parsed.runtime == "current" and parsed.count == 1000


def test_cli_rejects_a_non_s3_prefix(capsys):
    with pytest.raises(SystemExit):
        cli_main(["publish-models", "models/prefix"])
    assert "got 'models/prefix', expected s3://bucket/prefix/" in capsys.readouterr().err


def test_cli_lists_every_subcommand(capsys):
    assert cli_main([]) == 2
    help_text = capsys.readouterr().out
    for name in ("publish-models", "invoke-sd", "invoke-llm", "invoke-mme", "submit-training-job"):
        assert name in help_text


def test_the_publisher_does_not_start_the_cdk_runtime():
    import subprocess
    import sys

    code = ("import sys, argparse; from ml_tools import publish_models as pm; p = argparse.ArgumentParser(); "
            "pm.configure(p); a = p.parse_args(['s3://b/p/', '--env', 'prod']); assert pm.apply_environment(a) == []; "
            "assert 'aws_cdk' not in sys.modules and 'jsii' not in sys.modules, 'aws_cdk imported'")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=pm.REPO)
    assert run.returncode == 0, run.stderr


def storage_stack(region: str = "us-east-1", url: str = f"s3://{BUCKET}/multi-model/") -> None:
    """A deployed storage stack, as far as the publisher sees it: its MultiModelPackagesUrl output."""
    template = {"Resources": {"Logs": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "storage-logs"}}},
                "Outputs": {"MultiModelPackagesUrl": {"Value": url}}}
    boto3.client("cloudformation", region_name=region).create_stack(
        StackName="MlAccel-dev-Storage", TemplateBody=json.dumps(template))


def test_env_takes_count_workers_runtime_and_prefix_from_configuration():
    from config import load_config

    mme = load_config("dev").multi_model
    with mock_aws():
        storage_stack()
        parsed = parse("--env", "dev", "--region", "us-east-1")
        assert pm.apply_environment(parsed) == []
    assert parsed.s3_url == (BUCKET, "multi-model/")
    assert parsed.count == mme.model_count == 10 and parsed.runtime == "current"
    # dev runs ml.m5.large: 2 vCPUs, so at most 2 single-threaded workers per model.
    assert parsed.workers == {"minWorkers": 1, "maxWorkers": 2, "job_queue_size": 1000, "max_idle_time": 600}


def test_explicit_flags_beat_the_environment():
    with mock_aws():
        storage_stack()
        parsed = args("--env", "dev", "--count", "2", "--max-workers", "3", "--job-queue-size", "50")
        assert pm.apply_environment(parsed) == []
    assert (parsed.count, parsed.s3_url) == (2, (BUCKET, "multi-model/ep/"))
    assert parsed.workers["maxWorkers"] == 3 and parsed.workers["job_queue_size"] == 50


def test_env_without_a_deployed_storage_stack_says_what_to_do(capsys):
    with mock_aws():
        assert pm.run(parse("--env", "dev", "--region", "us-east-1"), client=NoCalls()) == 2
    err = capsys.readouterr().err
    assert "cannot read stack MlAccel-dev-Storage" in err and "deploy it or pass S3_PREFIX" in err


def test_a_prefix_or_an_environment_is_required(capsys):
    assert pm.run(parse(), client=NoCalls()) == 2
    assert "S3_PREFIX: required unless --env names an environment" in capsys.readouterr().err


def test_unknown_environment_is_reported(capsys):
    assert pm.run(parse("--env", "qa"), client=NoCalls()) == 2
    assert "unknown environment 'qa'; known environments: dev, prod" in capsys.readouterr().err


def test_a_model_file_cannot_be_checked_without_skops(tmp_path, monkeypatch, no_build, capsys):
    import io
    import sys
    import zipfile

    monkeypatch.setitem(sys.modules, "skops.io", None)  # as in an environment without skops
    schema = {"_skops_version": "0.13.0", "content": {"content": {"_sklearn_version": {"content": '"1.7.2"'}}}}
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    path = tmp_path / "model.skops"
    path.write_bytes(data.getvalue())
    assert pm.run(args("--model-file", str(path)), client=NoCalls()) == 2
    assert "--model-file: checking the types in the file needs skops" in capsys.readouterr().err


def test_a_model_file_records_versions_that_are_checked_against_the_chosen_runtime(tmp_path, no_build, capsys):
    import io
    import zipfile

    schema = {"_skops_version": "0.13.0", "content": {"content": {"_sklearn_version": {"content": '"1.7.2"'}}}}
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    path = tmp_path / "model.skops"
    path.write_bytes(data.getvalue())
    assert pm.run(args("--runtime", "seed", "--model-file", str(path)), client=NoCalls()) == 2
    err = capsys.readouterr().err
    assert "--model-file: saved with scikit-learn 1.7.2, the lock has 1.3.2" in err
    assert "--model-file: saved with skops 0.13.0, the lock has 0.9.0" in err
