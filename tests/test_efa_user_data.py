"""The Trainium hosts' user data, run by bash with the network and the host's tools stubbed."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ml_constructs.trainium_batch.launch_template import FAILED_MARKER, USER_DATA_BOUNDARY, efa_user_data


def shell_part(user_data: str) -> str:
    """The text/x-shellscript part of the MIME multi-part document, as cloud-init runs it."""
    body = user_data.split('Content-Type: text/x-shellscript; charset="us-ascii"\n\n', 1)[1]
    return body.rsplit(f"--{USER_DATA_BOUNDARY}--", 1)[0]


def run_on_host(tmp_path: Path, efa_software: str, *, devices: bool, curl_exit: int = 0):
    """Run the script with stub curl/ls/shutdown/poweroff/reboot; returns (result, calls)."""
    stubs, calls = tmp_path / "bin", tmp_path / "calls"
    stubs.mkdir()
    stub = {"curl": f"exit {curl_exit}", "ls": f"exit {0 if devices else 2}"}
    for tool in ("curl", "ls", "shutdown", "poweroff", "reboot", "halt"):
        path = stubs / tool
        path.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\n{stub.get(tool, "exit 0")}\n')
        path.chmod(0o755)
    script = tmp_path / "user-data.sh"
    script.write_text(shell_part(efa_user_data(efa_software)))
    result = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={"PATH": f"{stubs}:/usr/bin:/bin", "HOME": str(tmp_path)})
    return result, calls.read_text().splitlines() if calls.exists() else []


def test_a_failed_download_fails_visibly_and_never_shuts_the_host_down(tmp_path):
    # Isolated subnets or an installer outage: curl cannot resolve efa-installer.amazonaws.com.
    result, calls = run_on_host(tmp_path, "install-at-boot", devices=False, curl_exit=6)
    assert result.returncode != 0
    assert f"{FAILED_MARKER}: aws-efa-installer failed at line" in result.stdout + result.stderr
    assert [c.split()[0] for c in calls] == ["ls", "curl"]  # stopped at the first download
    assert "--retry 5" in calls[1] and "https://efa-installer.amazonaws.com/aws-efa-installer-latest.tar.gz" in calls[1]
    # No shutdown: a deterministic failure must not make Batch relaunch trn1 hosts forever.
    assert not [c for c in calls if c.split()[0] in ("shutdown", "poweroff", "reboot", "halt")]


@pytest.mark.parametrize("efa_software", ["install-at-boot", "in-ami"])
def test_an_ami_with_efa_devices_is_left_alone(tmp_path, efa_software):
    result, calls = run_on_host(tmp_path, efa_software, devices=True)
    assert result.returncode == 0, result.stderr
    assert [c.split()[0] for c in calls] == ["ls"]  # nothing downloaded


def test_in_ami_without_devices_says_so_and_downloads_nothing(tmp_path):
    result, calls = run_on_host(tmp_path, "in-ami", devices=False)
    assert result.returncode == 1
    assert f"{FAILED_MARKER}: no /dev/infiniband/uverbs* although efa_software is in-ami" in result.stdout + result.stderr
    assert [c.split()[0] for c in calls] == ["ls"]
