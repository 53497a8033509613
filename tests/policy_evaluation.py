"""A small evaluator of resource policies in synthesized templates, for tests.

What it evaluates, and nothing more (anything else raises ``Unsupported`` rather than guessing):
- one request: a service principal calling one action on one resource with a request context;
- statements with ``Principal`` (``"*"``, ``{"AWS": "*"}``, ``{"Service": ...}``), ``Action`` and
  ``Resource`` (``*`` and ``?`` wildcards; actions compared case-insensitively, as IAM does);
- conditions ``Bool``, ``StringEquals``, ``StringLike``, ``ArnEquals``, ``ArnLike``: all operators of a
  statement and all keys of an operator must match; a key missing from the context does not match;
  a list of values matches when any does;
- the decision of the AWS policy evaluation logic for one resource policy: an explicit Deny wins,
  otherwise an Allow is needed, otherwise the request is implicitly denied.
Not evaluated: NotPrincipal/NotAction/NotResource, negated and ``IfExists`` operators, policy
variables, identity policies, SCPs and permission boundaries (a service principal has none here).

``resolve`` turns the intrinsic functions CDK writes into policies (``Ref``, ``Fn::GetAtt``,
``Fn::Join``) into strings, given the pseudo parameters and the ARNs of the template's resources.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ALLOW, DENY, IMPLICIT_DENY = "Allow", "Deny", "ImplicitDeny"
_OPERATORS = {"Bool", "StringEquals", "StringLike", "ArnEquals", "ArnLike"}


class Unsupported(Exception):
    """The policy uses something this evaluator does not evaluate."""


@dataclass(frozen=True)
class Request:
    service: str  # the calling service principal, e.g. cloudwatch.amazonaws.com
    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)


def resolve(value: Any, refs: dict[str, str]) -> Any:
    """``value`` with every ``Ref``/``Fn::GetAtt .Arn``/``Fn::Join`` replaced from ``refs``
    (pseudo parameters such as ``AWS::AccountId`` and logical IDs; ``<id>.Arn`` for GetAtt)."""
    if isinstance(value, list):
        return [resolve(v, refs) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        return refs[value["Ref"]]
    if set(value) == {"Fn::GetAtt"}:
        logical_id, attribute = value["Fn::GetAtt"]
        return refs[f"{logical_id}.{attribute}"]
    if set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(str(resolve(p, refs)) for p in parts)
    if any(k.startswith("Fn::") for k in value):
        raise Unsupported(f"intrinsic function {sorted(value)}")
    return {k: resolve(v, refs) for k, v in value.items()}


def _listed(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _principal_matches(statement: dict, request: Request) -> bool:
    for key in ("NotPrincipal", "NotAction", "NotResource"):
        if key in statement:
            raise Unsupported(key)
    principal = statement.get("Principal")
    if principal == "*" or principal == {"AWS": "*"}:
        return True
    if not isinstance(principal, dict) or set(principal) - {"Service", "AWS"}:
        raise Unsupported(f"principal {principal!r}")
    return request.service in _listed(principal.get("Service", []))


def _condition_matches(operator: str, key: str, expected: Any, context: dict[str, str]) -> bool:
    if operator not in _OPERATORS:
        raise Unsupported(f"condition operator {operator}")
    if key not in context:
        return False
    actual = context[key]
    for value in _listed(expected):
        if operator == "Bool" and str(value).lower() == actual.lower():
            return True
        if operator in ("StringEquals", "ArnEquals") and value == actual:
            return True
        if operator in ("StringLike", "ArnLike") and _wildcard(value, actual):
            return True
    return False


def statement_matches(statement: dict, request: Request) -> bool:
    if not _principal_matches(statement, request):
        return False
    if not any(_wildcard(a, request.action, case_sensitive=False) for a in _listed(statement["Action"])):
        return False
    if not any(_wildcard(r, request.resource) for r in _listed(statement["Resource"])):
        return False
    return all(
        _condition_matches(operator, key, expected, request.context)
        for operator, keys in statement.get("Condition", {}).items()
        for key, expected in keys.items()
    )


def decide(policy: dict, request: Request) -> str:
    """``Allow``, ``Deny`` (an explicit Deny matched) or ``ImplicitDeny`` (no statement allows)."""
    matching = [s for s in policy["Statement"] if statement_matches(s, request)]
    if any(s["Effect"] == "Deny" for s in matching):
        return DENY
    return ALLOW if any(s["Effect"] == "Allow" for s in matching) else IMPLICIT_DENY

