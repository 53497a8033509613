"""Fail the image build unless the Python, the installed packages and the tools are the profile's.

    python3 -m trainium_runtime.check_image --python 3.12 --tools fi_info,torchrun requirements.lock base-image.lock

Runs during ``docker build`` (runtime_profiles/training/<profile>/Dockerfile). Each lock is
``name==version`` lines, compared under PEP 440's ``==`` rules with ``packaging`` (in the
image with pip; pip's vendored copy otherwise): a lock without a local label matches an
installed version with one (``neuronx-cc==2.15.128.0`` matches ``2.15.128.0+f524f7f8``, as
the Neuron packages report themselves), ``1.0`` matches ``1.0.0``; a lock with a local label
must match it exactly.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from importlib import metadata
from typing import Callable, Sequence

try:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
except ImportError:  # pragma: no cover - an image without packaging still has pip's copy
    from pip._vendor.packaging.specifiers import InvalidSpecifier, SpecifierSet  # type: ignore[no-redef]


def matches(locked: str, installed: str) -> bool:
    """PEP 440: does ``installed`` satisfy ``==locked``?"""
    try:
        return SpecifierSet(f"=={locked}").contains(installed, prereleases=True)
    except InvalidSpecifier:
        return locked == installed


def read_pins(path: str) -> dict[str, str]:
    pins = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, version = re.sub(r"\[.*\]", "", line).partition("==")
                pins[name.strip()] = version.strip()
    return pins


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def problems(python: str, locks: Sequence[str], found: Callable[[str], str | None] = installed_version,
             running: str | None = None, tools: Sequence[str] = (),
             which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """One line per difference between this interpreter/site-packages/PATH and the profile."""
    found_python = running or f"{sys.version_info.major}.{sys.version_info.minor}"
    lines = [] if found_python == python else [f"python: found {found_python}, the profile has {python}"]
    for lock in locks:
        for name, version in read_pins(lock).items():
            installed = found(name)
            if installed is None or not matches(version, installed):
                lines.append(f"{name}: found {installed or 'not installed'}, {lock} has {version}")
    for tool in tools:
        if which(tool) is None:
            lines.append(f"{tool}: not found on PATH (the runtime calls it)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m trainium_runtime.check_image")
    parser.add_argument("--python", required=True, help="the profile's Python minor version, e.g. 3.12")
    parser.add_argument("--tools", default="", help="comma-separated commands that must resolve on PATH")
    parser.add_argument("locks", nargs="+")
    args = parser.parse_args(argv)
    found = problems(args.python, args.locks, tools=[t for t in args.tools.split(",") if t])
    for line in found:
        print(f"check_image: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
