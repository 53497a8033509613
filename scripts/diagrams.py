"""Architecture diagrams of each environment, drawn from its synthesized cloud assembly (Mermaid in Markdown).

    python scripts/diagrams.py                     # synthesize dev and prod, write docs/diagrams/<env>.md
    python scripts/diagrams.py --env dev --check   # exit 1 if the committed diagram differs
    python scripts/diagrams.py --cdk-out cdk.out --env dev   # draw an assembly `cdk synth` wrote

What is drawn comes from the templates, not from configuration: one box per stack; the
buckets; each SageMaker endpoint with its instance type, capacity range and hosting mode
(inference components, asynchronous); the Neuron compile custom resource; AWS Batch compute
environments with their instance types and vCPU range; Step Functions pipelines; NAT gateways;
SNS topics. Arrows are data flow: which bucket a model, job or compile step reads or writes
(from the IAM policies of the role it runs as), and compiled artifacts reaching an endpoint.
GitHub renders Mermaid blocks; no Graphviz is needed.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "docs" / "diagrams"
_HASH = re.compile(r"[0-9A-F]{8}$")


def short(logical_id: str) -> str:
    """``ArtifactsModels6FBC7400`` -> ``ArtifactsModels`` (CDK appends an 8-hex hash)."""
    return _HASH.sub("", logical_id) or logical_id


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def refs(node: Any, attribute: str | None = None) -> set[str]:
    """Logical ids referenced with Ref (attribute None) or Fn::GetAtt [id, attribute]."""
    found = set()
    for item in walk(node):
        if isinstance(item, dict):
            if attribute is None and isinstance(item.get("Ref"), str):
                found.add(item["Ref"])
            get_att = item.get("Fn::GetAtt")
            if isinstance(get_att, list) and len(get_att) == 2 and (attribute is None or get_att[1] == attribute):
                found.add(get_att[0])
    return found


def imports(node: Any) -> set[str]:
    return {item["Fn::ImportValue"] for item in walk(node) if isinstance(item, dict) and isinstance(
        item.get("Fn::ImportValue"), str)}


@dataclass
class Stack:
    name: str
    template: dict[str, Any]
    nodes: dict[str, str] = field(default_factory=dict)  # logical id -> label

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template.get("Resources", {})

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def node_id(self, logical_id: str) -> str:
        return re.sub(r"[^A-Za-z0-9]", "", self.name.split("-")[-1]) + "_" + logical_id


def load(cdk_out: Path) -> list[Stack]:
    manifest = json.loads((cdk_out / "manifest.json").read_text())
    stacks = []
    for name, artifact in manifest["artifacts"].items():
        if artifact.get("type") == "aws:cloudformation:stack":
            template = json.loads((cdk_out / artifact["properties"]["templateFile"]).read_text())
            stacks.append(Stack(name, template))
    return stacks


def _capacity(stack: Stack, endpoint_id: str, config: dict[str, Any]) -> str:
    variant = config["Properties"]["ProductionVariants"][0]
    managed = variant.get("ManagedInstanceScaling")
    if managed:
        return f"{managed.get('MinInstanceCount', 0)}..{managed.get('MaxInstanceCount', '?')}"
    for target in stack.of_type("AWS::ApplicationAutoScaling::ScalableTarget").values():
        if endpoint_id in refs(target["Properties"].get("ResourceId")) and str(
                target["Properties"].get("ScalableDimension")).startswith("sagemaker:variant"):
            return f"{target['Properties']['MinCapacity']}..{target['Properties']['MaxCapacity']}"
    count = variant.get("InitialInstanceCount", 1)
    return f"{count}"


def pipelines(stack: Stack) -> list[str]:
    """State machines of the workload (not the waiters of CDK's custom resource provider framework)."""
    return [k for k in stack.of_type("AWS::StepFunctions::StateMachine") if "waiterstatemachine" not in k]


def describe(stack: Stack) -> None:
    """Fill ``stack.nodes`` with the resources worth drawing."""
    for logical_id in stack.of_type("AWS::S3::Bucket"):
        stack.nodes[logical_id] = f"S3 bucket {short(logical_id).removeprefix('Artifacts')}"
    configs = stack.of_type("AWS::SageMaker::EndpointConfig")
    components = stack.of_type("AWS::SageMaker::InferenceComponent")
    for logical_id, endpoint in stack.of_type("AWS::SageMaker::Endpoint").items():
        (config_id,) = refs(endpoint["Properties"]["EndpointConfigName"]) & set(configs)
        config = configs[config_id]
        variant = config["Properties"]["ProductionVariants"][0]
        modes = []
        hosted = [c for c in components.values() if logical_id in refs(c["Properties"].get("EndpointName"))]
        if hosted:
            modes.append(f"{len(hosted)} inference component(s), scales to zero" if variant.get(
                "ManagedInstanceScaling", {}).get("MinInstanceCount") == 0 else f"{len(hosted)} inference component(s)")
        if "AsyncInferenceConfig" in config["Properties"]:
            modes.append("asynchronous")
        models = refs(variant.get("ModelName")) | {m for c in hosted for m in refs(c["Properties"]["Specification"])}
        if any("MultiModel" == stack.resources[m]["Properties"].get("PrimaryContainer", {}).get("Mode")
               for m in models if m in stack.resources):
            modes.append("multi-model")
        name = short(logical_id).removesuffix("Endpoint")
        label = f"SageMaker endpoint{' ' + name if name else ''}<br/>" \
                f"{_capacity(stack, logical_id, config)} x {variant.get('InstanceType')}"
        stack.nodes[logical_id] = label + (f"<br/>{', '.join(modes)}" if modes else "")
    for logical_id in stack.of_type("Custom::NeuronCompilation"):
        stack.nodes[logical_id] = "Neuron compile<br/>(custom resource, content-hashed)"
    for logical_id, env in stack.of_type("AWS::Batch::ComputeEnvironment").items():
        resources = env["Properties"].get("ComputeResources", {})
        types = ", ".join(resources.get("InstanceTypes", []))
        stack.nodes[logical_id] = (f"AWS Batch {short(logical_id)}<br/>{types}, "
                                   f"{resources.get('MinvCpus', 0)}..{resources.get('MaxvCpus', '?')} vCPUs")
    for logical_id in pipelines(stack):
        stack.nodes[logical_id] = f"Step Functions {short(logical_id)}"
    for logical_id in stack.of_type("AWS::EC2::NatGateway"):
        stack.nodes[logical_id] = "NAT gateway"
    for logical_id in stack.of_type("AWS::SNS::Topic"):
        stack.nodes[logical_id] = f"SNS {short(logical_id)}"


def bucket_exports(stacks: list[Stack]) -> dict[str, tuple[Stack, str]]:
    """Export name -> (stack, bucket logical id)."""
    found = {}
    for stack in stacks:
        for output in stack.template.get("Outputs", {}).values():
            name = output.get("Export", {}).get("Name")
            targets = refs(output.get("Value")) & set(stack.of_type("AWS::S3::Bucket"))
            if isinstance(name, str) and targets:
                found[name] = (stack, next(iter(targets)))
    return found


def role_access(stack: Stack, exports: dict[str, tuple[Stack, str]]) -> dict[str, dict[str, set[str]]]:
    """Role logical id -> {bucket node id: {"reads", "writes"}} from its policies."""
    access: dict[str, dict[str, set[str]]] = {}
    for policy in stack.of_type("AWS::IAM::Policy").values():
        roles = refs(policy["Properties"].get("Roles", []))
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            kinds = {"reads" for a in actions if a == "s3:GetObject"} | {"writes" for a in actions if a == "s3:PutObject"}
            if not kinds:
                continue
            for name in imports(statement.get("Resource")):
                if name in exports:
                    owner, bucket = exports[name]
                    for role in roles:
                        access.setdefault(role, {}).setdefault(owner.node_id(bucket), set()).update(kinds)
    return access


def edges(stack: Stack, exports: dict[str, tuple[Stack, str]]) -> list[tuple[str, str, str]]:
    """(from node id, to node id, label) for the stack's data flow."""
    access = role_access(stack, exports)
    out: set[tuple[str, str, str]] = set()
    endpoints = stack.of_type("AWS::SageMaker::Endpoint")
    configs = stack.of_type("AWS::SageMaker::EndpointConfig")
    components = stack.of_type("AWS::SageMaker::InferenceComponent")

    def endpoint_of_model(model_id: str) -> str | None:
        for config_id, config in configs.items():
            if model_id in refs(config["Properties"]["ProductionVariants"]):
                return next((e for e, v in endpoints.items() if config_id in refs(v["Properties"])), None)
        for component in components.values():
            if model_id in refs(component["Properties"]["Specification"]):
                return next(iter(refs(component["Properties"]["EndpointName"]) & set(endpoints)), None)
        return None

    def connect(owner: str, role_ids: set[str]) -> None:
        for role in role_ids:
            for bucket, kinds in access.get(role, {}).items():
                if "reads" in kinds:
                    out.add((bucket, stack.node_id(owner), "reads"))
                if "writes" in kinds:
                    out.add((stack.node_id(owner), bucket, "writes"))

    for model_id, model in stack.of_type("AWS::SageMaker::Model").items():
        endpoint = endpoint_of_model(model_id)
        if endpoint is None:
            continue
        connect(endpoint, refs(model["Properties"].get("ExecutionRoleArn"), "Arn"))
        for compile_id in refs(model["Properties"], "ArtifactsUrl") & set(stack.of_type("Custom::NeuronCompilation")):
            out.add((stack.node_id(compile_id), stack.node_id(endpoint), "compiled artifacts"))
    for config_id, config in configs.items():
        endpoint = next((e for e, v in endpoints.items() if config_id in refs(v["Properties"])), None)
        if endpoint is None:
            continue
        connect(endpoint, refs(config["Properties"].get("ExecutionRoleArn"), "Arn"))
        for topic in refs(config["Properties"].get("AsyncInferenceConfig")) & set(stack.of_type("AWS::SNS::Topic")):
            out.add((stack.node_id(endpoint), stack.node_id(topic), "notifies"))
    compute = list(stack.of_type("AWS::Batch::ComputeEnvironment"))
    compiles = list(stack.of_type("Custom::NeuronCompilation"))
    for job in stack.of_type("AWS::Batch::JobDefinition").values():
        # A compile stack's jobs are the compile step's; otherwise the (one) compute environment runs them.
        owner = compiles[0] if compiles else (compute[0] if len(compute) == 1 else None)
        if owner is not None:
            connect(owner, refs(job["Properties"], "Arn"))
    for compile_id in compiles:
        for env in compute:
            out.add((stack.node_id(compile_id), stack.node_id(env), "runs on"))
    for machine_id in pipelines(stack):
        for env in compute:
            out.add((stack.node_id(machine_id), stack.node_id(env), "submits jobs"))
    return sorted(out)


def render(environment: str, stacks: list[Stack]) -> str:
    exports = bucket_exports(stacks)
    for stack in stacks:
        describe(stack)
    lines = [
        f"# Environment `{environment}`",
        "",
        "Generated by `make diagrams` (`scripts/diagrams.py`) from the synthesized templates; do not edit by hand.",
        "Boxes are stacks; arrows are data flow (from the IAM policies of the role each part runs as).",
        "What each environment costs: [costs](../costs.md).",
        "",
        "```mermaid",
        "flowchart LR",
    ]
    for stack in stacks:
        lines.append(f'  subgraph {stack.node_id("S")}["{stack.name}"]')
        for logical_id, label in sorted(stack.nodes.items()):
            shape = ('[("', '")]') if label.startswith("S3 bucket") else ('["', '"]')
            lines.append(f"    {stack.node_id(logical_id)}{shape[0]}{label}{shape[1]}")
        lines.append("  end")
    drawn = {stack.node_id(n) for stack in stacks for n in stack.nodes}
    for stack in stacks:
        for source, target, label in edges(stack, exports):
            if source in drawn and target in drawn:
                lines.append(f"  {source} -->|{label}| {target}")
    lines += ["```", ""]
    return "\n".join(lines)


def synthesize(environment: str, outdir: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    import aws_cdk as cdk

    from config import load_config
    from stacks.platform import build_platform

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    app = cdk.App(context=context, outdir=str(outdir))
    build_platform(app, load_config(environment))
    app.synth()
    return outdir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", help="environment (repeatable; default dev and prod)")
    parser.add_argument("--cdk-out", type=Path, help="draw this assembly instead of synthesizing (one --env)")
    parser.add_argument("--check", action="store_true", help="compare with docs/diagrams/<env>.md instead of writing")
    args = parser.parse_args(argv)
    environments = args.env or ["dev", "prod"]
    stale = []
    for environment in environments:
        if args.cdk_out:
            text = render(environment, load(args.cdk_out))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                text = render(environment, load(synthesize(environment, Path(tmp))))
        target = OUT_DIR / f"{environment}.md"
        if args.check:
            if not target.is_file() or target.read_text() != text:
                stale.append(str(target.relative_to(ROOT)))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print(f"out of date (run `make diagrams`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
