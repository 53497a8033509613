"""Container runtime: checkpoints against moto S3, the launcher, pre-flight checks, the entrypoint."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from trainium_runtime import entrypoint
from trainium_runtime.checkpoints import CheckpointStore, run_id_from_env, should_checkpoint
from trainium_runtime.launcher import (
    LaunchError,
    launch_environment,
    rendezvous_from_env,
    torchrun_command,
)
from trainium_runtime.preflight import Preflight

BUCKET = "training-bucket"


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


# ---- checkpoints -------------------------------------------------------------

def test_resume_picks_the_newest_complete_checkpoint_and_ignores_an_incomplete_one(s3, tmp_path):
    store = CheckpointStore(s3, f"s3://{BUCKET}/checkpoints/", "job-1")
    store.save(500, {"state.pt": write(tmp_path, "a", b"step 500")})
    store.save(1000, {"state.pt": write(tmp_path, "b", b"step 1000")})
    # A node died while uploading step 1500: its files are there, its marker is not.
    s3.put_object(Bucket=BUCKET, Key="checkpoints/job-1/step-0000001500/state.pt", Body=b"partial")
    latest = store.latest()
    assert latest is not None and latest.step == 1000
    files = store.download(latest, tmp_path / "restore")
    assert files["state.pt"].read_bytes() == b"step 1000"
    assert latest.files == {"state.pt": len(b"step 1000")}


def test_steps_are_ordered_numerically_not_lexically(s3, tmp_path):
    store = CheckpointStore(s3, f"s3://{BUCKET}/checkpoints", "run")
    for step in (9, 10, 100):
        store.save(step, {"state.pt": write(tmp_path, f"s{step}", str(step).encode())})
    assert store.latest().step == 100


def test_the_marker_is_written_after_every_file(s3, tmp_path):
    written = []  # every object write, in the order S3 receives them
    s3.meta.events.register("provide-client-params.s3.PutObject", lambda params, **_: written.append(params["Key"]))
    store = CheckpointStore(s3, f"s3://{BUCKET}/checkpoints/", "run")
    store.save(7, {"model.pt": write(tmp_path, "m", b"m"), "optim.pt": write(tmp_path, "o", b"o")})
    prefix = "checkpoints/run/step-0000000007/"
    assert written == [prefix + "model.pt", prefix + "optim.pt", prefix + "COMPLETE"]
    marker = json.loads(s3.get_object(Bucket=BUCKET, Key=written[-1])["Body"].read())
    assert marker == {"files": {"model.pt": 1, "optim.pt": 1}, "step": 7}


def test_runs_do_not_see_each_other(s3, tmp_path):
    CheckpointStore(s3, f"s3://{BUCKET}/checkpoints/", "run-a").save(5, {"s": write(tmp_path, "s", b"x")})
    assert CheckpointStore(s3, f"s3://{BUCKET}/checkpoints/", "run-ab").latest() is None
    assert CheckpointStore(s3, f"s3://{BUCKET}/checkpoints/", "run-b").latest() is None


def test_no_checkpoint_yet_means_start_from_scratch(s3):
    assert CheckpointStore(s3, f"s3://{BUCKET}/checkpoints/", "fresh").latest() is None


@pytest.mark.parametrize(
    "files, message",
    [({}, "at least one file"), ({"a/b": "x"}, "plain name"), ({"COMPLETE": "x"}, "plain name")],
)
def test_bad_checkpoint_contents_are_refused(s3, files, message):
    with pytest.raises(ValueError, match=message):
        CheckpointStore(s3, f"s3://{BUCKET}/c/", "r").save(1, files)


def test_checkpoint_url_must_be_s3():
    with pytest.raises(ValueError, match="must be s3://bucket/prefix/"):
        CheckpointStore(None, "/local/path", "r")


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"AWS_BATCH_JOB_ID": "0f3c-11aa#2", "AWS_BATCH_JOB_ATTEMPT": "3"}, "0f3c-11aa"),
        ({"AWS_BATCH_JOB_ID": "0f3c-11aa"}, "0f3c-11aa"),
        ({"AWS_BATCH_JOB_ID": "0f3c#0", "RUN_ID": "pipeline-exec-1"}, "pipeline-exec-1"),
    ],
)
def test_run_id_is_stable_across_nodes_and_attempts(env, expected):
    assert run_id_from_env(env) == expected


@pytest.mark.parametrize("env, message", [({}, "no run id"), ({"RUN_ID": "../etc"}, "is not valid")])
def test_run_id_problems_are_reported(env, message):
    with pytest.raises(ValueError, match=message):
        run_id_from_env(env)


def test_checkpoint_interval():
    assert [s for s in range(0, 11) if should_checkpoint(s, 5)] == [5, 10]
    with pytest.raises(ValueError, match=">= 1"):
        should_checkpoint(3, 0)


# ---- launcher ----------------------------------------------------------------

def batch_env(num, index, main=0, main_ip="10.0.0.5"):
    env = {"AWS_BATCH_JOB_NUM_NODES": str(num), "AWS_BATCH_JOB_NODE_INDEX": str(index), "AWS_BATCH_JOB_MAIN_NODE_INDEX": str(main)}
    if index != main:
        env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = main_ip
    return env


def test_worker_node_rendezvous_at_the_main_node():
    rdzv = rendezvous_from_env(batch_env(4, 2), local_address=lambda: pytest.fail("workers need no own address"))
    assert torchrun_command(rdzv, ["-m", "train"]) == [
        "torchrun", "--nproc_per_node=32", "--nnodes=4", "--node_rank=2",
        "--master_addr=10.0.0.5", "--master_port=29500", "--rdzv-conf=timeout=300",
        "-m", "trainium_runtime.worker", "-m", "train",
    ]
    env = launch_environment(rdzv, {"FI_PROVIDER": "efa"})
    assert env["NEURON_RT_ROOT_COMM_ID"] == "10.0.0.5:62182" and env["FI_PROVIDER"] == "efa"


def test_main_node_uses_its_own_address_and_rank_zero():
    rdzv = rendezvous_from_env(batch_env(4, 0), local_address=lambda: "10.0.0.9")
    assert (rdzv.node_rank, rdzv.main_address, rdzv.is_main) == (0, "10.0.0.9", True)


def test_ranks_start_at_the_main_node_whatever_its_index():
    ranks = [rendezvous_from_env(batch_env(3, i, main=1), lambda: "10.0.0.1").node_rank for i in range(3)]
    assert ranks == [2, 0, 1]


def test_single_node_job_without_batch_multi_node_variables():
    rdzv = rendezvous_from_env({"NEURON_DEVICE_COUNT": "16"}, local_address=lambda: pytest.fail("not needed"))
    assert (rdzv.num_nodes, rdzv.node_rank, rdzv.main_address, rdzv.processes_per_node) == (1, 0, "127.0.0.1", 32)


@pytest.mark.parametrize(
    "env, message",
    [
        ({**batch_env(2, 1), "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": ""}, "PRIVATE_IPV4_ADDRESS is not set"),
        (batch_env(2, 2), "AWS_BATCH_JOB_NODE_INDEX must be in 0..1, got 2"),
        ({**batch_env(2, 1), "AWS_BATCH_JOB_MAIN_NODE_INDEX": "5"}, "AWS_BATCH_JOB_MAIN_NODE_INDEX must be in 0..1"),
        ({**batch_env(2, 1), "AWS_BATCH_JOB_NUM_NODES": "two"}, "AWS_BATCH_JOB_NUM_NODES must be an integer"),
        ({**batch_env(2, 1), "AWS_BATCH_JOB_NUM_NODES": "0"}, "must be >= 1"),
    ],
)
def test_inconsistent_batch_environment_is_a_launch_error(env, message):
    with pytest.raises(LaunchError, match=message):
        rendezvous_from_env(env, local_address=lambda: "10.0.0.1")


def test_torchrun_needs_a_program():
    with pytest.raises(LaunchError, match="no training program"):
        torchrun_command(rendezvous_from_env({}, lambda: ""), [])


# ---- pre-flight ----------------------------------------------------------------

class FakeHost:
    """Devices and commands of one host, as the pre-flight checks see them."""

    # Stand-ins for what exists only on a trn1 host: /dev/neuron* (Neuron driver), the
    # /dev/infiniband/uverbs* of its EFA interfaces, fi_info's answer ("provider: efa" per
    # interface; libfabric's fi_info(1) man page) and nccom-test's (Neuron docs,
    # tools/neuron-sys-tools/nccom-test.rst).
    def __init__(self, neuron=16, uverbs=8, failing=(), fi_info="/opt/amazon/efa/bin/fi_info"):
        self.paths = [f"/dev/neuron{i}" for i in range(neuron)] + [f"/dev/infiniband/uverbs{i}" for i in range(uverbs)]
        self.failing = set(failing)
        self.commands = []
        self.fi_info = fi_info

    def which(self, name):
        return self.fi_info if name == "fi_info" else None

    def glob(self, pattern):
        return [p for p in self.paths if p.startswith(pattern.rstrip("*"))]

    def run(self, command):
        self.commands.append(list(command))
        tool = command[0].rsplit("/", 1)[-1]
        name = command[-1] if tool == "nccom-test" else tool
        if name in self.failing:
            return subprocess.CompletedProcess(command, 1, "", f"{name} broke")
        return subprocess.CompletedProcess(command, 0, "provider: efa\n" if tool == "fi_info" else "", "")


def test_healthy_node_passes_every_check():
    host = FakeHost()
    assert Preflight(16, 8, 32).problems(host.run, host.glob, host.which) == []
    # fi_info is found in the EFA installer's folder even where PATH lacks it
    assert ["/opt/amazon/efa/bin/fi_info", "-p", "efa"] in host.commands
    assert [c[-1] for c in host.commands if c[0] == "nccom-test"] == ["allr", "allg", "redsct"]
    assert all(c[1:3] == ["-r", "32"] for c in host.commands if c[0] == "nccom-test")


@pytest.mark.parametrize(
    "host, message",
    [
        (FakeHost(neuron=15), "expected 16 Neuron devices, found 15 (missing /dev/neuron15): check the Neuron driver"),
        (FakeHost(uverbs=6), "expected 8 EFA devices, found 6 (missing /dev/infiniband/uverbs6, /dev/infiniband/uverbs7)"
                             ": check the EFA driver on the host (aws-efa-installer"),
        (FakeHost(failing={"fi_info"}), "libfabric has no efa provider (/opt/amazon/efa/bin/fi_info -p efa): exit 1"),
        (FakeHost(fi_info=None), "fi_info is neither on PATH nor in /opt/amazon/efa/bin: the image lacks the EFA tools"),
        (FakeHost(failing={"python3"}), "tensor check on a NeuronCore failed"),
        (FakeHost(failing={"allg"}), "nccom-test allg over 32 NeuronCores failed: exit 1: allg broke"),
    ],
)
def test_each_failed_check_is_reported(host, message):
    problems = Preflight(16, 8, 32).problems(host.run, host.glob, host.which)
    assert len(problems) == 1 and message in problems[0]


def test_single_node_checks_skip_efa_and_collectives():
    host = FakeHost(uverbs=0)
    checks = Preflight.from_env({"NEURON_DEVICE_COUNT": "16", "EFA_DEVICE_COUNT": "8"}, efa=False, collectives=False)
    assert checks.problems(host.run, host.glob, host.which) == []
    assert [c[0] for c in host.commands] == ["python3"]


# ---- entrypoint ------------------------------------------------------------------

TRAIN_ENV = {**batch_env(2, 1), "NEURON_DEVICE_COUNT": "16", "EFA_DEVICE_COUNT": "8", "RETRYABLE_EXIT_CODE": "75"}


def test_train_mode_checks_efa_and_launches_torchrun():
    job = entrypoint.plan(["train"], TRAIN_ENV, lambda: "unused")
    assert job.checks == Preflight(16, 8, 32, collectives=True)
    assert job.command[:5] == ["torchrun", "--nproc_per_node=32", "--nnodes=2", "--node_rank=1", "--master_addr=10.0.0.5"]
    assert "--rdzv-conf=timeout=300" in job.command
    assert job.command[-3:] == ["-m", "trainium_runtime.train_reference", "train"]
    assert job.env["NEURON_RT_ROOT_COMM_ID"] == "10.0.0.5:62182"
    # the Neuron collectives' sockets use the task's own interface (aws-neuron-samples' Batch scripts)
    assert job.env["CCOM_SOCKET_IFNAME"] == "eth0"


def test_rendezvous_timeout_comes_from_the_job_definition():
    job = entrypoint.plan(["train"], {**TRAIN_ENV, "RENDEZVOUS_TIMEOUT_SECONDS": "120"}, lambda: "unused")
    assert "--rdzv-conf=timeout=120" in job.command


def test_compile_mode_wraps_a_single_node_torchrun_in_neuron_parallel_compile():
    env = {"RUN_ID": "exec-7", "NEURON_DEVICE_COUNT": "16"}
    job = entrypoint.plan(["compile", "--steps", "4", "--", "-m", "my.train", "train"], env, lambda: "x")
    assert job.command[:3] == ["neuron_parallel_compile", "torchrun", "--nproc_per_node=32"]
    assert "--nnodes=1" in job.command and job.command[-5:] == ["-m", "my.train", "train", "--max-steps", "4"]
    # the traced steps' checkpoint must never be what training resumes from
    assert job.env["RUN_ID"] == "exec-7-aot-compile"


def test_compile_mode_follows_a_multi_node_topology_when_run_as_one():
    env = {**TRAIN_ENV, "AWS_BATCH_JOB_ID": "abc#1"}
    job = entrypoint.plan(["compile"], env, lambda: "x")
    assert "--nnodes=2" in job.command and "--node_rank=1" in job.command and job.command[0] == "neuron_parallel_compile"
    assert job.checks.efa_devices == 8 and job.env["RUN_ID"] == "abc-aot-compile"


def test_compile_mode_needs_a_run_id():
    with pytest.raises(LaunchError, match="no run id"):
        entrypoint.plan(["compile"], {"NEURON_DEVICE_COUNT": "16"}, lambda: "x")


def test_run_mode_runs_the_program_with_python():
    job = entrypoint.plan(["run", "--", "-m", "trainium_runtime.train_reference", "evaluate"], {}, str)
    assert job.command == ["python3", "-m", "trainium_runtime.train_reference", "evaluate"]
    assert job.checks.efa_devices == 0 and job.checks.collectives is False


def test_inconsistent_environment_exits_2_and_is_not_retried():
    services = entrypoint.Services(run=FakeHost().run, supervise=lambda *a, **k: pytest.fail("must not start"))
    assert entrypoint.main(["train"], {**TRAIN_ENV, "AWS_BATCH_JOB_NODE_INDEX": "9"}, services) == 2
