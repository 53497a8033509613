"""scripts/diagrams.py draws what the synthesized templates contain (not what the config says)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.helpers import ROOT

_spec = importlib.util.spec_from_file_location("diagrams", ROOT / "scripts" / "diagrams.py")
diagrams = importlib.util.module_from_spec(_spec)
sys.modules["diagrams"] = diagrams  # dataclasses look their module up while the file runs
_spec.loader.exec_module(diagrams)


def _draw(platform_synth, env: str, **overrides: str) -> str:
    _, assembly = platform_synth(env, **overrides)
    return diagrams.render(env, diagrams.load(Path(assembly.directory)))


def test_dev_diagram_shows_stacks_hosting_and_data_flow(platform_synth):
    text = _draw(platform_synth, "dev")
    assert text.count("subgraph ") == 3  # Storage, StableDiffusion, MultiModel
    assert "0..2 x ml.inf2.xlarge<br/>1 inference component(s), scales to zero" in text
    assert "1..2 x ml.m5.large<br/>multi-model" in text
    assert "inf2.8xlarge, 0..32 vCPUs" in text
    assert "-->|compiled artifacts| StableDiffusion_Endpoint" in text
    assert "Storage_ArtifactsModels6FBC7400 -->|reads| MultiModel_Endpoint" in text
    assert "waiterstatemachine" not in text  # the custom resource framework is not drawn
    assert text.startswith("# Environment `dev`") and "```mermaid\nflowchart LR" in text


def test_prod_diagram_draws_training_and_an_async_endpoint_when_configured(platform_synth):
    text = _draw(platform_synth, "prod", stable_diffusion__async_inference__enabled="true")
    assert "trn1.32xlarge, 0..512 vCPUs" in text
    assert "Training_Pipeline8E4BFAC9 -->|submits jobs| Training_Compute" in text
    assert "asynchronous" in text and "-->|notifies| StableDiffusion_AsyncErrorTopic" in text
    assert "0..1 x ml.inf2.xlarge" in text  # the backlog scaling range, read from the scalable target


def test_the_same_assembly_draws_the_same_diagram(platform_synth):
    assert _draw(platform_synth, "dev") == _draw(platform_synth, "dev")


def test_the_committed_diagrams_are_what_make_diagrams_draws_now(platform_synth):
    # The README links these pages: a stack change without `make diagrams` would show readers an old picture.
    for env in ("dev", "prod"):
        committed = (ROOT / "docs" / "diagrams" / f"{env}.md").read_text()
        assert committed == _draw(platform_synth, env), f"docs/diagrams/{env}.md is stale: run `make diagrams`"
