"""Every ``torch_xla`` module and attribute the job runtime uses, read from its source (stdlib only).

    {"torch_xla.core.xla_model": {"optimizer_step", ...}, "torch_xla.distributed.xla_backend": set(), ...}

Imports inside functions count, and so does code the runtime runs from a string (the device
probe, ``preflight.TENSOR_CHECK``). The ``current`` contract tests look each name up in the
installed torch-xla; the ``seed`` image's torch-xla 2.1 is not on the package index, so
tests/test_training_image.py compares them with names read from pytorch/xla at v2.1.0.
"""
from __future__ import annotations

import ast
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[3] / "ml_constructs" / "trainium_batch" / "runtime"


def _sources(path: Path) -> list[ast.AST]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    trees = [tree]
    for node in ast.walk(tree):  # code kept in a string and run with python -c
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "import torch_xla" in node.value:
            trees.append(ast.parse(node.value))
    return trees


def used_names(runtime: Path = RUNTIME) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(runtime.glob("*.py")):
        for tree in _sources(path):
            aliases: dict[str, str] = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.split(".")[0] == "torch_xla":
                            found.setdefault(alias.name, set())
                            aliases[alias.asname or alias.name] = alias.name
                elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch_xla":
                    for alias in node.names:
                        found.setdefault(node.module, set()).add(alias.name)
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                    module = aliases[node.value.id]
                    if module != node.value.id or "." not in module:  # `import a.b` used as `a.b.x` is rare here
                        found[module].add(node.attr)
    return found
