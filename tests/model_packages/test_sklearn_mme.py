"""The multi-model package and its runtime profiles, as files: what the image installs
agrees with the lock, and the package ships what the handler needs.

The handler itself runs in the image's environment: contract_tests/multi_model/
(``python -m runtime_profiles.env test multi_model/current``).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from runtime_profiles import load_profile, profile_names

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "model_packages" / "sklearn_mme"
PROFILES = profile_names("multi_model")


def test_both_profiles_exist_and_current_is_supported():
    assert PROFILES == ("current", "seed")
    current, seed = load_profile("multi_model", "current"), load_profile("multi_model", "seed")
    assert current.supported and current.python == "3.11" and current.default_tag == "0.36.0-cpu-full"
    assert not seed.supported and seed.python == "3.8" and "Python 3.8" in seed.end_of_life


@pytest.mark.parametrize("name", PROFILES)
def test_dockerfile_builds_on_a_verified_tag_and_installs_exactly_the_lock(name: str):
    profile = load_profile("multi_model", name)
    dockerfile = profile.dockerfile.read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M)[1]
    assert base == profile.settings["base_image"]
    assert base.rsplit(":", 1)[1] in profile.image_tags
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, re.M)
    # --no-deps: nothing but the lock's pins; check_lock fails the build on any other version or Python.
    assert "pip3 install --no-cache-dir --no-deps --force-reinstall -r /opt/ml-platform/requirements.lock" in dockerfile
    assert f"check_lock.py /opt/ml-platform/requirements.lock {profile.python}\n" in dockerfile
    assert "COPY requirements.lock check_lock.py /opt/ml-platform/" in dockerfile


@pytest.mark.parametrize("name", PROFILES)
def test_the_lock_pins_what_the_handler_and_its_model_file_need(name: str):
    profile = load_profile("multi_model", name)
    for package in ("numpy", "scipy", "scikit-learn", "skops", "joblib", "threadpoolctl"):
        assert profile.version_of(package), f"{profile.key} lock lacks {package}"


def test_current_lock_keeps_the_images_scikit_learn():
    # The image pins scikit-learn 1.7.2 (djl-serving v0.36.0 serving/docker/Dockerfile); the lock must not
    # move it, or the reinstall would swap the library under DJL's own sklearn handler.
    assert load_profile("multi_model", "current").version_of("scikit-learn") == "1.7.2"


def test_check_lock_is_one_script_in_both_profiles():
    texts = {(load_profile("multi_model", n).folder / "check_lock.py").read_text() for n in PROFILES}
    assert len(texts) == 1


def test_check_lock_runs_on_the_seed_python():
    # It runs inside the 0.23.0 image (Python 3.8) before anything else: syntax of 3.8 only.
    source = (load_profile("multi_model", "seed").folder / "check_lock.py").read_text()
    ast.parse(source, feature_version=(3, 8))


def test_check_lock_reports_a_mismatch(tmp_path: Path):
    import subprocess
    import sys

    lock = tmp_path / "requirements.lock"
    lock.write_text("pytest==0.0.1\n")
    script = load_profile("multi_model", "current").folder / "check_lock.py"
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    run = subprocess.run([sys.executable, str(script), str(lock), minor], capture_output=True, text=True)
    assert run.returncode == 1
    assert "check_lock: pytest: found" in run.stderr and "the lock has 0.0.1" in run.stderr


def test_package_folder_ships_handler_and_properties_only():
    assert sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__") == ["model.py", "serving.properties"]
    text = (PACKAGE / "serving.properties").read_text()
    assert "engine=Python\n" in text


def test_handler_loads_skops_with_named_trusted_types_only():
    tree = ast.parse((PACKAGE / "model.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names} | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"joblib", "pickle", "cloudpickle"}
    assert "skops.io" in imported
