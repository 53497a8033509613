"""What ``torchrun`` starts on every rank: the training program, its exception recorded.

    torchrun ... -m trainium_runtime.worker -m my_package.train --lr 3e-4
    torchrun ... -m trainium_runtime.worker train.py --lr 3e-4

torchrun gives every worker its own error file (``TORCHELASTIC_ERROR_FILE``) and, when a
worker fails, prints the first failure's ``error_file`` in its "Root Cause (first observed
failure)" summary; a worker only writes that file when its entry point is wrapped in
``torch.distributed.elastic.multiprocessing.errors.record`` (PyTorch docs, "Error
Propagation"). This wrapper does that for any program, so the supervisor
(:mod:`trainium_runtime.supervise`) can read what the failing rank raised instead of
guessing from the other ranks' socket errors.
"""
from __future__ import annotations

import os
import runpy
import sys
from typing import Sequence


def split_program(argv: Sequence[str]) -> tuple[str, str, list[str]]:
    """``("module" | "path", target, sys.argv)`` for ``-m module args`` or ``script.py args``."""
    argv = list(argv)
    if not argv:
        raise SystemExit("trainium_runtime.worker: no program given")
    if argv[0] == "-m":
        if len(argv) < 2:
            raise SystemExit("trainium_runtime.worker: -m needs a module name")
        return "module", argv[1], [argv[1], *argv[2:]]
    return "path", argv[0], argv


def run(argv: Sequence[str]) -> None:
    kind, target, program_argv = split_program(argv)
    sys.argv = program_argv
    if kind == "module":
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        # As `python train.py` does: the script's folder comes first on sys.path, so a train.py
        # can import its sibling modules (runpy.run_path alone does not add it).
        sys.path[0] = os.path.dirname(os.path.abspath(target))
        runpy.run_path(target, run_name="__main__")


def main(argv: Sequence[str] | None = None) -> None:
    from torch.distributed.elastic.multiprocessing.errors import record

    record(run)(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
