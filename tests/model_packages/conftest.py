"""Handlers import ``djl_python``, which only exists inside DJL Serving: put the
stand-in (``djl_stub/djl_python``, its interface documented there) on the path,
and load each package's ``model.py`` as a fresh module, as a DJL worker does."""
from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = REPO / "model_packages"
sys.path.insert(0, str(Path(__file__).parent / "djl_stub"))


def load_module(path: Path) -> ModuleType:
    """A fresh copy of the module at ``path`` (module-level state starts empty)."""
    name = f"_pkg_{path.parent.name}_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def handler_module():
    loaded: list[str] = []

    def _load(package: str, file: str = "model.py") -> ModuleType:
        module = load_module(PACKAGES / package / file)
        loaded.append(module.__name__)
        return module

    yield _load
    for name in loaded:
        sys.modules.pop(name, None)


@pytest.fixture(scope="session")
def tiny_sd_pipeline(tmp_path_factory) -> Path:
    """One tiny Stable Diffusion pipeline on disk, shared by the compile and BYO tests."""
    from tests.model_packages.tiny_models import save_tiny_sd_pipeline

    return save_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd"))
