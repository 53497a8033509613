"""The environment is the image's: its Python and the lock, as check_image verifies at build."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from trainium_runtime.check_image import main, problems, read_pins

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "ml_constructs" / "trainium_batch" / "runtime"
PROFILE_DIR = REPO / "runtime_profiles" / os.environ.get("RUNTIME_PROFILE", "training/current")


def profile_python() -> str:
    for line in (PROFILE_DIR / "profile.toml").read_text().splitlines():
        if line.startswith("python = "):
            return line.split('"')[1]
    raise AssertionError("profile.toml has no python")


def test_the_tests_run_on_the_images_python_minor():
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == profile_python()


def test_the_image_build_check_passes_on_exactly_the_lock():
    # What the Dockerfile runs after installing the lock; here the lock is what pip installed.
    assert main(["--python", profile_python(), str(PROFILE_DIR / "requirements.lock")]) == 0


def test_the_runtime_never_imports_cdk():
    assert not any(name.split(".")[0] in ("aws_cdk", "jsii", "constructs", "ml_constructs") for name in sys.modules)
    assert "aws_cdk" not in "".join(p.read_text() for p in RUNTIME.glob("*.py"))


def test_a_different_python_or_package_version_fails_the_build(tmp_path):
    lock = tmp_path / "base-image.lock"
    lock.write_text("# pinned by the base\ntorch-neuronx==2.9.0.2.14.27725+e2ff0410\nboto3==1.0.0\n")
    versions = {"torch-neuronx": "2.9.0.2.14.27725+e2ff0410", "boto3": "1.44.5"}
    assert read_pins(str(lock)) == {"torch-neuronx": "2.9.0.2.14.27725+e2ff0410", "boto3": "1.0.0"}
    assert problems("3.12", [str(lock)], found=versions.get, running="3.10") == [
        "python: found 3.10, the profile has 3.12",
        f"boto3: found 1.44.5, {lock} has 1.0.0",
    ]
    assert problems("3.12", [str(lock)], found={}.get, running="3.12")[0].startswith("torch-neuronx: found not installed")


def test_an_environment_with_torch_xla_pinned_runs_the_xla_tests():
    # xla/ is collected only where torch_xla imports: a profile that pins it must have it.
    pinned = (PROFILE_DIR / "test-requirements.txt").read_text()
    if "torch-xla==" in pinned:
        __import__("torch_xla")
    else:
        assert PROFILE_DIR.name == "seed"  # torch-xla 2.1 is not on the index (checked from its source)


def test_the_neuron_packages_are_not_in_this_environment():
    # If they ever became installable, the tests should run against them instead of fakes.
    with pytest.raises(ModuleNotFoundError):
        __import__("torch_neuronx")


@pytest.mark.parametrize("locked, installed, ok", [
    ("2.15.128.0", "2.15.128.0+f524f7f8", True),  # the Neuron packages report a local label
    ("2.25.3371.0+f524f7f8", "2.25.3371.0+f524f7f8", True),
    ("2.25.3371.0+f524f7f8", "2.25.3371.0+0000000", False),  # a locked label must match
    ("1.0", "1.0.0", True),  # PEP 440 zero padding
    ("1.35.93", "1.35.94", False),
])
def test_versions_compare_under_pep_440(locked, installed, ok, tmp_path):
    lock = tmp_path / "base-image.lock"
    lock.write_text(f"neuronx-cc=={locked}\n")
    assert (problems("3.12", [str(lock)], found={"neuronx-cc": installed}.get, running="3.12") == []) is ok


def test_a_tool_missing_from_path_fails_the_build(tmp_path):
    lock = tmp_path / "empty.lock"
    lock.write_text("")
    on_path = {"torchrun": "/usr/local/bin/torchrun"}.get
    assert problems("3.12", [str(lock)], running="3.12", tools=["torchrun", "fi_info"], which=on_path) == [
        "fi_info: not found on PATH (the runtime calls it)"
    ]
