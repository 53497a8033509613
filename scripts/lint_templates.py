#!/usr/bin/env python3
"""cfn-lint and cdk-nag results of a synthesized cloud assembly, as text and as Markdown for CI.

    python scripts/lint_templates.py [cdk.out] [--summary FILE] [--previous DIR]   (make lint-templates)

cfn-lint runs over every ``*.template.json`` with the project's policy (the rules in
``tests/cfn_lint_policy.py`` are ignored, each for its stated reason; nothing else is). cdk-nag ran
inside the synth that wrote the assembly; its ``validation-report.json`` says which findings were
acknowledged and why, and any that were not. ``--summary`` appends the Markdown report to FILE
(GitHub's ``$GITHUB_STEP_SUMMARY``, or any file another CI system publishes).
``--previous DIR`` (the cloud assembly of the deployment now running, e.g. the last deploy's cdk.out)
also checks that no export a previous stack imports is removed or changed: CloudFormation refuses
such an update of the exporting stack, which deploys first.

Exit status: 0 clean, 1 cfn-lint findings, unacknowledged cdk-nag findings or a broken export, 2 no assembly.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cfn_lint_policy import IGNORED_RULES, LINT_REGIONS  # noqa: E402


def cfn_lint(templates: list[Path]) -> list[str]:
    from cfnlint.api import ManualArgs, lint_file

    config = ManualArgs(regions=LINT_REGIONS, ignore_checks=sorted(IGNORED_RULES))
    return [f"{t.name}: {m.rule.id} {m.message} (line {m.linenumber})"
            for t in templates for m in lint_file(t, config=config)]


def nag_report(assembly: Path) -> tuple[list[str], list[str], list[tuple[str, str, str]]]:
    """(unacknowledged errors, warnings, acknowledged (rule, construct, reason)) from the validation report.

    The report holds one entry per validation plugin: cdk-nag's packs (AwsSolutions) and CDK's own
    "Construct Annotations", whose warnings (an end-of-life image, say) don't fail a synth.
    """
    report_file = assembly / "validation-report.json"
    if not report_file.is_file():
        return ["validation-report.json is missing: was cdk-nag registered in this synth?"], [], []
    report = json.loads(report_file.read_text())
    open_findings, warnings, acknowledged = [], [], []
    for plugin in report.get("pluginReports", []):
        for v in plugin.get("violations", []):
            paths = ", ".join(c["constructPath"] for c in v.get("violatingConstructs", []))
            entry = f"{v['ruleName']} at {paths}"
            (warnings if v.get("severity") == "warning" else open_findings).append(entry)
        for v in plugin.get("suppressedViolations", []):
            for c in v.get("violatingConstructs", []):
                acknowledged.append((v["ruleName"], c["constructPath"], v.get("reason", "")))
    return open_findings, warnings, acknowledged


def _imports(value: object) -> set[str]:
    if isinstance(value, dict):
        found = {value["Fn::ImportValue"]} if isinstance(value.get("Fn::ImportValue"), str) else set()
        return found.union(*(_imports(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_imports(v) for v in value))
    return set()


def _exports(templates: dict[str, dict]) -> dict[str, tuple[str, object]]:
    """export name -> (stack, the output's value as written in the template)."""
    return {out["Export"]["Name"]: (stack, out["Value"])
            for stack, template in templates.items() for out in template.get("Outputs", {}).values()
            if isinstance(out.get("Export", {}).get("Name"), str)}


# The platform's exports that a setting removes: named in the message, with the way through.
_SETTING_OF_EXPORT = {"-KeyArn": "storage.encryption", "-AlertTopicArn": "alerts.topic_arn"}
_RUNBOOK = "docs/operations.md#changing-the-configuration-of-a-deployed-environment"


def _setting_hint(name: str) -> str:
    for suffix, setting in _SETTING_OF_EXPORT.items():
        if name.endswith(suffix):
            return (f" ({setting} removes it: deploy this version with the previous {setting} first, so that no stack "
                    f"imports it, then change {setting}; {_RUNBOOK})")
    return ""


def export_breaks(previous: dict[str, dict], new: dict[str, dict]) -> list[str]:
    """Why deploying ``new`` (stack name -> template) over ``previous`` would fail on an export: one line
    per export that a previous stack imports and that the new templates remove or give another value.

    The previous importers still exist when the exporting stack deploys (it deploys first), whatever
    the new templates of those stacks say; a stack dropped from the app is not deleted by a deploy."""
    before, after = _exports(previous), _exports(new)
    problems = []
    for name in sorted(set().union(*(_imports(t) for t in previous.values()))):
        if name not in before:
            continue  # exported by a stack outside this app: not ours to check
        stack, value = before[name]
        importers = ", ".join(sorted(s for s, t in previous.items() if name in _imports(t)))
        if name not in after:
            problems.append(f"{stack} would remove export {name}, which {importers} import(s): CloudFormation "
                            "refuses it; keep the export (Stack.export_value with the same value) or reference it "
                            "weakly, and deploy the importers without it first" + _setting_hint(name))
        elif after[name][1] != value:
            problems.append(f"{stack} would change export {name}, which {importers} import(s): CloudFormation "
                            "refuses it; keep its value or reference it weakly")
    return problems


def read_templates(assembly: Path) -> dict[str, dict]:
    return {t.name.removesuffix(".template.json"): json.loads(t.read_text())
            for t in sorted(assembly.glob("*.template.json"))}


def markdown(title: str, templates: list[Path], lint: list[str], nag_open: list[str], warnings: list[str],
             nag_acknowledged: list[tuple[str, str, str]]) -> str:
    lines = [f"### {title}", ""]
    lines.append(f"- stacks: {', '.join(t.name.removesuffix('.template.json') for t in templates)}")
    lines.append(f"- cfn-lint: {'no findings' if not lint else f'**{len(lint)} finding(s)**'} "
                 f"(ignored rules: {', '.join(sorted(IGNORED_RULES))})")
    lines.append(f"- cdk-nag: {'no unacknowledged findings' if not nag_open else f'**{len(nag_open)} open**'}, "
                 f"{len(nag_acknowledged)} acknowledged")
    lines.append(f"- warnings: {len(warnings)}")
    lines += ["", *[f"    {finding}" for finding in lint + nag_open + [f"warning: {w}" for w in warnings]]]
    if nag_acknowledged:
        lines += ["<details><summary>cdk-nag acknowledgements</summary>", "",
                  "| finding | construct | reason |", "|---|---|---|"]
        lines += [f"| `{rule}` | `{path}` | {reason.replace('|', '/')} |" for rule, path, reason in nag_acknowledged]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assembly", nargs="?", default="cdk.out", type=Path)
    parser.add_argument("--summary", type=Path, help="append the Markdown report to this file")
    parser.add_argument("--title", default=None, help="report heading (default: the assembly folder)")
    parser.add_argument("--previous", type=Path, help="cloud assembly of the deployed version: check its imports")
    args = parser.parse_args(argv)
    templates = sorted(args.assembly.glob("*.template.json"))
    if not templates:
        print(f"lint_templates: no *.template.json in {args.assembly}; run `make synth` first", file=sys.stderr)
        return 2
    if args.previous is not None and not any(args.previous.glob("*.template.json")):
        print(f"lint_templates: --previous {args.previous}: no *.template.json there", file=sys.stderr)
        return 2
    lint = cfn_lint(templates)
    breaks = ([] if args.previous is None
              else export_breaks(read_templates(args.previous), read_templates(args.assembly)))
    nag_open, warnings, nag_acknowledged = nag_report(args.assembly)
    for finding in lint:
        print(f"cfn-lint: {finding}")
    for finding in nag_open:
        print(f"cdk-nag: {finding}")
    for problem in breaks:
        print(f"exports: {problem}")
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"lint_templates: {len(templates)} template(s), {len(lint)} cfn-lint finding(s), "
          f"{len(nag_open)} unacknowledged and {len(nag_acknowledged)} acknowledged cdk-nag finding(s)"
          + (f", {len(breaks)} broken export(s) against {args.previous}" if args.previous is not None else ""))
    if args.summary:
        with args.summary.open("a", encoding="utf-8") as out:
            out.write(markdown(args.title or f"Templates in {args.assembly}", templates,
                               lint + [f"exports: {p}" for p in breaks], nag_open, warnings, nag_acknowledged))
    return 1 if lint or nag_open or breaks else 0


if __name__ == "__main__":
    sys.exit(main())
