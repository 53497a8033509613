"""Print the Python versions the test job needs, as a GitHub step output named `versions`.

Each runtime profile's contract tests run under its image's Python minor version (or its
`test_python`): the same interpreters `python -m runtime_profiles.env test` looks for. 3.11, the
project's own, comes last so setup-python makes it the default `python`. Standard library only:
it runs on the runner's system Python before anything is installed.
"""
import sys
import tomllib
from pathlib import Path

PROJECT_PYTHON = "3.11"


def needed(root: Path) -> list[str]:
    minors = set()
    for profile in sorted(root.glob("runtime_profiles/*/*/profile.toml")):
        data = tomllib.loads(profile.read_text(encoding="utf-8"))
        minor = data.get("test_python") or data.get("python")
        if minor:
            minors.add(str(minor))
    minors.discard(PROJECT_PYTHON)
    return sorted(minors, key=lambda v: tuple(int(p) for p in v.split("."))) + [PROJECT_PYTHON]


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
    print("versions<<PYTHON_VERSIONS")
    print("\n".join(needed(root)))
    print("PYTHON_VERSIONS")
