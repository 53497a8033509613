"""RealtimeEndpoint and MultiModelEndpoint as users see them in a synthesized template."""
from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Annotations, Match, Template

from ml_constructs.sagemaker import (
    ContainerImage,
    EndpointAlarms,
    EndpointOptions,
    InvocationScaling,
    ModelData,
    MultiModelEndpoint,
    VariantSettings,
)
from tests.helpers import log_groups_granted, new_checked_app, resources_of_type
from tests.sagemaker_fixtures import bare_stack, realtime, weights_location


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    app = new_checked_app(tmp_path_factory.mktemp("sm"))
    stack = bare_stack(app)
    endpoints = {
        "default": realtime(
            stack, "Default", tensor_parallel_degree=4, environment={"B": "2", "A": "1"},
            options=EndpointOptions(autoscaling=InvocationScaling(min_capacity=1, max_capacity=3, max_rps_per_instance=2.5)),
        ),
        "uncompressed": realtime(
            stack, "Uncompressed", instance_type="ml.inf2.xlarge", volume_size_gb=100,
            model_data=ModelData.from_s3_prefix(weights_location(stack, "weights/bloom/")),
            model_data_download_timeout_seconds=2400, container_startup_health_check_timeout_seconds=600,
            options=EndpointOptions(
                volume_kms_key=kms.Key(stack, "VolumeKey", enable_key_rotation=True),
                alarms=EndpointAlarms(model_latency_p99_ms=2500, cpu_percent=80),
            ),
        ),
        "mme": MultiModelEndpoint(
            stack, "Mme", image=ContainerImage.deep_learning_container("djl-inference", "0.23.0-cpu-full"),
            model_data=ModelData.multi_model_prefix(weights_location(stack, "multi-model/")),
            variant=VariantSettings(instance_type="ml.c5d.18xlarge", initial_instance_count=20),
            model_cache=False,
        ),
    }
    caller = iam.Role(stack, "Caller", assumed_by=iam.AccountRootPrincipal())
    endpoints["default"].grant_invoke(caller)
    template = Template.from_stack(stack)  # raises on any unacknowledged cdk-nag finding
    return stack, endpoints, template, template.to_json()


def statements_of(template_json, role_logical_id):
    policies = [
        p for p in resources_of_type(template_json, "AWS::IAM::Policy").values()
        if {"Ref": role_logical_id} in p["Properties"]["Roles"]
    ]
    return [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]


def test_image_comes_from_the_regional_dlc_account_mapping(built):
    stack, endpoints, template, tj = built
    model = tj["Resources"][stack.get_logical_id(endpoints["default"].model)]
    image = model["Properties"]["PrimaryContainer"]["Image"]
    assert image["Fn::Join"][1][0] == {"Fn::FindInMap": ["DlcRegistryAccountMap", {"Ref": "AWS::Region"}, "account"]}
    assert image["Fn::Join"][1][-1] == "/djl-inference:0.29.0-lmi11.0.0-cu124"
    accounts = {region: row["account"] for region, row in tj["Mappings"]["DlcRegistryAccountMap"].items()}
    assert accounts["us-east-1"] == "763104351884" and accounts["cn-north-1"] == "727897471807"
    # Commercial regions aws-cdk-lib's region facts lack (AWS's published accounts).
    assert accounts["af-south-1"] == "626614931356" and accounts["il-central-1"] == "780543022126"
    assert {"ap-northeast-3", "ap-southeast-5", "ap-southeast-7", "ca-west-1", "mx-central-1"} <= set(accounts)
    # Elsewhere the deploy stops at a rule with a message instead of a FindInMap error.
    rule = tj["Rules"]["DlcRegistryInThisRegion"]["Assertions"][0]
    assert rule["Assert"] == {"Fn::Contains": [sorted(accounts), {"Ref": "AWS::Region"}]}
    assert "no registry in this region" in rule["AssertDescription"]
    tag_rule = tj["Rules"]["DlcImageInThisRegionDjlInference0290Lmi1100Cu124"]["Assertions"][0]
    assert "me-central-1" in tag_rule["Assert"]["Fn::Contains"][0]
    assert "mx-central-1" not in tag_rule["Assert"]["Fn::Contains"][0]  # the LMI 0.29 tag is not published there


@pytest.mark.parametrize(("region", "account"), [("af-south-1", "626614931356"), ("mx-central-1", "637423239942")])
def test_regions_the_cdk_facts_lack_get_their_registry_account(region, account):
    stack = bare_stack(env=cdk.Environment(account="123456789012", region=region))
    image = ContainerImage.deep_learning_container("djl-inference", "0.23.0-cpu-full").bind(stack)
    assert stack.resolve(image.image_uri)["Fn::Join"][1][0] == f"{account}.dkr.ecr.{region}."


def test_a_pinned_region_without_the_image_tag_fails_synth():
    stack = bare_stack(env=cdk.Environment(account="123456789012", region="af-south-1"))
    with pytest.raises(ValueError, match=r"image_tag: djl-inference:0.24.0-neuronx-sdk2.14.1 is not published in "
                       r"af-south-1; regions that have it: ap-northeast-1, "):
        ContainerImage.deep_learning_container("djl-inference", "0.24.0-neuronx-sdk2.14.1").bind(stack)


def test_pinned_region_gets_the_literal_account_and_ecr_images_their_repository(tmp_path):
    stack = bare_stack(env=cdk.Environment(account="123456789012", region="eu-west-1"))
    dlc = realtime(stack, "Dlc")
    repo = ecr.Repository.from_repository_name(stack, "Repo", "my-server")
    own = realtime(stack, "Own", image=ContainerImage.from_ecr_repository(repo, "v1"))
    assert stack.resolve(dlc.image_uri) == {"Fn::Join": ["", [
        "763104351884.dkr.ecr.eu-west-1.", {"Ref": "AWS::URLSuffix"}, "/djl-inference:0.29.0-lmi11.0.0-cu124"]]}
    assert "my-server:v1" in str(stack.resolve(own.image_uri))
    tj = Template.from_stack(stack).to_json()
    pulls = [s for s in statements_of(tj, stack.get_logical_id(own.role.node.default_child))
             if s["Action"] == ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]]
    assert pulls and "repository/my-server" in str(pulls[0]["Resource"])


def test_default_role_is_least_privilege(built):
    stack, endpoints, template, tj = built
    role = endpoints["default"].role
    statements = statements_of(tj, stack.get_logical_id(role.node.default_child))
    actions = sorted(a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))
    assert actions == sorted([
        "cloudwatch:DescribeAlarms", "cloudwatch:PutMetricData", "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
        "ecr:GetAuthorizationToken", "ecr:GetDownloadUrlForLayer", "logs:CreateLogGroup", "logs:CreateLogStream",
        "logs:DescribeLogStreams", "logs:PutLogEvents", "s3:GetObject",
    ])
    by_action = {a: s for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    # s3:GetObject on the one package object, not on the asset bucket.
    assert by_action["s3:GetObject"]["Resource"]["Fn::Join"][1][-1].endswith(".gz")
    assert by_action["cloudwatch:PutMetricData"]["Condition"] == {
        "StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "AWS/SageMaker*"]}
    }
    assert "repository/djl-inference" in str(by_action["ecr:BatchGetImage"]["Resource"])
    # DescribeAlarms (SageMaker reads the rollback alarms with this role) on those two alarms only.
    alarms = endpoints["default"].alarms
    names = {tj["Resources"][stack.get_logical_id(alarms[n].node.default_child)]["Properties"]["AlarmName"]
             for n in ("Errors5xx", "ModelLatencyP99")}
    described = {r["Fn::Join"][1][-1].split(":alarm:")[1] for r in by_action["cloudwatch:DescribeAlarms"]["Resource"]}
    assert described == names
    # Logs: the endpoint's own group only, which the stack creates before the endpoint.
    endpoint_name = tj["Resources"][stack.get_logical_id(endpoints["default"].endpoint)]["Properties"]["EndpointName"]
    assert log_groups_granted(tj, by_action["logs:PutLogEvents"]) == [f"/aws/sagemaker/Endpoints/{endpoint_name}"]
    trust = tj["Resources"][stack.get_logical_id(role.node.default_child)]["Properties"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert not any("ManagedPolicyArns" in r["Properties"] for r in resources_of_type(tj, "AWS::IAM::Role").values())


def test_model_waits_for_its_role_policy(built):
    stack, endpoints, template, tj = built
    for endpoint in endpoints.values():
        model = tj["Resources"][stack.get_logical_id(endpoint.model)]
        policy = stack.get_logical_id(endpoint.role.node.find_child("DefaultPolicy").node.default_child)
        assert policy in model["DependsOn"]


def test_environment_and_tarball_model_data(built):
    stack, endpoints, template, tj = built
    container = tj["Resources"][stack.get_logical_id(endpoints["default"].model)]["Properties"]["PrimaryContainer"]
    assert list(container["Environment"].items()) == [("A", "1"), ("B", "2")]
    assert container["ModelDataUrl"]["Fn::Sub"].endswith(".gz")
    assert "ModelDataSource" not in container and "Mode" not in container


def test_uncompressed_model_data_uses_model_data_source(built):
    stack, endpoints, template, tj = built
    container = tj["Resources"][stack.get_logical_id(endpoints["uncompressed"].model)]["Properties"]["PrimaryContainer"]
    assert "ModelDataUrl" not in container
    assert container["ModelDataSource"] == {
        "S3DataSource": {"S3Uri": "s3://models-bucket/weights/bloom/", "S3DataType": "S3Prefix", "CompressionType": "None"}
    }
    statements = statements_of(tj, stack.get_logical_id(endpoints["uncompressed"].role.node.default_child))
    reads = [s for s in statements if s["Action"] == "s3:GetObject"]
    assert reads and "weights/bloom/*" in str(reads[0]["Resource"])
    listing = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing[0]["Condition"] == {"StringLike": {"s3:prefix": ["weights/bloom/*"]}}


def test_endpoint_config_carries_variant_settings_and_key(built):
    stack, endpoints, template, tj = built
    config = tj["Resources"][stack.get_logical_id(endpoints["uncompressed"].endpoint_config)]["Properties"]
    assert config["KmsKeyId"] == {"Fn::GetAtt": [stack.get_logical_id(stack.node.find_child("VolumeKey").node.default_child), "Arn"]}
    variant = config["ProductionVariants"][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"], variant["VolumeSizeInGB"]) == ("ml.inf2.xlarge", 1, 100)
    assert variant["ModelDataDownloadTimeoutInSeconds"] == 2400
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 600
    statements = statements_of(tj, stack.get_logical_id(endpoints["uncompressed"].role.node.default_child))
    grant = [s for s in statements if s["Action"] == "kms:CreateGrant"]
    assert grant[0]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_unset_variant_settings_are_left_to_sagemaker(built):
    stack, endpoints, template, tj = built
    variant = tj["Resources"][stack.get_logical_id(endpoints["default"].endpoint_config)]["Properties"]["ProductionVariants"][0]
    assert set(variant) == {"InitialInstanceCount", "InitialVariantWeight", "InstanceType", "ModelName", "VariantName"}


def test_autoscaling_tracks_invocations_per_instance_with_the_documented_target(built):
    stack, endpoints, template, tj = built
    assert InvocationScaling(min_capacity=1, max_capacity=3, max_rps_per_instance=2.5).target_invocations_per_instance == 75.0
    template.has_resource_properties("AWS::ApplicationAutoScaling::ScalableTarget", {
        "MinCapacity": 1, "MaxCapacity": 3, "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "ServiceNamespace": "sagemaker",
        "ResourceId": {"Fn::Join": ["", ["endpoint/", {"Fn::GetAtt": [stack.get_logical_id(endpoints["default"].endpoint), "EndpointName"]}, "/variant/AllTraffic"]]},
        "RoleARN": Match.object_like({"Fn::Join": ["", Match.array_with([Match.string_like_regexp("AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint")])]}),
    })
    template.has_resource_properties("AWS::ApplicationAutoScaling::ScalingPolicy", {
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "TargetValue": 75, "ScaleInCooldown": 300, "ScaleOutCooldown": 300, "DisableScaleIn": False,
        },
    })
    assert len(resources_of_type(tj, "AWS::ApplicationAutoScaling::ScalableTarget")) == 1  # only where asked


def alarms_of(tj, stack, endpoint):
    prefix = stack.get_logical_id(endpoint.endpoint)
    return {
        a["Properties"]["MetricName"]: a["Properties"] for a in resources_of_type(tj, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [prefix, "EndpointName"]}
    }


def test_alarms_follow_what_the_instance_reports(built):
    stack, endpoints, template, tj = built
    gpu = alarms_of(tj, stack, endpoints["default"])  # ml.g5.12xlarge: 48 vCPUs, 4 GPUs
    assert set(gpu) == {"Invocation5XXErrors", "ModelLatency", "CPUUtilization", "MemoryUtilization",
                        "DiskUtilization", "GPUUtilization", "GPUMemoryUtilization"}
    assert gpu["CPUUtilization"]["Threshold"] == 90 * 48
    assert gpu["GPUUtilization"]["Threshold"] == 95 * 4
    assert gpu["ModelLatency"]["ExtendedStatistic"] == "p99" and gpu["ModelLatency"]["Threshold"] == 1_000_000
    assert gpu["Invocation5XXErrors"]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    neuron = alarms_of(tj, stack, endpoints["uncompressed"])  # ml.inf2.xlarge: no GPU metrics
    assert "GPUUtilization" not in neuron
    assert neuron["ModelLatency"]["Threshold"] == 2_500_000  # microseconds
    assert neuron["CPUUtilization"]["Threshold"] == 80 * 4
    assert neuron["MemoryUtilization"]["Namespace"] == "/aws/sagemaker/Endpoints"


def test_grant_invoke_is_scoped_to_the_endpoint(built):
    stack, endpoints, template, tj = built
    caller = stack.node.find_child("Caller")
    statements = statements_of(tj, stack.get_logical_id(caller.node.default_child))
    assert statements == [{"Action": "sagemaker:InvokeEndpoint", "Effect": "Allow",
                           "Resource": {"Ref": stack.get_logical_id(endpoints["default"].endpoint)}}]


def test_metric_helpers_name_the_endpoint_and_variant(built):
    stack, endpoints, template, tj = built
    endpoint = endpoints["default"]
    metric = endpoint.metric_model_latency()
    assert (metric.metric_name, metric.namespace, metric.statistic) == ("ModelLatency", "AWS/SageMaker", "p99")
    assert stack.resolve(metric.dimensions) == {
        "EndpointName": {"Fn::GetAtt": [stack.get_logical_id(endpoint.endpoint), "EndpointName"]}, "VariantName": "AllTraffic"
    }
    assert endpoint.metric_invocations_per_instance().period.to_seconds() == 60
    assert endpoint.metric_gpu_utilization().namespace == "/aws/sagemaker/Endpoints"
    mme = endpoints["mme"]
    assert mme.metric_model_cache_hit().metric_name == "ModelCacheHit"
    assert mme.metric_model_loading_wait_time().metric_name == "ModelLoadingWaitTime"
    assert mme.metric_loaded_model_count().namespace == "/aws/sagemaker/Endpoints"


def test_endpoint_name_is_an_output(built):
    stack, endpoints, template, tj = built
    outputs = [o for o in tj["Outputs"].values() if o["Value"] == {"Fn::GetAtt": [stack.get_logical_id(endpoints["default"].endpoint), "EndpointName"]}]
    assert len(outputs) == 1


def test_multi_model_endpoint(built):
    stack, endpoints, template, tj = built
    mme = endpoints["mme"]
    container = tj["Resources"][stack.get_logical_id(mme.model)]["Properties"]["PrimaryContainer"]
    assert container["Mode"] == "MultiModel"
    assert container["ModelDataUrl"] == "s3://models-bucket/multi-model/"
    assert container["MultiModelConfig"] == {"ModelCacheSetting": "Disabled"}
    variant = tj["Resources"][stack.get_logical_id(mme.endpoint_config)]["Properties"]["ProductionVariants"][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5d.18xlarge", 20)
    statements = statements_of(tj, stack.get_logical_id(mme.role.node.default_child))
    assert [s["Resource"] for s in statements if s["Action"] == "s3:GetObject"] == [
        {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::models-bucket/multi-model/*"]]}
    ]


def test_end_of_life_images_warn_with_the_alternative():
    stack = bare_stack()
    realtime(stack, "Old", image=ContainerImage.deep_learning_container("djl-inference", "0.19.0-deepspeed0.7.3-cu113"))
    realtime(stack, "Neuron", instance_type="ml.inf2.xlarge",
             image=ContainerImage.deep_learning_container("djl-inference", "0.24.0-neuronx-sdk2.14.1"))
    realtime(stack, "Current")
    annotations = Annotations.from_stack(stack)
    annotations.has_warning("/Test/Old", Match.string_like_regexp("end-of-life.*LMI vLLM image"))
    annotations.has_warning("/Test/Neuron", Match.string_like_regexp("0.30.0-neuronx-sdk2.20.1.*pytorch-inference-neuronx"))
    annotations.has_no_warning("/Test/Current", Match.any_value())


def test_a_given_role_is_used_as_is():
    stack = bare_stack()
    role = iam.Role.from_role_arn(stack, "Given", "arn:aws:iam::123456789012:role/serving", mutable=False)
    endpoint = realtime(stack, options=EndpointOptions(role=role))
    assert endpoint.role is role
    tj = Template.from_stack(stack).to_json()
    assert resources_of_type(tj, "AWS::IAM::Role") == {}
    model = tj["Resources"][stack.get_logical_id(endpoint.model)]
    assert model["Properties"]["ExecutionRoleArn"] == "arn:aws:iam::123456789012:role/serving"


def test_named_endpoint_scopes_its_logs_and_network_isolation_is_optional():
    stack = bare_stack(new_checked_app())
    endpoint = realtime(stack, options=EndpointOptions(endpoint_name="sd-prod", network_isolation=True))
    tj = Template.from_stack(stack).to_json()
    assert tj["Resources"][stack.get_logical_id(endpoint.endpoint)]["Properties"]["EndpointName"] == "sd-prod"
    assert tj["Resources"][stack.get_logical_id(endpoint.model)]["Properties"]["EnableNetworkIsolation"] is True
    logs = [s for s in statements_of(tj, stack.get_logical_id(endpoint.role.node.default_child))
            if "logs:PutLogEvents" in s["Action"]]
    assert log_groups_granted(tj, logs[0]) == ["/aws/sagemaker/Endpoints/sd-prod"]


def test_s3_object_and_literal_url_model_data_are_read_where_they_point():
    stack = bare_stack(new_checked_app())
    location = weights_location(stack, "packages/")
    from_location = realtime(stack, "FromLocation", model_data=ModelData.from_s3_object(location, "opt/model.tar.gz"))
    from_url = realtime(stack, "FromUrl", model_data=ModelData.from_s3_url("s3://other-bucket/opt/model.tar.gz"))
    raw = realtime(stack, "Raw", model_data=ModelData.from_s3_url("s3://other-bucket/raw/", uncompressed=True))
    tj = Template.from_stack(stack).to_json()
    for endpoint, url, resource in [
        (from_location, "s3://models-bucket/packages/opt/model.tar.gz", ":s3:::models-bucket/packages/opt/model.tar.gz"),
        (from_url, "s3://other-bucket/opt/model.tar.gz", ":s3:::other-bucket/opt/model.tar.gz"),
    ]:
        container = tj["Resources"][stack.get_logical_id(endpoint.model)]["Properties"]["PrimaryContainer"]
        assert container["ModelDataUrl"] == url
        reads = [s for s in statements_of(tj, stack.get_logical_id(endpoint.role.node.default_child))
                 if s["Action"] == "s3:GetObject"]
        assert reads[0]["Resource"] == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, resource]]}
    container = tj["Resources"][stack.get_logical_id(raw.model)]["Properties"]["PrimaryContainer"]
    assert container["ModelDataSource"]["S3DataSource"]["S3Uri"] == "s3://other-bucket/raw/"
    listing = [s for s in statements_of(tj, stack.get_logical_id(raw.role.node.default_child)) if s["Action"] == "s3:ListBucket"]
    assert listing[0]["Condition"] == {"StringLike": {"s3:prefix": ["raw/*"]}}


def test_multi_model_cache_alarms_and_dashboard_are_optional():
    from ml_constructs.sagemaker.multi_model_endpoint import CacheAlarms

    def mme(stack, name, **kwargs):
        return MultiModelEndpoint(
            stack, name, image=ContainerImage.deep_learning_container("djl-inference", "0.36.0-cpu-full"),
            model_data=ModelData.multi_model_prefix(weights_location(stack, f"{name}/")),
            variant=VariantSettings(instance_type="ml.m5.large", initial_instance_count=1), **kwargs,
        )

    stack = bare_stack()
    default = mme(stack, "Default", cache_alarms=CacheAlarms(cache_hit_min=0.8, loading_wait_p99_ms=2000))
    bare = mme(stack, "Bare", cache_alarms=None, dashboard=False)
    silent = mme(stack, "Silent", options=EndpointOptions(alarms=None))
    tj = Template.from_stack(stack).to_json()

    def alarm(endpoint, name):
        return tj["Resources"][stack.get_logical_id(endpoint.alarms[name].node.default_child)]["Properties"]

    assert {"ModelCacheHitLow", "ModelLoadingWaitP99", "ModelDownloadingP99", "Errors5xx"} <= set(default.alarms)
    hit, wait = alarm(default, "ModelCacheHitLow"), alarm(default, "ModelLoadingWaitP99")
    assert (hit["MetricName"], hit["Threshold"], hit["ComparisonOperator"]) == ("ModelCacheHit", 0.8, "LessThanThreshold")
    assert (wait["MetricName"], wait["Threshold"]) == ("ModelLoadingWaitTime", 2000 * 1000)  # microseconds
    assert not {"ModelCacheHitLow", "ModelLoadingWaitP99"} & set(bare.alarms) and bare.dashboard is None
    assert silent.alarms == {}  # no endpoint alarms asked for: no cache alarms either
    dashboards = resources_of_type(tj, "AWS::CloudWatch::Dashboard")
    assert set(dashboards) == {stack.get_logical_id(e.dashboard.node.default_child) for e in (default, silent)}


def test_an_image_asset_is_pulled_from_its_own_repository_only(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    stack = bare_stack()
    mme = MultiModelEndpoint(
        stack, "Built", image=ContainerImage.from_asset(str(tmp_path), build_args={"BASE_IMAGE": "x:1"}),
        model_data=ModelData.multi_model_prefix(weights_location(stack, "m/")),
        variant=VariantSettings(instance_type="ml.m5.large", initial_instance_count=1),
    )
    tj = Template.from_stack(stack).to_json()
    image = tj["Resources"][stack.get_logical_id(mme.model)]["Properties"]["PrimaryContainer"]["Image"]
    assert "container-assets" in image["Fn::Sub"]
    pulls = [s for s in statements_of(tj, stack.get_logical_id(mme.role.node.default_child))
             if "ecr:BatchGetImage" in s["Action"]]
    assert len(pulls) == 1 and "container-assets" in str(pulls[0]["Resource"])
