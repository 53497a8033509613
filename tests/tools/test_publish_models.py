"""The multi-model publisher against moto's S3: uploads, skips unchanged, dry run, concurrency."""
from __future__ import annotations

import argparse
import io
import tarfile
import threading
import time

import boto3
import joblib
import pytest
from moto import mock_aws

from ml_tools import publish_models as pm
from ml_tools.__main__ import main as cli_main

BUCKET = "models"


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def keys(client, prefix="multi-model/ep/") -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    pm.configure(parser)
    return parser.parse_args([f"s3://{BUCKET}/multi-model/ep", *extra])


def test_packages_are_copies_of_one_model_with_the_handler():
    packages = pm.build_packages(3)
    assert [p.key for p in packages] == ["sklearn-0.tar.gz", "sklearn-1.tar.gz", "sklearn-2.tar.gz"]
    assert len({p.sha256 for p in packages}) == 1
    with tarfile.open(fileobj=io.BytesIO(packages[0].data)) as tar:
        assert sorted(tar.getnames()) == ["model.joblib", "model.py", "serving.properties"]
        model = joblib.load(tar.extractfile("model.joblib"))
    assert model.predict([[3.0]])[0] == pytest.approx(7.0, abs=0.05)
    assert pm.build_packages(1)[0].data == packages[0].data  # reproducible bytes


def test_distinct_models_and_worker_settings():
    packages = pm.build_packages(2, distinct=True, min_workers=1, max_workers=4)
    assert packages[0].sha256 != packages[1].sha256
    with tarfile.open(fileobj=io.BytesIO(packages[1].data)) as tar:
        props = tar.extractfile("serving.properties").read().decode()
    assert "engine=Python\n" in props and "max_idle_time=600\n" in props
    assert "maxWorkers=4\n" in props and "minWorkers=1\n" in props


def test_publish_uploads_with_hash_metadata_then_skips_unchanged(s3):
    assert pm.run(args("--count", "5"), client=s3) == 0
    assert keys(s3) == sorted(f"multi-model/ep/sklearn-{i}.tar.gz" for i in range(5))
    head = s3.head_object(Bucket=BUCKET, Key="multi-model/ep/sklearn-3.tar.gz")
    body = s3.get_object(Bucket=BUCKET, Key="multi-model/ep/sklearn-3.tar.gz")["Body"].read()
    import hashlib
    assert head["Metadata"]["sha256"] == hashlib.sha256(body).hexdigest()

    puts = []
    s3.meta.events.register("before-parameter-build.s3.PutObject", lambda params, **_: puts.append(params["Key"]))
    again = pm.publish(s3, BUCKET, "multi-model/ep/", pm.build_packages(6))
    assert again.skipped == [f"sklearn-{i}.tar.gz" for i in range(5)]
    assert again.uploaded == ["sklearn-5.tar.gz"] and puts == ["multi-model/ep/sklearn-5.tar.gz"]


def test_changed_content_is_uploaded_again(s3):
    pm.publish(s3, BUCKET, "multi-model/ep/", pm.build_packages(2))
    changed = pm.publish(s3, BUCKET, "multi-model/ep/", pm.build_packages(2, max_workers=2))
    assert changed.uploaded == ["sklearn-0.tar.gz", "sklearn-1.tar.gz"]


def test_dry_run_uploads_nothing(s3, capsys):
    assert pm.run(args("--count", "4", "--dry-run"), client=s3) == 0
    assert keys(s3) == []
    assert "would upload 4, unchanged 0, under s3://models/multi-model/ep/" in capsys.readouterr().out


def test_uploads_run_concurrently(s3):
    in_flight, peak, lock = [0], [0], threading.Lock()

    def enter(**_):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)

    def leave(**_):
        with lock:
            in_flight[0] -= 1

    s3.meta.events.register("before-call.s3.PutObject", enter)
    s3.meta.events.register("after-call.s3.PutObject", leave)
    result = pm.publish(s3, BUCKET, "p/", pm.build_packages(16), concurrency=8)
    assert len(result.uploaded) == 16 and peak[0] >= 4


def test_access_errors_are_not_mistaken_for_missing_objects():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")  # bucket never created
        with pytest.raises(Exception, match="NoSuchBucket|404"):
            pm.publish(client, "absent-bucket", "p/", pm.build_packages(1))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--count", "0"], "--count: got 0, allowed: 1 to 100000"),
        (["--concurrency", "0"], "--concurrency: got 0, allowed: 1 to 256"),
        (["--min-workers", "4", "--max-workers", "2"], "--min-workers (4) must not exceed --max-workers (2)"),
        (["--min-workers", "0"], "--min-workers: got 0, allowed: 1 or more"),
        (["--model-file", "/nonexistent/model.joblib"], "--model-file: /nonexistent/model.joblib does not exist"),
    ],
)
def test_bad_options_are_rejected(extra, message, capsys):
    assert pm.run(args(*extra), client=object()) == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_a_non_s3_prefix(capsys):
    with pytest.raises(SystemExit):
        cli_main(["publish-models", "models/prefix"])
    assert "got 'models/prefix', expected s3://bucket/prefix/" in capsys.readouterr().err


def test_cli_lists_every_subcommand(capsys):
    assert cli_main([]) == 2
    help_text = capsys.readouterr().out
    for name in ("publish-models", "invoke-sd", "invoke-llm", "invoke-mme", "submit-training-job"):
        assert name in help_text


def test_building_packages_does_not_start_the_cdk_runtime():
    import subprocess
    import sys

    code = ("import sys; from ml_tools import publish_models as pm; pm.build_packages(1); "
            "assert 'aws_cdk' not in sys.modules and 'jsii' not in sys.modules, 'aws_cdk imported'")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=pm.REPO)
    assert run.returncode == 0, run.stderr


def test_cli_end_to_end(s3, capsys):
    assert cli_main(["publish-models", f"s3://{BUCKET}/multi-model/cli/", "--count", "3", "--max-workers", "2"]) == 0
    assert keys(s3, "multi-model/cli/") == [f"multi-model/cli/sklearn-{i}.tar.gz" for i in range(3)]
    assert cli_main(["publish-models", f"s3://{BUCKET}/multi-model/cli/", "--count", "3", "--max-workers", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["uploaded 3, unchanged 0, under s3://models/multi-model/cli/",
                   "uploaded 0, unchanged 3, under s3://models/multi-model/cli/"]


def storage_stack(region: str = "us-east-1", url: str = f"s3://{BUCKET}/multi-model/") -> None:
    """A deployed storage stack, as far as the publisher sees it: its MultiModelPackagesUrl output."""
    import json

    template = {"Resources": {"Logs": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "storage-logs"}}},
                "Outputs": {"MultiModelPackagesUrl": {"Value": url}}}
    boto3.client("cloudformation", region_name=region).create_stack(
        StackName="MlAccel-dev-Storage", TemplateBody=json.dumps(template))


def test_env_takes_count_workers_and_prefix_from_configuration(s3, capsys):
    from config import load_config

    mme = load_config("dev").multi_model
    storage_stack()
    assert cli_main(["publish-models", "--env", "dev", "--region", "us-east-1"]) == 0
    published = keys(s3, "multi-model/")
    assert published == sorted(f"multi-model/sklearn-{i}.tar.gz" for i in range(mme.model_count))
    body = s3.get_object(Bucket=BUCKET, Key=published[0])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        props = tar.extractfile("serving.properties").read().decode()
    assert f"max_idle_time={mme.max_idle_time_seconds}\n" in props
    assert f"uploaded {mme.model_count}, unchanged 0, under s3://{BUCKET}/multi-model/" in capsys.readouterr().out


def test_explicit_flags_beat_the_environment(s3):
    storage_stack()
    parsed = args("--env", "dev", "--count", "2", "--max-workers", "3")
    assert pm.apply_environment(parsed) == []
    assert (parsed.count, parsed.max_workers, parsed.s3_url) == (2, 3, (BUCKET, "multi-model/ep/"))


def test_env_without_a_deployed_storage_stack_says_what_to_do(s3, capsys):
    parser = argparse.ArgumentParser()
    pm.configure(parser)
    assert pm.run(parser.parse_args(["--env", "dev", "--region", "us-east-1"]), client=s3) == 2
    err = capsys.readouterr().err
    assert "cannot read stack MlAccel-dev-Storage" in err and "deploy it or pass S3_PREFIX" in err


def test_a_prefix_or_an_environment_is_required(capsys):
    parser = argparse.ArgumentParser()
    pm.configure(parser)
    assert pm.run(parser.parse_args([]), client=object()) == 2
    assert "S3_PREFIX: required unless --env names an environment" in capsys.readouterr().err


def test_unknown_environment_is_reported(capsys):
    parser = argparse.ArgumentParser()
    pm.configure(parser)
    assert pm.run(parser.parse_args(["--env", "qa"]), client=object()) == 2
    assert "unknown environment 'qa'; known environments: dev, prod" in capsys.readouterr().err
