"""Render a ``serving.properties`` file with values from configuration.

Keeps the base file's comments and key order, replaces values of keys that
are overridden, appends new keys in sorted order, and drops keys overridden
with ``None``. Output is deterministic, so packages stay reproducible.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

Value = str | int | float | bool | None


def format_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"serving.properties values must be single-line, got {text!r}")
    return text


def parse_properties(text: str) -> dict[str, str]:
    """The key/value pairs of a properties file (comments and blanks ignored)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "!")) or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        out[key.strip()] = value.strip()
    return out


def render_properties(base: Path | str, overrides: Mapping[str, Value]) -> bytes:
    """``base`` (a path or the file's text) with ``overrides`` applied."""
    text = Path(base).read_text(encoding="utf-8") if isinstance(base, Path) else base
    pending = dict(overrides)
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        key = stripped.partition("=")[0].strip() if "=" in stripped and not stripped.startswith(("#", "!")) else None
        if key is not None and key in pending:
            value = pending.pop(key)
            if value is not None:
                lines.append(f"{key}={format_value(value)}")
            continue
        lines.append(line)
    for key in sorted(pending):
        if pending[key] is not None:
            lines.append(f"{key}={format_value(pending[key])}")
    return ("\n".join(lines) + "\n").encode("utf-8")
