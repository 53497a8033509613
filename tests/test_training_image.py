"""The training image follows training.runtime: its profile's Dockerfile and base, and a warning for seed."""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk.assertions import Annotations, Match

from ml_constructs.trainium_batch.image import training_image
from runtime_profiles import load_profile
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


def test_the_current_profile_does_not_warn():
    stack, _, _ = synth_image("current")
    Annotations.from_stack(stack).has_no_warning("*", Match.any_value())


def test_each_profile_dockerfile_defaults_to_its_own_base_image():
    for name in ("current", "seed"):
        profile = load_profile("training", name)
        assert f"ARG BASE_IMAGE={profile.settings['base_image']}\n" in profile.dockerfile.read_text()
        assert profile.settings["base_image"].endswith(f"/{profile.image_repository}:{profile.default_tag}")
