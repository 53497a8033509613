"""NeuronCompileConfig: documented defaults and one negative test per rule."""
from __future__ import annotations

from typing import Any

import pytest

from config.neuron_compile import NeuronCompileConfig
from config.typed import Builder


def build(**values: Any) -> tuple[NeuronCompileConfig | Any, list[str]]:
    """Build the section the way the loader does, with every value coming from one flag."""
    builder = Builder({}, default_source="test")
    built = builder.build(NeuronCompileConfig, values, "stable_diffusion.compile")
    return built, [f"{p.path}: {p.message}" for p in builder.problems]


def only_problem(**values: Any) -> str:
    _, problems = build(**values)
    assert len(problems) == 1, problems
    return problems[0]


def test_defaults_are_the_workloads_documented_values():
    cfg, problems = build()
    assert problems == []
    assert cfg.model_id == "stabilityai/stable-diffusion-2-1-base"
    assert (cfg.height, cfg.width, cfg.dtype) == (512, 512, "bf16")
    assert cfg.instance_type == "inf2.8xlarge"
    # AWS's samples: --model-type=unet-inference for the UNet and the VAE decoder only.
    assert cfg.compiler_args.as_dict() == {
        "text_encoder": "--target=inf2", "unet": "--target=inf2 --model-type=unet-inference",
        "vae_decoder": "--target=inf2 --model-type=unet-inference", "vae_post_quant_conv": "--target=inf2"}
    assert cfg.require_pinned_weights is False and cfg.weights_prefix is None
    assert cfg.wait_for_completion is True and cfg.timeout_minutes == 50


def test_valid_non_defaults_are_accepted():
    cfg, problems = build(
        model_id="s3://my-weights/sd21/", height=768, width=768, instance_type="trn1.2xlarge",
        compiler_args={"unet": "--target inf2 --auto-cast matmult --auto-cast-type bf16 -O1"},
        image="pytorch-inference-neuronx:2.1.2-neuronx-py310-sdk2.20.2-ubuntu20.04",
    )
    assert problems == []
    assert cfg.model_id == "s3://my-weights/sd21/"


@pytest.mark.parametrize("model_id", ["stable-diffusion", "s3://bucket-without-slash", "s3://bucket-only/", "https://hf.co/a/b", "a/b/c"])
def test_model_id_must_be_a_hub_id_or_an_s3_prefix(model_id):
    assert only_problem(model_id=model_id).startswith(f"stable_diffusion.compile.model_id: got {model_id!r}; expected")


def test_revision_only_applies_to_hub_ids():
    message = only_problem(model_id="s3://weights/sd/", revision="main")
    assert message == ("stable_diffusion.compile.revision: got 'main'; a revision only applies to a hub id, "
                       "not to 's3://weights/sd/'")


def test_revision_pattern():
    assert "stable_diffusion.compile.revision: got 'main branch', which does not match" in only_problem(
        revision="main branch")


@pytest.mark.parametrize("name", ["height", "width"])
def test_shapes_are_multiples_of_8(name):
    assert only_problem(**{name: 500}) == f"stable_diffusion.compile.{name}: got 500; allowed: a multiple of 8 from 64 to 2048"


@pytest.mark.parametrize("name", ["height", "width"])
def test_shapes_have_a_range(name):
    assert only_problem(**{name: 4096}) == f"stable_diffusion.compile.{name}: got 4096; allowed: a multiple of 8 from 64 to 2048"


def test_dtype_choices():
    assert only_problem(dtype="int8") == "stable_diffusion.compile.dtype: got 'int8', allowed: 'bf16', 'fp16', 'fp32'"


def test_instance_type_has_no_optimal_and_no_small_inf2():
    message = only_problem(instance_type="inf2.xlarge")
    assert message == "stable_diffusion.compile.instance_type: got 'inf2.xlarge', allowed: 'inf2.8xlarge', 'trn1.2xlarge'"
    assert "optimal" in only_problem(instance_type="optimal")


def test_compiler_args_reject_optlevel_spelled_O1():
    assert only_problem(compiler_args={"unet": "--optlevel O1"}) == (
        "stable_diffusion.compile.compiler_args.unet: --optlevel got 'O1', allowed: 1, 2, 3")


def test_compiler_args_reject_unknown_options():
    message = only_problem(compiler_args={"unet": "--model-type=unet-inference --fast-math"})
    assert message.startswith("stable_diffusion.compile.compiler_args.unet: unknown neuronx-cc option '--fast-math'; known options:")


def test_compiler_args_reject_bad_values_and_missing_values():
    _, problems = build(compiler_args={"unet": "--target inf1 --auto-cast"})
    assert problems == [
        "stable_diffusion.compile.compiler_args.unet: --target got 'inf1', allowed: inf2, trn1, trn1n, trn2",
        "stable_diffusion.compile.compiler_args.unet: --auto-cast needs a value, one of: none, matmult, all",
    ]


def test_compiler_args_reject_two_optimisation_levels():
    assert only_problem(compiler_args={"unet": "-O1 --optlevel=2"}) == (
        "stable_diffusion.compile.compiler_args.unet: '--optlevel=2' repeats the optimisation level (already given as '-O1')")


def test_compiler_args_reject_unbalanced_quotes():
    assert "cannot split" in only_problem(compiler_args={"unet": "--target 'inf2"})


def test_image_must_name_its_neuron_sdk():
    message = only_problem(image="my-registry/neuron:latest")
    assert message.startswith("stable_diffusion.compile.image: got 'my-registry/neuron:latest'; its tag names no Neuron SDK")


def test_image_must_have_a_tag():
    assert "expected 'repository:tag'" in only_problem(image="pytorch-inference-neuronx")


def test_timeouts_stay_within_cloudformations_hour():
    assert only_problem(timeout_minutes=60) == "stable_diffusion.compile.timeout_minutes: got 60, allowed range: 5 to 55"


def test_job_timeout_must_not_be_shorter_than_the_wait():
    message = only_problem(timeout_minutes=50, job_timeout_minutes=30)
    assert message.startswith("stable_diffusion.compile.job_timeout_minutes: got 30, below timeout_minutes=50")


def test_unknown_keys_are_rejected():
    assert only_problem(optlevel=1).startswith("stable_diffusion.compile.optlevel: unknown key 'optlevel'")


def test_compiler_args_must_target_inferentia2_where_the_endpoint_serves():
    assert only_problem(compiler_args={"unet": "--target trn1 --model-type=unet-inference"}) == (
        "stable_diffusion.compile.compiler_args.unet: --target got 'trn1', allowed here: inf2 (where the graphs will run)")


def test_prod_style_pinning_refuses_an_unpinned_hub_download():
    message = only_problem(require_pinned_weights=True, revision="main")
    assert message.startswith("stable_diffusion.compile.revision: got 'main' for 'stabilityai/stable-diffusion-2-1-base'; "
                              "allowed with require_pinned_weights: a 40-hex commit")
    assert only_problem(require_pinned_weights=True).startswith("stable_diffusion.compile.revision: got None")


@pytest.mark.parametrize("values", [
    {"revision": "0123456789abcdef0123456789abcdef01234567"},
    {"weights_prefix": "stable-diffusion-2-1-base/"},
    {"model_id": "s3://my-weights/sd21/"},
])
def test_pinned_weights_are_accepted(values):
    _, problems = build(require_pinned_weights=True, **values)
    assert problems == []


def test_staged_weights_take_no_revision():
    assert only_problem(weights_prefix="sd/", revision="main").startswith(
        "stable_diffusion.compile.revision: got 'main' with weights_prefix 'sd/'; allowed: unset")
