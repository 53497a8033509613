"""Shared test helpers: build apps the way the CDK CLI does, find resources."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk

ROOT = Path(__file__).resolve().parent.parent
CDK_CONTEXT: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]


def new_app(outdir: Path | str | None = None, **extra_context: Any) -> cdk.App:
    """An App with cdk.json's feature flags, as `cdk synth` would create it."""
    kwargs: dict[str, Any] = {"context": {**CDK_CONTEXT, **extra_context}}
    if outdir is not None:
        kwargs["outdir"] = str(outdir)
    return cdk.App(**kwargs)


def new_checked_app(outdir: Path | str | None = None) -> cdk.App:
    """An App with cdk-nag registered: unacknowledged findings make synth raise."""
    from cdk_nag import AwsSolutionsChecks

    app = new_app(outdir)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks())
    return app


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def policy_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    statements = []
    for policy in resources_of_type(template, "AWS::IAM::Policy").values():
        statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def pinned(account: str, region: str) -> dict[str, str]:
    """`-c set:` overrides that pin an environment to ``account`` and ``region``.

    A pinned environment with training on must name the cluster's AZ and AMI (config/training.py);
    synth takes any well-formed values, which no deploy would accept unchanged.
    """
    return {"account": account, "region": region, "training.availability_zone": f"{region[:2]}x1-az1",
            "training.ami_id": "ami-0123456789abcdef0"}


def log_groups_granted(template: dict[str, Any], statement: dict[str, Any]) -> list[str]:
    """``LogGroupName`` of each log group the statement's resources point at (``Fn::GetAtt [id, Arn]``);
    a resource that is not a log group of this template fails the lookup."""
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    return sorted(template["Resources"][r["Fn::GetAtt"][0]]["Properties"]["LogGroupName"] for r in resources)


def weak_reference(assembly: Any, producer: str, value: Any) -> dict[str, Any]:
    """How another stack reads ``producer``'s ``value`` through a weak reference: ``Fn::GetStackOutput`` of
    the un-exported output holding that value (the output's name carries a hash, hence the lookup)."""
    template = assembly.get_stack_by_name(producer).template
    (name,) = [k for k, o in template["Outputs"].items() if o["Value"] == value and "Export" not in o
               and k.startswith("PublishOutput")]
    return {"Fn::GetStackOutput": {"StackName": producer, "Region": {"Ref": "AWS::Region"}, "OutputName": name}}


def platform_key_reference(assembly: Any, storage: str) -> dict[str, Any]:
    """The platform key's ARN as the workload stacks read it from the storage stack ``storage``."""
    template = assembly.get_stack_by_name(storage).template
    (key_id,) = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::KMS::Key" and k.startswith("ArtifactsKey")]
    return weak_reference(assembly, storage, {"Fn::GetAtt": [key_id, "Arn"]})
