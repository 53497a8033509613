"""Runtime profiles: every profile folder is well-formed, and malformed ones are refused clearly."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from runtime_profiles import (
    DEFAULT_PROFILE,
    ProfileError,
    all_profiles,
    load_profile,
    parse_lock,
    profile_names,
    read_profile,
    workloads,
)
from runtime_profiles.env import environment_key, interpreter_for

GOOD_TOML = """
summary = "DJL Serving 0.36.0 CPU"
status = "supported"
framework = "djl-serving"
framework_version = "0.36.0"
python = "3.11"
verified_against = ["deepjavalibrary/djl-serving v0.36.0 serving/docker/Dockerfile"]
[image]
repository = "djl-inference"
tags = ["0.36.0-cpu-full", "0.35.0-cpu-full"]
"""


def make_profile(tmp_path: Path, toml: str = GOOD_TOML, lock: str | None = "numpy==1.26.4\n") -> Path:
    folder = tmp_path / "multi_model" / "current"
    folder.mkdir(parents=True)
    (folder / "profile.toml").write_text(toml)
    if lock is not None:
        (folder / "requirements.lock").write_text(lock)
    return folder


def test_a_well_formed_profile_reads_its_image_lock_and_status(tmp_path):
    profile = read_profile(make_profile(tmp_path, lock="# the image's numpy\nNumPy==1.26.4\nscikit_learn==1.7.2\n"))
    assert profile.key == "multi_model/current"
    assert profile.image == "djl-inference:0.36.0-cpu-full"
    assert profile.supported and profile.end_of_life is None
    assert profile.version_of("scikit-learn") == "1.7.2"
    assert profile.version_of("numpy") == "1.26.4"
    assert profile.tag_problem("0.35.0-cpu-full") is None


def test_a_tag_outside_the_verified_ones_is_refused_with_the_allowed_tags(tmp_path):
    profile = read_profile(make_profile(tmp_path))
    problem = profile.tag_problem("0.23.0-cpu-full")
    assert "'0.23.0-cpu-full'" in problem and "0.36.0-cpu-full, 0.35.0-cpu-full" in problem


def test_version_problems_name_found_and_locked_versions(tmp_path):
    profile = read_profile(make_profile(tmp_path, lock="numpy==1.26.4\nscikit-learn==1.7.2\n"))
    assert profile.version_problems({"numpy": "2.3.1", "scikit-learn": "1.7.2", "xgboost": "3.0.5"}) == [
        "numpy: found 2.3.1, the lock has 1.26.4",
        f"xgboost 3.0.5: not in the lock {profile.lock_file}",
    ]


@pytest.mark.parametrize(
    "lock, message",
    [
        ("numpy>=1.26\n", "is not an exact pin"),
        ("numpy\n", "is not an exact pin"),
        ("numpy==1.26.4\nNumPy==1.26.3\n", "pinned twice"),
    ],
)
def test_a_lock_line_that_is_not_one_exact_pin_is_refused(lock, message):
    with pytest.raises(ProfileError, match=message):
        parse_lock(lock, "requirements.lock")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace('status = "supported"', 'status = "beta"'), "status: got 'beta'"),
        (lambda t: t.replace('status = "supported"', 'status = "end-of-life"'), "end_of_life: a notice is required"),
        (lambda t: 'end_of_life = "retired"\n' + t, "end_of_life: a notice is required"),
        (lambda t: t.replace('python = "3.11"', 'python = "3"'), "python: got '3'"),
        (lambda t: t.replace('tags = ["0.36.0-cpu-full", "0.35.0-cpu-full"]', "tags = []"), "at least one verified tag"),
        (lambda t: re.sub(r"verified_against = .*\n", "", t), "verified_against: name the sources"),
        (lambda t: t + "[[broken", "cannot read"),
    ],
)
def test_a_malformed_profile_names_its_file_and_the_problem(tmp_path, edit, message):
    folder = make_profile(tmp_path, toml=edit(GOOD_TOML))
    with pytest.raises(ProfileError, match=re.escape(message)) as caught:
        read_profile(folder)
    assert "profile.toml" in str(caught.value)


def test_a_profile_without_a_lock_is_refused(tmp_path):
    with pytest.raises(ProfileError, match="requirements.lock: missing"):
        read_profile(make_profile(tmp_path, lock=None))


def test_an_unknown_profile_lists_the_known_ones():
    with pytest.raises(ProfileError, match=r"no runtime profile nope/current \(known for nope: none\)"):
        load_profile("nope", "current")


def test_the_environment_key_changes_with_the_lock(tmp_path):
    folder = make_profile(tmp_path)
    before = environment_key(read_profile(folder))
    (folder / "requirements.lock").write_text("numpy==1.26.3\n")
    assert environment_key(read_profile(folder)) != before


def test_a_missing_interpreter_is_one_line_naming_the_version():
    with pytest.raises(RuntimeError, match=r"no Python 3\.99 interpreter found"):
        interpreter_for("3.99")


# ---- the profiles shipped in this repository -------------------------------------------------

SHIPPED = all_profiles()


def test_every_workload_has_a_supported_current_profile_and_a_seed():
    for workload in workloads():
        names = profile_names(workload)
        assert names[0] == DEFAULT_PROFILE and "seed" in names, workload
        assert load_profile(workload, DEFAULT_PROFILE).supported, f"{workload}/current must be supported"


@pytest.mark.parametrize("profile", SHIPPED, ids=[p.key for p in SHIPPED])
def test_a_shipped_profile_has_a_python_its_tests_can_run_and_a_non_empty_lock(profile):
    assert profile.packages, f"{profile.lock_file} pins nothing"
    assert interpreter_for(profile.test_python or profile.python)


@pytest.mark.parametrize("profile", [p for p in SHIPPED if p.dockerfile], ids=lambda p: p.key)
def test_a_dockerfile_builds_from_a_verified_tag_and_installs_exactly_the_lock(profile):
    text = profile.dockerfile.read_text()
    arguments = dict(re.findall(r"(?m)^ARG\s+(\w+)=(\S+)", text))
    bases = [re.sub(r"\$\{?(\w+)\}?", lambda m: arguments.get(m[1], m[0]), b)
             for b in re.findall(r"(?im)^FROM\s+(\S+)", text)]
    assert bases, "no FROM line"
    for base in bases:
        # The base is the profile's image: its DLC repository, or the same release from the
        # registry named in settings.base_image; either way one of the verified tags.
        name, _, tag = base.partition(":")
        allowed = {profile.image_repository, profile.settings.get("base_image", "").partition(":")[0]}
        assert name.rpartition("/")[2] == profile.image_repository or name in allowed, base
        assert tag in profile.image_tags, base
    assert re.search(r"(?m)^COPY\s+requirements\.lock\s", text), "the Dockerfile must copy the lock"
    assert re.search(r"pip3? install[^\n]*-r\s+\S*requirements\.lock", text), "the Dockerfile must install the lock"
