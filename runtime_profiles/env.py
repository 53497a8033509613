"""Build a runtime profile's test environment from its lock, and run its contract tests there.

    python -m runtime_profiles.env test                    # every profile that has contract tests
    python -m runtime_profiles.env test multi_model/current -q -k roundtrip   # unknown flags go to pytest
    python -m runtime_profiles.env python multi_model/current   # print the environment's python (builds it)

An environment is a venv made with the profile's Python minor version (``test_python`` where
the image's own Python can't be installed here; the profile says why), holding exactly
``requirements.lock`` plus ``test-requirements.txt``. It lives under ``.runtime-envs/`` and is
named by the hash of those inputs, so ``make test`` builds it once per machine and a changed
lock builds a new one. Packages come from the package index pip is configured with; nothing is
downloaded at test time.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from runtime_profiles import ROOT, RuntimeProfile, all_profiles, load_profile

REPO = ROOT.parent
ENVS = REPO / ".runtime-envs"
DONE = ".complete"


class EnvironmentError_(RuntimeError):
    """An environment that can't be built here: one line for the user."""


def interpreter_for(minor: str) -> str:
    """A ``python<minor>`` executable: on PATH (not a pyenv shim), else a pyenv-installed one."""
    candidates = []
    found = shutil.which(f"python{minor}")
    if found and "/shims/" not in found:
        candidates.append(found)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob(f"versions/{minor}.*/bin/python{minor}"))
    candidates += [f"/usr/bin/python{minor}", f"/usr/local/bin/python{minor}"]
    for candidate in candidates:
        if Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise EnvironmentError_(f"no Python {minor} interpreter found (PATH, pyenv, /usr/bin); install python{minor}")


def contract_tests(profile: RuntimeProfile) -> tuple[str, ...]:
    return tuple(profile.settings.get("contract_tests", ()))


def environment_key(profile: RuntimeProfile) -> str:
    digest = hashlib.sha256()
    python = profile.test_python or profile.python
    digest.update(python.encode())
    for path in (profile.lock_file, profile.test_requirements_file):
        if path is not None:
            digest.update(path.read_bytes())
    return f"{profile.workload}-{profile.name}-py{python}-{digest.hexdigest()[:12]}"


def ensure_environment(profile: RuntimeProfile, *, quiet: bool = True) -> Path:
    """The environment's python, building the venv first if it is missing or incomplete."""
    env = ENVS / environment_key(profile)
    python = env / "bin" / "python"
    if (env / DONE).is_file():
        return python
    shutil.rmtree(env, ignore_errors=True)
    interpreter = interpreter_for(profile.test_python or profile.python)
    print(f"runtime_profiles: building {env.relative_to(REPO)} from {profile.lock_file.relative_to(REPO)}", flush=True)
    subprocess.run([interpreter, "-m", "venv", str(env)], check=True)
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
               "-r", str(profile.lock_file)]
    if profile.test_requirements_file is not None:
        command += ["-r", str(profile.test_requirements_file)]
    if quiet:
        command.append("--quiet")
    result = subprocess.run(command)
    if result.returncode != 0:
        raise EnvironmentError_(f"pip could not install {profile.key}'s lock into {env} (exit {result.returncode})")
    (env / DONE).write_text(environment_key(profile) + "\n")
    return python


def run_contract_tests(profile: RuntimeProfile, extra_args: list[str]) -> int:
    tests = contract_tests(profile)
    python = ensure_environment(profile)
    print(f"runtime_profiles: {profile.key} contract tests in {python.parent.parent.name}", flush=True)
    command = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(REPO),
               "-c", str(REPO / "contract_tests" / "pytest.ini"), *tests, *extra_args]
    env = dict(os.environ, PYTHONPATH=str(REPO), RUNTIME_PROFILE=profile.key)
    return subprocess.run(command, cwd=REPO, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime_profiles.env", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    test = sub.add_parser("test", help="build environments and run contract tests")
    test.add_argument("profiles", nargs="*", help="workload/name (default: every profile with contract tests)")
    show = sub.add_parser("python", help="print a profile's environment python, building it if needed")
    show.add_argument("profile")
    # Whatever the parser does not know goes to pytest: `test multi_model/current -q -k roundtrip`.
    args, pytest_args = parser.parse_known_args(argv)
    if pytest_args and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(pytest_args)}")
    try:
        if args.command == "python":
            print(ensure_environment(load_profile(*args.profile.split("/", 1))))
            return 0
        chosen = [load_profile(*p.split("/", 1)) for p in args.profiles] or [
            p for p in all_profiles() if contract_tests(p)
        ]
        failed = [p.key for p in chosen if run_contract_tests(p, pytest_args) != 0]
    except (EnvironmentError_, ValueError) as exc:
        print(f"runtime_profiles: {exc}", file=sys.stderr)
        return 2
    if failed:
        print(f"runtime_profiles: contract tests failed for {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"runtime_profiles: contract tests passed for {len(chosen)} profile(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
