"""Training configuration (W4): documented defaults, and one clear message per bad value."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from config import ConfigError, load_config
from config.training import W4_NEURON_CC_FLAGS


def test_defaults_are_the_documented_w4_values():
    training = load_config("prod").training
    assert training.enabled is True
    assert training.instance_type == "trn1.32xlarge"
    assert training.neuron_cc_flags == (
        "--target trn1 --auto-cast all --auto-cast-type bf16 --model-type transformer --optlevel 1"
    )
    assert training.compile_steps == 5  # "4-5 training steps" are enough to trace every graph
    assert 1 <= training.retry_attempts <= 10
    # The hosts install EFA at boot (the pinned AMI may lack it), which needs the NAT gateway's internet egress.
    assert training.existing_vpc is None and training.egress == "nat_gateway"
    assert training.efa_software == "install-at-boot"
    assert training.capacity_nodes == training.node_count
    assert dict(training.shares) == {"training": 1.0} and training.pipeline_share == "training"


def test_dev_keeps_the_expensive_training_stack_off():
    assert load_config("dev").training.enabled is False


PINNED = {"account": "111111111111", "region": "us-west-2"}


@pytest.mark.parametrize("missing", ["availability_zone", "ami_id"])
def test_a_pinned_environment_needs_its_az_and_ami_in_config(missing):
    # With account and region set, the stack writes literal values: switching training on
    # without one names what to set and how to find it.
    given = {"availability_zone": "usw2-az4", "ami_id": "ami-0123456789abcdef0"}
    del given[missing]
    with pytest.raises(ConfigError) as exc:
        load_config("dev", overrides={"training.enabled": "true", **PINNED,
                                      **{f"training.{k}": v for k, v in given.items()}})
    message = str(exc.value)
    assert f"training.{missing}: required where account and region are set" in message
    # Nobody set the missing key (a default); switching training on in a pinned environment made it required.
    assert message.endswith("(from defaults; because of training.enabled from -c set:training.enabled "
                            "and region from -c set:region)")
    assert ("describe-instance-type-offerings" if missing == "availability_zone" else "aws ssm get-parameter") in message


def test_an_environment_agnostic_one_leaves_them_to_deploy_time_parameters():
    # prod pins no account or region and ships no placeholder AZ or AMI.
    training = load_config("prod").training
    assert training.enabled and training.availability_zone is None and training.ami_id is None


def test_a_disabled_training_section_needs_neither():
    assert load_config("dev", overrides=PINNED).training.enabled is False


@pytest.mark.parametrize("ami", ["ami-123", "ami-0123456789ABCDEF0", "ami-0123456789abcdef", "0123456789abcdef0"])
def test_a_malformed_ami_id_is_a_config_error(ami):
    with pytest.raises(ConfigError, match=rf"training\.ami_id: got '{ami}', which does not match"):
        load_config("prod", overrides={"training.ami_id": ami})


def test_training_switched_on_in_an_environment_file_names_that_file(tmp_path):
    envs = tmp_path / "environments"
    envs.mkdir()
    (envs / "dev.toml").write_text((Path(__file__).resolve().parents[1] / "config" / "environments" / "dev.toml").read_text())
    (envs / "trn.toml").write_text('base = "dev"\naccount = "123456789012"\nregion = "us-west-2"\n'
                                   '[training]\nenabled = true\nami_id = "ami-0123456789abcdef0"\n')
    with pytest.raises(ConfigError) as exc:
        load_config("trn", environments_dir=envs)
    (problem,) = exc.value.problems
    assert problem.path == "training.availability_zone"
    assert problem.source.startswith("defaults; because of training.enabled from ")
    assert "environments/trn.toml" in problem.source


@pytest.mark.parametrize("zone", ["us-west-2d", "usw2-az4", "use1-az6", "apne1-az1", "us-gov-west-1a"])
def test_az_names_and_ids_are_accepted(zone):
    assert load_config("prod", overrides={"training.availability_zone": zone}).training.availability_zone == zone


def test_timeouts_follow_the_jobs_unless_set():
    training = load_config("prod").training
    assert training.update_timeout == 2880  # the 48 h training job
    assert training.pipeline_timeout == 198  # 3 attempts x (6 + 48 + 6 + 6) h
    raised = load_config("prod", overrides={"training.job_timeout_seconds": "259200"}).training
    assert raised.update_timeout == 4320 and raised.pipeline_timeout == 270  # 3 x (6 + 72 + 6 + 6)


EXISTING_VPC = json.dumps({"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0123456789abcdef0"],
                           "default_security_group_id": "sg-0123456789abcdef0"})


@pytest.mark.parametrize("overrides", [
    {"training.egress": "vpc_endpoints"},
    # An existing VPC's subnets: egress says what they have; endpoints only cannot reach the installer.
    {"training.egress": "vpc_endpoints", "training.existing_vpc": EXISTING_VPC, "training.availability_zone": "us-west-2d"},
])
def test_installing_efa_at_boot_without_internet_egress_is_refused(overrides):
    with pytest.raises(ConfigError) as exc:
        load_config("prod", overrides=overrides)
    (problem,) = exc.value.problems
    assert problem.path == "training.efa_software"
    assert problem.message.startswith("got 'install-at-boot' with egress 'vpc_endpoints': the hosts download "
                                      "aws-efa-installer from efa-installer.amazonaws.com")
    assert problem.message.endswith('allowed: egress = "nat_gateway", or an AMI that carries EFA with '
                                    'efa_software = "in-ami"')
    assert problem.source == "defaults; because of training.egress from -c set:training.egress"


def test_an_ami_that_carries_efa_may_run_in_isolated_subnets():
    training = load_config("prod", overrides={"training.egress": "vpc_endpoints", "training.efa_software": "in-ami"}).training
    assert (training.egress, training.efa_software) == ("vpc_endpoints", "in-ami")


def test_existing_vpc_is_read_with_its_az():
    cfg = load_config(
        "prod",
        overrides={
            "training.existing_vpc": json.dumps({"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0123456789abcdef0"],
                                                 "default_security_group_id": "sg-0123456789abcdef0"}),
            "training.availability_zone": "us-west-2d",
        },
    )
    assert cfg.training.existing_vpc.subnet_ids == ("subnet-0123456789abcdef0",)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"neuron_cc_flags": "--target trn1 --optlevel O1"}, "--optlevel got 'O1', allowed: 1, 2, 3"),
        ({"neuron_cc_flags": "--target trn1 --fast"}, "unknown neuronx-cc option '--fast'"),
        ({"neuron_cc_flags": "--target inf2"}, "--target got 'inf2', allowed here: trn1, trn1n"),
        ({"neuron_cc_flags": "-O1 --optlevel 2"}, "'--optlevel' repeats the optimisation level (already given as '-O1')"),
        ({"neuron_cc_flags": "--auto-cast-type"}, "--auto-cast-type needs a value"),
        ({"neuron_cc_flags": "--target trn1 --cache_dir /tmp/cache"}, "--cache_dir overrides the S3 compile cache"),
        ({"neuron_cc_flags": "--target 'trn1"}, "into flags: No closing quotation"),
        ({"shares": "{}"}, "shares: at least one share identifier is required"),
        ({"shares": '{"teamA": 0}'}, "shares.teamA: got weight 0.0, allowed range: 0.0001 to 999.9999"),
        ({"shares": '{"teamA": 1000}'}, "shares.teamA: got weight 1000.0, allowed range"),
        ({"shares": '{"team-a": 1}', "pipeline_share": "team-a"}, "'team-a' is not a share identifier: 1-255 letters and digits"),
        ({"shares": json.dumps({f"t{i}": 1 for i in range(501)}), "pipeline_share": "t1"}, "got 501 share identifiers, at most 500"),
        ({"pipeline_share": "nobody"}, "pipeline_share: got 'nobody', allowed: 'training'"),
        ({"node_count": "8", "max_nodes": "4"}, "max_nodes: got 4, must be at least node_count (8)"),
        ({"node_count": "0"}, "node_count: got 0, allowed range: 1 to 256"),
        ({"retry_attempts": "0"}, "retry_attempts: got 0, allowed range: 1 to 10"),
        ({"retry_attempts": "11"}, "retry_attempts: got 11, allowed range: 1 to 10"),
        ({"runnable_time_limit_seconds": "599"}, "runnable_time_limit_seconds: got 599, allowed range: 600 to 86400"),
        ({"runnable_time_limit_seconds": "86401"}, "allowed range: 600 to 86400"),
        ({"share_decay_seconds": "604801"}, "share_decay_seconds: got 604801, allowed range: 0 to 604800"),
        ({"compute_reservation": "100"}, "compute_reservation: got 100, allowed range: 0 to 99"),
        ({"retryable_exit_code": "1"}, "retryable_exit_code: got 1, allowed range: 3 to 125"),
        ({"retryable_exit_code": "2"}, "retryable_exit_code: got 2, allowed range: 3 to 125"),
        ({"retryable_exit_code": "137"}, "retryable_exit_code: got 137, allowed range: 3 to 125"),
        ({"job_timeout_seconds": "59"}, "job_timeout_seconds: got 59, allowed range: 60 to inf"),
        ({"instance_type": "trn2.48xlarge"}, "instance_type: got 'trn2.48xlarge', allowed: 'trn1.32xlarge', 'trn1n.32xlarge'"),
        ({"egress": "internet"}, "egress: got 'internet', allowed: 'vpc_endpoints', 'nat_gateway'"),
        ({"efa_software": "dkms"}, "efa_software: got 'dkms', allowed: 'install-at-boot', 'in-ami'"),
        ({"availability_zone": "us-west-2"}, "availability_zone: got 'us-west-2', which does not match"),
        ({"capacity_reservation_id": "cr-1"}, "capacity_reservation_id: got 'cr-1', which does not match"),
        ({"vpc_cidr": "10.0.0.0/8"}, "vpc_cidr: got '10.0.0.0/8', which does not match"),
        ({"root_volume_gib": "29"}, "root_volume_gib: got 29, allowed range: 30 to 16384"),
        ({"log_retention_days": "2"}, "log_retention_days: got 2, allowed: 1, 3, 5"),
        ({"shared_memory_gib": "200", "container_memory_gib": "100"}, "shared_memory_gib: got 200, must be below container_memory_gib"),
        ({"container_memory_gib": "512"}, "container_memory_gib: got 512, allowed range: 16 to 500"),
        ({"checkpoint_every_steps": "0"}, "checkpoint_every_steps: got 0, allowed range: 1 to inf"),
        ({"compile_steps": "0"}, "compile_steps: got 0, allowed range: 1 to 100"),
        ({"image_uri": "trainium-training"}, "image_uri: got 'trainium-training', expected an image with a tag or digest"),
        ({"availability_zone": ""}, "availability_zone: got '', which does not match"),
        ({"existing_vpc": '{"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0123456789abcdef0"]}'},
         "existing_vpc.default_security_group_id: required"),
        ({"existing_vpc": '{"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0123456789abcdef0"], '
                          '"default_security_group_id": "default"}'},
         "existing_vpc.default_security_group_id: got 'default', which does not match"),
        ({"existing_vpc": '{"vpc_id": "vpc-1", "subnet_ids": ["subnet-0123456789abcdef0"], '
                          '"default_security_group_id": "sg-0123456789abcdef0"}', "availability_zone": "us-west-2d"},
         "existing_vpc.vpc_id: got 'vpc-1', which does not match"),
        ({"existing_vpc": '{"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": [], "default_security_group_id": "sg-0123456789abcdef0"}', "availability_zone": "us-west-2d"},
         "existing_vpc.subnet_ids: at least one subnet id is required"),
        ({"existing_vpc": '{"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["sn-1"], "default_security_group_id": "sg-0123456789abcdef0"}', "availability_zone": "us-west-2d"},
         "existing_vpc.subnet_ids[0]: got 'sn-1', expected a subnet id"),
        ({"existing_vpc": '{"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef0"], '
                          '"default_security_group_id": "sg-0123456789abcdef0"}',
          "availability_zone": "us-west-2d"}, "existing_vpc.subnet_ids: subnet ids must be unique"),
        # deploys that don't kill jobs
        ({"ami_id": "ami-123"}, "ami_id: got 'ami-123', which does not match"),
        ({"ami_id": "/aws/service/ecs/optimized-ami/amazon-linux-2023/neuron/recommended/image_id"},
         "ami_id: got '/aws/service/ecs/"),
        ({"update_timeout_minutes": "30"}, "update_timeout_minutes: got 30, below the longest job timeout (2880 min)"),
        ({"update_timeout_minutes": "7201"}, "update_timeout_minutes: got 7201, allowed range: 1 to 7200"),
        ({"job_timeout_seconds": "500000"}, "job_timeout_seconds: got 500000, at most 432000 (5 days)"),
        # the pipeline must outlast its worst case: 3 x (6 + 48 + 6 + 6) h = 198 h
        ({"pipeline_timeout_hours": "72"}, "pipeline_timeout_hours: got 72, below the worst case of 198 h"),
        # what the cluster subnet (a /20) can hold: 9 addresses per trn1.32xlarge node, 17 per trn1n
        ({"instance_type": "trn1n.32xlarge", "node_count": "250"}, "max_nodes: got 250 nodes: each takes 17 addresses"),
        ({"vpc_cidr": "10.0.0.0/22"}, "vpc_cidr: got '10.0.0.0/22', allowed: a /16 to /19"),
        ({"evaluation_instance_type": "inf2.xlarge"}, "evaluation_instance_type: got 'inf2.xlarge', allowed: 'trn1.2xlarge'"),
    ],
)
def test_each_bad_training_value_is_named_with_what_is_allowed(overrides, expected):
    with pytest.raises(ConfigError) as exc:
        load_config("prod", overrides={f"training.{k}": v for k, v in overrides.items()})
    assert expected in str(exc.value)
    assert "training." in str(exc.value)


@pytest.mark.parametrize(
    "flags",
    [
        W4_NEURON_CC_FLAGS,
        "--target=trn1n -O2 --model-type=generic",
        "--target trn1 -O3 --enable-saturate-infinity",
        "--target trn1 --distribution-strategy llm-training --auto-cast none",
    ],
)
def test_valid_compiler_flag_spellings_are_accepted(flags):
    assert load_config("prod", overrides={"training.neuron_cc_flags": flags}).training.neuron_cc_flags == flags


def test_loading_configuration_does_not_start_cdk():
    """Config validation reuses the construct library's limit checks without importing CDK (jsii)."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    code = "import sys, config; config.load_config('prod'); print('aws_cdk' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
