"""Train, package, publish to (moto's) S3, load the published package in the handler,
predict: the whole path a model takes, in the serving image's environment."""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
import threading
import time
from pathlib import Path

import boto3
import pytest
import skops.io as sio
from djl_python import Input
from moto import mock_aws

from config import load_config
from ml_tools import publish_models as pm
from ml_tools.__main__ import main as cli_main
from runtime_profiles import load_profile

BUCKET = "models"
PREFIX = "multi-model/ep/"


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def keys(client, prefix=PREFIX) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def unpack(data: bytes, into: Path) -> Path:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def test_this_environment_is_the_lock():
    # The publisher's own check passes here, and only here: the environment built from the lock.
    assert pm.lock_problems(load_profile("multi_model", "current")) == []


def test_round_trip_through_s3_into_the_handler(s3, tmp_path: Path, handler_from, capsys):
    prod = load_config("prod").multi_model
    # With a prefix given, --env prod supplies the settings only (prod: 72-vCPU ml.c5d.18xlarge).
    assert cli_main(["publish-models", f"s3://{BUCKET}/{PREFIX}", "--count", "3", "--env", "prod"]) == 0
    assert capsys.readouterr().out.strip() == f"uploaded 3, unchanged 0, under s3://{BUCKET}/{PREFIX}"
    assert keys(s3) == [f"{PREFIX}sklearn-{i}.tar.gz" for i in range(3)]

    body = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}sklearn-1.tar.gz")["Body"].read()
    folder = unpack(body, tmp_path / "sklearn-1")
    assert sorted(p.name for p in folder.iterdir()) == ["model.py", "model.skops", "serving.properties"]
    props = dict(line.split("=", 1) for line in (folder / "serving.properties").read_text().splitlines()
                 if line and not line.startswith("#"))
    assert props == {"engine": "Python", "minWorkers": "1", "maxWorkers": "72", "job_queue_size": "1000",
                     "max_idle_time": str(prod.max_idle_time_seconds), "required_memory_mb": "150"}

    handler = handler_from(folder)  # the handler that was shipped, not the repository's copy
    assert handler.handle(Input.load_call(str(folder))) is None
    out = handler.handle(Input.request_json({"inputs": [[2.0], [-1.0]]}))
    assert out.code == 200 and json.loads(out.body())["predictions"] == pytest.approx([5.0, -1.0], abs=0.05)
    bad = handler.handle(Input.request(b'{"inputs": [[1, 2]]}'))
    assert bad.code == 400 and "the model expects 1" in json.loads(bad.body())["error"]


def test_republishing_uploads_only_what_changed(s3):
    workers = {"minWorkers": 1, "maxWorkers": 4, "job_queue_size": 100, "max_idle_time": 600}
    first = pm.publish(s3, BUCKET, PREFIX, pm.build_packages(5, workers=workers))
    assert len(first.uploaded) == 5
    head = s3.head_object(Bucket=BUCKET, Key=f"{PREFIX}sklearn-3.tar.gz")
    stored = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}sklearn-3.tar.gz")["Body"].read()
    assert head["Metadata"]["sha256"] == hashlib.sha256(stored).hexdigest()

    puts = []
    s3.meta.events.register("before-parameter-build.s3.PutObject", lambda params, **_: puts.append(params["Key"]))
    again = pm.publish(s3, BUCKET, PREFIX, pm.build_packages(6, workers=workers))  # retrained: same bytes
    assert again.skipped == [f"sklearn-{i}.tar.gz" for i in range(5)] and puts == [f"{PREFIX}sklearn-5.tar.gz"]
    changed = pm.publish(s3, BUCKET, PREFIX, pm.build_packages(2, workers={**workers, "maxWorkers": 8}))
    assert changed.uploaded == ["sklearn-0.tar.gz", "sklearn-1.tar.gz"]


def test_distinct_models_differ(tmp_path: Path):
    packages = pm.build_packages(2, distinct=True)
    assert packages[0].sha256 != packages[1].sha256


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


def test_dry_run_uploads_nothing(s3, capsys):
    assert cli_main(["publish-models", f"s3://{BUCKET}/{PREFIX}", "--count", "4", "--dry-run"]) == 0
    assert keys(s3) == []
    assert f"would upload 4, unchanged 0, under s3://{BUCKET}/{PREFIX}" in capsys.readouterr().out


def model_file_args(path: Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    pm.configure(parser)
    return parser.parse_args([f"s3://{BUCKET}/{PREFIX}", "--count", "2", "--model-file", str(path)])


def test_a_model_file_from_this_environment_is_published(s3, tmp_path: Path, train):
    path = tmp_path / "mine.skops"
    path.write_bytes(train.model_bytes(7))
    assert pm.run(model_file_args(path), client=s3) == 0
    assert keys(s3) == [f"{PREFIX}sklearn-0.tar.gz", f"{PREFIX}sklearn-1.tar.gz"]


def test_a_model_file_saved_with_other_versions_is_refused_before_upload(s3, tmp_path: Path, train, capsys):
    # What a file saved under scikit-learn 1.9.1 / skops 0.16.0 records, everything else equal.
    import zipfile

    source, out = zipfile.ZipFile(io.BytesIO(train.model_bytes(0))), io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "schema.json":
                schema = json.loads(data)
                schema["_skops_version"] = "0.16.0"
                schema["content"]["content"]["_sklearn_version"]["content"] = '"1.9.1"'
                data = json.dumps(schema).encode()
            target.writestr(info, data)
    path = tmp_path / "other.skops"
    path.write_bytes(out.getvalue())
    assert pm.run(model_file_args(path), client=s3) == 2
    err = capsys.readouterr().err
    assert "--model-file: saved with scikit-learn 1.9.1, the lock has 1.7.2" in err
    assert "--model-file: saved with skops 0.16.0, the lock has 0.13.0" in err
    assert keys(s3) == []


def test_a_model_file_the_handler_would_refuse_is_refused_before_upload(s3, tmp_path: Path, capsys):
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "evil.skops"
    path.write_bytes(sio.dumps(FunctionTransformer(func=eval)))
    assert pm.run(model_file_args(path), client=s3) == 2
    assert "holds types the handler does not trust: builtins.eval" in capsys.readouterr().err
    assert keys(s3) == []
