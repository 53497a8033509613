"""Run torchrun as a child process and turn its failures into the exit codes Batch retries.

torchrun exits 1 for everything: a worker's Python error (a bug: retrying wastes a
cluster), a rendezvous that timed out because a peer never came, a peer lost mid-run, or
an EFA/Neuron collective failure (a host problem: another attempt on other hosts fixes it).
The entrypoint streams torchrun's output through :func:`supervise`, which watches for the
second kind and returns the retryable exit code when it saw one. The patterns below are
the error names torch raises (``torch/distributed/elastic/rendezvous/api.py``,
``torch/distributed/elastic/agent/server/api.py``, ``torch/csrc/distributed/c10d``) and the
libfabric/Neuron runtime prefixes of EFA and collective failures; they are matched anywhere
in the output, since the worker that saw the failure first decides the exit.
"""
from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import IO, Callable, Iterable, Sequence

LOG = logging.getLogger("trainium_runtime.supervise")

# (name, pattern): the name is logged so an operator sees why an attempt was retried.
RETRYABLE_OUTPUT: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("rendezvous", r"Rendezvous(Timeout|Closed|Connection|State)Error"),
        ("rendezvous", r"DistNetworkError|DistStoreError"),
        ("peer lost", r"Connection (reset|closed) by peer|Broken pipe|ConnectionResetError"),
        ("EFA", r"\bfi_\w+\b.*(failed|error)|libfabric.*(error|fail)|\bEFA\b.*(error|fail|not found)"),
        ("Neuron collectives", r"\bNCCOM\b.*(error|fail|timeout)|\bnccl\w*\b.*(error|fail|timeout)"),
        ("collective check", r"COLLECTIVE CHECK FAILED"),
        ("Neuron runtime", r"\bNRT\b.*(timeout|TIMEOUT|Timeout)|nrt_(execute|cc)\w*.*(failed|error|timeout)"),
    )
)


@dataclass
class Outcome:
    """How the child ended: its exit status and the first retryable failure it printed."""

    returncode: int
    retryable_reason: str | None = None

    def exit_code(self, retryable_code: int) -> int:
        if self.returncode == 0:
            return 0
        if self.retryable_reason is not None:
            return retryable_code
        # A signal (negative returncode) becomes the shell's 128+N, never Batch's retry code.
        return 128 - self.returncode if self.returncode < 0 else self.returncode


def retryable_reason(line: str) -> str | None:
    for name, pattern in RETRYABLE_OUTPUT:
        if pattern.search(line):
            return name
    return None


def scan(lines: Iterable[str], out: IO[str] | None = None, on_line: Callable[[str], None] | None = None) -> str | None:
    """Copy ``lines`` to ``out`` and return the first retryable failure seen (or None)."""
    reason = None
    for line in lines:
        if out is not None:
            out.write(line)
            out.flush()
        if on_line is not None:
            on_line(line)
        if reason is None:
            reason = retryable_reason(line)
            if reason is not None:
                LOG.warning("retryable failure (%s): %s", reason, line.strip()[:300])
    return reason


def supervise(
    command: Sequence[str],
    env: dict[str, str],
    *,
    out: IO[str] | None = None,
    on_line: Callable[[str], None] | None = None,
    popen: Callable[..., subprocess.Popen] = subprocess.Popen,
) -> Outcome:
    """Run ``command``, stream its merged output to ``out`` and classify how it ended.

    SIGTERM (Batch stopping the job) is passed on to the child, so torchrun can stop its
    workers instead of being killed with them.
    """
    out = out if out is not None else sys.stdout
    child = popen(
        list(command), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        errors="replace",
    )
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum))
    try:
        assert child.stdout is not None
        reason = scan(child.stdout, out, on_line)
        returncode = child.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return Outcome(returncode, reason)
