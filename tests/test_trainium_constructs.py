"""The trainium_batch constructs on their own: reuse, grants, and every validation rule."""
from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from ml_constructs.storage import ArtifactStorage
from ml_constructs.trainium_batch import (
    ClusterNetwork,
    EfaLaunchTemplate,
    FairShareJobQueue,
    RetryRule,
    TrainingJobSettings,
    TrainingLocations,
    TrainiumComputeEnvironment,
    TrainiumJobDefinitions,
    default_retry_rules,
    trainium_instance,
)
from ml_constructs.trainium_batch.image import training_image
from ml_constructs.neuron_flags import validate_neuron_cc_flags
from ml_constructs.trainium_batch.retry import retry_problems
from runtime_profiles import load_profile
from tests.helpers import new_app, new_checked_app, policy_statements

TRN1 = trainium_instance("trn1.32xlarge")
FLAGS = "--target trn1 --auto-cast all --auto-cast-type bf16 --model-type transformer --optlevel 1"


PINNED = dict(ami_id="ami-0123456789abcdef0", update_timeout=cdk.Duration.hours(48))


def stack(checked: bool = False) -> cdk.Stack:
    return cdk.Stack(new_checked_app() if checked else new_app(), "Test")


def network(scope: cdk.Stack) -> ClusterNetwork:
    return ClusterNetwork(scope, "Net", availability_zone="us-west-2a")


def test_cluster_network_is_reusable_on_its_own_and_nag_clean():
    scope = stack(checked=True)
    net = network(scope)
    template = Template.from_stack(scope)  # raises on an unacknowledged cdk-nag finding
    # Default: a NAT gateway (the hosts' EFA install needs the internet) and the free S3 gateway endpoint.
    template.resource_count_is("AWS::EC2::Subnet", 2)
    template.resource_count_is("AWS::EC2::NatGateway", 1)
    (endpoint,) = template.find_resources("AWS::EC2::VPCEndpoint").values()
    assert endpoint["Properties"]["VpcEndpointType"] == "Gateway" and "s3" in str(endpoint["Properties"]["ServiceName"])
    assert len(net.subnets) == 1 and net.endpoint_security_group is None and net.egress == "nat_gateway"


def test_an_isolated_network_is_nag_clean_and_needs_efa_in_the_ami():
    scope = stack(checked=True)
    net = ClusterNetwork(scope, "Net", availability_zone="us-west-2a", egress="vpc_endpoints")
    with pytest.raises(ValueError, match="efa_software: got 'install-at-boot' with egress 'vpc_endpoints'.*"
                                         "allowed: a network with egress='nat_gateway', or efa_software='in-ami'"):
        TrainiumComputeEnvironment(scope, "Compute", network=net, instance=TRN1, max_nodes=1, **PINNED)
    TrainiumComputeEnvironment(scope, "Compute2", network=net, instance=TRN1, max_nodes=1,
                               efa_software="in-ami", **PINNED)
    template = Template.from_stack(scope)
    template.resource_count_is("AWS::EC2::Subnet", 1)
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    assert net.endpoint_security_group is not None
    (launch_template,) = template.find_resources("AWS::EC2::LaunchTemplate").values()
    script = launch_template["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    assert "efa-installer.amazonaws.com" not in script and "EFA_SETUP_FAILED" in script


def test_launch_template_efa_software_choices():
    scope = stack()
    with pytest.raises(ValueError, match="efa_software: got 'dkms', allowed: 'install-at-boot', 'in-ami'"):
        EfaLaunchTemplate(scope, "Lt", instance=TRN1, security_group=network(scope).efa_security_group,
                          efa_software="dkms")


def test_fair_share_grant_restricts_a_team_to_its_share():
    scope = stack()
    net = network(scope)
    compute = TrainiumComputeEnvironment(scope, "Compute", network=net, instance=TRN1, max_nodes=2, **PINNED)
    queue = FairShareJobQueue(scope, "Queue", compute_environment=compute.compute_environment, shares={"teamA": 1, "teamB": 1})
    team_role = iam.Role(scope, "TeamA", assumed_by=iam.AccountRootPrincipal())
    queue.grant_submit_job(team_role, "teamA", [])
    (statement,) = [s for s in policy_statements(Template.from_stack(scope).to_json()) if s["Action"] == "batch:SubmitJob"]
    assert statement["Condition"] == {"StringEquals": {"batch:ShareIdentifier": "teamA"}}
    with pytest.raises(ValueError, match="share_identifier: got 'teamC', allowed: teamA, teamB"):
        queue.grant_submit_job(team_role, "teamC", [])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shares": {}}, "shares: at least one share identifier is required"),
        ({"shares": {"a": 0.00001}}, "shares.a: got weight 1e-05"),
        ({"shares": {"a": 1}, "runnable_time_limit": cdk.Duration.seconds(300)}, "runnable_time_limit: got 300 s, allowed range: 600 to 86400"),
        ({"shares": {"a": 1}, "share_decay": cdk.Duration.days(8)}, "share_decay_seconds: got 691200"),
        ({"shares": {"a": 1}, "compute_reservation": 100}, "compute_reservation: got 100"),
    ],
)
def test_fair_share_queue_validation(kwargs, message):
    scope = stack()
    compute = TrainiumComputeEnvironment(scope, "Compute", network=network(scope), instance=TRN1, max_nodes=1, **PINNED)
    with pytest.raises(ValueError, match=message):
        FairShareJobQueue(scope, "Queue", compute_environment=compute.compute_environment, **kwargs)


def test_launch_template_root_volume_range():
    scope = stack()
    with pytest.raises(ValueError, match="root_volume_gib: got 20, allowed range: 30 to 16384"):
        EfaLaunchTemplate(scope, "Lt", instance=TRN1, security_group=network(scope).efa_security_group, root_volume_gib=20)


def test_compute_environment_max_nodes_range():
    scope = stack()
    with pytest.raises(ValueError, match="max_nodes: got 0, allowed range: 1 to 256"):
        TrainiumComputeEnvironment(scope, "Compute", network=network(scope), instance=TRN1, max_nodes=0, **PINNED)


def test_network_egress_choices():
    with pytest.raises(ValueError, match="egress: got 'internet', allowed: 'vpc_endpoints', 'nat_gateway'"):
        ClusterNetwork(stack(), "Net", egress="internet")


def test_unknown_instance_type():
    with pytest.raises(ValueError, match="instance type 'trn2.48xlarge' is not supported; allowed: trn1.32xlarge, trn1n.32xlarge"):
        trainium_instance("trn2.48xlarge")


@pytest.mark.parametrize("uri", ["image", "repo/name", "123456789012.dkr.ecr.us-west-2.amazonaws.com/x"])
def test_image_uri_needs_a_tag_or_digest(uri):
    with pytest.raises(ValueError, match="image_uri: got"):
        training_image(stack(), uri, load_profile("training", "current"))


def test_neuron_flags_validation_names_the_setting():
    assert validate_neuron_cc_flags(FLAGS) == FLAGS
    with pytest.raises(ValueError, match=r"neuron_cc_flags: '--optlevel O1' is invalid: --optlevel got 'O1', allowed: 1, 2, 3"):
        validate_neuron_cc_flags("--optlevel O1")


@pytest.mark.parametrize(
    "attempts, rules, message",
    [
        (0, default_retry_rules(75), "retry attempts: got 0, allowed range: 1 to 10"),
        (11, default_retry_rules(75), "retry attempts: got 11"),
        (3, [RetryRule("RETRY", on_reason="a")] * 5 + [RetryRule("EXIT", on_reason="*")], "got 6, at most 5"),
        (3, [RetryRule("RETRY", on_status_reason="x" * 513), RetryRule("EXIT", on_reason="*")], "is 513 characters, at most 512"),
        (3, [RetryRule("RETRY", on_exit_code="1x"), RetryRule("EXIT", on_reason="*")], "on_exit_code '1x' is not valid"),
        (3, [RetryRule("RETRY", on_reason="bad|pipe"), RetryRule("EXIT", on_reason="*")], "on_reason 'bad|pipe' is not valid"),
        (3, [RetryRule("RETRY"), RetryRule("EXIT", on_reason="*")], "needs on_status_reason, on_reason or on_exit_code"),
        (3, [RetryRule("SKIP", on_reason="x"), RetryRule("EXIT", on_reason="*")], "action 'SKIP' is not RETRY or EXIT"),
        (3, [RetryRule("RETRY", on_status_reason="Host EC2*")], "the last rule must be EXIT on '*'"),
        (3, [RetryRule("EXIT", on_reason="*", on_exit_code="1")], "the last rule must be EXIT on '*' and nothing narrower"),
    ],
)
def test_retry_strategy_validation(attempts, rules, message):
    assert any(message in p for p in retry_problems(attempts, rules)), retry_problems(attempts, rules)


def test_default_retry_rules_are_valid():
    assert retry_problems(3, default_retry_rules(75)) == []


def job_definitions(scope: cdk.Stack, **settings) -> TrainiumJobDefinitions:
    locations = ArtifactStorage(scope, "Storage").locations
    return TrainiumJobDefinitions(
        scope,
        "Jobs",
        image=ecs.ContainerImage.from_registry("public.ecr.aws/example/train:1"),
        instance=TRN1,
        locations=TrainingLocations(
            locations.training_data, locations.checkpoints, locations.compile_cache, locations.training_outputs
        ),
        settings=TrainingJobSettings(**{"neuron_cc_flags": FLAGS, **settings}),
    )


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"neuron_cc_flags": "--target trn1 --optlevel O1"}, "--optlevel got 'O1', allowed: 1, 2, 3"),
        ({"retry_attempts": 12}, "retry attempts: got 12"),
        ({"retry_rules": [RetryRule("RETRY", on_reason="*")]}, "the last rule must be EXIT"),
        ({"node_count": 0}, "node_count: got 0, allowed range: 1 to 256"),
        ({"shared_memory_gib": 100, "container_memory_gib": 64}, "need shared_memory_gib (100) < container_memory_gib (64)"),
        ({"container_memory_gib": 600}, "< the instance's 512 GiB"),
    ],
)
def test_job_definition_validation(settings, message):
    with pytest.raises(ValueError) as exc:
        job_definitions(stack(), **settings)
    assert message in str(exc.value)


def test_custom_retry_rules_reach_every_job_definition():
    scope = stack()
    rules = [RetryRule("RETRY", on_exit_code="137"), RetryRule("EXIT", on_exit_code="*")]
    job_definitions(scope, retry_rules=rules, retry_attempts=5)
    definitions = Template.from_stack(scope).find_resources("AWS::Batch::JobDefinition")
    assert len(definitions) == 4
    for definition in definitions.values():
        assert definition["Properties"]["RetryStrategy"] == {
            "Attempts": 5,
            "EvaluateOnExit": [{"Action": "RETRY", "OnExitCode": "137"}, {"Action": "EXIT", "OnExitCode": "*"}],
        }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ami_id": "ami-1"}, "ami_id: got 'ami-1', expected an AMI id"),
        ({"update_timeout": cdk.Duration.days(6)}, "update_timeout: got 8640 min, allowed range: 1 to 7200 min"),
    ],
)
def test_compute_environment_pins_a_real_ami_and_a_valid_update_timeout(kwargs, message):
    scope = stack()
    with pytest.raises(ValueError, match=message):
        TrainiumComputeEnvironment(scope, "Compute", network=network(scope), instance=TRN1, max_nodes=1,
                                   **{**PINNED, **kwargs})


def test_cluster_network_needs_an_az():
    with pytest.raises(ValueError, match="availability_zone: required"):
        ClusterNetwork(stack(), "Net")


def test_pipeline_timeout_must_cover_the_worst_case():
    from ml_constructs.trainium_batch import TrainingPipeline

    scope = stack()
    net = network(scope)
    compute = TrainiumComputeEnvironment(scope, "Compute", network=net, instance=TRN1, max_nodes=4, **PINNED)
    queue = FairShareJobQueue(scope, "Queue", compute_environment=compute.compute_environment, shares={"t": 1})
    jobs = job_definitions(scope)
    with pytest.raises(ValueError, match=r"timeout: got 72 h, below the worst case of 198 h"):
        TrainingPipeline(scope, "Pipeline", queue=queue, jobs=jobs, share_identifier="t", node_count=4,
                         timeout=cdk.Duration.hours(72))
    TrainingPipeline(scope, "Pipeline2", queue=queue, jobs=jobs, share_identifier="t", node_count=4,
                     timeout=cdk.Duration.hours(198))


def test_deploy_time_az_and_ami_reach_an_imported_vpc_and_both_compute_environments():
    # The training stack passes CfnParameter values when the environment pins no region.
    from ml_constructs.trainium_batch import ExistingVpc, SingleNodeComputeEnvironment

    scope = stack()
    zone = cdk.CfnParameter(scope, "Zone", type="String").value_as_string
    ami = cdk.CfnParameter(scope, "Ami", type="AWS::EC2::Image::Id").value_as_string
    net = ClusterNetwork(scope, "Net", existing_vpc=ExistingVpc("vpc-0123456789abcdef0", ["subnet-0123456789abcdef0"],
                                                                zone, "sg-0123456789abcdef0"))
    settings = dict(ami_id=ami, update_timeout=cdk.Duration.hours(48))
    TrainiumComputeEnvironment(scope, "Compute", network=net, instance=TRN1, max_nodes=1, **settings)
    SingleNodeComputeEnvironment(scope, "Single", network=net, instance=trainium_instance("trn1.2xlarge"),
                                 max_instances=1, **settings)
    environments = Template.from_stack(scope).find_resources("AWS::Batch::ComputeEnvironment")
    assert [e["Properties"]["ComputeResources"]["Ec2Configuration"] for e in environments.values()] == [
        [{"ImageType": "ECS_AL2023", "ImageIdOverride": {"Ref": "Ami"}}]] * 2


def test_a_new_vpc_writes_a_deploy_time_az_as_an_az_id():
    scope = stack()
    zone = cdk.CfnParameter(scope, "Zone", type="String").value_as_string
    ClusterNetwork(scope, "Net", availability_zone=zone)
    subnets = Template.from_stack(scope).find_resources("AWS::EC2::Subnet").values()
    assert len(subnets) == 2  # the cluster's and the NAT gateway's
    for subnet in subnets:
        assert subnet["Properties"]["AvailabilityZoneId"] == {"Ref": "Zone"} and "AvailabilityZone" not in subnet["Properties"]
