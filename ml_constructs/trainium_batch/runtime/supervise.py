"""Run torchrun as a child process and turn its failures into the exit codes Batch retries.

torchrun exits 1 for everything: a worker's Python error (a bug: retrying wastes a
cluster), a rendezvous that timed out because a peer never came, a Neuron runtime timeout,
a lost EFA peer or a device error (a host problem: another attempt on other hosts fixes
it). :func:`classify` decides from torchrun's own report, in this order:

1. the first failing rank's error file. torchrun prints a "Root Cause (first observed
   failure)" block naming it (``error_file: .../attempt_0/<rank>/error.json``; PyTorch docs,
   "Error Propagation"); every rank runs under :mod:`trainium_runtime.worker`, which writes
   it. A Python exception there is the program's: never retried, whatever the other
   ranks printed afterwards ("Connection reset by peer" from the survivors of a crashed
   rank says nothing about the hosts), unless the exception itself carries one of the
   infrastructure signatures below, or it was raised while XLA executed a graph and the
   Neuron runtime logged a fatal error on this node;
2. without an error file (a rank killed by a signal, torchrun's own rendezvous failing):
   the infrastructure signatures anywhere in the output.

The signatures (``RETRYABLE_OUTPUT``) are the lines the Neuron runtime, libfabric and
torchrun print for those failures; docs/training.md, "Failures and retries", quotes each
with its source. Generic socket errors are deliberately not among them.
"""
from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterable, Sequence

LOG = logging.getLogger("trainium_runtime.supervise")

# (name, pattern): the name is logged so an operator sees why an attempt was retried.
RETRYABLE_OUTPUT: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        # torchrun's agent: a peer never joined, or the store on the main node went away
        # (torch/distributed/elastic/rendezvous/api.py, c10d's DistNetworkError).
        ("rendezvous", r"Rendezvous(Timeout|Closed|Connection|State)Error|DistNetworkError|DistStoreError"),
        # Neuron runtime: an execution or a collective that never completed, or bad
        # hardware (runtime release notes 2.20.11.0; torch-neuronx training troubleshooting).
        ("Neuron runtime timeout", r"\(FATAL-RT-UNDEFINED-STATE\).*(timeout|suspected hang)"),
        ("Neuron device error", r"\(FATAL-RT-UNDEFINED-STATE\).*(uncorrectable|hardware)|NRT_(EXEC_)?HW_ERR"),
        # libfabric's EFA provider losing a peer (aws/aws-ofi-nccl#346: efa_rdm_txe_handle_error
        # "... Peer EFA addr ...", logged at <warn>), an error-level EFA line, or no EFA device
        # for the collectives. Other <warn> lines are not failures: the provider warns in healthy
        # runs too (libfabric#9683 downgraded a noisy endpoint-creation warning), and the first
        # match anywhere in the output decides a signal-killed rank's fate.
        ("EFA", r"libfabric:\d+:\d+::efa:.*<error>|efa_rdm_\w+_handle_error|NET/OFI.*(error|fail|Couldn't)"),
        ("collective check", r"COLLECTIVE CHECK FAILED"),
    )
)
# A Neuron runtime fatal line makes an exception raised from XLA execution the runtime's fault.
NEURON_FATAL = re.compile(r"\bTDRV:\S+\s+\(FATAL-RT-|\bNRT:\S+.*(FATAL|timeout)")
_XLA_EXECUTION = re.compile(r"torch_xla/|Bad StatusOr access|INTERNAL:|nrt_execute")
_ROOT_CAUSE = "Root Cause (first observed failure)"
_ERROR_FILE = re.compile(r"^\s*error_file\s*:\s*(\S+)")


@dataclass
class Outcome:
    """How the child ended: its exit status, and why a failure is retryable (None: it is not)."""

    returncode: int
    retryable_reason: str | None = None
    root_cause: str | None = None  # the failing rank's own error, when torchrun recorded one

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


@dataclass
class Transcript:
    """What :func:`classify` needs from torchrun's output, gathered line by line (nothing else is kept)."""

    signature: str | None = None  # the first infrastructure signature seen
    neuron_fatal: bool = False
    error_file: str | None = None  # the root cause's, as torchrun printed it
    _in_root_cause: bool = False

    def feed(self, line: str) -> None:
        if self.signature is None:
            self.signature = retryable_reason(line)
            if self.signature is not None:
                LOG.warning("infrastructure failure (%s): %s", self.signature, line.strip()[:300])
        if NEURON_FATAL.search(line):
            self.neuron_fatal = True
        if _ROOT_CAUSE in line:
            self._in_root_cause = True
        elif self._in_root_cause and self.error_file is None:
            match = _ERROR_FILE.match(line)
            if match:
                self.error_file = match.group(1)


def read_error_file(path: str | None) -> str | None:
    """The exception a rank recorded (message and call stack), or None without a readable file.

    The format is torch's ErrorHandler's (torch/distributed/elastic/multiprocessing/errors/
    error_handler.py): ``{"message": {"message": "ValueError: ...", "extraInfo":
    {"py_callstack": "Traceback ...", "timestamp": "..."}}}``.
    """
    if not path or path.startswith("<"):  # torchrun prints <N/A> when the rank wrote none
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    message = data.get("message") if isinstance(data, dict) else None
    if isinstance(message, dict):
        extra = message.get("extraInfo") or {}
        return "\n".join(str(part) for part in (message.get("message"), extra.get("py_callstack")) if part)
    return str(message) if message else None


def classify(transcript: Transcript, read: Callable[[str | None], str | None] = read_error_file) -> tuple[str | None, str | None]:
    """``(retryable reason or None, the root cause's own error or None)`` for a failed run."""
    error = read(transcript.error_file)
    if error is None:
        return transcript.signature, None
    own = retryable_reason(error)
    if own is not None:
        return own, error
    if transcript.neuron_fatal and _XLA_EXECUTION.search(error):
        return transcript.signature or "Neuron runtime", error
    return None, error  # a Python exception in the program: never retried


def scan(lines: Iterable[str], out: IO[str] | None = None, on_line: Callable[[str], None] | None = None) -> Transcript:
    """Copy ``lines`` to ``out`` and gather what :func:`classify` needs."""
    transcript = Transcript()
    for line in lines:
        if out is not None:
            out.write(line)
            out.flush()
        if on_line is not None:
            on_line(line)
        transcript.feed(line)
    return transcript


def supervise(
    command: Sequence[str],
    env: dict[str, str],
    *,
    out: IO[str] | None = None,
    on_line: Callable[[str], None] | None = None,
    popen: Callable[..., subprocess.Popen] = subprocess.Popen,
    on_start: Callable[[subprocess.Popen], None] | None = None,
) -> Outcome:
    """Run ``command``, stream its merged output to ``out`` and classify how it ended.

    SIGTERM (Batch stopping the job) is passed on to the child, so torchrun can stop its
    workers instead of being killed with them. ``on_start`` gets the child (the hang
    watchdog stops it through that handle).
    """
    out = out if out is not None else sys.stdout
    child = popen(
        list(command), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        errors="replace",
    )
    if on_start is not None:
        on_start(child)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum))
    try:
        assert child.stdout is not None
        transcript = scan(child.stdout, out, on_line)
        returncode = child.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if returncode == 0:
        return Outcome(0)
    reason, root_cause = classify(transcript)
    if root_cause is not None:
        LOG.error("first failing rank raised: %s", root_cause.splitlines()[0][:300])
    return Outcome(returncode, reason, root_cause)
