"""stage-weights against moto's S3: what is uploaded, skipped, recorded and refused."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from ml_tools import stage_weights
from ml_tools.__main__ import main as cli_main

BUCKET = "models"
REVISION = "0123456789abcdef0123456789abcdef01234567"
FILES = {"config.json": b'{"model_type": "opt"}', "tokenizer.json": b"{}",
         "model-00001-of-00002.safetensors": b"\x01" * 4096, "model-00002-of-00002.safetensors": b"\x02" * 1024}


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    root = tmp_path / "snapshot"
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    cache = root / ".cache" / "huggingface" / "download"  # what huggingface-cli download --local-dir leaves
    cache.mkdir(parents=True)
    (cache / "config.json.metadata").write_text(f"{REVISION}\nsomething\n1700000000.0\n")
    return root


def calls_of(client, *names: str) -> list[str]:
    """Keys of the calls named, in call order, from now on."""
    seen: list[str] = []
    for name in names:
        client.meta.events.register(f"before-parameter-build.s3.{name}", lambda params, **_: seen.append(params.get("Key", "")))
    return seen


def run(*argv: str, client=None, cloudformation=None) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    stage_weights.configure(parser)
    return stage_weights.run(parser.parse_args(list(argv)), client=client, cloudformation=cloudformation)


def test_first_run_uploads_every_file_with_its_hash_and_revision(s3, snapshot, capsys):
    assert run(str(snapshot), f"s3://{BUCKET}/weights/opt-30b/", client=s3) == 0
    for name, data in FILES.items():
        head = s3.head_object(Bucket=BUCKET, Key=f"weights/opt-30b/{name}")
        assert head["Metadata"] == {"sha256": hashlib.sha256(data).hexdigest(), "revision": REVISION}
        assert s3.get_object(Bucket=BUCKET, Key=f"weights/opt-30b/{name}")["Body"].read() == data
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert not [k for k in keys if "/.cache/" in k]  # hidden folders are not staged
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="weights/opt-30b.staged.json")["Body"].read())
    assert manifest["revision"] == REVISION and set(manifest["files"]) == set(FILES)
    assert manifest["files"]["config.json"] == {"sha256": hashlib.sha256(FILES["config.json"]).hexdigest(), "bytes": 21}
    assert f"uploaded 4, unchanged 0, revision {REVISION}, under s3://{BUCKET}/weights/opt-30b/" in capsys.readouterr().out


def test_second_run_uploads_nothing_and_a_changed_file_alone(s3, snapshot, capsys):
    assert run(str(snapshot), f"s3://{BUCKET}/w/", client=s3) == 0
    puts = calls_of(s3, "PutObject", "CreateMultipartUpload")
    assert run(str(snapshot), f"s3://{BUCKET}/w/", client=s3) == 0
    assert puts == ["w.staged.json"]  # only the manifest is rewritten
    (snapshot / "tokenizer.json").write_bytes(b'{"changed": true}')
    assert run(str(snapshot), f"s3://{BUCKET}/w/", client=s3) == 0
    assert sorted(puts) == ["w.staged.json", "w.staged.json", "w/tokenizer.json"]
    assert "uploaded 1, unchanged 3" in capsys.readouterr().out.splitlines()[-1]


def test_objects_not_in_the_snapshot_are_listed_and_deleted_on_request(s3, snapshot, capsys):
    s3.put_object(Bucket=BUCKET, Key="w/old-shard.bin", Body=b"old revision")
    assert run(str(snapshot), f"s3://{BUCKET}/w/", client=s3) == 0
    assert "1 object(s) not in SOURCE (--delete-stale removes them): old-shard.bin" in capsys.readouterr().out
    assert run(str(snapshot), f"s3://{BUCKET}/w/", "--delete-stale", client=s3) == 0
    assert "1 object(s) deleted: old-shard.bin" in capsys.readouterr().out
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="w/")["Contents"]) == sorted(
        f"w/{name}" for name in FILES)


def test_dry_run_writes_nothing(s3, snapshot, capsys):
    assert run(str(snapshot), f"s3://{BUCKET}/w/", "--dry-run", client=s3) == 0
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    assert "would upload 4, unchanged 0" in capsys.readouterr().out


def test_progress_counts_every_byte(s3, snapshot):
    seen: list[int] = []
    files = stage_weights.snapshot_files(snapshot)
    stage_weights.stage(s3, BUCKET, "w/", files, revision=REVISION, progress=seen.append)
    assert sum(seen) == sum(len(d) for d in FILES.values())
    seen.clear()
    stage_weights.stage(s3, BUCKET, "w/", files, revision=REVISION, progress=seen.append)  # skipped files count too
    assert sum(seen) == sum(len(d) for d in FILES.values())


def test_revision_of_a_hugging_face_cache_snapshot_is_its_folder_name(tmp_path: Path):
    folder = tmp_path / "models--facebook--opt-30b" / "snapshots" / REVISION
    folder.mkdir(parents=True)
    assert stage_weights.detect_revision(folder) == REVISION
    assert stage_weights.detect_revision(tmp_path) is None


def test_a_snapshot_without_a_revision_needs_one(s3, tmp_path: Path, capsys):
    (tmp_path / "config.json").write_text("{}")
    assert run(str(tmp_path), f"s3://{BUCKET}/w/", client=s3) == 2
    assert "--revision: required, the snapshot records none" in capsys.readouterr().err
    assert run(str(tmp_path), f"s3://{BUCKET}/w/", "--revision", "abc1234", client=s3) == 0
    assert s3.head_object(Bucket=BUCKET, Key="w/config.json")["Metadata"]["revision"] == "abc1234"


class Outputs:
    """A CloudFormation client that knows one deployed storage stack."""

    def __init__(self, stack: str, url: str) -> None:
        self.stack, self.url = stack, url

    def describe_stacks(self, StackName: str) -> dict:  # noqa: N803 - boto3's spelling
        assert StackName == self.stack
        return {"Stacks": [{"Outputs": [{"OutputKey": "ModelWeightsUrl", "OutputValue": self.url}]}]}


def test_env_and_model_resolve_the_models_weights_prefix(s3, snapshot):
    cloudformation = Outputs("MlAccel-prod-Storage", f"s3://{BUCKET}/weights/")
    # bloom-176b on the default (current) runtime: the bf16 snapshot's own prefix (the seed's holds DeepSpeed files)
    assert run(str(snapshot), "--env", "prod", "--model", "bloom-176b", client=s3, cloudformation=cloudformation) == 0
    assert s3.head_object(Bucket=BUCKET, Key="weights/bloom-176b-bf16/config.json")["Metadata"]["revision"] == REVISION
    assert run(str(snapshot), "--env", "prod", "--prefix", "sd21/", client=s3, cloudformation=cloudformation) == 0
    assert s3.head_object(Bucket=BUCKET, Key="weights/sd21/config.json")


@pytest.mark.parametrize(("argv", "message"), [
    (["--env", "prod", "--model", "gpt-x"], "--model: got 'gpt-x', allowed: bloom-176b, opt-30b"),
    (["--env", "prod"], "give exactly one of --model (an LLM model) and --prefix"),
    (["--env", "prod", "--prefix", "../other/"], "--prefix: got '../other/', allowed: a relative folder"),
    (["--model", "opt-30b"], "S3_PREFIX: required unless --env"),
    ([f"s3://{BUCKET}/", "--revision", "abc1234"], "S3_PREFIX: a folder is required"),
    ([f"s3://{BUCKET}/w/", "--revision", "main"], "--revision: got 'main', allowed: a commit hash"),
    ([f"s3://{BUCKET}/w/", "--concurrency", "0"], "--concurrency: got 0, allowed: 1 to 64"),
])
def test_bad_arguments_exit_2_naming_the_option(s3, snapshot, capsys, argv, message):
    cloudformation = Outputs("MlAccel-prod-Storage", f"s3://{BUCKET}/weights/")
    assert run(str(snapshot), *argv, client=s3, cloudformation=cloudformation) == 2
    assert message in capsys.readouterr().err
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


@pytest.mark.parametrize(("quantization", "message"), [
    ({"quant_method": "bitsandbytes", "load_in_8bit": True},
     "--model bloom-176b: a pre-quantized bitsandbytes checkpoint with tensor_parallel_degree 8: vLLM 0.15.1 loads "
     "those with tensor_parallel_degree 1 only; allowed with tensor parallelism: a GPTQ, compressed-tensors (W8A16, "
     "W8A8) or FP8 checkpoint, or the unquantized one (llm.models.bloom-176b, docs/llm.md)"),
    ({"quant_method": "awq", "bits": 8}, "--model bloom-176b: an AWQ checkpoint of 8 bits: vLLM 0.15.1 loads 4-bit AWQ only"),
    ({"quant_method": "gptq", "bits": 8},
     "--model bloom-176b: config.json declares gptq quantization (8 bits), but prequantized_bits is not set: set "
     "prequantized_bits = 8 so the fit check sizes the GPUs for it"),
])
def test_a_checkpoint_vllm_cannot_serve_as_configured_is_refused_before_upload(s3, snapshot, capsys, quantization,
                                                                                message):
    (snapshot / "config.json").write_text(json.dumps({"model_type": "bloom", "quantization_config": quantization}))
    cloudformation = Outputs("MlAccel-prod-Storage", f"s3://{BUCKET}/weights/")
    assert run(str(snapshot), "--env", "prod", "--model", "bloom-176b", client=s3, cloudformation=cloudformation) == 2
    assert capsys.readouterr().err.startswith(f"stage-weights: {message}")
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_checkpoint_rules_follow_vllm_0_15_1():
    from config.llm_fit import checkpoint_problem

    w8a16 = {"quant_method": "compressed-tensors", "config_groups": {"group_0": {"weights": {"num_bits": 8}}}}
    assert checkpoint_problem(w8a16, 8, 8) is None
    assert checkpoint_problem({"quant_method": "gptq", "bits": 8}, 8, 8) is None
    assert checkpoint_problem({"quant_method": "fp8"}, 8, 8) is None
    assert checkpoint_problem({"quant_method": "bitsandbytes", "load_in_4bit": True}, 1, 4) is None  # TP 1 loads
    assert checkpoint_problem({"quant_method": "awq", "bits": 4}, 4, 4) is None
    assert checkpoint_problem(None, 8, None) is None
    assert checkpoint_problem(None, 8, 8) == ("config.json has no quantization_config, but prequantized_bits is 8: "
                                              "stage a 8-bit checkpoint, or set prequantized_bits = 0")
    assert checkpoint_problem(w8a16, 8, 4) == ("config.json declares 8-bit compressed-tensors weights, but "
                                               "prequantized_bits is 4: set prequantized_bits = 8, or stage a 4-bit "
                                               "checkpoint")


def test_missing_source_is_reported(s3, tmp_path: Path, capsys):
    assert run(str(tmp_path / "nowhere"), f"s3://{BUCKET}/w/", client=s3) == 2
    assert "SOURCE: " in capsys.readouterr().err


def test_the_command_is_registered(s3, snapshot, monkeypatch, capsys):
    monkeypatch.setattr("boto3.client", lambda *a, **k: s3)
    assert cli_main(["stage-weights", str(snapshot), f"s3://{BUCKET}/cli/"]) == 0
    assert "uploaded 4" in capsys.readouterr().out
