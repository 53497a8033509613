"""Base images by digest: the lock every multi-model base is recorded in, the stack that builds FROM
``tag@digest`` once a digest is recorded, and the pin tool that asks the registry (never guesses)."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys

import pytest

from runtime_profiles import load_profile
from runtime_profiles.base_images import DIGEST, LOCK, load, main, pinned_reference
from tests.helpers import ROOT

DIGEST_A = "sha256:" + "a" * 64  # a test value, not any image's digest


def dockerfile_bases(text: str) -> list[str]:
    """What each FROM of a Dockerfile builds on, with ARG defaults substituted."""
    args = dict(re.findall(r"(?m)^ARG\s+(\w+)=(\S+)", text))
    return [re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), ref)
            for ref in re.findall(r"(?m)^FROM\s+(\S+)", text)]


def unpinned_bases(text: str, pins: dict[str, str]) -> list[str]:
    """FROMs that are neither by digest nor recorded in the lock."""
    return [b for b in dockerfile_bases(text) if "@sha256:" not in b and b not in pins]


@pytest.mark.parametrize("workload", ["multi_model", "training"])
@pytest.mark.parametrize("name", ["current", "seed"])
def test_each_base_an_image_is_built_from_is_recorded_in_the_lock(workload, name):
    profile = load_profile(workload, name)
    pins = load()
    assert profile.settings["base_image"] in pins
    assert unpinned_bases(profile.dockerfile.read_text(), pins) == []
    assert all(d == "" or DIGEST.fullmatch(d) for d in pins.values())


def test_an_unrecorded_tag_in_a_from_line_is_refused():
    pins = load()
    assert unpinned_bases("FROM python:3.11-slim\n", pins) == ["python:3.11-slim"]
    assert unpinned_bases("ARG B=python:3.11-slim\nFROM ${B}\n", pins) == ["python:3.11-slim"]
    assert unpinned_bases(f"FROM python:3.11-slim@{DIGEST_A}\n", pins) == []


def test_a_recorded_digest_is_what_the_stack_builds_from(monkeypatch, tmp_path):
    import runtime_profiles.base_images as base_images

    lock = tmp_path / "base-images.lock"
    lock.write_text(f'"deepjavalibrary/djl-serving:0.36.0-cpu-full" = "{DIGEST_A}"\n')
    monkeypatch.setattr(base_images, "LOCK", lock)
    assert pinned_reference("deepjavalibrary/djl-serving:0.36.0-cpu-full") == \
        f"deepjavalibrary/djl-serving:0.36.0-cpu-full@{DIGEST_A}"
    assert pinned_reference("deepjavalibrary/djl-serving:0.35.0-cpu-full") == "deepjavalibrary/djl-serving:0.35.0-cpu-full"

    from config import load_config
    from stacks.platform import build_platform
    from tests.helpers import new_app

    app = new_app(tmp_path / "out")
    build_platform(app, load_config("dev"))
    assembly = app.synth()
    stack = assembly.get_stack_by_name("MlAccel-dev-MultiModel")
    assets = json.loads((tmp_path / "out" / f"{stack.stack_name}.assets.json").read_text())
    (image,) = assets["dockerImages"].values()
    assert image["source"]["dockerBuildArgs"]["BASE_IMAGE"] == f"deepjavalibrary/djl-serving:0.36.0-cpu-full@{DIGEST_A}"
    assert image["source"]["platform"] == "linux/amd64"


def test_a_malformed_digest_in_the_lock_is_refused(tmp_path):
    lock = tmp_path / "base-images.lock"
    lock.write_text('"x/y:1" = "sha256:abc"\n')
    with pytest.raises(ValueError, match=r"x/y:1 = 'sha256:abc'; allowed"):
        load(lock)


def fake_tool(tmp_path, name: str, output: str, code: int = 0):
    tool = tmp_path / "bin" / name
    tool.parent.mkdir(exist_ok=True)
    tool.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{tool.parent}:/usr/bin:/bin"}


def test_pin_records_what_the_registry_tool_answers_and_check_then_passes(tmp_path):
    lock = tmp_path / "base-images.lock"
    lock.write_text('"x/y:1" = ""\n')
    env = fake_tool(tmp_path, "crane", DIGEST_A)
    run = [sys.executable, "-m", "runtime_profiles.base_images"]
    check = subprocess.run([*run, "check", "--lock", str(lock)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert check.returncode == 1 and "not pinned: x/y:1" in check.stdout
    subprocess.run([*run, "pin", "--lock", str(lock)], cwd=ROOT, env=env, check=True, capture_output=True)
    assert load(lock) == {"x/y:1": DIGEST_A}
    assert subprocess.run([*run, "check", "--lock", str(lock)], cwd=ROOT, env=env).returncode == 0


def test_pin_refuses_an_answer_that_is_not_a_digest(tmp_path, monkeypatch):
    lock = tmp_path / "base-images.lock"
    lock.write_text('"x/y:1" = ""\n')
    monkeypatch.setenv("PATH", fake_tool(tmp_path, "crane", "UNAUTHORIZED", 1)["PATH"])
    with pytest.raises(SystemExit, match="no digest for x/y:1"):
        main(["pin", "--lock", str(lock)])
    assert load(lock) == {"x/y:1": ""}


def test_the_lock_on_disk_is_what_the_stack_reads():
    assert LOCK == ROOT / "runtime_profiles" / "base-images.lock"
