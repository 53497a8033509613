"""Every documented configuration change deploys over the previous deployment: no stack of the new
templates removes or changes an export that a stack of the previous templates imports (CloudFormation
refuses that update of the exporting stack, which deploys first)."""
from __future__ import annotations

import copy
import json

import pytest

from scripts.lint_templates import export_breaks, main as lint_main

TOPIC = "arn:aws:sns:us-east-1:123456789012:oncall"
# (environment, the documented setting changed, its new value): docs/operations.md (alerts, network),
# docs/configuration.md and docs/costs.md (storage.encryption, hosting.mode), the workload pages (runtime).
CHANGES = [
    ("dev", "alerts.topic_arn", TOPIC),
    ("prod", "alerts.topic_arn", TOPIC),
    ("prod", "storage.encryption", "s3"),
    ("dev", "storage.encryption", "kms"),
    ("dev", "endpoint_network.private", "true"),
    ("prod", "endpoint_network.private", "true"),
    ("prod", "stable_diffusion.hosting.mode", "inference-components"),
    ("dev", "stable_diffusion.hosting.mode", "instances"),
    ("prod", "multi_model.runtime", "seed"),
    ("prod", "llm.runtime", "seed"),
]


def templates(assembly) -> dict[str, dict]:
    return {stack.stack_name: stack.template for stack in assembly.stacks}


@pytest.mark.parametrize(("env", "setting", "value"), CHANGES, ids=[f"{e}:{s}={v}" for e, s, v in CHANGES])
def test_a_documented_change_and_its_reversal_keep_every_imported_export(platform_synth, env, setting, value):
    _, before = platform_synth(env)
    _, after = platform_synth(env, **{setting.replace(".", "__"): value})
    assert export_breaks(templates(before), templates(after)) == []
    assert export_breaks(templates(after), templates(before)) == []


def test_stacks_of_the_earlier_version_which_import_the_key_and_topic_can_update(platform_synth):
    # Before weak references, the workload stacks imported KeyArn and AlertTopicArn: the storage stack keeps
    # both exports with their values while the key and topic exist, so the upgrade itself deploys.
    _, assembly = platform_synth("prod")
    current = templates(assembly)
    earlier = _importing(current, "MlAccel-prod-Llm", ["MlAccel-prod-Storage-KeyArn", "MlAccel-prod-Storage-AlertTopicArn"])
    assert export_breaks(earlier, current) == []
    # ...and the check does catch what the review found: with those imports in place, turning the key off
    # or configuring a topic removes an export in use (deploy the upgrade first, then change the setting).
    _, no_key = platform_synth("prod", storage__encryption="s3")
    _, own_topic = platform_synth("prod", alerts__topic_arn=TOPIC)
    (key_problem,) = export_breaks(earlier, templates(no_key))
    assert key_problem.startswith("MlAccel-prod-Storage would remove export MlAccel-prod-Storage-KeyArn, "
                                  "which MlAccel-prod-Llm import(s)")
    assert key_problem.endswith("(storage.encryption removes it: deploy this version with the previous "
                                "storage.encryption first, so that no stack imports it, then change storage.encryption; "
                                "docs/operations.md#changing-the-configuration-of-a-deployed-environment)")
    (topic_problem,) = export_breaks(earlier, templates(own_topic))
    assert "remove export MlAccel-prod-Storage-AlertTopicArn" in topic_problem
    assert "(alerts.topic_arn removes it: deploy this version with the previous alerts.topic_arn first" in topic_problem


def test_a_changed_export_value_is_refused_too():
    previous = {"P": {"Outputs": {"O": {"Value": {"Ref": "Key"}, "Export": {"Name": "P-KeyArn"}}}},
                "C": {"Resources": {"R": {"Properties": {"A": {"Fn::ImportValue": "P-KeyArn"}}}}}}
    changed = copy.deepcopy(previous)
    changed["P"]["Outputs"]["O"]["Value"] = "arn:aws:kms:us-east-1:123456789012:key/literal"
    (problem,) = export_breaks(previous, changed)
    assert problem.startswith("P would change export P-KeyArn, which C import(s)")


def test_lint_templates_checks_a_previous_assembly(tmp_path, capsys, monkeypatch):
    previous, new = tmp_path / "previous", tmp_path / "new"
    previous.mkdir(), new.mkdir()
    producer = {"Resources": {"T": {"Type": "AWS::SNS::Topic", "Properties": {}}},
                "Outputs": {"O": {"Value": {"Ref": "T"}, "Export": {"Name": "P-AlertTopicArn"}}}}
    consumer = {"Resources": {"A": {"Type": "AWS::SNS::Subscription", "Properties": {
        "TopicArn": {"Fn::ImportValue": "P-AlertTopicArn"}, "Protocol": "email", "Endpoint": "a@example.com"}}}}
    (previous / "P.template.json").write_text(json.dumps(producer))
    (previous / "C.template.json").write_text(json.dumps(consumer))
    (new / "P.template.json").write_text(json.dumps({"Resources": producer["Resources"]}))
    monkeypatch.setattr("scripts.lint_templates.cfn_lint", lambda templates: [])
    monkeypatch.setattr("scripts.lint_templates.nag_report", lambda assembly: ([], [], []))
    assert lint_main([str(new), "--previous", str(previous)]) == 1
    assert "exports: P would remove export P-AlertTopicArn, which C import(s)" in capsys.readouterr().out
    assert lint_main([str(new), "--previous", str(tmp_path / "missing")]) == 2


def _importing(current: dict[str, dict], stack: str, names: list[str]) -> dict[str, dict]:
    earlier = copy.deepcopy(current)
    resources = earlier[stack]["Resources"]
    resources["EarlierVersionImports"] = {"Type": "AWS::CloudFormation::WaitConditionHandle", "Metadata": {
        "imports": [{"Fn::ImportValue": name} for name in names]}}
    return earlier
