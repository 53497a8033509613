"""The training stack as synthesized for an environment: every W4 requirement, nag-clean."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runtime_profiles import load_profile
from tests.helpers import policy_statements, resources_of_type


@pytest.fixture(scope="module")
def dev_template(platform_synth):
    # dev has training off (trn1 is expensive): switch it on as a user would with -c set:.
    _, assembly = platform_synth("dev", **DEV_TRAINING)
    return assembly.get_stack_by_name("MlAccel-dev-Training").template


# A pinned environment: account and region set, so the AZ and the AMI are literal config values.
# Isolated subnets (VPC endpoints, no internet): only with an AMI that carries EFA (config/training.py).
DEV_TRAINING = dict(training__enabled="true", training__availability_zone="us-west-2d",
                    training__ami_id="ami-0abcdef0123456789", account="111111111111", region="us-west-2",
                    training__egress="vpc_endpoints", training__efa_software="in-ami")


@pytest.fixture(scope="module")
def prod_template(platform_synth):
    _, assembly = platform_synth("prod")
    return assembly.get_stack_by_name("MlAccel-prod-Training").template


ECR_IMAGE = "123456789012.dkr.ecr.us-west-2.amazonaws.com/trainium-training:1"


# Every non-default choice at once (one synth keeps the suite fast).
CUSTOM = dict(
    training__instance_type="trn1n.32xlarge",
    training__capacity_reservation_id="cr-0123456789abcdef0",
    training__max_nodes="16",
    training__shares='{"teamA": 0.5, "teamB": 2}',
    training__pipeline_share="teamA",
    training__share_decay_seconds="7200",
    training__compute_reservation="10",
    training__image_uri=ECR_IMAGE,
    training__egress="nat_gateway",
    training__availability_zone="us-west-2d",
    training__pipeline_timeout_hours="400",
)


@pytest.fixture(scope="module")
def custom_template(platform_synth):
    _, assembly = platform_synth("prod", **CUSTOM)
    return assembly.get_stack_by_name("MlAccel-prod-Training").template


def one(template, resource_type):
    found = list(resources_of_type(template, resource_type).values())
    assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
    return found[0]["Properties"]


def efa_launch_template(template):
    (data,) = [r["Properties"] for r in resources_of_type(template, "AWS::EC2::LaunchTemplate").values()
               if "NetworkInterfaces" in r["Properties"]["LaunchTemplateData"]]
    return data


def compute_environments(template):
    """(multi-node, single-node) compute environments: the multi-node one has the placement group."""
    ces = [r["Properties"] for r in resources_of_type(template, "AWS::Batch::ComputeEnvironment").values()]
    (multi,) = [c for c in ces if "PlacementGroup" in c["ComputeResources"]]
    (single,) = [c for c in ces if "PlacementGroup" not in c["ComputeResources"]]
    return multi, single


def job_definitions(template):
    return [r["Properties"] for r in resources_of_type(template, "AWS::Batch::JobDefinition").values()]


def training_container(template, mode="train"):
    (multi,) = [d for d in job_definitions(template) if d["Type"] == "multinode"
                and d["NodeProperties"]["NodeRangeProperties"][0]["Container"]["Command"][3] == mode]
    (node_range,) = multi["NodeProperties"]["NodeRangeProperties"]
    return multi, node_range


def env_of(container):
    return {e["Name"]: e["Value"] for e in container["Environment"]}


def test_dev_synthesizes_nag_clean_when_enabled_and_destroys_its_logs(dev_template, prod_template):
    # platform_synth runs cdk-nag: reaching here means no unacknowledged finding.
    dev_logs = resources_of_type(dev_template, "AWS::Logs::LogGroup").values()
    prod_logs = resources_of_type(prod_template, "AWS::Logs::LogGroup").values()
    assert {r["DeletionPolicy"] for r in dev_logs} == {"Delete"}
    assert {r["DeletionPolicy"] for r in prod_logs} == {"Retain"}


def test_dev_has_no_training_stack_unless_enabled(platform_synth):
    _, assembly = platform_synth("dev")
    assert "MlAccel-dev-Training" not in [s.stack_name for s in assembly.stacks]


@pytest.mark.parametrize("fixture, count_key, expected", [("prod_template", "trn1.32xlarge", 8), ("custom_template", "trn1n.32xlarge", 16)])
def test_one_efa_interface_per_network_card(request, fixture, count_key, expected):
    template = request.getfixturevalue(fixture)
    interfaces = efa_launch_template(template)["LaunchTemplateData"]["NetworkInterfaces"]
    assert [i["NetworkCardIndex"] for i in interfaces] == list(range(expected))
    assert [i["DeviceIndex"] for i in interfaces] == [0] + [1] * (expected - 1)
    assert {i["InterfaceType"] for i in interfaces} == {"efa"}
    (efa_group,) = [k for k in resources_of_type(template, "AWS::EC2::SecurityGroup") if "EfaSecurityGroup" in k]
    assert all(i["Groups"] == [{"Fn::GetAtt": [efa_group, "GroupId"]}] for i in interfaces)
    assert compute_environments(template)[0]["ComputeResources"]["InstanceTypes"] == [count_key]



def test_efa_security_group_allows_all_traffic_from_and_to_itself(prod_template):
    (efa_group,) = [k for k in resources_of_type(prod_template, "AWS::EC2::SecurityGroup") if "EfaSecurityGroup" in k]
    ref = {"Fn::GetAtt": [efa_group, "GroupId"]}
    ingress = [r["Properties"] for r in resources_of_type(prod_template, "AWS::EC2::SecurityGroupIngress").values()]
    egress = [r["Properties"] for r in resources_of_type(prod_template, "AWS::EC2::SecurityGroupEgress").values()]
    assert {"IpProtocol": "-1", "SourceSecurityGroupId": ref, "GroupId": ref, "Description": "EFA from cluster"} in ingress
    assert any(e["IpProtocol"] == "-1" and e["DestinationSecurityGroupId"] == ref and e["GroupId"] == ref for e in egress)


def test_hosts_install_the_efa_driver_at_boot_where_the_ami_has_none(prod_template):
    user_data = efa_launch_template(prod_template)["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    # Batch accepts launch-template user data only as MIME multi-part.
    assert user_data.startswith("MIME-Version: 1.0\nContent-Type: multipart/mixed;")
    assert "Content-Type: text/x-shellscript" in user_data
    assert "if ls /dev/infiniband/uverbs*" in user_data  # an AMI that has EFA is left alone
    assert "gpg --verify aws-efa-installer-latest.tar.gz.sig" in user_data
    assert "./efa_installer.sh -y --minimal" in user_data
    # The download needs the internet: prod's cluster subnets route through a NAT gateway.
    assert len(resources_of_type(prod_template, "AWS::EC2::NatGateway")) == 1
    routes = [r["Properties"] for r in resources_of_type(prod_template, "AWS::EC2::Route").values()]
    assert any("NatGatewayId" in r and r["DestinationCidrBlock"] == "0.0.0.0/0" for r in routes)


def test_hosts_of_an_isolated_cluster_only_check_the_amis_efa(dev_template):
    user_data = efa_launch_template(dev_template)["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    assert "efa-installer.amazonaws.com" not in user_data and "EFA_SETUP_FAILED" in user_data


def test_the_training_job_stops_a_run_that_stopped_progressing(prod_template):
    _, node_range = training_container(prod_template)
    env = {e["Name"]: e["Value"] for e in node_range["Container"]["Environment"]}
    assert env["HANG_AFTER_SECONDS"] == "3600"  # hang_alarm_minutes, 60 by default


def test_launch_template_requires_imdsv2_and_encrypts_a_gp3_root_volume(prod_template):
    data = efa_launch_template(prod_template)["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    (root,) = data["BlockDeviceMappings"]
    assert root["Ebs"] == {"DeleteOnTermination": True, "Encrypted": True, "VolumeSize": 200, "VolumeType": "gp3"}
    assert "SecurityGroupIds" not in data and "CapacityReservationSpecification" not in data


def test_capacity_reservation_is_targeted_when_configured(custom_template):
    data = efa_launch_template(custom_template)
    spec = data["LaunchTemplateData"]["CapacityReservationSpecification"]
    assert spec == {"CapacityReservationTarget": {"CapacityReservationId": "cr-0123456789abcdef0"}}


def test_compute_environment_escape_hatches(prod_template):
    ce, _ = compute_environments(prod_template)
    resources = ce["ComputeResources"]
    assert "SecurityGroupIds" not in resources  # only on the launch template's interfaces
    assert resources["InstanceTypes"] == ["trn1.32xlarge"]  # no "optimal"
    (lt_id,) = [k for k, r in resources_of_type(prod_template, "AWS::EC2::LaunchTemplate").items()
                if "NetworkInterfaces" in r["Properties"]["LaunchTemplateData"]]
    assert resources["LaunchTemplate"] == {
        "LaunchTemplateId": {"Ref": lt_id},
        "Version": {"Fn::GetAtt": [lt_id, "LatestVersionNumber"]},
    }
    assert "ServiceRole" not in ce  # the Batch service-linked role allows infrastructure updates


def test_compute_environment_capacity_and_placement_group(prod_template):
    ce, _ = compute_environments(prod_template)
    resources = ce["ComputeResources"]
    assert resources["Type"] == "EC2" and resources["AllocationStrategy"] == "BEST_FIT_PROGRESSIVE"
    assert resources["MinvCpus"] == 0 and resources["MaxvCpus"] == 4 * 128
    (pg_id,) = resources_of_type(prod_template, "AWS::EC2::PlacementGroup")
    assert resources["PlacementGroup"] == {"Fn::GetAtt": [pg_id, "GroupName"]}
    assert one(prod_template, "AWS::EC2::PlacementGroup")["Strategy"] == "cluster"


def test_a_pinned_environment_writes_its_configured_ami_and_az(dev_template):
    for environment in compute_environments(dev_template):
        assert environment["ComputeResources"]["Ec2Configuration"] == [
            {"ImageType": "ECS_AL2023", "ImageIdOverride": "ami-0abcdef0123456789"}
        ]
    azs = {r["Properties"]["AvailabilityZone"] for r in resources_of_type(dev_template, "AWS::EC2::Subnet").values()}
    assert azs == {"us-west-2d"}
    # Nothing left to the deploy, and no SSM parameter resolved at every deploy.
    assert not {"AmiId", "AvailabilityZoneId"} & set(dev_template.get("Parameters", {}))
    assert "neuron/recommended" not in json.dumps(dev_template.get("Parameters", {}))


def test_an_environment_agnostic_synth_asks_for_the_ami_and_az_at_deploy(prod_template):
    # prod pins no account or region: no placeholder values, parameters a deploy must give.
    parameters = prod_template["Parameters"]
    assert parameters["AmiId"]["Type"] == "AWS::EC2::Image::Id"  # CloudFormation checks the AMI exists
    assert parameters["AvailabilityZoneId"]["Type"] == "String"
    assert "Default" not in parameters["AmiId"] and "Default" not in parameters["AvailabilityZoneId"]
    for environment in compute_environments(prod_template):
        assert environment["ComputeResources"]["Ec2Configuration"] == [
            {"ImageType": "ECS_AL2023", "ImageIdOverride": {"Ref": "AmiId"}}
        ]
    subnets = [r["Properties"] for r in resources_of_type(prod_template, "AWS::EC2::Subnet").values()]
    assert len(subnets) == 2  # the cluster's and the NAT gateway's
    for subnet in subnets:
        assert subnet["AvailabilityZoneId"] == {"Ref": "AvailabilityZoneId"} and "AvailabilityZone" not in subnet


@pytest.mark.parametrize("value, allowed", [("usw2-az4", True), ("use1-az6", True), ("apne1-az1", True),
                                            ("us-west-2d", False), ("usw2-az", False), ("", False)])
def test_the_az_parameter_admits_az_ids_only(prod_template, value, allowed):
    # CloudFormation matches AllowedPattern against the whole value.
    pattern = prod_template["Parameters"]["AvailabilityZoneId"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is allowed


def test_max_vcpus_follow_max_nodes(custom_template):
    ce, _ = compute_environments(custom_template)
    assert ce["ComputeResources"]["MaxvCpus"] == 16 * 128


def test_queue_is_created_with_the_fair_share_policy_and_runnable_limits(custom_template):
    template = custom_template
    policies = resources_of_type(template, "AWS::Batch::SchedulingPolicy")
    assert len(policies) == 2  # one per queue, the same shares
    policy_id = next(iter(policies))
    policy = policies[policy_id]["Properties"]["FairsharePolicy"]
    assert policy == {
        "ComputeReservation": 10,
        "ShareDecaySeconds": 7200,
        "ShareDistribution": [{"ShareIdentifier": "teamA", "WeightFactor": 0.5}, {"ShareIdentifier": "teamB", "WeightFactor": 2}],
    }
    queues = [r["Properties"] for r in resources_of_type(template, "AWS::Batch::JobQueue").values()]
    assert len(queues) == 2  # multi-node, and single-node (evaluation, inference)
    assert sorted(q["SchedulingPolicyArn"]["Fn::GetAtt"][0] for q in queues) == sorted(policies)
    actions = queues[0]["JobStateTimeLimitActions"]
    assert len(actions) == 3
    assert {a["Reason"] for a in actions} == {
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
    }
    assert all(a["Action"] == "CANCEL" and a["State"] == "RUNNABLE" and a["MaxTimeSeconds"] == 3600 for a in actions)


def test_training_job_devices_limits_and_environment(prod_template):
    multi, node_range = training_container(prod_template)
    container = node_range["Container"]
    assert env_of(container)["CCOM_SOCKET_IFNAME"] == "eth0"
    devices = container["LinuxParameters"]["Devices"]
    expected = [f"/dev/neuron{i}" for i in range(16)] + [f"/dev/infiniband/uverbs{i}" for i in range(8)]
    assert [d["HostPath"] for d in devices] == expected
    assert all(d["ContainerPath"] == d["HostPath"] and d["Permissions"] == ["read", "write", "mknod"] for d in devices)
    ulimits = {u["Name"]: (u["SoftLimit"], u["HardLimit"]) for u in container["Ulimits"]}
    assert ulimits["memlock"] == (-1, -1) and min(ulimits["nofile"]) >= 65535
    assert container["LinuxParameters"]["SharedMemorySize"] == 64 * 1024
    env = env_of(container)
    assert {k: env[k] for k in ("FI_PROVIDER", "FI_EFA_USE_DEVICE_RDMA", "FI_EFA_FORK_SAFE")} == {
        "FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1", "FI_EFA_FORK_SAFE": "1"
    }
    assert env["NEURON_CC_FLAGS"] == "--target trn1 --auto-cast all --auto-cast-type bf16 --model-type transformer --optlevel 1"
    assert env["NEURON_COMPILE_CACHE_URL"] == {
        "Fn::Join": ["", ["s3://", {"Fn::ImportValue": "MlAccel-prod-Storage-CompileCacheBucketName"}, "/neuron-cache/"]]
    }
    # The runtime's boto3 clients (heartbeat, quarantine, checkpoints) need a region; Batch sets none.
    assert env["AWS_DEFAULT_REGION"] == {"Ref": "AWS::Region"}
    assert container["Command"][:4] == ["python3", "-m", "trainium_runtime.entrypoint", "train"]
    assert node_range["TargetNodes"] == "0:"  # a submission may raise the node count
    assert multi["NodeProperties"]["NumNodes"] == 4 and multi["NodeProperties"]["MainNode"] == 0
    assert multi["Timeout"] == {"AttemptDurationSeconds": 172800}


def test_retry_strategy_retries_host_pull_and_preflight_failures_then_exits(prod_template):
    for definition in job_definitions(prod_template):
        strategy = definition["RetryStrategy"]
        assert strategy["Attempts"] == 3
        assert strategy["EvaluateOnExit"] == [
            {"Action": "RETRY", "OnStatusReason": "Host EC2*"},
            {"Action": "RETRY", "OnReason": "CannotPullContainerError*"},
            {"Action": "RETRY", "OnExitCode": "75"},
            {"Action": "EXIT", "OnReason": "*"},
        ]


def test_evaluation_and_inference_run_on_one_trn1_2xlarge_device(prod_template):
    singles = [d for d in job_definitions(prod_template) if d["Type"] == "container"]
    commands = sorted(d["ContainerProperties"]["Command"][3:] for d in singles)
    program = ["-m", "trainium_runtime.train_reference"]
    assert commands == sorted([["run", "--", *program, "evaluate"], ["run", "--", *program, "embed"]])
    for definition in singles:
        properties = definition["ContainerProperties"]
        devices = [d["HostPath"] for d in properties["LinuxParameters"]["Devices"]]
        assert devices == ["/dev/neuron0"]
        requirements = {r["Type"]: r["Value"] for r in properties["ResourceRequirements"]}
        assert requirements == {"VCPU": "8", "MEMORY": str(28 * 1024)}
        assert definition["Timeout"] == {"AttemptDurationSeconds": 21600}
    _, single = compute_environments(prod_template)
    assert single["ComputeResources"]["InstanceTypes"] == ["trn1.2xlarge"]


def test_compile_runs_on_the_training_topology(prod_template):
    compile_job, compile_range = training_container(prod_template, "compile")
    train_job, train_range = training_container(prod_template, "train")
    assert compile_range["Container"]["Command"][3:] == [
        "compile", "--steps", "5", "--", "-m", "trainium_runtime.train_reference", "train"
    ]
    assert compile_job["NodeProperties"]["NumNodes"] == train_job["NodeProperties"]["NumNodes"] == 4
    same = ("LinuxParameters", "ResourceRequirements")
    assert {k: compile_range["Container"][k] for k in same} == {k: train_range["Container"][k] for k in same}
    # The pipeline's compile step submits that definition with the training's node count.
    text = _definition_text(prod_template)
    compile_state = json.loads(text)["States"]["Compile"]["Parameters"]
    assert compile_state["NodeOverrides"]["NumNodes"] == 4


def test_compute_environments_let_updates_wait_for_the_longest_job(prod_template):
    for environment in compute_environments(prod_template):
        assert environment["UpdatePolicy"] == {"JobExecutionTimeoutMinutes": 2880, "TerminateJobsOnUpdate": False}
        assert environment["ReplaceComputeEnvironment"] is False


def test_node_containers_default_group_allows_cluster_tcp_and_https_only(dev_template):
    (vpc_id,) = resources_of_type(dev_template, "AWS::EC2::VPC")
    default = {"Fn::GetAtt": [vpc_id, "DefaultSecurityGroup"]}
    ingress = [r["Properties"] for r in resources_of_type(dev_template, "AWS::EC2::SecurityGroupIngress").values()
               if r["Properties"]["GroupId"] == default]
    egress = [r["Properties"] for r in resources_of_type(dev_template, "AWS::EC2::SecurityGroupEgress").values()
              if r["Properties"]["GroupId"] == default]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"], r["SourceSecurityGroupId"]) for r in ingress] == [
        ("tcp", 0, 65535, default)
    ]
    assert sorted((r["IpProtocol"], r["FromPort"], r["ToPort"], json.dumps(r.get("DestinationSecurityGroupId", r.get("CidrIp"))))
                  for r in egress) == sorted([("tcp", 0, 65535, json.dumps(default)), ("tcp", 443, 443, '"0.0.0.0/0"')])
    # AWS's own default rules are stripped (the restrict-default-group custom resource).
    assert resources_of_type(dev_template, "Custom::VpcRestrictDefaultSG")
    # ...and the interface endpoints (isolated subnets) accept HTTPS from the node containers.
    endpoint_ingress = [r["Properties"] for r in resources_of_type(dev_template, "AWS::EC2::SecurityGroupIngress").values()
                        if r["Properties"].get("SourceSecurityGroupId") == default and r["Properties"]["GroupId"] != default]
    assert [(r["FromPort"], r["ToPort"]) for r in endpoint_ingress] == [(443, 443)]


def test_operations_alarms_and_dashboard(prod_template):
    alarms = [r["Properties"] for r in resources_of_type(prod_template, "AWS::CloudWatch::Alarm").values()
              if "MetricName" in r["Properties"]]
    by_metric = {a["MetricName"]: a for a in alarms}
    # No alarm on steps summed over runs (one healthy run would hide a hung one): the jobs stop
    # a hung run themselves and the alarm counts the watchdog's lines.
    assert "TrainingStepsCompleted" not in by_metric
    hang = by_metric["TrainingRunsStoppedAsHung"]
    assert hang["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and hang["Threshold"] == 1
    (metric_filter,) = [r["Properties"] for r in resources_of_type(prod_template, "AWS::Logs::MetricFilter").values()]
    assert metric_filter["FilterPattern"] == '"TRAINING STALLED"'
    assert metric_filter["MetricTransformations"][0]["MetricName"] == "TrainingRunsStoppedAsHung"
    assert by_metric["MatchedEvents"]["Threshold"] == 1
    rules = [r["Properties"] for r in resources_of_type(prod_template, "AWS::Events::Rule").values()
             if r["Properties"].get("EventPattern", {}).get("source") == ["aws.batch"]]
    assert sorted(r["EventPattern"]["detail"]["status"][0] for r in rules) == ["FAILED", "RUNNABLE", "RUNNING", "SUCCEEDED"]
    assert all(len(r["EventPattern"]["detail"]["jobQueue"]) == 2 for r in rules)
    (dashboard,) = resources_of_type(prod_template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "SEARCH(" in body and "RunId" in body  # steps per run on the dashboard
    for title in ("Training steps per run", "Jobs entering each state", "Pipeline executions", "Newest job errors"):
        assert title in body


def test_job_role_reads_data_and_writes_checkpoints_cache_and_outputs_only(prod_template):
    (role_id,) = [k for k in resources_of_type(prod_template, "AWS::IAM::Role") if k.startswith("JobsJobRole")]
    policies = [p for p in resources_of_type(prod_template, "AWS::IAM::Policy").values() if p["Properties"]["Roles"] == [{"Ref": role_id}]]
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    granted = {}
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for resource in resources:
            granted.setdefault(json.dumps(resource, sort_keys=True), set()).update(actions)
    by_prefix = {k.split('"/')[-1].split('"')[0]: v for k, v in granted.items() if '"/' in k}
    assert by_prefix["datasets/*"] == {"s3:GetObject"}
    assert by_prefix["checkpoints/*"] == {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}
    assert by_prefix["neuron-cache/*"] == {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}
    assert by_prefix["outputs/*"] == {"s3:PutObject", "s3:AbortMultipartUpload"}
    all_actions = set().union(*granted.values())
    assert not any(a.endswith("*") for a in all_actions) and "s3:DeleteObject" not in all_actions


def _definition_text(template):
    machine = one(template, "AWS::StepFunctions::StateMachine")
    parts = machine["DefinitionString"]["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else json.dumps(json.dumps(p))[1:-1] for p in parts)


def test_pipeline_runs_four_batch_sync_jobs_under_the_share_and_fails_with_the_reason(prod_template):
    machine = one(prod_template, "AWS::StepFunctions::StateMachine")
    text = _definition_text(prod_template)
    assert text.count(":states:::batch:submitJob.sync") == 4
    assert all(json.loads(text)["States"][n]["Parameters"]["ShareIdentifier"] == "training"
               for n in ("Compile", "Train", "Evaluate", "BatchInference"))
    order = [text.index(f'"{name}":{{') for name in ("Compile", "Train", "Evaluate", "BatchInference")]
    assert order == sorted(order)
    # A failed job ends the execution with Batch's cause text, never parsed as JSON (it can be large).
    assert "StringToJson" not in text
    assert '"Type":"Fail","Error":"BatchJobFailed","CausePath":"$.failure.Cause"' in text
    states = json.loads(text)["States"]
    for name in ("Compile", "Train", "Evaluate", "BatchInference"):
        parameters = states[name]["Parameters"]
        # '.' is valid in an execution name but not in a Batch job name: the name is hashed.
        assert parameters["JobName.$"] == f"States.Format('{name}-{{}}', States.Hash($$.Execution.Name, 'MD5'))"
        assert parameters["Tags"] == {"RunId.$": "$$.Execution.Name", "ShareIdentifier": "training", "PipelineStep": name}
        (retry,) = states[name]["Retry"]
        assert "Batch.ThrottlingException" in retry["ErrorEquals"] and "Batch.ServerException" in retry["ErrorEquals"]
    # Default timeout: the worst case, 3 attempts x (6 + 48 + 6 + 6) h = 198 h.
    assert machine["DefinitionString"]["Fn::Join"][1][0].startswith('{"StartAt":"Compile","States"')
    assert '"TimeoutSeconds":712800' in text
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["Level"] == "ALL"


def test_pipeline_may_submit_only_under_its_share_to_this_queue(prod_template):
    submits = [s for s in policy_statements(prod_template) if s["Action"] == "batch:SubmitJob"]
    (statement,) = submits
    assert statement["Condition"] == {"StringEquals": {"batch:ShareIdentifier": "training"}}
    assert len(statement["Resource"]) == 6  # the two queues and the four job definitions


def test_an_isolated_vpc_is_private_in_one_az_with_endpoints_and_flow_logs(dev_template):
    subnets = [r["Properties"] for r in resources_of_type(dev_template, "AWS::EC2::Subnet").values()]
    assert len(subnets) == 1 and subnets[0]["MapPublicIpOnLaunch"] is False
    assert not resources_of_type(dev_template, "AWS::EC2::NatGateway")
    assert not resources_of_type(dev_template, "AWS::EC2::InternetGateway")
    endpoints = [r["Properties"]["ServiceName"] for r in resources_of_type(dev_template, "AWS::EC2::VPCEndpoint").values()]
    names = json.dumps(endpoints)
    for service in ("ecr.api", "ecr.dkr", ".logs", ".ecs\"", "ecs-agent", "ecs-telemetry", ".sts", ".s3", ".monitoring", ".ec2\""):
        assert service in names, service
    assert one(dev_template, "AWS::EC2::FlowLog")["TrafficType"] == "ALL"


def test_nat_gateway_egress_and_a_fixed_az(custom_template):
    template = custom_template
    assert len(resources_of_type(template, "AWS::EC2::NatGateway")) == 1
    # Only the S3 gateway endpoint (free): checkpoints and image layers stay off the NAT's per-GB charge.
    (endpoint,) = [r["Properties"] for r in resources_of_type(template, "AWS::EC2::VPCEndpoint").values()]
    assert endpoint["VpcEndpointType"] == "Gateway" and ".s3" in json.dumps(endpoint["ServiceName"])
    assert one(template, "AWS::EC2::FlowLog")["TrafficType"] == "ALL"
    azs = {r["Properties"]["AvailabilityZone"] for r in resources_of_type(template, "AWS::EC2::Subnet").values()}
    assert azs == {"us-west-2d"}


def test_existing_vpc_is_imported_without_lookups(existing_vpc_assembly):
    template = existing_vpc_assembly.get_stack_by_name("MlAccel-prod-Training").template
    assert not resources_of_type(template, "AWS::EC2::VPC")
    multi, _ = compute_environments(template)
    assert multi["ComputeResources"]["Subnets"] == ["subnet-0123456789abcdef0"]
    groups = [r["Properties"] for r in resources_of_type(template, "AWS::EC2::SecurityGroup").values()]
    assert {g["VpcId"] for g in groups} == {"vpc-0123456789abcdef0"}
    # the imported VPC's default group gets the node container rules
    ingress = [r["Properties"] for r in resources_of_type(template, "AWS::EC2::SecurityGroupIngress").values()]
    (node_rule,) = [r for r in ingress if r["GroupId"] == "sg-0123456789abcdef0"]
    assert (node_rule["SourceSecurityGroupId"], node_rule["IpProtocol"], node_rule["FromPort"], node_rule["ToPort"]) == (
        "sg-0123456789abcdef0", "tcp", 0, 65535)


def test_an_ecr_image_uri_grants_pull_on_that_repository_only(custom_template):
    template = custom_template
    _, node_range = training_container(template)
    assert "trainium-training:1" in json.dumps(node_range["Container"]["Image"])
    pulls = [s for s in policy_statements(template) if "ecr:BatchGetImage" in s["Action"]]
    assert [s["Resource"] for s in pulls] == ["arn:aws:ecr:us-west-2:123456789012:repository/trainium-training"]


def test_default_image_is_built_from_the_current_profile_with_the_runtime_inside(platform_synth, prod_template):
    _, node_range = training_container(prod_template)
    assert "container-assets" in json.dumps(node_range["Container"]["Image"])
    _, assembly = platform_synth("prod")
    manifest = json.loads((Path(assembly.directory) / "MlAccel-prod-Training.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    current = load_profile("training", "current")
    assert image["source"]["dockerBuildArgs"] == {"BASE_IMAGE": current.settings["base_image"]}
    assert image["source"]["platform"] == "linux/amd64"  # trn1 hosts, whatever machine builds it
    staged = Path(assembly.directory) / image["source"]["directory"]
    # The build context is the profile folder with the runtime copied in (not a dangling link).
    assert (staged / "Dockerfile").read_text() == current.dockerfile.read_text()
    assert (staged / "requirements.lock").read_text() == current.lock_file.read_text()
    assert (staged / "trainium_runtime" / "entrypoint.py").is_file()
    assert not (staged / "trainium_runtime").is_symlink()
    assert not (staged / "profile.toml").exists()
    # Current is supported: no end-of-life warning.
    assert not [m for m in assembly.get_stack_by_name("MlAccel-prod-Training").messages
                if "end-of-life" in str(m.entry.data)]


@pytest.fixture(scope="module")
def existing_vpc_assembly(platform_synth):
    _, assembly = platform_synth(
        "prod",
        training__existing_vpc='{"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0123456789abcdef0"], '
        '"default_security_group_id": "sg-0123456789abcdef0"}',
        training__availability_zone="us-west-2d",
    )
    return assembly


@pytest.mark.parametrize("variant", ["dev", "custom", "existing_vpc"])
def test_cfn_lint_finds_nothing_in_the_variants_the_cli_test_does_not_synthesize(request, platform_synth, variant):
    from cfnlint.api import ManualArgs, lint_file

    from tests.cfn_lint_policy import IGNORED_RULES, LINT_REGIONS

    if variant == "dev":
        _, assembly = platform_synth("dev", **DEV_TRAINING)
    elif variant == "custom":
        _, assembly = platform_synth("prod", **CUSTOM)
    else:
        assembly = request.getfixturevalue("existing_vpc_assembly")
    stack = next(s for s in assembly.stacks if s.stack_name.endswith("-Training"))
    # W3010 (hard-coded AZ) is the point of training.availability_zone: trn1 capacity exists in
    # some AZs only, and a cluster placement group with EFA needs exactly one. Not ignored elsewhere.
    ignored = set(IGNORED_RULES) | {"W3010"}
    config = ManualArgs(regions=LINT_REGIONS, ignore_checks=sorted(ignored))
    assert [str(m) for m in lint_file(Path(assembly.directory) / stack.template_file, config=config)] == []
