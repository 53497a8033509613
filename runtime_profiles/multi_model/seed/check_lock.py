"""Fail the image build unless the installed packages and Python are exactly the lock's.

    python3 check_lock.py requirements.lock 3.11

Standard library only: it runs inside the image, before anything else is trusted.
"""
from __future__ import annotations

import re
import sys
from importlib import metadata


def main(lock: str, python: str) -> int:
    problems = []
    found_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if found_python != python:
        problems.append(f"python: found {found_python}, the profile has {python}")
    with open(lock, encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, version = re.sub(r"\[.*\]", "", line).split("==")
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                installed = "not installed"
            if installed != version:
                problems.append(f"{name}: found {installed}, the lock has {version}")
    for problem in problems:
        print(f"check_lock: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
