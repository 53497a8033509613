"""Batch retry strategies: retry what a new host fixes, exit on everything else.

Batch retries a failed job whenever no ``evaluateOnExit`` rule matches, so the last
rule must be ``EXIT`` on ``*`` (docs/aws-limits.md: AWS Batch on Trainium). Pure Python.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

MAX_RULES = 5
MAX_PATTERN_CHARS = 512
_EXIT_CODE = re.compile(r"\d+\*?|\*")
_REASON = re.compile(r"[A-Za-z0-9.: *_-]+")


@dataclass(frozen=True)
class RetryRule:
    """One ``evaluateOnExit`` rule; every given pattern must match for it to apply."""

    action: Literal["RETRY", "EXIT"]
    on_status_reason: str | None = None
    on_reason: str | None = None
    on_exit_code: str | None = None

    def patterns(self) -> dict[str, str]:
        found = {"on_status_reason": self.on_status_reason, "on_reason": self.on_reason, "on_exit_code": self.on_exit_code}
        return {k: v for k, v in found.items() if v is not None}


def default_retry_rules(retryable_exit_code: int) -> tuple[RetryRule, ...]:
    """Retry host failures, image pull failures and the runtime's retryable exit code
    (pre-flight, barrier, rendezvous, lost peer, EFA); exit otherwise."""
    return (
        RetryRule("RETRY", on_status_reason="Host EC2*"),
        RetryRule("RETRY", on_reason="CannotPullContainerError*"),
        RetryRule("RETRY", on_exit_code=str(retryable_exit_code)),
        RetryRule("EXIT", on_reason="*"),
    )


def retry_problems(attempts: int, rules: Sequence[RetryRule]) -> list[str]:
    """Every violation of Batch's retry limits, and a missing catch-all ``EXIT`` rule."""
    problems = []
    if not 1 <= attempts <= 10:
        problems.append(f"retry attempts: got {attempts}, allowed range: 1 to 10")
    if len(rules) > MAX_RULES:
        problems.append(f"retry rules: got {len(rules)}, at most {MAX_RULES} evaluateOnExit rules are allowed")
    for i, rule in enumerate(rules):
        patterns = rule.patterns()
        if rule.action not in ("RETRY", "EXIT"):
            problems.append(f"retry rule {i}: action {rule.action!r} is not RETRY or EXIT")
        if not patterns:
            problems.append(f"retry rule {i}: needs on_status_reason, on_reason or on_exit_code")
        for name, pattern in patterns.items():
            if len(pattern) > MAX_PATTERN_CHARS:
                problems.append(f"retry rule {i}: {name} is {len(pattern)} characters, at most {MAX_PATTERN_CHARS}")
            regex = _EXIT_CODE if name == "on_exit_code" else _REASON
            if not regex.fullmatch(pattern):
                allowed = "digits with an optional trailing '*', or '*'" if name == "on_exit_code" else (
                    "letters, digits, '.', ':', '-', '_', spaces and '*'"
                )
                problems.append(f"retry rule {i}: {name} {pattern!r} is not valid; allowed: {allowed}")
    # Every pattern of a rule must match, so EXIT(on_reason="*", on_exit_code="1") only catches code 1.
    last = rules[-1].patterns() if rules else {}
    if rules and not (rules[-1].action == "EXIT" and last and all(v == "*" for v in last.values())):
        problems.append("retry rules: the last rule must be EXIT on '*' and nothing narrower "
                        "(Batch retries any failure no rule matches)")
    return problems


def validate_retry(attempts: int, rules: Sequence[RetryRule]) -> None:
    problems = retry_problems(attempts, rules)
    if problems:
        raise ValueError("; ".join(problems))
