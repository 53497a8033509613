"""Container entrypoint of every Trainium job: pre-flight checks, then the workload.

    python3 -m trainium_runtime.entrypoint train   [-- PROGRAM...]   multi-node training (torchrun)
    python3 -m trainium_runtime.entrypoint compile --steps N -- PROGRAM...   neuron_parallel_compile
    python3 -m trainium_runtime.entrypoint run     -- PROGRAM...     one node (evaluation, inference)

PROGRAM is what ``python3`` would run (``-m module args`` or ``script.py args``).
A failed pre-flight check exits with ``PREFLIGHT_EXIT_CODE`` (retried by Batch);
an inconsistent Batch environment exits with 2 (not retried: fix the definition).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, Mapping, Sequence

from .checkpoints import run_id_from_env
from .launcher import LaunchError, default_local_address, launch_environment, rendezvous_from_env, torchrun_command
from .preflight import Preflight, Runner

LOG = logging.getLogger("trainium_runtime")
DEFAULT_PROGRAM = ("-m", "trainium_runtime.train_reference", "train")
CONFIG_ERROR_EXIT_CODE = 2
COMPILE_RUN_SUFFIX = "-aot-compile"


def plan(
    argv: Sequence[str], env: Mapping[str, str], local_address: Callable[[], str]
) -> tuple[Preflight, list[str], dict[str, str]]:
    """What this node checks and runs: (pre-flight, command, environment)."""
    parser = argparse.ArgumentParser(prog="trainium_runtime.entrypoint")
    parser.add_argument("mode", choices=("train", "compile", "run"))
    parser.add_argument("--steps", type=int, default=5, help="compile: training steps to trace")
    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    program = argv[split + 1 :] or list(DEFAULT_PROGRAM)
    if args.mode == "run":
        return Preflight.from_env(env, efa=False, collectives=False), ["python3", *program], dict(env)
    # train and compile: torchrun over this job's nodes (one node outside a multi-node job).
    rendezvous = rendezvous_from_env(env, local_address)
    multi_node = rendezvous.num_nodes > 1
    if args.mode == "train":
        checks = Preflight.from_env(env, efa=multi_node, collectives=True)
        return checks, torchrun_command(rendezvous, program), launch_environment(rendezvous, env)
    if args.steps < 1:
        raise LaunchError(f"--steps must be >= 1, got {args.steps}")
    # Run on the training's topology (a multi-node job) when the graphs must match it exactly.
    checks = Preflight.from_env(env, efa=multi_node, collectives=False)
    command = ["neuron_parallel_compile", *torchrun_command(rendezvous, [*program, "--max-steps", str(args.steps)])]
    # The traced steps save a checkpoint too (its graph must be compiled), but it holds
    # no real training: keep it out of the run's checkpoints so training never resumes from it.
    try:
        compile_run = f"{run_id_from_env(env)}{COMPILE_RUN_SUFFIX}"
    except ValueError as exc:
        raise LaunchError(str(exc)) from None
    return checks, command, {**launch_environment(rendezvous, env), "RUN_ID": compile_run}


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None, run: Runner | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    env = dict(os.environ if env is None else env)
    preflight_code = int(env.get("PREFLIGHT_EXIT_CODE", "75"))
    try:
        checks, command, command_env = plan(sys.argv[1:] if argv is None else argv, env, default_local_address)
    except LaunchError as exc:
        LOG.error("cannot start: %s", exc)
        return CONFIG_ERROR_EXIT_CODE
    problems = checks.problems(run)
    if problems:
        for problem in problems:
            LOG.error("pre-flight: %s", problem)
        return preflight_code
    LOG.info("pre-flight passed; running %s", " ".join(command))
    sys.stdout.flush()
    os.execvpe(command[0], command, command_env)
    return 0  # pragma: no cover - exec does not return


if __name__ == "__main__":
    sys.exit(main())
