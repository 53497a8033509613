"""Read the platform configuration: defaults, environment file, overlay, flags.

Layers, later wins:
  1. the schema's documented defaults (the workloads' documented values);
  2. ``config/environments/<env>.toml`` for the selected environment;
  3. an overlay file given with ``-c config=FILE`` (TOML or JSON);
  4. single keys given with ``-c set:<key.path>=<value>``.

The result is validated once. Every problem, from any layer, is reported in one
:class:`ConfigError` that names where the value came from.
"""
from __future__ import annotations

import json
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


def known_environments(environments_dir: Path = ENVIRONMENTS_DIR) -> list[str]:
    return sorted(p.stem for p in environments_dir.glob("*.toml"))


def load_config(
    environment: str | None = None,
    *,
    overlay_file: str | None = None,
    overrides: Mapping[str, str] | None = None,
    environments_dir: Path = ENVIRONMENTS_DIR,
) -> PlatformConfig:
    """Load and validate the configuration of one environment.

    ``overrides`` maps dotted key paths to raw command-line strings; each is
    parsed according to the schema type at that path (strings stay strings,
    so an account id such as ``012345678901`` keeps its leading zero).
    """
    env = environment or DEFAULT_ENVIRONMENT
    known = known_environments(environments_dir)
    if env not in known:
        raise ConfigError(
            [Problem("env", f"unknown environment {env!r}; known environments: {', '.join(known)}", "-c env")],
            header="Unknown environment",
        )
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[Problem] = []

    env_file = environments_dir / f"{env}.toml"
    _merge(merged, sources, _read_file(env_file, _display(env_file), problems), _display(env_file), "")

    if overlay_file:
        overlay_path = Path(overlay_file)
        _merge(merged, sources, _read_file(overlay_path, overlay_file, problems), overlay_file, "")

    for key in sorted(overrides or {}):
        raw = (overrides or {})[key]
        source = f"-c {SET_PREFIX}{key}"
        if not key or any(not part for part in key.split(".")):
            problems.append(Problem(key or "(empty)", "not a dotted key path such as storage.encryption", source))
            continue
        value = parse_flag_value(key, raw)
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        _merge(merged, sources, nested, source, "")

    if problems:
        raise ConfigError(problems)
    merged["environment"] = env
    sources["environment"] = "-c env"
    builder = Builder(sources, default_source="defaults")
    cfg = builder.build(PlatformConfig, merged, "")
    if builder.problems:
        raise ConfigError(builder.problems, header=f"Invalid configuration for environment {env!r}")
    return cfg


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


def _merge(target: dict[str, Any], sources: dict[str, str], layer: Mapping[str, Any], source: str, prefix: str) -> None:
    for key, value in layer.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], sources, value, source, path)
            continue
        target[key] = _plain(value)
        # A replaced table forgets the sources recorded for its old children.
        for old in [p for p in sources if p.startswith(path + ".")]:
            del sources[old]
        sources[path] = source
        if isinstance(value, Mapping):
            _record(sources, value, source, path)


def _record(sources: dict[str, str], value: Mapping[str, Any], source: str, prefix: str) -> None:
    for key, sub in value.items():
        sources[f"{prefix}.{key}"] = source
        if isinstance(sub, Mapping):
            _record(sources, sub, source, f"{prefix}.{key}")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
