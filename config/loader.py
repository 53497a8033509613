"""Read the platform configuration: defaults, environment files, overlay, flags.

Layers, later wins:
  1. the schema's documented defaults (the workloads' documented values);
  2. ``config/environments/<env>.toml`` for the selected environment, on top of
     the environment it names with ``base``: every file starts with
     ``base = "<environment>"`` (its settings apply on top of that environment's)
     or ``base = "defaults"`` (a root: it starts from the documented defaults, as
     ``dev.toml`` and ``prod.toml`` do). A file without ``base`` is refused, so
     an empty new file cannot silently deploy every workload at production sizes;
  3. an overlay file given with ``-c config=FILE`` (TOML or JSON);
  4. single keys given with ``-c set:<key.path>=<value>``.

The result is validated once. Every problem, from any layer, is reported in one
:class:`ConfigError` that names where the value came from ("defaults" for a
value nobody set).
"""
from __future__ import annotations

import json
import re
import tomllib
import types
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

from config.schema import PlatformConfig
from config.typed import Builder, ConfigError, Problem

ENVIRONMENTS_DIR = Path(__file__).resolve().parent / "environments"
DEFAULT_ENVIRONMENT = "dev"
SET_PREFIX = "set:"
BASE_KEY = "base"
ROOT_BASE = "defaults"  # `base = "defaults"` marks a root environment
DEFAULT_SOURCE = "defaults"
# The name becomes part of every stack name (<stack_prefix>-<env>-Storage), and
# CloudFormation stack names take only letters, digits and hyphens.
ENVIRONMENT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?")
ENVIRONMENT_NAME_ALLOWED = ("1-32 letters, digits and '-' (not first or last): the name becomes part of each stack "
                            "name, and CloudFormation stack names take only letters, digits and '-'")
# Keys that exist in the schema but are chosen another way.
_NOT_SETTABLE = {
    "environment": "chosen with -c env=NAME (or a tool's --env NAME), not set as a value",
}


def known_environments(environments_dir: Path = ENVIRONMENTS_DIR) -> list[str]:
    return sorted(p.stem for p in environments_dir.glob("*.toml"))


def load_config(
    environment: str | None = None,
    *,
    overlay_file: str | None = None,
    overrides: Mapping[str, str] | None = None,
    environments_dir: Path = ENVIRONMENTS_DIR,
    env_source: str = "-c env",
) -> PlatformConfig:
    """Load and validate the configuration of one environment.

    ``overrides`` maps dotted key paths to raw command-line strings; each is
    parsed according to the schema type at that path (strings stay strings,
    so an account id such as ``012345678901`` keeps its leading zero).
    ``env_source`` is how the caller's user chose the environment (a tool's
    ``--env``), for the messages.
    """
    env = environment or DEFAULT_ENVIRONMENT
    problems: list[Problem] = []
    chain = _environment_chain(env, env_source, environments_dir, problems)
    if problems:
        raise ConfigError(problems, header="Invalid environment")
    merged: dict[str, Any] = {}
    sources = _Sources()

    for display, data in chain:
        _merge(merged, sources, data, display, "")

    if overlay_file:
        overlay = _read_file(Path(overlay_file), overlay_file, problems)
        if BASE_KEY in overlay:
            problems.append(Problem(BASE_KEY, f"got {overlay.pop(BASE_KEY)!r}; only environment files have a base "
                                    "(an overlay applies on top of the selected environment)", overlay_file))
        _reject_not_settable(overlay, overlay_file, problems)
        _merge(merged, sources, overlay, overlay_file, "")

    for key in sorted(overrides or {}):
        raw = (overrides or {})[key]
        source = f"-c {SET_PREFIX}{key}"
        if not key or any(not part for part in key.split(".")):
            problems.append(Problem(key or "(empty)", "not a dotted key path such as storage.encryption", source))
            continue
        if key == BASE_KEY:
            problems.append(Problem(key, f"got {raw!r}; cannot be set with -c set:, only at the top of an "
                                    f'environment file (base = "dev")', source))
            continue
        if key in _NOT_SETTABLE:
            problems.append(Problem(key, f"got {raw!r}; cannot be set with -c set:, it is {_NOT_SETTABLE[key]}",
                                    source))
            continue
        value = parse_flag_value(key, raw)
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        _merge(merged, sources, nested, source, "")

    merged["environment"] = env
    sources.leaves["environment"] = env_source
    builder = Builder(sources.leaves, default_source=DEFAULT_SOURCE, table_sources=sources.tables)
    cfg = builder.build(PlatformConfig, merged, "")
    if problems or builder.problems:  # every problem of every layer in one message
        raise ConfigError(problems + builder.problems, header=f"Invalid configuration for environment {env!r}")
    return cfg


def _environment_chain(
    env: str, env_source: str, environments_dir: Path, problems: list[Problem]
) -> list[tuple[str, dict[str, Any]]]:
    """``(display path, settings)`` of each file from the root to ``env``, ``base`` removed."""
    known = known_environments(environments_dir)
    chain: list[tuple[str, dict[str, Any]]] = []
    names: list[str] = []
    name, key, source = env, "env", env_source
    while True:
        if not isinstance(name, str) or not ENVIRONMENT_NAME.fullmatch(name) or name == ROOT_BASE:
            reserved = f" ({ROOT_BASE!r} is reserved for the root)" if name == ROOT_BASE else ""
            problems.append(Problem(key, f"got {name!r}, allowed: {ENVIRONMENT_NAME_ALLOWED}{reserved}", source))
            return []
        if name in names:
            cycle = " -> ".join([*names, name])
            problems.append(Problem(key, f"got {name!r}: the bases form a cycle ({cycle}); allowed: a chain that "
                                    f"ends in an environment with base = {ROOT_BASE!r}", source))
            return []
        if name not in known:
            problems.append(Problem(key, f"unknown environment {name!r}; known environments: {', '.join(known)}"
                                    f"{'' if key == 'env' else f', or {ROOT_BASE!r}'}", source))
            return []
        path = environments_dir / f"{name}.toml"
        display = _display(path)
        unreadable = len(problems)
        data = _read_file(path, display, problems)
        if len(problems) > unreadable:  # the file's own problem says it all; no base to follow
            return []
        _reject_not_settable(data, display, problems)
        names.append(name)
        base = data.pop(BASE_KEY, None)
        chain.append((display, data))
        if base is None:
            others = ", ".join(e for e in known if e != name)
            problems.append(Problem(BASE_KEY, (
                f"missing; every environment file starts with base = \"<environment>\" (settings apply on top of "
                f"that environment: {others}) or base = {ROOT_BASE!r} (a root: starts from the documented "
                "defaults, the production sizes of every workload)"), display))
            return []
        if base == ROOT_BASE:
            return chain[::-1]
        name, key, source = base, BASE_KEY, display


def _reject_not_settable(layer: dict[str, Any], source: str, problems: list[Problem]) -> None:
    for key, how in _NOT_SETTABLE.items():
        if key in layer:
            problems.append(Problem(key, f"got {layer.pop(key)!r}; cannot be set in a file, it is {how}", source))


def load_config_from_context(context: Mapping[str, Any]) -> PlatformConfig:
    """The app entry's view: ``env``, ``config`` and ``set:*`` context keys."""
    overrides = {k[len(SET_PREFIX):]: _as_flag_string(v) for k, v in context.items() if k.startswith(SET_PREFIX)}
    return load_config(context.get("env"), overlay_file=context.get("config"), overrides=overrides)


def parse_flag_value(key: str, raw: str) -> Any:
    """Parse a ``-c set:`` value by the schema type found at ``key``."""
    tp = _type_at(PlatformConfig, key.split("."))
    if raw == "null" and _accepts(tp, type(None)):
        return None
    if tp is not None and _accepts(tp, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _as_flag_string(value: Any) -> str:
    # The CDK CLI hands `-c` values over as strings; cdk.json may hold real JSON.
    return value if isinstance(value, str) else json.dumps(value)


def _type_at(cls: Any, parts: list[str]) -> Any:
    tp: Any = cls
    for part in parts:
        tp = _strip_optional(tp)
        if is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            if part not in {f.name for f in fields(tp)}:
                return None
            tp = hints[part]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return None
    return tp


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _accepts(tp: Any, candidate: type) -> bool:
    if tp is None:
        return False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_accepts(a, candidate) for a in typing.get_args(tp))
    if typing.get_origin(tp) is typing.Literal:
        return all(isinstance(a, candidate) for a in typing.get_args(tp))
    return tp is candidate


def _read_file(path: Path, display: str, problems: list[Problem]) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(Problem("(file)", f"cannot read configuration file: {exc.strerror}", display))
        return {}
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        problems.append(Problem("(file)", f"not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}", display))
        return {}
    if not isinstance(data, dict):
        problems.append(Problem("(file)", "expected a table at the top level", display))
        return {}
    return data


class _Sources:
    """Where each value came from: leaves (values) and tables, kept apart.

    A table's source is not its keys' source: a key a layer left out of a table
    it gave keeps its default, and "defaults" is where that value came from.
    """

    def __init__(self) -> None:
        self.leaves: dict[str, str] = {}
        self.tables: dict[str, str] = {}

    def forget(self, path: str) -> None:
        for recorded in (self.leaves, self.tables):
            for old in [p for p in recorded if p == path or p.startswith(path + ".")]:
                del recorded[old]

    def record(self, value: Any, source: str, path: str) -> None:
        if isinstance(value, Mapping):
            self.tables[path] = source
            for key, sub in value.items():
                self.record(sub, source, f"{path}.{key}")
        else:
            self.leaves[path] = source


def _merge(target: dict[str, Any], sources: _Sources, layer: Mapping[str, Any], source: str, prefix: str) -> None:
    for key, value in layer.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            sources.tables[path] = source
            _merge(target[key], sources, value, source, path)
            continue
        target[key] = _plain(value)
        sources.forget(path)  # a replaced value forgets the sources recorded for its old children
        sources.record(value, source, path)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
