"""Runtime profiles: what runs inside each workload's serving (or training) container.

A profile is a folder ``runtime_profiles/<workload>/<name>/`` holding

* ``profile.toml``: the image (repository and the tags whose contract was verified), the
  serving framework and its version, the image's Python minor version, its Neuron SDK where
  there is one, its support status, and the sources it was verified against;
* ``requirements.lock``: the exact versions (``name==version``) of the Python packages the
  workload's code depends on inside that image. It is the single source of truth: a
  ``Dockerfile`` beside it installs from it, publishers refuse packages built with other
  versions, and the contract tests run in an environment built from it
  (``python -m runtime_profiles.env``);
* optionally ``Dockerfile`` (the image is built from it, ``FROM`` the profile's image, as a CDK
  image asset at deploy time) and ``test-requirements.txt`` (what the contract tests add to
  the lock: the test runner, fakes, stand-ins for packages that can't be installed here).

Every workload has a ``current`` profile (supported, the default) and a ``seed`` profile (the
stack the workload was first documented with; end-of-life profiles carry their notice, which
becomes a synth warning). This module reads profiles; it imports neither CDK nor boto3, so the
configuration layer can validate against it.
"""
from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

ROOT = Path(__file__).resolve().parent
PROFILE_FILE = "profile.toml"
LOCK_FILE = "requirements.lock"
TEST_REQUIREMENTS_FILE = "test-requirements.txt"
DOCKERFILE = "Dockerfile"
DEFAULT_PROFILE = "current"
STATUSES = ("supported", "end-of-life")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)(\[[A-Za-z0-9_,\-]+\])?==([A-Za-z0-9.+!\-]+)$")
_PYTHON = re.compile(r"^3\.\d{1,2}$")


class ProfileError(ValueError):
    """A profile folder that is malformed: a project bug, reported with the file at fault."""


def normalize(name: str) -> str:
    """PEP 503 name normalization: ``Scikit_Learn`` and ``scikit-learn`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str, source: str) -> dict[str, str]:
    """``{normalized name: version}`` from a lock; every line is an exact ``==`` pin."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if not match:
            raise ProfileError(f"{source}:{number}: {line!r} is not an exact pin 'name==version'")
        name = normalize(match[1])
        if name in pins:
            raise ProfileError(f"{source}:{number}: {match[1]} is pinned twice")
        pins[name] = match[3]
    return pins


@dataclass(frozen=True)
class RuntimeProfile:
    """One workload's container stack, as verified. Read with :func:`load_profile`."""

    workload: str
    name: str
    summary: str
    status: str
    end_of_life: str | None
    framework: str
    framework_version: str
    python: str
    image_repository: str
    image_tags: tuple[str, ...]
    verified_against: tuple[str, ...]
    folder: Path
    packages: Mapping[str, str]
    neuron_sdk: str | None = None
    test_python: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``<workload>/<name>``, as errors and docs name a profile."""
        return f"{self.workload}/{self.name}"

    @property
    def supported(self) -> bool:
        return self.status == "supported"

    @property
    def default_tag(self) -> str:
        return self.image_tags[0]

    @property
    def image(self) -> str:
        """``repository:default tag``."""
        return f"{self.image_repository}:{self.default_tag}"

    @property
    def lock_file(self) -> Path:
        return self.folder / LOCK_FILE

    @property
    def dockerfile(self) -> Path | None:
        path = self.folder / DOCKERFILE
        return path if path.is_file() else None

    @property
    def test_requirements_file(self) -> Path | None:
        path = self.folder / TEST_REQUIREMENTS_FILE
        return path if path.is_file() else None

    def version_of(self, package: str) -> str | None:
        """The locked version of ``package`` (any spelling), or None if the lock lacks it."""
        return self.packages.get(normalize(package))

    def tag_problem(self, tag: str) -> str | None:
        """Why ``tag`` is outside this profile's verified contract, or None."""
        if tag in self.image_tags:
            return None
        return (f"got {tag!r}, allowed for runtime profile {self.key!r}: {', '.join(self.image_tags)} "
                f"(the tags whose contract was verified; see docs/runtime-profiles.md)")

    def version_problems(self, found: Mapping[str, str]) -> list[str]:
        """One line per package of ``found`` ({name: version}) whose version differs from the lock."""
        problems = []
        for name, version in sorted(found.items()):
            locked = self.version_of(name)
            if locked is None:
                problems.append(f"{name} {version}: not in the lock {_display(self.lock_file)}")
            elif locked != version:
                problems.append(f"{name}: found {version}, the lock has {locked}")
        return problems


def workloads() -> tuple[str, ...]:
    return tuple(sorted(p.name for p in ROOT.iterdir() if p.is_dir() and (p / DEFAULT_PROFILE).is_dir()))


def profile_names(workload: str) -> tuple[str, ...]:
    """The profiles of ``workload``, ``current`` first."""
    folder = ROOT / workload
    names = sorted(p.name for p in folder.iterdir() if (p / PROFILE_FILE).is_file()) if folder.is_dir() else []
    return tuple(sorted(names, key=lambda n: (n != DEFAULT_PROFILE, n)))


@functools.cache
def load_profile(workload: str, name: str) -> RuntimeProfile:
    """Read and check ``runtime_profiles/<workload>/<name>/``; a malformed one raises ProfileError."""
    if name not in profile_names(workload):
        known = ", ".join(profile_names(workload)) or "none"
        raise ProfileError(f"no runtime profile {workload}/{name} (known for {workload}: {known})")
    return read_profile(ROOT / workload / name)


def read_profile(folder: Path) -> RuntimeProfile:
    """Read and check one profile folder (``<workload>/<name>/``) wherever it lies."""
    workload, name = folder.parent.name, folder.name
    toml_path = folder / PROFILE_FILE
    where = _display(toml_path)
    try:
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{where}: cannot read: {exc}") from None
    image = data.get("image", {})
    problems = []
    status = data.get("status")
    if status not in STATUSES:
        problems.append(f"status: got {status!r}, allowed: {', '.join(STATUSES)}")
    end_of_life = data.get("end_of_life") or None
    if (status == "end-of-life") != (end_of_life is not None):
        problems.append("end_of_life: a notice is required for status 'end-of-life' and only then")
    for key in ("python", "test_python"):
        if key in data and not _PYTHON.match(str(data[key])):
            problems.append(f"{key}: got {data[key]!r}, allowed: a minor version such as 3.11")
    tags = tuple(image.get("tags", ()))
    if not image.get("repository") or not tags:
        problems.append("image: needs repository and at least one verified tag")
    for key in ("summary", "framework", "framework_version", "python"):
        if not data.get(key):
            problems.append(f"{key}: required")
    if not data.get("verified_against"):
        problems.append("verified_against: name the sources (repository, tag, file or page) the profile was read from")
    lock = folder / LOCK_FILE
    if not lock.is_file():
        problems.append(f"{LOCK_FILE}: missing")
    if problems:
        raise ProfileError(f"{where}: " + "; ".join(problems))
    return RuntimeProfile(
        workload=workload,
        name=name,
        summary=data["summary"],
        status=status,
        end_of_life=end_of_life,
        framework=data["framework"],
        framework_version=str(data["framework_version"]),
        python=str(data["python"]),
        test_python=str(data["test_python"]) if "test_python" in data else None,
        image_repository=image["repository"],
        image_tags=tags,
        verified_against=tuple(data["verified_against"]),
        folder=folder,
        packages=MappingProxyType(parse_lock(lock.read_text(encoding="utf-8"), _display(lock))),
        neuron_sdk=str(data["neuron_sdk"]) if data.get("neuron_sdk") else None,
        settings=MappingProxyType(data.get("settings", {})),
    )


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT.parent))
    except ValueError:
        return str(path)


def all_profiles() -> list[RuntimeProfile]:
    return [load_profile(w, n) for w in workloads() for n in profile_names(w)]
