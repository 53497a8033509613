"""Acknowledge cdk-nag findings by their exact, granular ids.

cdk-nag 3 plugs into CDK's validation API. A wildcard finding such as
``AwsSolutions-IAM5[Resource::<Bucket.Arn>/prefix/*]`` must be acknowledged
with that exact id; acknowledging the bare rule does not cover it. The id
embeds the resource as cdk-nag flattens it, so :func:`flatten_reference`
renders a CloudFormation expression the same way (Fn::Join joined, Fn::GetAtt
as ``<Logical.Attr>``, Ref as ``<Name>``, Fn::ImportValue as its export name).
"""
from __future__ import annotations

import json
from typing import Any, Iterable

import aws_cdk as cdk
from constructs import IConstruct

AWS_SOLUTIONS = "AwsSolutions"


def acknowledge(scope: IConstruct, finding: str, reason: str, *, pack: str = AWS_SOLUTIONS) -> None:
    """Acknowledge one finding (``AwsSolutions-IAM4[Policy::...]``) on ``scope`` and below."""
    if len(reason.strip()) < 20:
        raise ValueError(f"acknowledgement of {finding} needs a specific reason, got {reason!r}")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=f"{pack}::{finding}", reason=reason))


def acknowledge_wildcard_resources(scope: IConstruct, resources: Iterable[str], reason: str) -> None:
    """Acknowledge ``AwsSolutions-IAM5[Resource::...]`` for each resource ARN expression."""
    stack = cdk.Stack.of(scope)
    for resource in resources:
        acknowledge(scope, f"AwsSolutions-IAM5[Resource::{flatten_reference(stack.resolve(resource))}]", reason)


def acknowledge_wildcard_actions(scope: IConstruct, actions: Iterable[str], reason: str) -> None:
    """Acknowledge ``AwsSolutions-IAM5[Action::...]`` for each wildcard action."""
    for action in actions:
        acknowledge(scope, f"AwsSolutions-IAM5[Action::{action}]", reason)


def flatten_reference(node: Any) -> str:
    """Render a resolved CloudFormation value the way cdk-nag names it in finding ids."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(flatten_reference(i) for i in items)
        if "Fn::Sub" in node:
            return flatten_reference(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten_reference(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten_reference(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))
