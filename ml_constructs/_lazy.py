"""Import a package's public names on first use.

The construct packages mix pure-Python rules (which ``config`` imports to
validate settings) with CDK constructs. Loading CDK starts jsii's Node process,
so package ``__init__`` modules resolve their exports lazily: importing a rules
module does not start CDK.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<exports[name]>`` on first use."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
