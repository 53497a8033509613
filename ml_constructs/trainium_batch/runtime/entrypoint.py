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

from .launcher import LaunchError, default_local_address, launch_environment, rendezvous_from_env, torchrun_command
from .preflight import Preflight, Runner

LOG = logging.getLogger("trainium_runtime")
DEFAULT_PROGRAM = ("-m", "trainium_runtime.train_reference", "train")
CONFIG_ERROR_EXIT_CODE = 2


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
    if args.mode == "train":
        rendezvous = rendezvous_from_env(env, local_address)
        checks = Preflight.from_env(env, efa=rendezvous.num_nodes > 1, collectives=True)
        return checks, torchrun_command(rendezvous, program), launch_environment(rendezvous, env)
    checks = Preflight.from_env(env, efa=False, collectives=False)
    if args.mode == "compile":
        if args.steps < 1:
            raise LaunchError(f"--steps must be >= 1, got {args.steps}")
        single = rendezvous_from_env({k: v for k, v in env.items() if not k.startswith("AWS_BATCH_JOB_")}, local_address)
        command = ["neuron_parallel_compile", *torchrun_command(single, [*program, "--max-steps", str(args.steps)])]
        return checks, command, launch_environment(single, env)
    return checks, ["python3", *program], dict(env)


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
