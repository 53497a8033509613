from __future__ import annotations

from pathlib import Path

import pytest

from config import PlatformConfig, load_config
from tests.helpers import new_app


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
