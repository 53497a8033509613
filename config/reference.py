"""Write the configuration reference from the schema: ``python -m config.reference``.

    python -m config.reference > docs/configuration-reference.md

Every key of :class:`config.schema.PlatformConfig`, with its type, default, what is
allowed and its doc string, one table per section. A test compares the committed
page with this output, so the page cannot drift from the code.
"""
from __future__ import annotations

import dataclasses
import sys
import types
import typing
from typing import Any, Iterator

from config.loader import BASE_KEY, ROOT_BASE
from config.schema import PlatformConfig
from config.typed import _describe

_MISSING = dataclasses.MISSING

HEADER = f"""# Configuration reference

You will be able to look up every configuration key: its type, its default, what is
allowed, and what it does. How layers, environments and overrides work is in
[Configuration and environments](configuration.md).

This page is generated from the schema (`config/*.py`); do not edit it by hand.
Regenerate it with `python -m config.reference > docs/configuration-reference.md`
(a test fails when it is out of date).

Every environment file (`config/environments/<name>.toml`) starts with
`{BASE_KEY} = "<environment>"` (start from that environment) or `{BASE_KEY} = "{ROOT_BASE}"`
(start from the defaults below). A key is written as its dotted path: in a file
`[storage]` then `encryption = "kms"`; on the command line `-c set:storage.encryption=kms`.
"""


@dataclasses.dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    allowed: str
    doc: str


def _toml(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, (int, float)):
        return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"
    if isinstance(value, (dict, typing.Mapping)):
        return "`{}`" if not value else "`{ " + ", ".join(f"{k} = {_plain(v)}" for k, v in value.items()) + " }`"
    if isinstance(value, (list, tuple)):
        return "`[" + ", ".join(_plain(v) for v in value) + "]`"
    return f"`{value}`"


def _plain(value: Any) -> str:
    return _toml(value).strip("`")


def _allowed(tp: Any, meta: typing.Mapping[str, Any]) -> str:
    parts = []
    ge, le = meta.get("ge"), meta.get("le")
    if ge is not None or le is not None:
        lo = "" if ge is None else f"{ge:g}"
        hi = "" if le is None else f"{le:g}"
        parts.append(f"{lo} to {hi}" if lo and hi else (f">= {lo}" if lo else f"<= {hi}"))
    if meta.get("choices"):
        parts.append(", ".join(_toml(c) for c in meta["choices"]))
    if meta.get("pattern"):
        parts.append(f"matches `{meta['pattern']}`")
    if typing.get_origin(_strip_optional(tp)) is typing.Literal:
        parts.append(", ".join(_toml(a) for a in typing.get_args(_strip_optional(tp))))
    return "; ".join(parts)


def _strip_optional(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return tp


def _type(tp: Any) -> str:
    def plain(t: Any) -> str:
        if typing.get_origin(t) is typing.Literal:  # the values are in "allowed"
            return _describe(type(typing.get_args(t)[0]))
        if typing.get_origin(t) in (typing.Union, types.UnionType):
            return " or ".join(plain(a) for a in typing.get_args(t))
        return _describe(t)

    return plain(tp)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def sections(cls: Any = PlatformConfig, prefix: str = "") -> Iterator[tuple[str, str, list[Row]]]:
    """``(section path, section doc, rows)`` for ``cls`` and each nested section, depth first."""
    hints = typing.get_type_hints(cls)
    rows, nested = [], []
    for f in dataclasses.fields(cls):
        tp, path = hints[f.name], f"{prefix}{f.name}"
        inner = _strip_optional(tp)
        if dataclasses.is_dataclass(inner) and f.default_factory is not _MISSING:
            nested.append((path, inner))
            continue
        if typing.get_origin(inner) is dict and dataclasses.is_dataclass(typing.get_args(inner)[1]):
            nested.append((f"{path}.<name>", typing.get_args(inner)[1]))
            rows.append(Row(path, "table of tables", _toml(f.default_factory()), "", f.metadata.get("doc", "")))
            continue
        if f.default is not _MISSING:
            default = _toml(f.default)
        elif f.default_factory is not _MISSING:
            default = _toml(f.default_factory())
        else:
            default = "required"
        doc = f.metadata.get("doc", "")
        if dataclasses.is_dataclass(inner):  # an optional section: its keys are listed below it
            nested.append((path, inner))
        rows.append(Row(path, _type(tp), default, _allowed(tp, f.metadata), doc))
    yield prefix.rstrip(".") or "(top level)", (cls.__doc__ or "").strip().split("\n\n")[0], rows
    for path, inner in nested:
        yield from sections(inner, f"{path}.")


def render() -> str:
    out = [HEADER]
    for path, doc, rows in sections():
        if not rows:
            continue
        out.append(f"\n## {path}\n")
        if doc:
            out.append(f"{_cell(doc)}\n")
        out.append("| key | type | default | allowed | description |")
        out.append("|---|---|---|---|---|")
        for row in rows:
            out.append(f"| `{row.key}` | {_cell(row.type)} | {_cell(row.default)} | {_cell(row.allowed)} | "
                       f"{_cell(row.doc)} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
