"""Synth-time validation: every problem of one construct, raised once.

Checks are token-aware: a value that is still a CloudFormation token (a
parameter, an import, a custom resource attribute) is only known at deploy
time, so it is skipped rather than guessed.
"""
from __future__ import annotations

from typing import Any

import aws_cdk as cdk


class EndpointValidationError(ValueError):
    """Raised with every problem found in one construct's settings."""

    def __init__(self, construct_path: str, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = [f"{construct_path}: {len(problems)} invalid setting(s)"] + [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


def is_token(value: Any) -> bool:
    return value is not None and cdk.Token.is_unresolved(value)


class Problems:
    """Collects problems; :meth:`raise_if_any` raises them together."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def add(self, setting: str, value: Any, allowed: str) -> None:
        self.found.append(f"{setting}: got {value!r}, allowed: {allowed}")

    def in_range(self, setting: str, value: int | float | None, low: int, high: int) -> None:
        """``value`` within ``low..high`` (None = not set, tokens are skipped)."""
        if value is None or is_token(value):
            return
        if not low <= value <= high:
            self.add(setting, value, f"{low} to {high}")

    def raise_if_any(self, construct_path: str) -> None:
        if self.found:
            raise EndpointValidationError(construct_path, self.found)
