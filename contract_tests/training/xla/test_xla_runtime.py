"""The reference training loop, the collective check and the device probe on torch-xla 2.9 (CPU)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import boto3
import pytest

from trainium_runtime.checkpoints import CheckpointStore
from trainium_runtime.preflight import TENSOR_CHECK, Preflight, run_command
from trainium_runtime.supervise import supervise

from xla_helpers import free_port, run, torchrun

BUCKET = "training-checkpoints"
# A model small enough for a CPU; the loop, the optimizer step, the sampler and the
# checkpoints are the reference's own.
TINY = ["--vocab", "64", "--seq-len", "1", "--embed-dim", "32", "--hidden", "64", "--layers", "1",
        "--batch-size", "16", "--samples", "512", "--lr", "1e-2", "--log-every", "1"]
PROGRAM = ["-m", "trainium_runtime.train_reference", "train"]
LOSS = re.compile(r"^step (\d+) loss ([0-9.]+)$", re.M)


@pytest.fixture
def s3_server():
    """moto's S3 as a server: the training program runs in torchrun's worker processes."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


def test_reference_training_learns_checkpoints_and_a_second_attempt_resumes(xla_env, s3_server):
    endpoint, s3 = s3_server
    env = {**xla_env, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "CHECKPOINT_URL": f"s3://{BUCKET}/checkpoints/", "RUN_ID": "run-1", "CHECKPOINT_EVERY_STEPS": "8"}
    first = run(torchrun(1, [*PROGRAM, "--max-steps", "16", *TINY]), env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    losses = {int(step): float(loss) for step, loss in LOSS.findall(first.stdout)}
    assert sorted(losses) == list(range(1, 17))
    early, late = sum(losses[s] for s in (1, 2, 3, 4)) / 4, sum(losses[s] for s in (13, 14, 15, 16)) / 4
    assert late < early * 0.9, losses  # it learns (labels are a function of the first token)
    store = CheckpointStore(s3, f"s3://{BUCKET}/checkpoints/", "run-1")
    assert store.latest().step == 16
    # Rank 0 reported its progress and, after the last step, disarmed the watchdog for the final upload.
    assert Path(env["PROGRESS_FILE"]).read_text() == "done"

    # The retried job (same run id) resumes from step 16, not from scratch.
    second = run(torchrun(1, [*PROGRAM, "--max-steps", "20", *TINY]), env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert sorted(int(step) for step, _ in LOSS.findall(second.stdout)) == [17, 18, 19, 20]
    assert store.latest().step == 20


def test_collective_check_all_reduces_on_the_xla_device(xla_env):
    result = run(torchrun(1, ["-m", "trainium_runtime.collective_check", "--mib", "1", "--iters", "2"]), xla_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "collective check: 1 ranks" in result.stdout


def test_collective_check_fails_ranks_that_do_not_share_a_world(xla_env):
    # Two processes whose XLA clients cannot see each other (the CPU client is per
    # process): the all-reduce sums one contribution, not two, and the check says so.
    result = supervise(torchrun(2, ["-m", "trainium_runtime.collective_check", "--mib", "1", "--iters", "1"]),
                       xla_env, out=_Sink())
    assert result.returncode != 0
    assert result.retryable_reason == "collective check"


def test_device_probe_runs_a_matmul_on_the_xla_device(xla_env):
    result = run([sys.executable, "-c", TENSOR_CHECK], xla_env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_preflight_passes_a_node_whose_device_answers(xla_env, monkeypatch):
    for key in ("PATH", "PJRT_DEVICE"):
        monkeypatch.setenv(key, xla_env[key])
    # /dev/neuron* exist only on a trn1 host: the glob is the one stand-in here.
    checks = Preflight(neuron_devices=2, efa_devices=0, neuron_cores=4, collectives=False)
    assert checks.problems(run_command, lambda pattern: ["/dev/neuron0", "/dev/neuron1"]) == []


class _Sink:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass
