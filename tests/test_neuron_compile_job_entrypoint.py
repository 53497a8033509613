"""The Batch job's entrypoint, run for real (bash + python3 + boto3) against a moto S3 server.

It is what runs inside the Neuron container: fetch the compile package by its
asset key, unpack it, call compile.py with the contract's arguments. A stand-in
compile.py records its arguments and uploads like the real one (manifest last).
The container's own entrypoint is reproduced too: Docker's plain exec, DJL
Serving's `eval "$@"`, and the SageMaker inference images' shlex re-split.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from ml_constructs.neuron_compile.compilation import job_command
from ml_constructs.packaging import build_model_tarball

BUCKET = "assets"
OUT = "models"

FAKE_COMPILE = """\
import argparse, json, sys, boto3
p = argparse.ArgumentParser()
for name in ("--model-id", "--revision", "--height", "--width", "--dtype", "--compiler-args", "--exporter", "--output-dir", "--upload-url"):
    p.add_argument(name)
args = p.parse_args()
if args.model_id == "fail/please":
    print("out of host memory while tracing the UNet", file=sys.stderr)
    sys.exit(3)
bucket, _, prefix = args.upload_url[len("s3://"):].partition("/")
s3 = boto3.client("s3")
s3.put_object(Bucket=bucket, Key=prefix + "args.json", Body=json.dumps(vars(args)).encode())
s3.put_object(Bucket=bucket, Key=prefix + "manifest.json", Body=b"{}")
"""


@pytest.fixture(scope="module")
def s3_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def package(s3_server, tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("package")
    (folder / "compile.py").write_text(FAKE_COMPILE)
    tarball = tmp_path_factory.mktemp("built") / "model.tar.gz"
    build_model_tarball(folder, tarball)
    env = aws_env(s3_server)
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name=env["AWS_DEFAULT_REGION"],
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    for bucket in (BUCKET, OUT):
        s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(tarball), BUCKET, "abc123.gz")
    return {"SCRIPT_BUCKET": BUCKET, "SCRIPT_KEY": "abc123.gz"}


def aws_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"}


# What each image family's ENTRYPOINT does with the job's command.
ENTRYPOINTS = {
    "exec": ("my-registry.example.com/neuron-compile:sdk2.20.1", []),
    "djl-eval": ("djl-inference:0.30.0-neuronx-sdk2.20.1", ["bash", "-c", 'set -e; eval "$@"', "dockerd-entrypoint.sh"]),
    "sagemaker-shlex": (
        "pytorch-inference-neuronx:2.1.2-neuronx-py310-sdk2.20.2-ubuntu20.04",
        [sys.executable, "-c", "import shlex, subprocess, sys; subprocess.check_call(shlex.split(' '.join(sys.argv[1:])))"],
    ),
}


def run_job(s3_server: str, package: dict[str, str], tmp_path: Path, *, style: str = "djl-eval",
            command: list[str] | None = None, **inputs: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
        **aws_env(s3_server), **package,
        "MODEL_ID": "stabilityai/stable-diffusion-2-1-base", "MODEL_REVISION": "", "HEIGHT": "512", "WIDTH": "512",
        "DTYPE": "bf16", "COMPILER_ARGS": "--target=inf2 --model-type=unet-inference",
        "UPLOAD_URL": f"s3://{OUT}/neuron-artifacts/{inputs.get('hash', 'h1')}/",
    }
    env.update({k: v for k, v in inputs.items() if k != "hash"})
    image, wrapper = ENTRYPOINTS[style]
    return subprocess.run([*wrapper, *(command or job_command(image))], check=False, env=env, capture_output=True, text=True, timeout=120)


def uploaded(s3_server: str, key: str) -> bytes:
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    return s3.get_object(Bucket=OUT, Key=key)["Body"].read()


@pytest.mark.parametrize("style", sorted(ENTRYPOINTS))
def test_entrypoint_runs_compile_py_with_the_contracts_arguments(s3_server, package, tmp_path, style):
    result = run_job(s3_server, package, tmp_path, style=style, hash=f"h1-{style}")
    assert result.returncode == 0, result.stderr
    args = json.loads(uploaded(s3_server, f"neuron-artifacts/h1-{style}/args.json"))
    assert args["model_id"] == "stabilityai/stable-diffusion-2-1-base"
    assert (args["height"], args["width"], args["dtype"]) == ("512", "512", "bf16")
    assert args["compiler_args"] == "--target=inf2 --model-type=unet-inference"
    assert args["exporter"] == "torch-neuronx"  # EXPORTER unset: the DJL layout
    assert args["upload_url"] == f"s3://{OUT}/neuron-artifacts/h1-{style}/"
    assert args["revision"] is None  # an empty revision is not passed at all
    assert uploaded(s3_server, f"neuron-artifacts/h1-{style}/manifest.json") == b"{}"


def test_an_unquoted_script_would_not_survive_djls_eval(s3_server, package, tmp_path):
    """Why job_command quotes the script for re-joining entrypoints."""
    plain = job_command("my-registry.example.com/neuron-compile:sdk2.20.1")
    result = run_job(s3_server, package, tmp_path, style="djl-eval", command=plain, hash="h5")
    assert result.returncode != 0 and "compiling" not in result.stdout
    assert "option requires an argument" in result.stderr  # the eval'd "# comment" ate the script


def test_entrypoint_passes_the_exporter_and_installs_nothing(s3_server, package, tmp_path):
    result = run_job(s3_server, package, tmp_path, hash="h6", EXPORTER="optimum-neuron")
    assert result.returncode == 0, result.stderr
    assert json.loads(uploaded(s3_server, "neuron-artifacts/h6/args.json"))["exporter"] == "optimum-neuron"
    assert "pip install" not in (Path(__file__).parents[1] / "ml_constructs/neuron_compile/job_entrypoint.sh").read_text(
        ).split("python3 -c 'import boto3'")[1].split("\n", 1)[1]  # only boto3, where an image lacks it


def test_a_single_flag_reaches_compile_py_intact(s3_server, package, tmp_path):
    # argparse would read "--target=inf2" after a separate --compiler-args as an option of its own.
    result = run_job(s3_server, package, tmp_path, hash="h7", COMPILER_ARGS="--target=inf2")
    assert result.returncode == 0, result.stderr
    assert json.loads(uploaded(s3_server, "neuron-artifacts/h7/args.json"))["compiler_args"] == "--target=inf2"


def test_entrypoint_passes_a_revision_when_one_is_set(s3_server, package, tmp_path):
    result = run_job(s3_server, package, tmp_path, hash="h2", MODEL_REVISION="5ede9e4")
    assert result.returncode == 0, result.stderr
    assert json.loads(uploaded(s3_server, "neuron-artifacts/h2/args.json"))["revision"] == "5ede9e4"


def test_a_failing_compile_fails_the_job_with_its_exit_code_and_message(s3_server, package, tmp_path):
    result = run_job(s3_server, package, tmp_path, style="exec", hash="h3", MODEL_ID="fail/please")
    assert result.returncode == 3
    assert "out of host memory while tracing the UNet" in result.stderr


def test_a_missing_package_fails_the_job_before_compiling(s3_server, package, tmp_path):
    result = run_job(s3_server, package, tmp_path, hash="h4", SCRIPT_KEY="missing.gz")
    assert result.returncode != 0
    assert "compiling" not in result.stdout
