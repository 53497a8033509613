from __future__ import annotations

from pathlib import Path

import pytest

from config import PlatformConfig, load_config
from tests.helpers import new_app

_MODEL_RUNS = Path(__file__).resolve().parent / "model_packages"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the CPU runs of real models (tests/model_packages) ``models``: `make test` and CI run
    them; `-m "not models and not cli"` leaves them and the CLI synths out of a quick local loop."""
    for item in items:
        if _MODEL_RUNS in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.models)


@pytest.fixture(scope="session")
def platform_synth(tmp_path_factory: pytest.TempPathFactory):
    """Synthesize a whole environment once per session and configuration.

    Returns a function ``(env, **overrides) -> (config, cloud assembly)``;
    ``overrides`` are `-c set:` style strings. Synth runs with cdk-nag, so a
    returned assembly is also nag-clean.
    """
    from stacks.platform import build_platform

    cache: dict[tuple, tuple[PlatformConfig, object]] = {}

    def synth(env: str, **overrides: str):
        key = (env, tuple(sorted(overrides.items())))
        if key not in cache:
            cfg = load_config(env, overrides={k.replace("__", "."): v for k, v in overrides.items()})
            outdir = tmp_path_factory.mktemp(f"synth-{env}")
            app = new_app(outdir)
            build_platform(app, cfg)
            cache[key] = (cfg, app.synth())
        return cache[key]

    return synth


@pytest.fixture
def project_root() -> Path:
    return Path(__file__).resolve().parent.parent
