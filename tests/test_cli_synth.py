"""Every environment synthesizes through the pinned CDK CLI, lint- and nag-clean.

This is what CI and users run (`npx cdk synth -c env=...`); cdk-nag and
aws-cdk-lib's template validation run inside that synth and fail it on any
unacknowledged finding. cfn-lint then checks every template against the
CloudFormation resource schemas.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file

from config import known_environments
from tests.cfn_lint_policy import IGNORED_RULES, LINT_REGIONS

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.cli


def _cdk_command(*args: str, outdir: Path) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    return ["npx", "--no-install", "cdk", "synth", "--quiet", "--no-notices", "-o", str(outdir), *args], env


def run_cdk(*args: str, outdir: Path) -> subprocess.CompletedProcess[str]:
    command, env = _cdk_command(*args, outdir=outdir)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def cli_assemblies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every environment through the CLI, the synths side by side (each is mostly one process
    waiting on another, so two cores run two of them in little more than the time of one)."""
    runs = {}
    for env in known_environments():
        outdir = tmp_path_factory.mktemp(f"cli-{env}")
        command, process_env = _cdk_command("-c", f"env={env}", outdir=outdir)
        runs[env] = (outdir, subprocess.Popen(command, cwd=ROOT, env=process_env, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True))
    out = {}
    for env, (outdir, process) in runs.items():
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"cdk synth -c env={env} failed:\n{stderr[-4000:]}"
        out[env] = outdir
    return out


def test_cli_version_is_the_pinned_one():
    lock = json.loads((ROOT / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/aws-cdk"]["version"]
    assert pinned.startswith("2.1148.")
    assert json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"] == pinned


@pytest.mark.parametrize("env", known_environments())
def test_every_environment_synthesizes_with_its_stacks(cli_assemblies, env):
    manifest = json.loads((cli_assemblies[env] / "manifest.json").read_text())
    stacks = sorted(k for k, v in manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack")
    # What each shipped environment deploys (dev leaves the p4d/g5 LLMs and the trn1 cluster out).
    expected = {"dev": ["MultiModel", "StableDiffusion", "Storage"],
                "prod": ["Llm", "MultiModel", "StableDiffusion", "Storage", "Training"]}[env]
    assert stacks == [f"MlAccel-{env}-{name}" for name in expected]
    for stack in stacks:
        assert (cli_assemblies[env] / f"{stack}.template.json").is_file()


@pytest.mark.parametrize("env", known_environments())
def test_cfn_lint_finds_nothing_beyond_the_ignored_rules(cli_assemblies, env):
    templates = sorted(cli_assemblies[env].glob("*.template.json"))
    assert templates
    config = ManualArgs(regions=LINT_REGIONS, ignore_checks=sorted(IGNORED_RULES))
    findings = [f"{t.name}: {m}" for t in templates for m in lint_file(t, config=config)]
    assert findings == []


def test_the_app_registers_cdk_nag_so_an_unacknowledged_finding_fails_synth(tmp_path: Path):
    """A plain bucket (no SSL policy, no access logs) slipped into the app must stop synth."""
    from aws_cdk import aws_s3 as s3

    from config import load_config
    from stacks.platform import build_platform
    from tests.helpers import new_app

    app = new_app(tmp_path)
    # Only the storage stack: the workloads add nothing to what this test is about, and cost seconds.
    cfg = load_config("dev", overrides={"stable_diffusion.enabled": "false", "multi_model.enabled": "false"})
    platform = build_platform(app, cfg)
    s3.Bucket(platform.storage, "Careless")
    with pytest.raises(RuntimeError) as exc:
        app.synth()
    assert "AwsSolutions-S1" in str(exc.value) or "AwsSolutions-S10" in str(exc.value)


def test_python_app_py_alone_synthesizes_what_the_cli_does(cli_assemblies, tmp_path: Path):
    """Feature flags come from cdk.json either way, so templates are identical."""
    env = {**os.environ, "CDK_OUTDIR": str(tmp_path), "CDK_CONTEXT_JSON": json.dumps({"env": "prod"})}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    for template in sorted(cli_assemblies["prod"].glob("*.template.json")):
        alone = json.loads((tmp_path / template.name).read_text())
        assert _without_cli_annotations(alone) == _without_cli_annotations(json.loads(template.read_text()))


def _without_cli_annotations(template: dict) -> dict:
    """The CLI adds construct-path metadata and the CDKMetadata resource (with its region condition)."""
    resources = {
        k: {key: v for key, v in r.items() if key != "Metadata"}
        for k, r in template["Resources"].items()
        if r["Type"] != "AWS::CDK::Metadata"
    }
    conditions = {k: v for k, v in template.get("Conditions", {}).items() if k != "CDKMetadataAvailable"}
    return {**template, "Resources": resources, "Conditions": conditions}


def test_unknown_environment_fails_synth_naming_the_known_ones(tmp_path: Path):
    result = run_cdk("-c", "env=staging", outdir=tmp_path)
    assert result.returncode == 1
    assert "unknown environment 'staging'; known environments: dev, prod" in result.stderr
    assert not list(tmp_path.glob("*.template.json"))


def test_bad_values_fail_synth_with_one_message_listing_each(tmp_path: Path):
    # The CLI passes a failing app's stderr and exit code through (test above); `python app.py`
    # shows the same without the CLI's start-up.
    result = run_app({"env": "prod", "set:storage.encryption": "aes", "set:storage.compile_cache_expiration_days": "0"},
                     tmp_path)
    assert result.returncode == 1
    assert "2 problem(s)" in result.stderr
    assert "storage.encryption: got 'aes', allowed: 'kms', 's3' (from -c set:storage.encryption)" in result.stderr
    assert "storage.compile_cache_expiration_days: got 0, allowed range: 1 to 3650" in result.stderr
    assert not list(tmp_path.glob("*.template.json"))


def run_app(context: dict[str, str], outdir: Path) -> subprocess.CompletedProcess[str]:
    """`python app.py` as the CLI runs it (the CLI adds nothing to a failing app's stderr or exit code)."""
    # The venv's Node first, as for the CLI: with another Node, jsii prints its version warning to stderr
    # before the app says anything, and the message would no longer be the only output.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "CDK_OUTDIR": str(outdir), "CDK_CONTEXT_JSON": json.dumps(context)}
    return subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"env": "my_env"}, ["env: got 'my_env', allowed: 1-32 letters, digits and '-' (not first or last)",
                             "(from -c env)"]),
        (
            {"env": "prod", "set:environment": "dev",
             "set:stable_diffusion.compile.image": "djl-inference:0.30.0-neuronx-sdk2.20.1",
             "set:multi_model.instance_type": "ml.inf9.xlarge"},
            ["3 problem(s)",
             "environment: got 'dev'; cannot be set with -c set:, it is chosen with -c env=NAME",
             "stable_diffusion.compile.image: got 'djl-inference:0.30.0-neuronx-sdk2.20.1' (Neuron SDK 2.20.1), "
             "allowed: an image with Neuron SDK 2.26.0, the serving image's", "(from -c set:stable_diffusion.compile.image)",
             "multi_model.instance_type: got 'ml.inf9.xlarge': SageMaker hosting has no instance family 'inf9'"],
        ),
    ],
    ids=["stack-name", "not-settable-sdk-pairing-unknown-type"],
)
def test_bad_inputs_end_in_one_message_exit_code_1_and_nothing_written(tmp_path: Path, context, expected):
    result = run_app(context, tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("cdk synth aborted, nothing was synthesized.\n")
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_synth_benchmark_shows_why_a_synth_failed(tmp_path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_synth", ROOT / "scripts" / "bench_synth.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    failing_app = f"{sys.executable} -c \"import sys; sys.exit('no such table: storage')\""
    with pytest.raises(SystemExit) as exc:
        bench.synth_seconds(["--app", failing_app], str(tmp_path))
    assert "failed with exit code 1" in str(exc.value.code)
    assert "no such table: storage" in str(exc.value.code)


def test_a_construct_refusing_what_the_configuration_accepted_is_one_message_too(monkeypatch, capsys, tmp_path):
    """The constructs re-check their props; if a configuration rule is missing, the user still
    gets the construct's message (which names the prop, value and what is allowed), not a traceback."""
    import app

    def refuse(_app, cfg):
        raise ValueError("Invalid NeuronCompilation props:\n  - image: compile image 'x:sdk2.20.1' has Neuron SDK ...")

    monkeypatch.setattr(app, "build_platform", refuse)
    monkeypatch.setenv("CDK_OUTDIR", str(tmp_path))
    monkeypatch.setenv("CDK_CONTEXT_JSON", json.dumps({"env": "dev"}))
    assert app.main() == 1
    err = capsys.readouterr().err
    assert err.startswith("cdk synth aborted, nothing was synthesized.\nThe environment 'dev' was accepted by the "
                          "configuration rules but a construct refused it:\nInvalid NeuronCompilation props:")
    assert list(tmp_path.iterdir()) == []
