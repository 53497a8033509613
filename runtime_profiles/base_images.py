"""Base images pinned by digest: ``runtime_profiles/base-images.lock`` and ``make pin-images``.

A tag such as ``deepjavalibrary/djl-serving:0.36.0-cpu-full`` can be pushed again; a digest
cannot. The lock maps each base image reference a profile builds ``FROM`` (its
``settings.base_image``) to the digest it resolved to when a maintainer pinned it, or to ``""``
while it is not pinned yet. The stacks build ``FROM <reference>@<digest>`` where a digest is
recorded (Docker then ignores the tag), and ``FROM <reference>`` otherwise.

    python -m runtime_profiles.base_images pin [--all]   # make pin-images: record digests (needs registry access)
    python -m runtime_profiles.base_images check         # list the references still unpinned; exit 1 if any

``pin`` asks ``docker buildx imagetools inspect`` (or ``crane digest`` where Docker is absent) for
each unpinned reference (``--all``: every one) and writes the answer; it never guesses one.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

LOCK = Path(__file__).resolve().parent / "base-images.lock"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
HEADER = """\
# Base images of the runtime profiles, pinned by digest. Written by `make pin-images`
# (python -m runtime_profiles.base_images pin); read by the stacks that build FROM them.
# reference (a profile's settings.base_image) = "sha256:<digest>", or "" while not pinned yet.
"""


def load(path: Path | None = None) -> dict[str, str]:
    path = LOCK if path is None else path
    pins = tomllib.loads(path.read_text())
    for reference, digest in pins.items():
        if digest and not DIGEST.fullmatch(digest):
            raise ValueError(f"{path.name}: {reference} = {digest!r}; allowed: \"sha256:<64 hex digits>\" or \"\"")
    return pins


def pinned_reference(reference: str, pins: dict[str, str] | None = None) -> str:
    """``reference@digest`` when the lock records one for exactly this reference, else ``reference``."""
    digest = (load() if pins is None else pins).get(reference, "")
    return f"{reference}@{digest}" if digest else reference


def write(pins: dict[str, str], path: Path | None = None) -> None:
    (LOCK if path is None else path).write_text(HEADER + "".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in sorted(pins.items())))


def resolve(reference: str) -> str:
    """The digest the registry serves for ``reference`` now (the manifest list's, for multi-platform tags)."""
    if shutil.which("docker"):
        command = ["docker", "buildx", "imagetools", "inspect", reference, "--format", "{{json .Manifest.Digest}}"]
    elif shutil.which("crane"):
        command = ["crane", "digest", reference]
    else:
        raise SystemExit("pin-images needs `docker buildx` or `crane` on the PATH, with access to the registry")
    done = subprocess.run(command, capture_output=True, text=True)
    answer = done.stdout.strip().strip('"')
    if done.returncode != 0 or not DIGEST.fullmatch(answer):
        raise SystemExit(f"{' '.join(command)}: no digest for {reference} (exit {done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()[:300]}")
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["pin", "check"])
    parser.add_argument("--all", action="store_true", help="re-resolve pinned references too")
    parser.add_argument("--lock", type=Path, default=None)
    args = parser.parse_args(argv)
    pins = load(args.lock)
    unpinned = sorted(r for r, d in pins.items() if not d)
    if args.command == "check":
        for reference in unpinned:
            print(f"not pinned: {reference} ({(args.lock or LOCK).name}); run `make pin-images` where the registry is reachable")
        return 1 if unpinned else 0
    for reference in sorted(pins) if args.all else unpinned:
        pins[reference] = resolve(reference)
        print(f"{reference}@{pins[reference]}")
    write(pins, args.lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
