"""Instance-type rules shared by the workload configurations (ml_constructs/sagemaker/instances.py)."""
from __future__ import annotations

import json
from pathlib import Path

import cfnlint
import pytest

from ml_constructs.sagemaker.instances import (
    _HOSTING_SIZES,
    hosting_type_problems,
    neuron_match_problems,
    variant_problems,
)


def test_every_catalogued_type_is_one_cloudformation_accepts_in_some_region():
    """cfn-lint's enum comes from AWS's SageMaker hosting price list: a typo in the catalogue fails here."""
    enum_file = (Path(cfnlint.__file__).parent / "data" / "schemas" / "extensions" / "aws_sagemaker_hosting"
                 / "instancetype_enum.json")
    regions = json.loads(enum_file.read_text())
    known = {t for region, spec in regions.items() if region != "description" for t in spec["enum"]}
    catalogued = {f"ml.{family}.{size}" for family, sizes in _HOSTING_SIZES.items() for size in sizes}
    assert catalogued - known == set()
    # The workloads' documented types are all in it.
    assert {"ml.inf2.xlarge", "ml.c5d.18xlarge", "ml.p4d.24xlarge", "ml.g5.24xlarge", "ml.m5.large"} <= catalogued


@pytest.mark.parametrize(
    ("instance_type", "expected"),
    [
        ("ml.inf9.xlarge", "got 'ml.inf9.xlarge': SageMaker hosting has no instance family 'inf9'; allowed families: c4,"),
        ("ml.inf2.3xlarge", "SageMaker hosting has no 3xlarge in family inf2; allowed: ml.inf2.xlarge, ml.inf2.8xlarge,"),
        ("ml.p4d.12xlarge", "allowed: ml.p4d.24xlarge"),
        ("inf2.xlarge", "got 'inf2.xlarge', allowed: ml.<family>.<size>"),
    ],
)
def test_a_type_sagemaker_hosting_does_not_offer_is_an_error(instance_type, expected):
    [(key, message)] = hosting_type_problems(instance_type)
    assert key == "instance_type" and expected in message
    assert variant_problems(instance_type) == [(key, message)]


@pytest.mark.parametrize("instance_type", ["ml.inf2.xlarge", "ml.c5d.18xlarge", "ml.p4d.24xlarge", "ml.g5.24xlarge"])
def test_the_documented_types_pass(instance_type):
    assert hosting_type_problems(instance_type) == []


@pytest.mark.parametrize("instance_type", ["ml.g5.2xlarge", "ml.c5.xlarge", "ml.inf1.xlarge", "ml.p4d.24xlarge"])
def test_a_neuron_compiled_model_on_a_type_without_neuroncore_v2_is_an_error(instance_type):
    [(key, message)] = neuron_match_problems(instance_type, neuron_compiled=True)
    assert key == "instance_type"
    assert f"got {instance_type!r}, allowed: an Inferentia2 or Trainium type (ml.inf2.*, ml.trn1.*, ml.trn1n.*)" in message
    assert (key, message) in variant_problems(instance_type, neuron_compiled=True)


@pytest.mark.parametrize("instance_type", ["ml.inf2.xlarge", "ml.inf2.48xlarge", "ml.trn1.2xlarge", "ml.inf1.xlarge"])
def test_a_model_not_compiled_for_neuron_on_inferentia_or_trainium_is_an_error(instance_type):
    [(key, message)] = neuron_match_problems(instance_type, neuron_compiled=False, key="models.opt.instance_type")
    assert key == "models.opt.instance_type"
    assert f"got {instance_type!r}, allowed: a GPU or CPU instance type" in message


@pytest.mark.parametrize(("instance_type", "neuron"), [("ml.inf2.xlarge", True), ("ml.trn1.2xlarge", True),
                                                       ("ml.g5.24xlarge", False), ("ml.c5d.18xlarge", False)])
def test_matching_pairs_pass(instance_type, neuron):
    assert neuron_match_problems(instance_type, neuron_compiled=neuron) == []


def test_the_neuron_check_only_runs_when_a_caller_says_what_the_model_is():
    assert variant_problems("ml.g5.2xlarge", volume_size_gb=None) == []
    assert variant_problems("ml.inf2.xlarge") == []
