"""The training image follows training.runtime: its profile's Dockerfile and base, and a warning for seed."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import aws_cdk as cdk
from aws_cdk.assertions import Annotations, Match

from ml_constructs.trainium_batch.image import training_image
from runtime_profiles import load_profile, parse_lock
from tests.helpers import new_app


def synth_image(profile_name: str, image_uri: str | None = None):
    app = new_app()
    stack = cdk.Stack(app, "T")
    cdk.CfnWaitConditionHandle(stack, "Placeholder")  # a stack must hold a resource to synthesize
    image, from_ecr = training_image(stack, image_uri, load_profile("training", profile_name))
    return stack, image, from_ecr


def test_the_seed_profile_builds_from_its_own_base_and_warns_that_it_is_end_of_life():
    seed = load_profile("training", "seed")
    stack, image, from_ecr = synth_image("seed")
    assert from_ecr and seed.status == "end-of-life"
    assert seed.settings["base_image"].endswith(":2.1.2-neuronx-py310-sdk2.20.0-ubuntu20.04")
    Annotations.from_stack(stack).has_warning("/T", Match.string_like_regexp("training runtime profile training/seed .* end-of-life"))


def test_an_image_uri_on_the_seed_profile_still_warns():
    stack, _, _ = synth_image("seed", "123456789012.dkr.ecr.us-west-2.amazonaws.com/trainium-training:1")
    Annotations.from_stack(stack).has_warning("/T", Match.string_like_regexp("end-of-life"))


def test_the_current_profile_warns_that_it_is_the_last_trn1_training_line():
    stack, _, _ = synth_image("current")
    warnings = [w.entry.data for w in Annotations.from_stack(stack).find_warning("*", Match.any_value())]
    assert len(warnings) == 1 and "training/current" in warnings[0] and "last of its line" in warnings[0]
    assert "TorchNeuron" in warnings[0] and "Trn2 and Trn3" in warnings[0]  # the forward path is named


def test_the_base_images_come_from_the_public_registry():
    for name in ("current", "seed"):
        assert load_profile("training", name).settings["base_image"].startswith("public.ecr.aws/neuron/")


def test_both_dockerfiles_reach_the_efa_tools_and_refuse_a_build_without_the_runtimes_tools():
    for name in ("current", "seed"):
        text = load_profile("training", name).dockerfile.read_text()
        assert 'ENV PATH="/opt/amazon/efa/bin:${PATH}"' in text
        assert "--tools fi_info,nccom-test,neuron-ls,torchrun,neuron_parallel_compile" in text
        assert "--no-deps" not in text and "pip3 check" in text


def test_the_contract_environment_tests_on_the_torch_and_torch_xla_the_image_has():
    profile = load_profile("training", "current")
    base = parse_lock((profile.folder / "base-image.lock").read_text(), "base-image.lock")
    tests = parse_lock(profile.test_requirements_file.read_text(), "test-requirements.txt")
    assert {k: tests[k] for k in ("torch", "torch-xla")} == {k: base[k] for k in ("torch", "torch-xla")}
    assert "torch" not in profile.packages  # the image has them: its own lock does not reinstall them


# torch_xla names that exist in pytorch/xla at tag v2.1.0 (commit 8e9d27bf943c), the seed image's
# torch-xla (torch-neuronx 2.1.2.2.3.0), which is not on the package index. Read with
#   git show v2.1.0:torch_xla/core/xla_model.py   (module-level defs and REDUCE_SUM)
#   git show v2.1.0:torch_xla/runtime.py          (world_size, global_ordinal: @requires_pjrt; Neuron uses PJRT)
#   git show v2.1.0:torch_xla/distributed/parallel_loader.py, .../xla_backend.py
# Extend it (after reading the source at that tag) when the runtime starts using a new name.
TORCH_XLA_2_1_0 = {
    "torch_xla.core.xla_model": {
        "REDUCE_SUM", "all_reduce", "is_master_ordinal", "mark_step", "optimizer_step", "reduce_gradients",
        "rendezvous", "save", "wait_device_ops", "xla_device", "xrt_world_size", "get_ordinal",
    },
    "torch_xla.runtime": {"world_size", "global_ordinal", "local_ordinal"},
    "torch_xla.distributed.parallel_loader": {"MpDeviceLoader", "ParallelLoader"},
    "torch_xla.distributed.xla_backend": set(),
}


def test_every_torch_xla_name_the_runtime_uses_exists_in_the_seed_images_torch_xla():
    used = xla_names().used_names()
    assert "torch_xla.runtime" in used  # the scanner sees the runtime's imports
    missing = [f"{module}.{attr}" for module, attrs in sorted(used.items())
               for attr in sorted(attrs - TORCH_XLA_2_1_0.get(module, set()))]
    missing += [module for module in used if module not in TORCH_XLA_2_1_0]
    assert missing == []


def xla_names():
    path = Path(__file__).resolve().parents[1] / "contract_tests" / "training" / "xla" / "xla_names.py"
    spec = importlib.util.spec_from_file_location("training_xla_names", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_profile_dockerfile_defaults_to_its_own_base_image():
    for name in ("current", "seed"):
        profile = load_profile("training", name)
        assert f"ARG BASE_IMAGE={profile.settings['base_image']}\n" in profile.dockerfile.read_text()
        assert profile.settings["base_image"].endswith(f"/{profile.image_repository}:{profile.default_tag}")
