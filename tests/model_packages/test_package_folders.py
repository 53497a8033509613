"""Each package folder holds exactly what ships, keeps the keys the stacks render, and
packs into identical tarballs on every build."""
from __future__ import annotations

from pathlib import Path

import pytest

from ml_constructs.packaging import build_model_tarball, parse_properties
from tests.model_packages.conftest import PACKAGES

SHIPPED = {
    "stable_diffusion_inf2_nocode": ["serving.properties"],
    "stable_diffusion_inf2_byo": ["model.py", "serving.properties"],
    "llm_deepspeed": ["model.py", "serving.properties"],  # no requirements.txt: nothing installed at start
    "sklearn_mme": ["model.py", "serving.properties"],
}


@pytest.mark.parametrize("package", sorted(SHIPPED))
def test_folder_holds_only_what_ships(package: str):
    names = sorted(p.name for p in (PACKAGES / package).iterdir() if p.name != "__pycache__")
    assert names == SHIPPED[package]


@pytest.mark.parametrize("package", sorted(SHIPPED))
def test_two_builds_are_identical(package: str, tmp_path: Path):
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    assert build_model_tarball(PACKAGES / package, first) == build_model_tarball(PACKAGES / package, second)
    assert first.read_bytes() == second.read_bytes()


def test_rendered_keys_are_plain():
    props = {name: parse_properties((PACKAGES / name / "serving.properties").read_text()) for name in SHIPPED}
    assert props["stable_diffusion_inf2_nocode"]["option.entryPoint"] == "djl_python.transformers_neuronx"
    assert "option.entryPoint" not in props["stable_diffusion_inf2_byo"]
    for name in ("stable_diffusion_inf2_nocode", "stable_diffusion_inf2_byo"):
        assert (props[name]["option.tensor_parallel_degree"], props[name]["option.dtype"]) == ("2", "bf16")
    # The seed LLM package is staged once for every model: its settings come from the endpoint's environment.
    assert props["llm_deepspeed"] == {"engine": "DeepSpeed"}
