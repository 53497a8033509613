"""The Batch job's entrypoint, run for real (bash + python3 + boto3) against a moto S3 server.

It is what runs inside the Neuron container: fetch the compile package by its
asset key, unpack it, call compile.py with the contract's arguments. A stand-in
compile.py records its arguments and uploads like the real one (manifest last).
The container's own entrypoint is reproduced too: an init that runs the command and
returns its status (tini's way; with no entrypoint at all the script is PID 1 and the
container ends with it), DJL Serving's `eval "$@"`, the SageMaker inference images' shlex
re-split, and the Hugging Face Neuron inference image's, which re-splits, runs the command,
then blocks in `tail -f /dev/null` (aws/deep-learning-containers
huggingface/build_artifacts/inference/neuron-entrypoint.py).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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
import os
s3.put_object(Bucket=bucket, Key=prefix + "args.json",
              Body=json.dumps(vars(args) | {"hf_hub_offline": os.environ.get("HF_HUB_OFFLINE")}).encode())
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


# The Hugging Face Neuron inference image's entrypoint for a command other than "serve" (its
# neuron-monitor start left out): the command, re-split, then a wait that never ends.
HF_NEURON_ENTRYPOINT = (
    "import shlex, subprocess, sys\n"
    "subprocess.check_call(shlex.split(' '.join(sys.argv[1:])))\n"
    "subprocess.call(['tail', '-f', '/dev/null'])  # prevent docker exit\n"
)

# What each image family's ENTRYPOINT does with the job's command.
ENTRYPOINTS = {
    "init-wait": ("my-registry.example.com/neuron-compile:sdk2.20.1", [
        sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"]),
    "djl-eval": ("djl-inference:0.30.0-neuronx-sdk2.20.1", ["bash", "-c", 'set -e; eval "$@"', "dockerd-entrypoint.sh"]),
    "sagemaker-shlex": (
        "pytorch-inference-neuronx:2.1.2-neuronx-py310-sdk2.20.2-ubuntu20.04",
        [sys.executable, "-c", "import shlex, subprocess, sys; subprocess.check_call(shlex.split(' '.join(sys.argv[1:])))"],
    ),
    "hf-neuron-blocks": ("huggingface-pytorch-inference-neuronx:2.8.0-transformers4.55.4-neuronx-py310-sdk2.26.0-ubuntu22.04",
                         [sys.executable, "-c", HF_NEURON_ENTRYPOINT]),
}


def job_env(s3_server: str, package: dict[str, str], tmp_path: Path, inputs: dict[str, str]) -> dict[str, str]:
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
        **aws_env(s3_server), **package,
        "MODEL_ID": "stabilityai/stable-diffusion-2-1-base", "MODEL_REVISION": "", "HEIGHT": "512", "WIDTH": "512",
        "DTYPE": "bf16", "COMPILER_ARGS": "--target=inf2 --model-type=unet-inference",
        "UPLOAD_URL": f"s3://{OUT}/neuron-artifacts/{inputs.get('hash', 'h1')}/",
    }
    env.update({k: v for k, v in inputs.items() if k != "hash"})
    return env


def run_job(s3_server: str, package: dict[str, str], tmp_path: Path, *, style: str = "djl-eval",
            command: list[str] | None = None, timeout: float = 120, **inputs: str) -> subprocess.CompletedProcess:
    """The container: its entrypoint with the job's command, in a session of its own so that whatever
    it leaves running is ended here (and only that)."""
    image, wrapper = ENTRYPOINTS[style]
    argv = [*wrapper, *(command or job_command(image))]
    proc = subprocess.Popen(argv, env=job_env(s3_server, package, tmp_path, inputs), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


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
    result = run_job(s3_server, package, tmp_path, style="init-wait", hash="h3", MODEL_ID="fail/please")
    assert result.returncode == 3
    assert "out of host memory while tracing the UNet" in result.stderr


def test_a_missing_package_fails_the_job_before_compiling(s3_server, package, tmp_path):
    result = run_job(s3_server, package, tmp_path, hash="h4", SCRIPT_KEY="missing.gz")
    assert result.returncode != 0
    assert "compiling" not in result.stdout


def test_the_hf_neuron_entrypoint_alone_never_ends():
    """The reproduction holds: a command that succeeds leaves the container waiting."""
    proc = subprocess.Popen([sys.executable, "-c", HF_NEURON_ENTRYPOINT, "true"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_finished_compile_ends_the_job_behind_the_hf_neuron_entrypoint(s3_server, package, tmp_path):
    start = time.monotonic()
    result = run_job(s3_server, package, tmp_path, style="hf-neuron-blocks", hash="h8", timeout=60)
    assert result.returncode == 0, result.stderr  # the job SUCCEEDS, not killed at its timeout
    assert time.monotonic() - start < 30
    assert uploaded(s3_server, "neuron-artifacts/h8/manifest.json") == b"{}"


def test_a_failed_compile_fails_the_job_behind_the_hf_neuron_entrypoint(s3_server, package, tmp_path):
    result = run_job(s3_server, package, tmp_path, style="hf-neuron-blocks", hash="h9", timeout=60,
                     MODEL_ID="fail/please")
    assert result.returncode != 0
    assert "out of host memory while tracing the UNet" in result.stderr


@pytest.mark.parametrize(("model_id", "offline"), [("s3://weights/sd21/abc/", "1"), ("stabilityai/stable-diffusion-2-1-base", None)])
def test_staged_weights_compile_with_the_hub_offline(s3_server, package, tmp_path, model_id, offline):
    result = run_job(s3_server, package, tmp_path, hash=f"h10-{offline}", MODEL_ID=model_id)
    assert result.returncode == 0, result.stderr
    assert json.loads(uploaded(s3_server, f"neuron-artifacts/h10-{offline}/args.json"))["hf_hub_offline"] == offline
