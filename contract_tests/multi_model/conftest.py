"""Contract tests of the multi-model package, run in the environment built from
``runtime_profiles/multi_model/<profile>/requirements.lock``
(``python -m runtime_profiles.env test multi_model/current``).

``djl_python`` is not on PyPI: ``djl_standin/`` stands in for it, written from
djl-serving's source at the profile's tag (its docstring cites the files).
"""
from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "model_packages" / "sklearn_mme"
TRAIN_SCRIPT = REPO / "model_packages" / "sklearn_mme_training" / "train.py"
sys.path.insert(0, str(Path(__file__).parent / "djl_standin"))


def load_module(path: Path) -> ModuleType:
    """A fresh copy of the module at ``path``, as a new DJL worker process would import it."""
    name = f"_contract_{path.parent.name}_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def train() -> ModuleType:
    return load_module(TRAIN_SCRIPT)


@pytest.fixture
def handler_from():
    """``handler_from(folder)``: that folder's model.py as a fresh module."""
    loaded: list[str] = []

    def _load(folder: Path = PACKAGE) -> ModuleType:
        module = load_module(folder / "model.py")
        loaded.append(module.__name__)
        return module

    yield _load
    for name in loaded:
        sys.modules.pop(name, None)
