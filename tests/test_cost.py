"""`python -m ml_tools cost`: figures for dev and prod worked out by hand from config/prices/us-east-1.toml."""
from __future__ import annotations

import subprocess
import sys

import pytest

from config import ConfigError, load_config
from config.prices import PRICES_DIR, load_prices
from ml_constructs.neuron_compile.rules import COMPILE_INSTANCES
from ml_constructs.sagemaker.instances import catalogued_instance_types
from ml_constructs.trainium_batch.instances import TRAINIUM_INSTANCES
from ml_tools.cost import estimate
from tests.helpers import ROOT

# By hand, from the table:
#   dev floor   = NAT 0.045 + 1 x ml.m5.large 0.115                                   = 0.160
#   dev ceiling = 2 x ml.inf2.xlarge 0.99 (the second only while an update starts its new copy)
#                 + inf2.8xlarge 1.96786 + NAT 0.045 + 2 x 0.115                        = 4.22286
#   prod floor  = SD 0.99 + NAT 0.045 + 20 x c5d.18xlarge 4.147 (82.94) + p4de 53.255 (BLOOM bf16, estimate)
#                 + g5.24xlarge 10.18 + the training VPC's NAT 0.045                  = 147.455
#   prod ceiling= SD 0.99 + 1.96786 + 0.045 + 40 x 4.147 (165.88) + 53.255 + 10.18 + 4 x trn1.32xlarge 21.50
#                 + 0.045 + 2 evaluation hosts x trn1.2xlarge 1.34375 (2.6875)        = 321.05036
EXPECTED = {"dev": (0.160, 4.22286), "prod": (147.455, 321.05036)}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_floor_and_ceiling_of_each_environment(env):
    result = estimate(load_config(env))
    assert (round(result.floor, 5), round(result.ceiling, 5)) == EXPECTED[env]


def test_dev_stable_diffusion_endpoint_costs_nothing_idle():
    result = estimate(load_config("dev"))
    (endpoint,) = [line for line in result.lines if line.stack == "MlAccel-dev-StableDiffusion" and "endpoint" in line.item]
    assert (endpoint.floor, endpoint.ceiling) == (0, 2 * 0.99)


def test_turning_components_on_for_one_prod_model_lowers_the_floor_by_its_instance():
    on = estimate(load_config("prod", overrides={"llm.models.opt-30b.hosting.mode": "inference-components"}))
    assert round(on.floor, 5) == round(147.455 - 10.18, 5)
    # max_instances 2 (the default): a second g5.24xlarge while an update starts the new copy beside the old.
    assert round(on.ceiling, 5) == round(321.05036 + 10.18, 5)


def test_cli_prints_each_stack_and_the_summary_line():
    full = subprocess.run([sys.executable, "-m", "ml_tools", "cost", "--env", "prod"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
    for stack in ("MlAccel-prod-StableDiffusion", "MlAccel-prod-MultiModel", "MlAccel-prod-Llm", "MlAccel-prod-Training"):
        assert stack in full
    assert "total" in full and "147.455" in full and "321.050" in full
    line = subprocess.run([sys.executable, "-m", "ml_tools", "cost", "--env", "dev", "--summary"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()
    assert line.startswith("dev: about $0.16/h at the floor, $4.22/h at the ceiling")


def test_cli_reports_a_config_error_without_a_traceback():
    done = subprocess.run([sys.executable, "-m", "ml_tools", "cost", "--env", "prod", "--set",
                           "multi_model.instance_type=ml.m7i.large"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "multi_model.instance_type: got 'ml.m7i.large', which has no price" in done.stderr
    assert "(from -c set:multi_model.instance_type)" in done.stderr


def test_an_unpriced_instance_type_is_a_config_error_only_where_it_is_deployed():
    with pytest.raises(ConfigError) as err:
        load_config("prod", overrides={"llm.models.opt-30b.instance_type": "ml.g6e.12xlarge"})
    assert [p.path for p in err.value.problems] == ["llm.models.opt-30b.instance_type"]
    load_config("dev", overrides={"llm.models.opt-30b.instance_type": "ml.g6e.12xlarge"})  # llm is off in dev


def test_every_instance_type_the_configuration_allows_has_a_price():
    table = load_prices()
    hosting = set(catalogued_instance_types())
    assert hosting - set(table.sagemaker_hosting) == set()
    hosts = set(COMPILE_INSTANCES) | set(TRAINIUM_INSTANCES)
    assert hosts - set(table.ec2) == set()
    assert {"nat_gateway", "interface_endpoint_per_az"} <= set(table.network)


def test_price_table_states_region_date_and_sources():
    text = (PRICES_DIR / "us-east-1.toml").read_text()
    table = load_prices()
    assert table.region == "us-east-1" and table.as_of
    for page in ("aws.amazon.com/sagemaker/pricing", "aws.amazon.com/ec2/pricing/on-demand", "aws.amazon.com/vpc/pricing"):
        assert page in text


def test_a_copy_floor_keeps_the_instances_it_needs():
    cfg = load_config("prod", overrides={"llm.models.opt-30b.hosting.mode": "inference-components",
                                         "llm.models.opt-30b.hosting.min_copies": "1"})
    (opt,) = [line for line in estimate(cfg).lines if "opt-30b" in line.item]
    # One copy needs all 4 GPUs of one g5.24xlarge; an update's new copy needs the second.
    assert (opt.floor, opt.ceiling) == (10.18, 2 * 10.18)


def test_a_malformed_price_entry_is_refused(tmp_path, monkeypatch):
    import config.prices as prices

    (tmp_path / "xx-test-1.toml").write_text(
        'region = "xx-test-1"\nas_of = "2026-01-01"\n[sagemaker_hosting]\n"ml.m5.large" = [0.1]\n[ec2]\n[network]\n')
    monkeypatch.setattr(prices, "PRICES_DIR", tmp_path)
    with pytest.raises(ValueError, match=r"\[sagemaker_hosting\] 'ml.m5.large': got \[0.1\]"):
        prices.load_prices("xx-test-1")


def test_the_private_endpoint_network_counts_each_interface_endpoint_in_each_az():
    # By hand: 6 interface endpoints (ECR API and registry, Logs, Monitoring, STS, SageMaker runtime) x 2 AZs x 0.01.
    on = estimate(load_config("prod", overrides={"endpoint_network.private": "true"}))
    off = estimate(load_config("prod"))
    assert (round(on.floor - off.floor, 5), round(on.ceiling - off.ceiling, 5)) == (0.12, 0.12)
    (line,) = [line for line in on.lines if line.stack == "MlAccel-prod-Storage"]
    assert line.item == "6 interface VPC endpoints in 2 AZs (endpoint_network.private)"


def test_the_counted_endpoints_are_the_ones_the_storage_stack_creates(platform_synth):
    from ml_constructs.sagemaker.network_endpoints import AVAILABILITY_ZONES, INTERFACE_ENDPOINTS
    from tests.helpers import resources_of_type

    _, assembly = platform_synth("dev", endpoint_network__private="true")
    storage = assembly.get_stack_by_name("MlAccel-dev-Storage").template
    interface = [r["Properties"] for r in resources_of_type(storage, "AWS::EC2::VPCEndpoint").values()
                 if r["Properties"].get("VpcEndpointType") == "Interface"]
    assert len(interface) == len(INTERFACE_ENDPOINTS)
    assert {len(p["SubnetIds"]) for p in interface} == {AVAILABILITY_ZONES}
