"""Build frozen dataclasses from plain dicts, collecting every problem at once.

Each schema field may carry validation metadata made with :func:`setting`:
a numeric range, a set of allowed values, a regular expression, and a doc
string. The builder checks types strictly (``True`` is not an int, ``1`` is not
a string), rejects unknown keys, and reports each problem with the key path,
the value received, what is allowed and where the value came from.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Callable, Mapping

_MISSING = dataclasses.MISSING


def setting(
    default: Any = _MISSING,
    *,
    default_factory: Callable[[], Any] | Any = _MISSING,
    ge: float | None = None,
    le: float | None = None,
    choices: tuple[Any, ...] | None = None,
    pattern: str | None = None,
    doc: str = "",
) -> Any:
    """A dataclass field with validation metadata (range, choices, pattern)."""
    meta = {"ge": ge, "le": le, "choices": choices, "pattern": pattern, "doc": doc}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Problem:
    path: str
    message: str
    source: str

    def __str__(self) -> str:
        return f"  - {self.path}: {self.message} (from {self.source})"


class ConfigError(ValueError):
    """Every configuration problem found, in one message."""

    def __init__(self, problems: list[Problem], header: str = "Invalid configuration") -> None:
        self.problems = problems
        lines = [f"{header}: {len(problems)} problem(s)"] + [str(p) for p in problems]
        super().__init__("\n".join(lines))


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a table of {_describe(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


class Builder:
    """Turns a dict (with a parallel map of value sources) into dataclasses."""

    def __init__(
        self, sources: Mapping[str, str], default_source: str, table_sources: Mapping[str, str] | None = None
    ) -> None:
        self._sources = sources
        self._tables = table_sources or {}
        self._default_source = default_source
        self.problems: list[Problem] = []

    def source_of(self, path: str) -> str:
        """Where the value at ``path`` came from.

        A value given directly names its layer; so does a table when the problem
        is about the table itself. A value inside a list or a scalar that a layer
        gave (``x[2]``) names that layer. Anything else nobody set: it is a
        default, even when its parent table came from a file.
        """
        if path in self._sources:
            return self._sources[path]
        if path in self._tables:
            return self._tables[path]
        probe = _parent(path)
        while probe:
            if probe in self._sources:
                return self._sources[probe]
            probe = _parent(probe)
        return self._default_source

    def fail(self, path: str, message: str, because: tuple[str, ...] = ()) -> None:
        """Record a problem at ``path``; ``because``: other keys whose values led to it (full paths).

        The source names where the value at ``path`` came from and, after it, each of
        ``because`` that a layer other than that one set: a required key nobody set reads
        "(from defaults; because of training.enabled from -c set:training.enabled)", so the
        user sees which of their own settings made the default wrong.
        """
        own = self.source_of(path)
        causes = [f"{key} from {self.source_of(key)}" for key in because
                  if self.source_of(key) not in (own, self._default_source)]
        self.problems.append(Problem(path, message, f"{own}; because of {' and '.join(causes)}" if causes else own))

    def build(self, tp: Any, value: Any, path: str, meta: Mapping[str, Any] | None = None) -> Any:
        built = self._convert(tp, value, path)
        if built is not _INVALID and meta:
            before = len(self.problems)
            self._check_meta(built, path, meta)
            if len(self.problems) > before:
                # Out of range or not a choice: the enclosing section's own checks (which may look the
                # value up, like a runtime profile name) must not run on it.
                return _INVALID
        return built

    def _convert(self, tp: Any, value: Any, path: str) -> Any:
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = typing.get_args(tp)
            if value is None and type(None) in args:
                return None
            non_null = [a for a in args if a is not type(None)]
            if len(non_null) == 1:
                return self._convert(non_null[0], value, path)
            for candidate in non_null:
                probe = Builder(self._sources, self._default_source, self._tables)
                result = probe._convert(candidate, value, path)
                if not probe.problems:
                    return result
            self.fail(path, f"expected {_describe(tp)}, got {value!r}")
            return _INVALID
        if origin is typing.Literal:
            allowed = typing.get_args(tp)
            if value not in allowed or type(value) is not type(allowed[0]):
                self.fail(path, f"got {value!r}, allowed: {', '.join(repr(a) for a in allowed)}")
                return _INVALID
            return value
        if origin in (list, tuple):
            if not isinstance(value, (list, tuple)):
                self.fail(path, f"expected {_describe(tp)}, got {value!r}")
                return _INVALID
            (item_tp, *_) = typing.get_args(tp)
            return tuple(self._convert(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value))
        if origin is dict:
            if not isinstance(value, Mapping):
                self.fail(path, f"expected {_describe(tp)}, got {value!r}")
                return _INVALID
            key_tp, val_tp = typing.get_args(tp)
            return types.MappingProxyType(
                {k: self._convert(val_tp, v, f"{path}.{k}") for k, v in sorted(value.items())}
            )
        if dataclasses.is_dataclass(tp):
            return self._build_dataclass(tp, value, path)
        if tp is bool:
            ok = isinstance(value, bool)
        elif tp is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif tp is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif tp is str:
            ok = isinstance(value, str)
        else:  # pragma: no cover - schema author error
            raise TypeError(f"unsupported schema type {tp!r} at {path}")
        if not ok:
            self.fail(path, f"expected {_describe(tp)}, got {value!r}")
            return _INVALID
        return value

    def _build_dataclass(self, cls: Any, value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            self.fail(path or "(root)", f"expected a table, got {value!r}")
            return _INVALID
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        for key in sorted(set(value) - set(fields)):
            self.fail(_join(path, key), f"unknown key {key!r}; allowed keys: {', '.join(sorted(fields))}")
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            sub = _join(path, name)
            if name in value:
                kwargs[name] = self.build(hints[name], value[name], sub, f.metadata)
            elif f.default is _MISSING and f.default_factory is _MISSING:
                self.fail(sub, f"required, expected {_describe(hints[name])}")
                kwargs[name] = _INVALID
        if any(v is _INVALID for v in kwargs.values()) or _contains_invalid(kwargs):
            return _INVALID
        instance = cls(**kwargs)
        check = getattr(instance, "problems", None)
        if callable(check):
            # (key, message) or (key, message, keys whose values caused it), keys relative to this table
            for rel_path, message, *because in check():
                self.fail(_join(path, rel_path), message, tuple(_join(path, k) for k in (because[0] if because else ())))
        return instance

    def _check_meta(self, value: Any, path: str, meta: Mapping[str, Any]) -> None:
        if value is None:
            return
        ge, le, choices, pattern = meta.get("ge"), meta.get("le"), meta.get("choices"), meta.get("pattern")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (ge is not None and value < ge) or (le is not None and value > le):
                lo = "-inf" if ge is None else _num(ge)
                hi = "inf" if le is None else _num(le)
                self.fail(path, f"got {value!r}, allowed range: {lo} to {hi}")
        if choices is not None and value not in choices:
            self.fail(path, f"got {value!r}, allowed: {', '.join(repr(c) for c in choices)}")
        if pattern is not None and isinstance(value, str) and not re.fullmatch(pattern, value):
            self.fail(path, f"got {value!r}, which does not match {pattern}")


class _Invalid:
    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Any = _Invalid()


def _contains_invalid(value: Any) -> bool:
    if value is _INVALID:
        return True
    if isinstance(value, (tuple, list)):
        return any(_contains_invalid(v) for v in value)
    if isinstance(value, Mapping):
        return any(_contains_invalid(v) for v in value.values())
    return False


def _parent(path: str) -> str:
    """``a.b[2]`` -> ``a.b`` -> ``a`` -> ``""``."""
    return re.sub(r"(\[\d+\]|\.?[^.\[]*)$", "", path, count=1)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _num(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)
