"""How a failed torchrun run is classified, from what real torchrun writes (the per-rank error file).

The failing rank's own error decides: a Python exception in the program is never retried,
however the surviving ranks complain; an exception that carries a Neuron runtime or EFA
signature is. The log lines are quoted from the sources docs/training.md cites.
"""
from __future__ import annotations

import textwrap

import pytest

from trainium_runtime.supervise import supervise

from xla_helpers import torchrun

# Rank 1 fails at once; rank 0 outlives it and prints what a survivor prints.
PROGRAM = textwrap.dedent('''
    import os, sys, time
    if os.environ["RANK"] == "1":
        raise {error}
    print("Connection reset by peer", flush=True)
    time.sleep(30)
''')
TDRV_TIMEOUT = ("ERROR  TDRV:exec_consume_infer_status_notifications (FATAL-RT-UNDEFINED-STATE) inference "
                "timeout (600000 ms) on Neuron Device 4 NC 1, waiting for execution completion notification")


def run_program(tmp_path, env, error: str):
    script = tmp_path / "program.py"
    script.write_text(PROGRAM.format(error=error))
    lines: list[str] = []
    outcome = supervise(torchrun(2, [str(script)]), env, out=_Lines(lines))
    return outcome, "".join(lines)


def test_a_python_exception_in_the_program_is_not_retried(tmp_path, xla_env):
    outcome, output = run_program(tmp_path, xla_env, 'ValueError("bad batch shape (16, 7)")')
    assert "Root Cause (first observed failure)" in output and "error_file" in output
    assert outcome.returncode == 1 and outcome.retryable_reason is None
    assert outcome.root_cause.startswith("ValueError: bad batch shape (16, 7)")
    assert outcome.exit_code(75) == 1


def test_a_neuron_runtime_timeout_raised_by_the_failing_rank_is_retried(tmp_path, xla_env):
    outcome, _ = run_program(tmp_path, xla_env, f"RuntimeError({TDRV_TIMEOUT!r})")
    assert outcome.retryable_reason == "Neuron runtime timeout"
    assert outcome.exit_code(75) == 75


def test_a_program_without_an_error_file_falls_back_to_the_output(tmp_path, xla_env):
    # A rank killed by a signal writes no error file: torchrun prints error_file <N/A>.
    script = tmp_path / "program.py"
    script.write_text("import os, signal\nprint('libfabric:451707:1708520807::efa:cq:efa_rdm_txe_handle_error():737"
                      "<warn> err: 5, message: Invalid address', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    lines: list[str] = []
    outcome = supervise(torchrun(1, [str(script)]), xla_env, out=_Lines(lines))
    assert outcome.root_cause is None and outcome.retryable_reason == "EFA"


def test_a_script_imports_its_sibling_modules_as_under_plain_python(tmp_path, xla_env):
    # `python train.py` puts train.py's folder first on sys.path; the worker must too, or a
    # helper module next to train.py is a ModuleNotFoundError classified as the program's bug.
    project = tmp_path / "project"
    project.mkdir()
    (project / "helper.py").write_text("ANSWER = 42\n")
    (project / "train.py").write_text("import helper\nprint('helper answered', helper.ANSWER, flush=True)\n")
    lines: list[str] = []
    outcome = supervise(torchrun(1, [str(project / "train.py")]), xla_env, out=_Lines(lines))
    assert outcome.returncode == 0, "".join(lines)[-3000:]
    assert "helper answered 42" in "".join(lines)


def test_a_harmless_efa_warning_does_not_make_a_later_kill_retryable(tmp_path, xla_env):
    # A healthy run's provider warning (libfabric's log format; libfabric#9683 downgraded such a
    # noisy endpoint-creation warning), then the rank is killed (an OOM kill: exit 137, no error file).
    script = tmp_path / "program.py"
    script.write_text("import os, signal\nprint('libfabric:451707:1708520807::efa:ep_ctrl:efa_rdm_ep_open():512"
                      "<warn> endpoint created', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    lines: list[str] = []
    outcome = supervise(torchrun(1, [str(script)]), xla_env, out=_Lines(lines))
    assert outcome.returncode != 0 and outcome.root_cause is None
    assert outcome.retryable_reason is None and outcome.exit_code(75) != 75


class _Lines:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> None:
        self.lines.append(text)

    def flush(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _no_retry_code(monkeypatch):
    monkeypatch.delenv("RETRYABLE_EXIT_CODE", raising=False)
