"""scripts/lint_templates.py: the cfn-lint and cdk-nag results a pull request shows for each environment."""
from __future__ import annotations

import json

from scripts import lint_templates

BUCKET = {"Resources": {"B": {"Type": "AWS::S3::Bucket", "Properties": {}}}}


def assembly(tmp_path, template=BUCKET, report=None):
    (tmp_path / "MlAccel-dev-Storage.template.json").write_text(json.dumps(template))
    if report is not None:
        (tmp_path / "validation-report.json").write_text(json.dumps({"version": "55.0.0", "pluginReports": report}))
    return tmp_path


def violation(rule, severity="error", reason=None):
    entry = {"ruleName": rule, "severity": severity,
             "violatingConstructs": [{"constructPath": "MlAccel-dev-Storage/Bucket/Resource"}]}
    if reason:
        entry["reason"] = reason
    return entry


def test_clean_assembly_passes_and_lists_acknowledgements_with_reasons(tmp_path, capsys):
    report = [{"pluginName": "AwsSolutions", "conclusion": "success", "violations": [],
               "suppressedViolations": [violation("AwsSolutions-S1", reason="access logs bucket logs to itself")]},
              {"pluginName": "Construct Annotations", "conclusion": "success",
               "violations": [violation("Annotation::ml-accel:end-of-life-image", severity="warning")]}]
    summary = tmp_path / "summary.md"
    assert lint_templates.main([str(assembly(tmp_path, report=report)), "--summary", str(summary),
                                "--title", "synth dev"]) == 0
    text = summary.read_text()
    assert text.startswith("### synth dev")
    assert "- cdk-nag: no unacknowledged findings, 1 acknowledged" in text
    assert "| `AwsSolutions-S1` | `MlAccel-dev-Storage/Bucket/Resource` | access logs bucket logs to itself |" in text
    assert "warning: Annotation::ml-accel:end-of-life-image" in capsys.readouterr().out


def test_an_unacknowledged_nag_finding_fails(tmp_path, capsys):
    report = [{"pluginName": "AwsSolutions", "conclusion": "failure",
               "violations": [violation("AwsSolutions-IAM5[Resource::*]")], "suppressedViolations": []}]
    assert lint_templates.main([str(assembly(tmp_path, report=report))]) == 1
    assert "cdk-nag: AwsSolutions-IAM5[Resource::*] at MlAccel-dev-Storage/Bucket/Resource" in capsys.readouterr().out


def test_a_cfn_lint_finding_fails_and_names_the_rule(tmp_path, capsys):
    bad = {"Resources": {"B": {"Type": "AWS::S3::Bucket", "Properties": {"BucketNmae": "x"}}}}
    assert lint_templates.main([str(assembly(tmp_path, template=bad, report=[]))]) == 1
    out = capsys.readouterr().out
    assert "cfn-lint: MlAccel-dev-Storage.template.json: E3002" in out and "BucketNmae" in out


def test_an_assembly_synthesized_without_cdk_nag_fails(tmp_path, capsys):
    assert lint_templates.main([str(assembly(tmp_path))]) == 1
    assert "validation-report.json is missing" in capsys.readouterr().out


def test_no_templates_is_an_error(tmp_path, capsys):
    assert lint_templates.main([str(tmp_path)]) == 2
    assert "run `make synth` first" in capsys.readouterr().err
