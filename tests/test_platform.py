"""The whole app per environment: nag-clean, deterministic, tagged."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from config import known_environments, load_config
from stacks.platform import build_platform
from tests.helpers import new_app, pinned, platform_key_reference


def synth_templates(env: str, outdir) -> dict[str, str]:
    app = new_app(outdir)
    build_platform(app, load_config(env))
    assembly = app.synth()
    return {s.stack_name: json.dumps(s.template, sort_keys=True) for s in assembly.stacks}


@pytest.mark.parametrize("env", known_environments())
def test_two_synths_of_an_unchanged_tree_are_identical(env, tmp_path):
    first = synth_templates(env, tmp_path / "a")
    second = synth_templates(env, tmp_path / "b")
    assert first == second
    assets_a = sorted(p.name for p in (tmp_path / "a").glob("asset.*"))
    assets_b = sorted(p.name for p in (tmp_path / "b").glob("asset.*"))
    assert assets_a == assets_b


def test_environment_tags_reach_the_resources(platform_synth):
    _, assembly = platform_synth("prod")
    template = assembly.get_stack_by_name("MlAccel-prod-Storage").template
    bucket = next(v for v in template["Resources"].values() if v["Type"] == "AWS::S3::Bucket")
    assert {"Key": "environment", "Value": "prod"} in bucket["Properties"]["Tags"]


def test_account_and_region_pin_the_stack_environment(platform_synth):
    # us-west-2: a region that hosts every default instance type (BLOOM's ml.p4de.24xlarge: docs/llm.md, "Regions").
    _, assembly = platform_synth("prod", **{k.replace(".", "__"): v for k, v in pinned("123456789012", "us-west-2").items()})
    stack = assembly.get_stack_by_name("MlAccel-prod-Storage")
    assert (stack.environment.account, stack.environment.region) == ("123456789012", "us-west-2")


def test_without_account_the_synth_is_environment_agnostic(platform_synth):
    _, assembly = platform_synth("dev")
    stack = assembly.get_stack_by_name("MlAccel-dev-Storage")
    assert stack.environment.account == "unknown-account" and stack.environment.region == "unknown-region"


def test_a_pinned_account_and_region_need_no_context_lookup(platform_synth):
    """No AWS credentials at synth: VPCs in the compile and training stacks must not look up AZs."""
    _, assembly = platform_synth("prod", **{k.replace(".", "__"): v for k, v in pinned("123456789012", "us-west-2").items()})
    manifest = json.loads((Path(assembly.directory) / "manifest.json").read_text())
    assert manifest.get("missing") is None
    assert not (Path(assembly.directory).parent / "cdk.context.json").exists()


def test_nist_800_53_r5_runs_on_every_synth(tmp_path):
    """A resource the NIST pack flags (and AwsSolutions does not acknowledge) fails the synth by its NIST rule id."""
    import aws_cdk as cdk
    from aws_cdk import aws_sagemaker as sagemaker

    app = new_app(tmp_path)
    build_platform(app, load_config("dev"))
    stray = cdk.Stack(app, "Stray")
    sagemaker.CfnEndpointConfig(stray, "NoKey", production_variants=[sagemaker.CfnEndpointConfig.ProductionVariantProperty(
        variant_name="AllTraffic", model_name="m", initial_instance_count=1, instance_type="ml.m5.large")])
    with pytest.raises(RuntimeError, match="NIST.800.53.R5::NIST.800.53.R5-SageMakerEndpointConfigurationKMSKeyConfigured"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] if p["pluginName"] == "NIST.800.53.R5" for v in p["violations"]}
    assert rules == {"NIST.800.53.R5-SageMakerEndpointConfigurationKMSKeyConfigured"}


def test_every_prod_log_group_is_encrypted_with_the_platform_key(platform_synth):
    _, assembly = platform_synth("prod")
    groups = {
        f"{stack.stack_name}/{lid}": r["Properties"]
        for stack in assembly.stacks for lid, r in stack.template["Resources"].items() if r["Type"] == "AWS::Logs::LogGroup"
    }
    assert len(groups) >= 9  # compile (job, handlers, flow logs) and training (jobs, pipeline, flow logs)
    key = platform_key_reference(assembly, "MlAccel-prod-Storage")
    for name, props in groups.items():
        assert props["KmsKeyId"] == key, name
    storage = assembly.get_stack_by_name("MlAccel-prod-Storage").template
    (key,) = [r for r in storage["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    logs = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "CloudWatchLogsOfThisAccount"]
    assert logs and "kms:EncryptionContext:aws:logs:arn" in logs[0]["Condition"]["ArnLike"]


def test_prod_endpoint_log_groups_exist_before_sagemaker_writes_with_retention_and_the_platform_key(platform_synth):
    """SageMaker would create /aws/sagemaker/Endpoints/<name> itself, unencrypted and kept forever."""
    from fnmatch import fnmatch

    _, assembly = platform_synth("prod")
    storage = assembly.get_stack_by_name("MlAccel-prod-Storage").template
    (key,) = [r for r in storage["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    (allow,) = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "CloudWatchLogsOfThisAccount"]
    parts = allow["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]["Fn::Join"][1]
    pattern = "".join(p if isinstance(p, str) else {"AWS::Partition": "aws", "AWS::Region": "eu-west-1",
                                                      "AWS::AccountId": "111111111111"}[p["Ref"]] for p in parts)
    for stack in ("MlAccel-prod-StableDiffusion", "MlAccel-prod-MultiModel", "MlAccel-prod-Llm"):
        template = assembly.get_stack_by_name(stack).template
        groups = {r["Properties"]["LogGroupName"]: r["Properties"] for r in template["Resources"].values()
                  if r["Type"] == "AWS::Logs::LogGroup"
                  and str(r["Properties"].get("LogGroupName", "")).startswith("/aws/sagemaker/Endpoints/")}
        endpoints = [r["Properties"]["EndpointName"] for r in template["Resources"].values()
                     if r["Type"] == "AWS::SageMaker::Endpoint"]
        assert endpoints and sorted(groups) == sorted(f"/aws/sagemaker/Endpoints/{e}" for e in endpoints), stack
        for name, props in groups.items():
            assert props["RetentionInDays"] == 90, name
            assert props["KmsKeyId"] == platform_key_reference(assembly, "MlAccel-prod-Storage"), name
            assert fnmatch(f"arn:aws:logs:eu-west-1:111111111111:log-group:{name}", pattern), (name, pattern)
