"""Fail the image build unless the Python and the installed packages are exactly the profile's.

    python3 -m trainium_runtime.check_image --python 3.12 requirements.lock base-image.lock

Runs during ``docker build`` (runtime_profiles/training/<profile>/Dockerfile), before anything
else is trusted, so it uses the standard library only. Each lock is ``name==version`` lines.
"""
from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from typing import Callable, Sequence


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
             running: str | None = None) -> list[str]:
    """One line per difference between this interpreter/site-packages and the locks."""
    found_python = running or f"{sys.version_info.major}.{sys.version_info.minor}"
    lines = [] if found_python == python else [f"python: found {found_python}, the profile has {python}"]
    for lock in locks:
        for name, version in read_pins(lock).items():
            installed = found(name)
            if installed != version:
                lines.append(f"{name}: found {installed or 'not installed'}, {lock} has {version}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m trainium_runtime.check_image")
    parser.add_argument("--python", required=True, help="the profile's Python minor version, e.g. 3.12")
    parser.add_argument("locks", nargs="+")
    args = parser.parse_args(argv)
    found = problems(args.python, args.locks)
    for line in found:
        print(f"check_image: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
