"""Private subnets and network isolation for the endpoints' models, as deployed."""
from __future__ import annotations

import pytest

from config import ConfigError, load_config
from tests.helpers import policy_statements, resources_of_type

PRIVATE = {"endpoint_network__private": "true", "endpoint_network__network_isolation": '["multi_model"]'}


@pytest.fixture(scope="module")
def private(platform_synth):
    return platform_synth("prod", **PRIVATE)[1]


def models(assembly) -> dict[str, dict]:
    return {
        f"{stack.stack_name}/{lid}": resource["Properties"]
        for stack in assembly.stacks
        for lid, resource in resources_of_type(stack.template, "AWS::SageMaker::Model").items()
    }


def test_every_model_runs_in_the_isolated_subnets_with_the_models_security_group(private):
    storage = private.get_stack_by_name("MlAccel-prod-Storage").template
    subnets = resources_of_type(storage, "AWS::EC2::Subnet")
    assert len(subnets) == 2 and not any(s["Properties"].get("MapPublicIpOnLaunch") for s in subnets.values())
    # No way out of the VPC: no internet gateway, no NAT.
    assert not resources_of_type(storage, "AWS::EC2::InternetGateway")
    assert not resources_of_type(storage, "AWS::EC2::NatGateway")
    found = models(private)
    assert len(found) == 4
    for name, props in found.items():
        assert len(props["VpcConfig"]["Subnets"]) == 2, name
        assert len(props["VpcConfig"]["SecurityGroupIds"]) == 1, name


def test_the_vpc_has_the_service_endpoints_a_model_needs(private):
    storage = private.get_stack_by_name("MlAccel-prod-Storage").template
    services = sorted(
        str(e["Properties"]["ServiceName"]) for e in resources_of_type(storage, "AWS::EC2::VPCEndpoint").values()
    )
    for service in (".ecr.api", ".ecr.dkr", ".logs", ".monitoring", ".sts", ".sagemaker.runtime", ".s3"):
        assert any(service in s for s in services), service
    interface = [e for e in resources_of_type(storage, "AWS::EC2::VPCEndpoint").values()
                 if e["Properties"].get("VpcEndpointType") == "Interface"]
    assert len(interface) == 6 and all(e["Properties"]["PrivateDnsEnabled"] for e in interface)


def test_the_s3_gateway_endpoint_admits_this_accounts_buckets_and_the_ecr_layer_bucket_only(private):
    storage = private.get_stack_by_name("MlAccel-prod-Storage").template
    (gateway,) = [e for e in resources_of_type(storage, "AWS::EC2::VPCEndpoint").values()
                  if e["Properties"].get("VpcEndpointType") == "Gateway"]
    statements = {s["Sid"]: s for s in gateway["Properties"]["PolicyDocument"]["Statement"]}
    assert set(statements) == {"ThisAccountsBuckets", "EcrImageLayers"}
    assert statements["ThisAccountsBuckets"]["Condition"] == {
        "StringEquals": {"aws:ResourceAccount": {"Ref": "AWS::AccountId"}}}
    assert "s3:DeleteObject" not in str(statements)
    layers = statements["EcrImageLayers"]
    assert layers["Action"] == "s3:GetObject" and "-starport-layer-bucket/*" in str(layers["Resource"])


def test_the_models_security_group_sends_https_only_and_the_flow_logs_use_the_platform_key(private):
    storage = private.get_stack_by_name("MlAccel-prod-Storage").template
    groups = {g["Properties"]["GroupDescription"]: g["Properties"]
              for g in resources_of_type(storage, "AWS::EC2::SecurityGroup").values()}
    egress = groups["SageMaker models: HTTPS to the VPC service endpoints only"]["SecurityGroupEgress"]
    assert [(e["IpProtocol"], e["FromPort"], e["ToPort"]) for e in egress] == [("tcp", 443, 443)]
    (key_id,) = resources_of_type(storage, "AWS::KMS::Key")
    (flow_logs,) = resources_of_type(storage, "AWS::Logs::LogGroup").values()
    assert flow_logs["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}


def test_model_roles_may_manage_their_network_interfaces(private):
    template = private.get_stack_by_name("MlAccel-prod-MultiModel").template
    actions = {a for s in policy_statements(template) for a in ([s["Action"]] if isinstance(s["Action"], str)
                                                                   else s["Action"])}
    assert {"ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeVpcs"} <= actions


def test_only_the_listed_workloads_are_isolated(private):
    isolated = {name.split("/")[0] for name, props in models(private).items() if props.get("EnableNetworkIsolation")}
    assert isolated == {"MlAccel-prod-MultiModel"}


def test_by_default_models_use_sagemakers_network(platform_synth):
    _, assembly = platform_synth("prod")
    assert all("VpcConfig" not in p and "EnableNetworkIsolation" not in p for p in models(assembly).values())
    assert not resources_of_type(assembly.get_stack_by_name("MlAccel-prod-Storage").template, "AWS::EC2::VPC")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"endpoint_network.network_isolation": '["stable_diffusion"]', "stable_diffusion.runtime": "seed"},
         "endpoint_network.network_isolation: got 'stable_diffusion', allowed: workloads whose containers fetch "
         "nothing themselves ('multi_model', 'llm', and 'stable_diffusion' on runtime 'current'): its container downloads the compiled artifacts from S3 itself"),
        ({"endpoint_network.network_isolation": '["training"]'}, "endpoint_network.network_isolation[0]: got 'training'"),
        ({"endpoint_network.vpc_cidr": "10.0.0.0/8"}, "endpoint_network.vpc_cidr: got '10.0.0.0/8', which does not match"),
    ],
)
def test_isolation_of_a_container_that_downloads_itself_is_a_configuration_error(overrides, expected):
    with pytest.raises(ConfigError) as err:
        load_config("prod", overrides=overrides)
    assert expected in str(err.value)


def test_llm_models_that_sagemaker_loads_may_be_isolated():
    # Both LLM profiles read the weights SageMaker copied from the weights prefix (ModelDataSource).
    cfg = load_config("prod", overrides={"endpoint_network.network_isolation": '["llm", "multi_model"]'})
    sd = load_config("prod", overrides={"endpoint_network.network_isolation": '["stable_diffusion"]'})
    assert sd.endpoint_network.network_isolation == ("stable_diffusion",)  # current: an uncompressed prefix
    assert cfg.endpoint_network.network_isolation == ("llm", "multi_model")


# --- inference-component endpoints (dev hosts Stable Diffusion this way) ------------------------------------

DEV_PRIVATE = {"endpoint_network__private": "true", "endpoint_network__network_isolation": '["stable_diffusion"]'}


def _storage_value(storage: dict, reference: dict):
    """What a cross-stack reference (``Fn::GetStackOutput`` of the storage stack) resolves to there."""
    return storage["Outputs"][reference["Fn::GetStackOutput"]["OutputName"]]["Value"]


def test_dev_component_endpoints_run_in_the_isolated_subnets_with_the_models_security_group(platform_synth):
    _, assembly = platform_synth("dev", **DEV_PRIVATE)
    storage = assembly.get_stack_by_name("MlAccel-dev-Storage").template
    subnets = sorted(resources_of_type(storage, "AWS::EC2::Subnet"))
    (group,) = [k for k, v in resources_of_type(storage, "AWS::EC2::SecurityGroup").items()
                if v["Properties"]["GroupDescription"].startswith("SageMaker models")]
    found = models(assembly)
    assert len(found) >= 2 and any(name.startswith("MlAccel-dev-StableDiffusion/") for name in found)
    sd = assembly.get_stack_by_name("MlAccel-dev-StableDiffusion").template
    assert resources_of_type(sd, "AWS::SageMaker::InferenceComponent")  # SD is on components in dev
    (sd_config,) = resources_of_type(sd, "AWS::SageMaker::EndpointConfig").values()
    placements = {**{n: p["VpcConfig"] for n, p in found.items()}, "SD endpoint config": sd_config["Properties"]["VpcConfig"]}
    for name, vpc in placements.items():
        assert sorted(_storage_value(storage, s)["Ref"] for s in vpc["Subnets"]) == subnets, name
        assert [_storage_value(storage, g) for g in vpc["SecurityGroupIds"]] == [{"Fn::GetAtt": [group, "GroupId"]}], name
    actions = {a for s in policy_statements(sd) for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeVpcs"} <= actions


def test_dev_isolates_the_stable_diffusion_component_model_only(platform_synth):
    _, assembly = platform_synth("dev", **DEV_PRIVATE)
    isolated = {name.split("/")[0] for name, props in models(assembly).items() if props.get("EnableNetworkIsolation")}
    assert isolated == {"MlAccel-dev-StableDiffusion"}
    sd = assembly.get_stack_by_name("MlAccel-dev-StableDiffusion").template
    (sd_config,) = resources_of_type(sd, "AWS::SageMaker::EndpointConfig").values()
    assert sd_config["Properties"]["EnableNetworkIsolation"] is True
