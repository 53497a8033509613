"""Container entrypoint of every Trainium job: pre-flight, a cluster-wide barrier, then the workload.

    python3 -m trainium_runtime.entrypoint train   [-- PROGRAM...]   multi-node training (torchrun)
    python3 -m trainium_runtime.entrypoint compile --steps N -- PROGRAM...   neuron_parallel_compile
    python3 -m trainium_runtime.entrypoint run     -- PROGRAM...     one node (evaluation, inference)

PROGRAM is what ``python3`` would run (``-m module args`` or ``script.py args``).

Exit codes (the job definitions' retry rules act on them; docs/training.md has the table):
0 success; ``RETRYABLE_EXIT_CODE`` (default 75) when a retry on other hosts can help (a node
failed pre-flight, a node never reached the barrier, the cross-node collective check failed,
torchrun's rendezvous timed out, the Neuron runtime timed out or reported a device error,
libfabric's EFA provider lost a peer, or the watchdog stopped a run whose progress stopped);
2 for an inconsistent Batch environment (fix the job definition); anything else is the
program's own exit code (a bug: not retried).
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from . import barrier as barrier_module
from .checkpoints import run_id_from_env
from .heartbeat import Heartbeat, Watchdog, heartbeat_from_env, watchdog_from_env
from .launcher import (
    LaunchError,
    Rendezvous,
    default_local_address,
    launch_environment,
    rendezvous_from_env,
    torchrun_command,
)
from .preflight import Preflight, Runner
from .quarantine import take_out_of_service
from .supervise import Outcome, supervise

LOG = logging.getLogger("trainium_runtime")
DEFAULT_PROGRAM = ("-m", "trainium_runtime.train_reference", "train")
COLLECTIVE_CHECK = ("-m", "trainium_runtime.collective_check")
CONFIG_ERROR_EXIT_CODE = 2
DEFAULT_RETRYABLE_EXIT_CODE = 75
COMPILE_RUN_SUFFIX = "-aot-compile"


@dataclass(frozen=True)
class Plan:
    """What this node checks and runs."""

    mode: str
    checks: Preflight
    command: list[str]
    env: dict[str, str]
    rendezvous: Rendezvous | None  # None: one process tree on one node, no torchrun

    @property
    def multi_node(self) -> bool:
        return self.rendezvous is not None and self.rendezvous.num_nodes > 1


@dataclass
class Services:
    """What the entrypoint talks to; tests replace these."""

    run: Runner | None = None
    local_address: Callable[[], str] | None = None
    gather: Callable[..., barrier_module.BarrierResult] = barrier_module.gather
    report: Callable[..., bool] = barrier_module.report
    quarantine: Callable[[str], Any] = take_out_of_service
    supervise: Callable[..., Outcome] = supervise
    heartbeat: Callable[[dict[str, str], str], Heartbeat | None] = heartbeat_from_env
    watchdog: Callable[[dict[str, str], Callable[[str], None]], Watchdog | None] = watchdog_from_env


STOP_GRACE_SECONDS = 60  # SIGTERM, then SIGKILL: a hung rank may ignore the first


class RunStopper:
    """Stops the supervised child on the watchdog's word (SIGTERM, SIGKILL after a grace period)."""

    def __init__(self) -> None:
        self.child: subprocess.Popen | None = None

    def attach(self, child: subprocess.Popen) -> None:
        self.child = child

    def __call__(self, reason: str) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.terminate()
        timer = threading.Timer(STOP_GRACE_SECONDS, lambda: child.poll() is None and child.kill())
        timer.daemon = True
        timer.start()


def plan(argv: Sequence[str], env: Mapping[str, str], local_address: Callable[[], str]) -> Plan:
    parser = argparse.ArgumentParser(prog="trainium_runtime.entrypoint")
    parser.add_argument("mode", choices=("train", "compile", "run"))
    parser.add_argument("--steps", type=int, default=5, help="compile: training steps to trace")
    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    program = argv[split + 1 :] or list(DEFAULT_PROGRAM)
    if args.mode == "run":
        return Plan("run", Preflight.from_env(env, efa=False, collectives=False), ["python3", *program], dict(env), None)
    # train and compile: torchrun over this job's nodes (one node outside a multi-node job).
    rendezvous = rendezvous_from_env(env, local_address)
    multi_node = rendezvous.num_nodes > 1
    if args.mode == "train":
        checks = Preflight.from_env(env, efa=multi_node, collectives=True)
        return Plan("train", checks, torchrun_command(rendezvous, program), launch_environment(rendezvous, env), rendezvous)
    if args.steps < 1:
        raise LaunchError(f"--steps must be >= 1, got {args.steps}")
    # The pipeline runs this as a multi-node job of the training's node count: collective
    # replica groups are part of the compiled graphs, so the cache must be filled on that topology.
    checks = Preflight.from_env(env, efa=multi_node, collectives=False)
    command = ["neuron_parallel_compile", *torchrun_command(rendezvous, [*program, "--max-steps", str(args.steps)])]
    # The traced steps save a checkpoint too (its graph must be compiled), but it holds
    # no real training: keep it out of the run's checkpoints so training never resumes from it.
    try:
        compile_run = f"{run_id_from_env(env)}{COMPILE_RUN_SUFFIX}"
    except ValueError as exc:
        raise LaunchError(str(exc)) from None
    return Plan("compile", checks, command, {**launch_environment(rendezvous, env), "RUN_ID": compile_run}, rendezvous)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name) or default)
    except ValueError:
        raise LaunchError(f"{name} must be a number, got {env.get(name)!r}") from None


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None, services: Services | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    env = dict(os.environ if env is None else env)
    services = services or Services()
    retryable = int(env.get("RETRYABLE_EXIT_CODE") or DEFAULT_RETRYABLE_EXIT_CODE)
    try:
        local_address = services.local_address or (lambda: default_local_address(env))
        job = plan(sys.argv[1:] if argv is None else argv, env, local_address)
        barrier_timeout = _seconds(env, "BARRIER_TIMEOUT_SECONDS", 900)
        floor = _seconds(env, "CROSS_NODE_BUSBW_FLOOR_GBPS", 0)
    except LaunchError as exc:
        LOG.error("cannot start: %s", exc)
        return CONFIG_ERROR_EXIT_CODE
    problems = job.checks.problems(services.run)
    for problem in problems:
        LOG.error("pre-flight: %s", problem)
    cluster_ok = True
    if job.multi_node:
        assert job.rendezvous is not None
        rdzv = job.rendezvous
        if rdzv.is_main:
            result = services.gather(rdzv.num_nodes, 0, problems, timeout=barrier_timeout)
            LOG.info("pre-flight barrier: %s", result.summary())
            cluster_ok = result.ok
        else:
            cluster_ok = services.report(rdzv.main_address, rdzv.node_rank, problems, timeout=barrier_timeout)
    if problems:
        if env.get("QUARANTINE_FAILED_HOSTS", "true").lower() == "true":
            services.quarantine("; ".join(problems))
        return retryable
    if not cluster_ok:
        LOG.error("another node failed pre-flight or never reported: exiting for a retry on other hosts")
        return retryable
    if job.mode == "train" and job.multi_node:
        assert job.rendezvous is not None
        check = [*COLLECTIVE_CHECK, "--floor-gbps", str(floor)]
        outcome = services.supervise(torchrun_command(job.rendezvous, check), job.env)
        if outcome.returncode != 0:
            LOG.error("cross-node collective check failed (exit %d): retrying on other hosts", outcome.returncode)
            return retryable
    heartbeat = watchdog = None
    stopper = RunStopper()
    if job.mode == "train" and (job.rendezvous is None or job.rendezvous.is_main):
        try:
            heartbeat = services.heartbeat(job.env, run_id_from_env(job.env))
        except ValueError as exc:
            LOG.warning("no heartbeat: %s", exc)
        watchdog = services.watchdog(job.env, stopper)
    LOG.info("pre-flight passed; running %s", " ".join(job.command))
    sys.stdout.flush()
    for started in (heartbeat, watchdog):
        if started is not None:
            started.start()
    try:
        extra = {"on_start": stopper.attach} if watchdog is not None else {}
        outcome = services.supervise(job.command, job.env, **extra)
    finally:
        for started in (heartbeat, watchdog):
            if started is not None:
                started.stop()
    if watchdog is not None and watchdog.stalled:
        # The watchdog logged the marker line; the stack's metric filter counts one per stopped run.
        LOG.error("the run was stopped by the watchdog; exiting with %d for a retry on other hosts "
                  "(resuming from the newest checkpoint)", retryable)
        return retryable
    code = outcome.exit_code(retryable)
    if outcome.returncode != 0:
        why = f"retryable: {outcome.retryable_reason}" if code == retryable else "not retryable"
        LOG.error("%s exited with %d (%s); exiting with %d", job.command[0], outcome.returncode, why, code)
    return code


if __name__ == "__main__":
    sys.exit(main())
