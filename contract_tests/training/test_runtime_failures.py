"""Failures that must retry (and those that must not): the pre-flight barrier, torchrun's
exit-code mapping, taking a bad host out of service, the heartbeat, resume after a 403."""
from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from trainium_runtime import entrypoint
from trainium_runtime.barrier import BarrierResult, gather, report
from trainium_runtime.checkpoints import CheckpointStore
from trainium_runtime.collective_check import bus_bandwidth_gbps, expected_sum, verdict
from trainium_runtime.heartbeat import (
    METRIC_NAME, STALLED_MARKER, Heartbeat, Watchdog, watchdog_from_env, write_done, write_step,
)
from trainium_runtime.preflight import Preflight, average_bus_bandwidth
from trainium_runtime.quarantine import take_out_of_service
from trainium_runtime.supervise import Outcome, Transcript, classify, read_error_file, retryable_reason, supervise

# ---- the pre-flight barrier over real sockets ------------------------------------


def run_barrier(num_nodes, child_problems, main_problems=(), timeout=5.0, silent=()):
    """Main node gathers on a free port; one thread per child reports. Returns (result, verdicts)."""
    port_ready = threading.Event()
    box: dict = {}

    def main_node():
        box["result"] = gather(
            num_nodes, 0, list(main_problems), port=0, bind_address="127.0.0.1", timeout=timeout,
            ready=lambda port: (box.__setitem__("port", port), port_ready.set()),
        )

    main = threading.Thread(target=main_node)
    main.start()
    assert port_ready.wait(5)
    verdicts: dict[int, bool] = {}
    children = []
    for node in range(1, num_nodes):
        if node in silent:
            continue

        def child(node=node):
            verdicts[node] = report("127.0.0.1", node, child_problems.get(node, []), port=box["port"], timeout=timeout)

        children.append(threading.Thread(target=child))
        children[-1].start()
    for thread in [main, *children]:
        thread.join(15)
    return box["result"], verdicts


def test_barrier_lets_a_healthy_cluster_go():
    result, verdicts = run_barrier(4, {})
    assert result.ok and verdicts == {1: True, 2: True, 3: True}


def test_one_failed_child_stops_every_node_and_the_main_node_learns_why():
    result, verdicts = run_barrier(4, {2: ["expected 8 EFA devices, found 7"]})
    assert not result.ok and result.failed == {2: ["expected 8 EFA devices, found 7"]}
    assert verdicts == {1: False, 2: False, 3: False}
    assert "node 2: expected 8 EFA devices" in result.summary()


def test_a_child_that_never_reports_fails_the_barrier_at_its_timeout():
    result, verdicts = run_barrier(3, {}, timeout=1.0, silent={2})
    assert result.missing == (2,) and not result.ok and verdicts == {1: False}


def test_the_main_nodes_own_failure_stops_the_children():
    result, verdicts = run_barrier(2, {}, main_problems=["tensor check failed"])
    assert result.failed == {0: ["tensor check failed"]} and verdicts == {1: False}


def test_a_child_without_a_main_node_gives_up_at_its_timeout():
    ticks = iter(range(100))
    assert report("127.0.0.1", 1, [], port=1, timeout=3, clock=lambda: next(ticks), sleep=lambda s: None) is False


# ---- torchrun's exit mapped to Batch's retry rules --------------------------------

RETRY = 75


# Log lines as their sources print them (docs/training.md, "Failures and retries", cites each).
TDRV_TIMEOUT = ("2023-Jan-09 20:27:41.0593 15042:15042 ERROR  TDRV:exec_consume_infer_status_notifications "
                "(FATAL-RT-UNDEFINED-STATE) inference timeout (600000 ms) on Neuron Device 0 NC 0, waiting for "
                "execution completion notification")  # torch-neuronx training troubleshooting guide
COLLECTIVES_HANG = ("(FATAL-RT-UNDEFINED-STATE) missing collectives status on Neuron Device 0 NC 0, model model.neff "
                    "- suspected hang in collectives operation 0 out of 32")  # Neuron runtime 2.20.11.0 release notes
HBM_ERROR = ("(FATAL-RT-UNDEFINED-STATE) encountered uncorrectable memory error on Neuron Device 0, execution results "
             "may be invalid.  Please terminate or start/stop this instance to recover from bad hardware.")  # same notes
EFA_PEER = ("libfabric:451707:1708520807::efa:cq:efa_rdm_txe_handle_error():737<warn> err: 5, message: Invalid address "
            "My EFA addr: fi_addr_efa://[fe80::13:c2ff:fe6f:f03d]:0:1072483550 My host id: i-0db7083f3fcbebb65 "
            "Peer EFA addr: fi_addr_efa://[fe80::b8:aff:fe44:425]:0:947699476 Peer host id: i-0ce6d3d57139f053c")  # aws-ofi-nccl#346


@pytest.mark.parametrize(
    "line, reason",
    [
        ("torch.distributed.elastic.rendezvous.api.RendezvousTimeoutError: timed out", "rendezvous"),
        ("torch.distributed.DistNetworkError: Connection reset by peer", "rendezvous"),
        (TDRV_TIMEOUT, "Neuron runtime timeout"),
        (COLLECTIVES_HANG, "Neuron runtime timeout"),
        (HBM_ERROR, "Neuron device error"),
        (EFA_PEER, "EFA"),
        ("COLLECTIVE CHECK FAILED on rank 3: bus bandwidth 0.4 GB/s is below the floor", "collective check"),
    ],
)
def test_infrastructure_failures_in_torchruns_output_are_retryable(line, reason):
    assert retryable_reason(line) == reason


@pytest.mark.parametrize(
    "line",
    [
        "ZeroDivisionError: division by zero", "KeyError: 'labels'", "torch.OutOfMemoryError: CUDA out of memory",
        # What the surviving ranks print when one rank died of a bug: says nothing about the hosts.
        "RuntimeError: [1] is setting up NCCL communicator... Connection reset by peer",
        "ConnectionResetError: [Errno 104] Connection reset by peer", "BrokenPipeError: [Errno 32] Broken pipe",
        # A provider warning of a healthy run (libfabric's format; libfabric#9683): not a failure.
        "libfabric:451707:1708520807::efa:ep_ctrl:efa_rdm_ep_open():512<warn> endpoint created",
    ],
)
def test_program_bugs_and_generic_socket_errors_are_not_retryable(line):
    assert retryable_reason(line) is None


ROOT_CAUSE = [
    "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n",
    "Root Cause (first observed failure):\n",
    "[0]:\n",
    "  rank      : 1 (local_rank: 1)\n",
    "  exitcode  : 1 (pid: 3296201)\n",
    "  error_file: /tmp/torchelastic_x/none_3/attempt_0/1/error.json\n",
]


def transcript(*lines: str) -> Transcript:
    t = Transcript()
    for line in lines:
        t.feed(line)
    return t


def test_the_failing_ranks_python_exception_wins_over_the_survivors_timeouts():
    # Rank 1 raised; the other ranks' collectives then timed out in the Neuron runtime.
    seen = transcript(COLLECTIVES_HANG, *ROOT_CAUSE)
    assert seen.error_file == "/tmp/torchelastic_x/none_3/attempt_0/1/error.json"
    read = {seen.error_file: "KeyError: 'labels'\nTraceback ... File \"train.py\", line 9"}.get
    assert classify(seen, read) == (None, "KeyError: 'labels'\nTraceback ... File \"train.py\", line 9")


def test_an_exception_from_xla_execution_after_a_neuron_fatal_line_is_the_runtimes_fault():
    seen = transcript(TDRV_TIMEOUT, *ROOT_CAUSE)
    error = "RuntimeError: Bad StatusOr access: INTERNAL: nrt_execute status=5\n  File \".../torch_xla/core/xla_model.py\""
    assert classify(seen, {seen.error_file: error}.get) == ("Neuron runtime timeout", error)


def test_without_an_error_file_the_output_decides():
    lines = [*ROOT_CAUSE[:-1], "  error_file: <N/A>\n"]
    assert classify(transcript(EFA_PEER, *lines), read_error_file) == ("EFA", None)
    assert classify(transcript("Connection reset by peer", *lines), read_error_file) == (None, None)


def test_the_error_file_is_read_in_torchs_format(tmp_path):
    path = tmp_path / "error.json"
    path.write_text(json.dumps({"message": {"message": "ValueError: bad", "extraInfo": {
        "py_callstack": "Traceback (most recent call last): ...", "timestamp": "1700000000"}}}))
    assert read_error_file(str(path)) == "ValueError: bad\nTraceback (most recent call last): ..."
    assert read_error_file(str(tmp_path / "missing.json")) is None and read_error_file("<N/A>") is None


def child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_rendezvous_timeout_exits_with_the_retryable_code():
    out = io.StringIO()
    code = "import sys; print('RendezvousTimeoutError: waited 300 s for node 3'); sys.exit(1)"
    outcome = supervise(child(code), {}, out=out)
    assert outcome == Outcome(1, "rendezvous") and outcome.exit_code(RETRY) == RETRY
    assert "waited 300 s" in out.getvalue()  # the output still reaches the job's log


def test_a_program_error_keeps_its_exit_code_and_is_not_retried():
    outcome = supervise(child("raise ZeroDivisionError('x')"), {}, out=io.StringIO())
    assert outcome.retryable_reason is None and outcome.exit_code(RETRY) == 1


def test_success_is_zero_and_a_signal_is_128_plus_its_number():
    assert supervise(child("print('done')"), {}, out=io.StringIO()).exit_code(RETRY) == 0
    killed = supervise(child("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), {}, out=io.StringIO())
    assert killed.exit_code(RETRY) == 137


# ---- the entrypoint's decisions ----------------------------------------------------

NODE_ENV = {
    "AWS_BATCH_JOB_NUM_NODES": "4", "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0", "NEURON_DEVICE_COUNT": "16",
    "EFA_DEVICE_COUNT": "8", "RETRYABLE_EXIT_CODE": "75", "RUN_ID": "run-1",
}


class Recorder:
    """Stands in for the barrier, quarantine and torchrun; records what the entrypoint did."""

    def __init__(self, problems=(), barrier_ok=True, outcomes=()):
        self.problems, self.barrier_ok = list(problems), barrier_ok
        self.outcomes = list(outcomes) or [Outcome(0), Outcome(0)]
        self.quarantined, self.commands, self.reports = [], [], []

    def services(self, monkeypatch):
        monkeypatch.setattr(Preflight, "problems", lambda checks, run=None: list(self.problems))
        return entrypoint.Services(
            local_address=lambda: "10.0.0.5",
            gather=lambda n, own, problems, timeout: BarrierResult(
                failed={} if self.barrier_ok else {2: ["EFA"]}
            ),
            report=lambda address, node, problems, timeout: self.reports.append((address, node, problems))
            or self.barrier_ok,
            quarantine=self.quarantined.append,
            supervise=lambda command, env: self.commands.append(command) or self.outcomes.pop(0),
            heartbeat=lambda env, run_id: None,
        )


def test_child_failing_preflight_reports_takes_its_host_out_and_exits_retryable(monkeypatch):
    rec = Recorder(problems=["expected 16 Neuron devices, found 15"], barrier_ok=False)
    env = {**NODE_ENV, "AWS_BATCH_JOB_NODE_INDEX": "2", "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.0.0.5"}
    assert entrypoint.main(["train"], env, rec.services(monkeypatch)) == 75
    assert rec.reports == [("10.0.0.5", 2, ["expected 16 Neuron devices, found 15"])]
    assert rec.quarantined == ["expected 16 Neuron devices, found 15"] and rec.commands == []


def test_main_node_exits_retryable_when_another_node_failed_and_keeps_its_healthy_host(monkeypatch):
    rec = Recorder(barrier_ok=False)
    assert entrypoint.main(["train"], {**NODE_ENV, "AWS_BATCH_JOB_NODE_INDEX": "0"}, rec.services(monkeypatch)) == 75
    assert rec.quarantined == [] and rec.commands == []


def test_healthy_cluster_runs_the_cross_node_check_then_training(monkeypatch):
    rec = Recorder()
    env = {**NODE_ENV, "AWS_BATCH_JOB_NODE_INDEX": "0", "CROSS_NODE_BUSBW_FLOOR_GBPS": "5"}
    assert entrypoint.main(["train"], env, rec.services(monkeypatch)) == 0
    check, training = rec.commands
    assert check[0] == "torchrun" and check[-4:] == ["-m", "trainium_runtime.collective_check", "--floor-gbps", "5.0"]
    assert training[-3:] == ["-m", "trainium_runtime.train_reference", "train"]


def test_failed_cross_node_check_is_retryable_and_training_never_starts(monkeypatch):
    rec = Recorder(outcomes=[Outcome(1, "collective check")])
    assert entrypoint.main(["train"], {**NODE_ENV, "AWS_BATCH_JOB_NODE_INDEX": "0"}, rec.services(monkeypatch)) == 75
    assert len(rec.commands) == 1


@pytest.mark.parametrize("outcome, code", [(Outcome(1, "EFA"), 75), (Outcome(1), 1), (Outcome(0), 0)])
def test_training_exit_is_mapped(monkeypatch, outcome, code):
    rec = Recorder(outcomes=[Outcome(0), outcome])
    assert entrypoint.main(["train"], {**NODE_ENV, "AWS_BATCH_JOB_NODE_INDEX": "0"}, rec.services(monkeypatch)) == code


def test_quarantine_can_be_switched_off(monkeypatch):
    rec = Recorder(problems=["tensor check failed"])
    env = {"NEURON_DEVICE_COUNT": "1", "QUARANTINE_FAILED_HOSTS": "false"}
    assert entrypoint.main(["run", "--", "-m", "x"], env, rec.services(monkeypatch)) == 75
    assert rec.quarantined == []


# ---- taking a host out of service (moto EC2) -------------------------------------


def test_a_failed_host_terminates_itself():
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-west-2")
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        (instance,) = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"]
        own = instance["InstanceId"]
        assert take_out_of_service("EFA broken", ec2=ec2, instance_id=lambda: own) == own
        state = ec2.describe_instances(InstanceIds=[own])["Reservations"][0]["Instances"][0]["State"]["Name"]
        assert state in ("shutting-down", "terminated")


def test_quarantine_failures_never_raise():
    def no_imds():
        raise OSError("IMDS unreachable")

    assert take_out_of_service("x", ec2=object(), instance_id=no_imds) is None
    assert take_out_of_service("x", ec2=object(), instance_id=lambda: "i-0123") is None  # no terminate_instances


# ---- heartbeat (moto CloudWatch) ---------------------------------------------------


def test_heartbeat_publishes_steps_completed_since_the_last_beat(tmp_path):
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="us-west-2")
        progress = tmp_path / "progress"
        beat = Heartbeat(cloudwatch, "MlAccel/Training", "run-1", progress)
        assert beat.publish_once() == 0  # nothing yet: still compiling
        write_step(progress, 40)
        assert beat.publish_once() == 0  # first reading is the baseline (a resumed run starts high)
        write_step(progress, 55)
        assert beat.publish_once() == 15
        assert beat.publish_once() == 0  # stalled
        metrics = cloudwatch.list_metrics(Namespace="MlAccel/Training", MetricName=METRIC_NAME)["Metrics"]
        dimensions = {tuple((d["Name"], d["Value"]) for d in m["Dimensions"]) for m in metrics}
        # One series per run only: a sum over runs would let a healthy run hide a hung one.
        assert dimensions == {(("RunId", "run-1"),)}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_watchdog_stops_a_run_whose_steps_stopped(tmp_path):
    clock, stopped = Clock(), []
    progress = tmp_path / "progress"
    dog = Watchdog(progress, 600, stopped.append, clock=clock)
    write_step(progress, 10)
    assert not dog.check()
    clock.now = 500
    write_step(progress, 11)  # progress resets the clock
    assert not dog.check()
    clock.now = 1099
    assert not dog.check() and stopped == []
    clock.now = 1101
    assert dog.check() and dog.check()  # stays stalled; stop is called once
    assert stopped == ["TRAINING STALLED: no training step completed for 601 s after step 11 (HANG_AFTER_SECONDS=600)"]


def test_a_program_that_never_reports_progress_is_never_called_hung(tmp_path):
    clock, stopped = Clock(), []
    dog = Watchdog(tmp_path / "progress", 600, stopped.append, clock=clock)
    clock.now = 10 ** 6  # days of compiling or a program without progress reports
    assert not dog.check() and stopped == []


def test_a_program_that_reported_done_is_not_stopped_during_its_final_upload(tmp_path):
    clock, stopped = Clock(), []
    progress = tmp_path / "progress"
    dog = Watchdog(progress, 600, stopped.append, clock=clock)
    write_step(progress, 99)
    assert not dog.check()
    write_done(progress)  # training over; an export or upload of hours follows
    clock.now = 10 ** 5
    assert not dog.check() and stopped == []


def test_no_hang_after_setting_means_no_watchdog(tmp_path):
    assert watchdog_from_env({}, lambda reason: None) is None
    assert watchdog_from_env({"HANG_AFTER_SECONDS": "3600", "PROGRESS_FILE": str(tmp_path / "p")}, print) is not None


def test_a_stalled_run_is_stopped_and_the_main_node_exits_for_a_retry(tmp_path, monkeypatch, caplog):
    # The real supervisor and watchdog around a program that reports two steps, then hangs.
    monkeypatch.setattr(entrypoint, "STOP_GRACE_SECONDS", 2)
    progress = tmp_path / "progress"
    program = ("import time, pathlib; p = pathlib.Path(%r)\n"
               "for step in (1, 2):\n    p.write_text(str(step)); time.sleep(0.2)\n"
               "time.sleep(600)\n" % str(progress))
    env = {"RETRYABLE_EXIT_CODE": "75", "HANG_AFTER_SECONDS": "1", "PROGRESS_FILE": str(progress), "RUN_ID": "run-1"}
    services = entrypoint.Services(
        run=lambda command: subprocess.CompletedProcess(command, 0, "", ""),
        heartbeat=lambda env, run_id: None,
        watchdog=lambda env, stop: Watchdog(progress, 1.0, stop, poll=0.2),
    )
    monkeypatch.setattr(entrypoint, "plan", lambda argv, env, local_address: entrypoint.Plan(
        "train", Preflight(0, 0, 0, collectives=False), [sys.executable, "-c", program], env, None))
    started = __import__("time").monotonic()
    with caplog.at_level(logging.INFO):
        assert entrypoint.main(["train"], env, services) == 75
    assert __import__("time").monotonic() - started < 60  # not the program's 600 s
    # The stack's metric filter counts marker lines: one stopped run is one line.
    assert sum(STALLED_MARKER in record.getMessage() for record in caplog.records) == 1


def test_a_lost_data_point_never_stops_training(tmp_path):
    class Down:
        def put_metric_data(self, **kwargs):
            raise ConnectionError("endpoint unreachable")

    assert Heartbeat(Down(), "ns", "run", tmp_path / "p").publish_once() == 0


# ---- resume when S3 answers 403 for a missing marker -------------------------------


def test_a_checkpoint_whose_marker_is_forbidden_is_skipped_for_the_previous_one():
    # With s3:ListBucket limited by an s3:prefix condition, GetObject of a missing key is 403.
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    store = CheckpointStore(s3, "s3://bucket/checkpoints/", "run-1")
    with Stubber(s3) as stub:
        stub.add_response(
            "list_objects_v2",
            {"CommonPrefixes": [{"Prefix": store.step_prefix(500)}, {"Prefix": store.step_prefix(1000)}]},
            {"Bucket": "bucket", "Prefix": "checkpoints/run-1/", "Delimiter": "/"},
        )
        stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403,
                              expected_params={"Bucket": "bucket", "Key": store.step_prefix(1000) + "COMPLETE"})
        stub.add_response(
            "get_object", {"Body": io.BytesIO(b'{"files": {"state.pt": 3}, "step": 500}')},
            {"Bucket": "bucket", "Key": store.step_prefix(500) + "COMPLETE"},
        )
        checkpoint = store.latest()
    assert checkpoint is not None and checkpoint.step == 500


def test_other_s3_errors_while_resuming_are_not_hidden():
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    store = CheckpointStore(s3, "s3://bucket/checkpoints/", "run-1")
    with Stubber(s3) as stub:
        stub.add_response("list_objects_v2", {"CommonPrefixes": [{"Prefix": store.step_prefix(500)}]})
        stub.add_client_error("get_object", "SlowDown", "Reduce your request rate", 503)
        with pytest.raises(s3.exceptions.ClientError, match="SlowDown"):
            store.latest()


# ---- collective checks: nccom-test --check with a floor, and the cross-node all-reduce --


def nccom(busbw: str):
    def run(command):
        out = f"Avg bus bandwidth:\t{busbw}GB/s\n" if command[0] == "nccom-test" and command[-1] == "allr" else ""
        return subprocess.CompletedProcess(command, 0, out, "")

    return run


def test_intra_node_all_reduce_is_checked_and_must_reach_the_floor(tmp_path):
    devices = [f"/dev/neuron{i}" for i in range(16)]
    checks = Preflight(16, 0, 32, busbw_floor_gbps=50.0)
    commands = []

    def run(command):
        commands.append(command)
        return nccom("40.69")(command)

    (problem,) = checks.problems(run, lambda pattern: devices)
    assert "bus bandwidth 40.69 GB/s is below the floor of 50.0 GB/s" in problem
    assert all("--check" in c for c in commands if c[0] == "nccom-test")
    assert Preflight(16, 0, 32, busbw_floor_gbps=40.0).problems(nccom("40.69"), lambda p: devices) == []
    assert average_bus_bandwidth("nothing") is None


def test_cross_node_check_arithmetic():
    assert expected_sum(128) == 8256
    # 1 GB in 0.1 s over 2 ranks: algbw 10 GB/s, busbw 10 x 2(2-1)/2 = 10
    assert bus_bandwidth_gbps(10**9, 0.1, 2) == pytest.approx(10.0)
    assert verdict(True, 10.0, 5.0) is None
    assert "below the floor" in verdict(True, 1.0, 5.0)
    assert verdict(False, 100.0, 5.0) == "all-reduce returned a wrong sum"
