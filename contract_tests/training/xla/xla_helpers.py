"""Helpers of the torch-xla contract tests (see conftest.py for why they look like this)."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
# The image puts /opt/runtime on PYTHONPATH, holding trainium_runtime/; the profile's folder
# holds the same link, so torchrun's workers import the runtime as the image does.
PROFILE_DIR = REPO / "runtime_profiles" / "training" / "current"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(processes: int, program: list[str]) -> list[str]:
    """torchrun as the entrypoint builds it (launcher.torchrun_command), on one node."""
    from trainium_runtime.launcher import Rendezvous, torchrun_command

    command = torchrun_command(Rendezvous(1, 0, "127.0.0.1", processes, timeout_seconds=120), program)
    command = [str(Path(sys.executable).parent / command[0]), *command[1:]]
    return [c if not c.startswith("--master_port=") else f"--master_port={free_port()}" for c in command]


def run(command: list[str], env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
