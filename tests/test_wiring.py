"""What each environment deploys: the synthesized result of every setting that matters to
data safety, cost or correctness, asserted on the templates of each environment.

The construct tests show what a construct does with its props; these show that the
platform hands it the configured values. A stack that dropped ``retain_data`` in prod,
ignored ``disable_scale_in``, or left the model revision out of the compile hash would
still pass the construct tests, and fails here.

Two kinds of assertions: a fixed table of what each shipped environment must be
(prod keeps its data and encrypts with KMS; dev does neither), and for every other
setting, the template value against the environment's configuration value.
"""
from __future__ import annotations

from typing import Any

import pytest

from config import known_environments
from config.hosting import resolve_component
from tests.helpers import platform_key_reference, resources_of_type

ENVIRONMENTS = known_environments()

# What a user of each shipped environment counts on, whatever the configuration code says.
# kms_key: the platform key that encrypts the data buckets; the alarm topic is always encrypted with a
# customer managed key (CloudWatch cannot use the AWS managed SNS key): the platform key where there is one,
# else a key of its own. sd_hosting: dev's Stable Diffusion idles at zero instances (inference components).
# sd_weights: prod compiles weights staged under a pinned prefix, never whatever the hub serves that day.
PROMISES = {
    "prod": {"removal": "Retain", "bucket_encryption": "aws:kms", "kms_key": True, "alerts_key": "platform",
             "stacks": 5, "sd_runtime": "current", "sd_hosting": "instances", "sd_weights": "staged"},
    "dev": {"removal": "Delete", "bucket_encryption": "AES256", "kms_key": False, "alerts_key": "own",
            "stacks": 3, "sd_runtime": "current", "sd_hosting": "inference-components", "sd_weights": "hub"},
}
DATA_BUCKETS = ("Models", "CompileCache", "Training")


def test_every_environment_has_its_promises_listed():
    assert sorted(PROMISES) == ENVIRONMENTS


def template(assembly, cfg, component: str) -> dict[str, Any]:
    return assembly.get_stack_by_name(f"{cfg.stack_prefix}-{cfg.environment}-{component}").template


def one(template_: dict[str, Any], resource_type: str, contains: str = "") -> dict[str, Any]:
    found = [r for k, r in resources_of_type(template_, resource_type).items() if contains in k]
    assert len(found) == 1, f"{len(found)} {resource_type} matching {contains!r}"
    return found[0]


def bucket(storage: dict[str, Any], name: str) -> dict[str, Any]:
    return one(storage, "AWS::S3::Bucket", f"Artifacts{name}")


def platform_keys(storage: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The key of the artifact storage (storage.encryption = "kms"), not the alarm topic's own key."""
    return {k: v for k, v in resources_of_type(storage, "AWS::KMS::Key").items() if k.startswith("Artifacts")}


def lifecycle(b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["Id"]: rule for rule in b["Properties"]["LifecycleConfiguration"]["Rules"]}


@pytest.fixture(params=ENVIRONMENTS)
def deployed(request, platform_synth):
    cfg, assembly = platform_synth(request.param)
    return request.param, cfg, assembly


# ---------------------------------------------------------------- storage: retention and encryption


def test_buckets_and_key_survive_stack_deletion_exactly_where_promised(deployed):
    env, cfg, assembly = deployed
    storage = template(assembly, cfg, "Storage")
    expected = PROMISES[env]["removal"]
    assert cfg.retain_data is (expected == "Retain")
    kept = [*resources_of_type(storage, "AWS::S3::Bucket").values(), *resources_of_type(storage, "AWS::KMS::Key").values()]
    # models, compile cache, training, access logs, and one key: the platform key (which also encrypts
    # the alarm topic) or, without one, the alarm topic's own key.
    assert len(kept) == 4 + 1
    for resource in kept:
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == (expected, expected)


def test_data_buckets_are_encrypted_as_configured(deployed):
    env, cfg, assembly = deployed
    storage = template(assembly, cfg, "Storage")
    keys = platform_keys(storage)
    assert bool(keys) is PROMISES[env]["kms_key"] is (cfg.storage.encryption == "kms")
    for name in DATA_BUCKETS:
        [rule] = bucket(storage, name)["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        default = rule["ServerSideEncryptionByDefault"]
        assert default["SSEAlgorithm"] == PROMISES[env]["bucket_encryption"]
        if keys:
            assert default["KMSMasterKeyID"] == {"Fn::GetAtt": [next(iter(keys)), "Arn"]}
            assert rule["BucketKeyEnabled"] is True
    for key in resources_of_type(storage, "AWS::KMS::Key").values():
        assert key["Properties"]["EnableKeyRotation"] is True


def test_the_alarm_topic_is_encrypted_with_the_promised_key(deployed):
    env, cfg, assembly = deployed
    storage = template(assembly, cfg, "Storage")
    all_keys, data_keys = resources_of_type(storage, "AWS::KMS::Key"), platform_keys(storage)
    topic = one(storage, "AWS::SNS::Topic", "Alerts")["Properties"]
    [topic_key] = [k for k in all_keys if topic["KmsMasterKeyId"] == {"Fn::GetAtt": [k, "Arn"]}]
    assert ("platform" if topic_key in data_keys else "own") == PROMISES[env]["alerts_key"]
    assert set(all_keys) == {*data_keys, topic_key}  # no other key to pay for


def test_every_bucket_refuses_plain_http(deployed):
    _, cfg, assembly = deployed
    storage = template(assembly, cfg, "Storage")
    policies = resources_of_type(storage, "AWS::S3::BucketPolicy").values()
    assert len(policies) == len(resources_of_type(storage, "AWS::S3::Bucket"))
    for policy in policies:
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in statements)


def test_lifecycle_rules_carry_the_configured_days(deployed):
    _, cfg, assembly = deployed
    storage, days = template(assembly, cfg, "Storage"), cfg.storage
    for name in ("Models", "Training"):
        rules = lifecycle(bucket(storage, name))
        assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == (
            days.noncurrent_version_expiration_days)
    cache = lifecycle(bucket(storage, "CompileCache"))["ExpireOldCacheEntries"]
    assert (cache["ExpirationInDays"], cache["Prefix"]) == (days.compile_cache_expiration_days, "neuron-cache/")
    assert lifecycle(bucket(storage, "AccessLogs"))["ExpireLogs"]["ExpirationInDays"] == days.access_logs_expiration_days
    for name in (*DATA_BUCKETS, "AccessLogs"):
        abort = lifecycle(bucket(storage, name))["AbortIncompleteMultipartUploads"]
        assert abort["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == (
            days.abort_incomplete_multipart_upload_days)


def test_each_environment_deploys_the_stacks_it_enables(deployed):
    env, cfg, assembly = deployed
    names = sorted(s.stack_name for s in assembly.stacks)
    assert len(names) == PROMISES[env]["stacks"]
    enabled = {"StableDiffusion": cfg.stable_diffusion.enabled, "MultiModel": cfg.multi_model.enabled,
               "Llm": cfg.llm.enabled, "Training": cfg.training.enabled}
    assert names == sorted(f"{cfg.stack_prefix}-{env}-{c}" for c in ["Storage", *[c for c, on in enabled.items() if on]])


# ---------------------------------------------------------------- endpoints: instances, capacity, scaling


def assert_variant(endpoint_config: dict[str, Any], section: Any, *, instance_type: str, count: int) -> None:
    [variant] = endpoint_config["Properties"]["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == (instance_type, count)
    assert variant.get("VolumeSizeInGB") == section.volume_size_gb
    assert variant.get("ModelDataDownloadTimeoutInSeconds") == section.model_data_download_timeout_seconds
    assert variant.get("ContainerStartupHealthCheckTimeoutInSeconds") == (
        section.container_startup_health_check_timeout_seconds)


def assert_scaling(stack: dict[str, Any], scaling: Any, count: int) -> None:
    targets = resources_of_type(stack, "AWS::ApplicationAutoScaling::ScalableTarget")
    if not scaling.enabled:
        assert targets == {}
        return
    [target] = targets.values()
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (
        scaling.min_capacity, scaling.max_capacity)
    assert scaling.min_capacity <= count <= scaling.max_capacity
    tracking = one(stack, "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"][
        "TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert tracking["TargetValue"] == pytest.approx(scaling.max_rps_per_instance * 60 * scaling.safety_factor)
    assert (tracking["ScaleInCooldown"], tracking["ScaleOutCooldown"]) == (
        scaling.scale_in_cooldown_seconds, scaling.scale_out_cooldown_seconds)
    # disable_scale_in is not a configuration key in every section yet; where it is, it must arrive.
    assert tracking["DisableScaleIn"] is getattr(scaling, "disable_scale_in", False)


def assert_components(stack: dict[str, Any], endpoint_config: dict[str, Any], section: Any) -> None:
    """Inference components: SageMaker manages the instances (to zero), a policy scales the model's copies."""
    hosting = section.hosting
    [variant] = endpoint_config["Properties"]["ProductionVariants"]
    assert "ModelName" not in variant  # the model is the component's, not the variant's
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == (
        section.instance_type, max(1, hosting.floor_instances))
    assert variant["ManagedInstanceScaling"] == {
        "Status": "ENABLED", "MinInstanceCount": hosting.floor_instances, "MaxInstanceCount": hosting.max_instances}
    assert variant["RoutingConfig"] == {"RoutingStrategy": hosting.routing}
    assert variant.get("VolumeSizeInGB") == section.volume_size_gb
    component = one(stack, "AWS::SageMaker::InferenceComponent")["Properties"]
    assert component["RuntimeConfig"]["CopyCount"] == hosting.copies
    startup = component["Specification"].get("StartupParameters", {})
    assert startup.get("ModelDataDownloadTimeoutInSeconds") == section.model_data_download_timeout_seconds
    assert startup.get("ContainerStartupHealthCheckTimeoutInSeconds") == (
        section.container_startup_health_check_timeout_seconds)
    # Only the copies scale: no variant autoscaling beside SageMaker's managed instance scaling.
    [target] = resources_of_type(stack, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    resolved = resolve_component(hosting, section.instance_type)
    assert (target["Properties"]["ScalableDimension"], target["Properties"]["MinCapacity"],
            target["Properties"]["MaxCapacity"]) == (
        "sagemaker:inference-component:DesiredCopyCount", hosting.min_copies, resolved.max_copies)
    policies = {p["Properties"]["PolicyType"]: p["Properties"]
                for p in resources_of_type(stack, "AWS::ApplicationAutoScaling::ScalingPolicy").values()}
    tracking = policies["TargetTrackingScaling"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == COPY_METRICS[hosting.scaling_metric]
    assert (tracking["TargetValue"], tracking["ScaleInCooldown"], tracking["ScaleOutCooldown"]) == (
        hosting.target_value, hosting.scale_in_cooldown_seconds, hosting.scale_out_cooldown_seconds)
    # Target tracking cannot leave zero copies: the step policy does, on the first request after idle.
    assert ("StepScaling" in policies) is (hosting.min_copies == 0)


COPY_METRICS = {"invocations-per-copy": "SageMakerInferenceComponentInvocationsPerCopy",
                "concurrent-requests-per-copy": "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"}


def test_stable_diffusion_endpoint_is_what_the_configuration_says(deployed):
    env, cfg, assembly = deployed
    sd = cfg.stable_diffusion
    assert sd.enabled, f"{env} serves Stable Diffusion"
    assert sd.hosting.mode == PROMISES[env]["sd_hosting"]
    stack = template(assembly, cfg, "StableDiffusion")
    endpoint_config = one(stack, "AWS::SageMaker::EndpointConfig")
    if sd.hosting.uses_components:
        assert_components(stack, endpoint_config, sd)
        assert (sd.hosting.floor_instances, sd.hosting.min_copies) == (0, 0)  # nothing runs while idle
    else:
        assert_variant(endpoint_config, sd, instance_type=sd.instance_type, count=sd.instance_count)
        assert_scaling(stack, sd.autoscaling, sd.instance_count)
    if cfg.storage.encryption == "kms":  # inf2 takes an endpoint-config key; prod's key encrypts the volume
        key = platform_key_reference(assembly, f"{cfg.stack_prefix}-{env}-Storage")
        assert endpoint_config["Properties"]["KmsKeyId"] == key
    else:
        assert "KmsKeyId" not in endpoint_config["Properties"]


def image_of(image: dict[str, Any]) -> str:
    """repository:tag of an image URI whose registry is a per-region lookup."""
    return image["Fn::Join"][1][-1].rsplit("/", 1)[1]


def test_stable_diffusion_compiles_the_configured_model_on_the_configured_host(deployed):
    env, cfg, assembly = deployed
    sd = cfg.stable_diffusion
    compile_ = sd.compile
    # runtime "current": the Hugging Face Neuron image; optimum-neuron exports and chooses its own flags.
    assert (sd.runtime, sd.mode) == (PROMISES[env]["sd_runtime"], "optimum-neuron")
    stack = template(assembly, cfg, "StableDiffusion")
    resource = one(stack, "Custom::NeuronCompilation")["Properties"]
    staged = compile_.weights_prefix is not None
    assert staged is (PROMISES[env]["sd_weights"] == "staged") is compile_.require_pinned_weights
    model_id = {"Fn::Join": ["", ["s3://", {"Fn::ImportValue": f"{cfg.stack_prefix}-{env}-Storage-ModelsBucketName"},
                                  f"/weights/{compile_.weights_prefix}"]]} if staged else compile_.model_id
    assert resource["Compile"] == {
        "ModelId": model_id, "Revision": compile_.revision or "", "Height": str(compile_.height),
        "Width": str(compile_.width), "Dtype": compile_.dtype, "CompilerArgs": "", "Exporter": "optimum-neuron",
    }
    assert resource["ArtifactsPrefix"] == f"neuron-artifacts/{resource['Hash']}/"
    assert resource["TimeoutSeconds"] == str(compile_.timeout_minutes * 60)
    assert resource["WaitForCompletion"] == str(compile_.wait_for_completion).lower()
    compute = one(stack, "AWS::Batch::ComputeEnvironment")["Properties"]["ComputeResources"]
    assert (compute["InstanceTypes"], compute["MinvCpus"]) == ([compile_.instance_type], 0)  # nothing runs idle
    job = one(stack, "AWS::Batch::JobDefinition")["Properties"]
    assert job["Timeout"]["AttemptDurationSeconds"] == compile_.job_timeout_minutes * 60
    # Compiled in the image that serves it: the Neuron SDK of the graphs is the one that loads them.
    model = one(stack, "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]
    assert image_of(job["ContainerProperties"]["Image"]) == image_of(model["Image"]) == sd.serving_image


def test_multi_model_endpoint_is_what_the_configuration_says(deployed):
    _, cfg, assembly = deployed
    mme = cfg.multi_model
    stack = template(assembly, cfg, "MultiModel")
    assert_variant(one(stack, "AWS::SageMaker::EndpointConfig"), mme, instance_type=mme.instance_type,
                   count=mme.instance_count)
    container = one(stack, "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]
    assert (container["Mode"], container["MultiModelConfig"]["ModelCacheSetting"]) == ("MultiModel", mme.model_cache)
    assert_scaling(stack, mme.autoscaling, mme.instance_count)


def test_llm_endpoints_are_what_the_configuration_says(platform_synth):
    cfg, assembly = platform_synth("prod")
    stack = template(assembly, cfg, "Llm")
    models = cfg.llm.resolved_models()
    assert {m.name for m in models} == {"bloom-176b", "opt-30b"}
    configs = resources_of_type(stack, "AWS::SageMaker::EndpointConfig")
    assert len(configs) == len(models)
    for model in models:
        [variant] = one(stack, "AWS::SageMaker::EndpointConfig", model.name.replace("-", "").capitalize())[
            "Properties"]["ProductionVariants"]
        assert (variant["InstanceType"], variant["InitialInstanceCount"]) == (model.instance_type, model.instance_count)
        assert variant.get("VolumeSizeInGB") == model.volume_size_gb
        assert (variant["ModelDataDownloadTimeoutInSeconds"], variant["ContainerStartupHealthCheckTimeoutInSeconds"]) == (
            model.model_data_download_timeout_seconds, model.container_startup_health_check_timeout_seconds)
        container = one(stack, "AWS::SageMaker::Model", model.name.replace("-", "").capitalize())["Properties"][
            "PrimaryContainer"]
        # runtime "current": LMI's vLLM handler, configured by OPTION_* variables.
        env = container["Environment"]
        assert (env["OPTION_TENSOR_PARALLEL_DEGREE"], env["OPTION_DTYPE"], env["OPTION_MAX_ROLLING_BATCH_SIZE"]) == (
            str(model.tensor_parallel_degree), model.dtype, str(model.max_batch_size))
        assert env["OPTION_MAX_MODEL_LEN"] == str(model.context_length)  # the whole context (docs/llm.md)
        # LMI's load timeout must not end before SageMaker's health check gives up.
        assert env["OPTION_MODEL_LOADING_TIMEOUT"] == str(model.container_startup_health_check_timeout_seconds)
        # The staged weights, copied uncompressed to /opt/ml/model before the container starts.
        assert container["ModelDataSource"] == {"S3DataSource": {
            "CompressionType": "None", "S3DataType": "S3Prefix", "S3Uri": {"Fn::Join": ["", [
                "s3://", {"Fn::ImportValue": f"{cfg.stack_prefix}-prod-Storage-ModelsBucketName"},
                f"/weights/{model.weights_prefix}"]]}}}
    assert cfg.llm.runtime == "current"
    # The documented sizes: what the quota requests in docs/first-deploy.md are for.
    assert {m.name: (m.instance_type, m.tensor_parallel_degree) for m in models} == {
        "bloom-176b": ("ml.p4de.24xlarge", 8), "opt-30b": ("ml.g5.24xlarge", 4)}


# ---------------------------------------------------------------- training: capacity and retention


def test_training_capacity_and_retention_are_what_the_configuration_says(platform_synth):
    cfg, assembly = platform_synth("prod")
    training = cfg.training
    stack = template(assembly, cfg, "Training")
    environments = resources_of_type(stack, "AWS::Batch::ComputeEnvironment")
    [cluster] = [e["Properties"]["ComputeResources"] for k, e in environments.items() if k.startswith("Compute")]
    [single] = [e["Properties"]["ComputeResources"] for k, e in environments.items() if k.startswith("SingleNode")]
    assert len(environments) == 2
    assert cluster["InstanceTypes"] == [training.instance_type]
    assert cluster["MaxvCpus"] == 128 * (training.max_nodes or training.node_count)
    # Evaluation and batch inference run on their own small hosts, not on a 32xlarge node.
    assert single["InstanceTypes"] == [training.evaluation_instance_type]
    assert single["MaxvCpus"] == {"trn1.2xlarge": 8, "trn1.32xlarge": 128}[
        training.evaluation_instance_type] * training.evaluation_max_instances
    # The cluster's subnet: the one without public IPs (the NAT gateway's subnet is the other).
    [subnet] = [s for s in resources_of_type(stack, "AWS::EC2::Subnet").values()
                if not s["Properties"]["MapPublicIpOnLaunch"]]
    # prod pins no account or region, so its AZ and AMI are deploy-time parameters without defaults:
    # a deploy must name real ones (CloudFormation checks that the AMI exists), never a placeholder.
    assert training.availability_zone is None and training.ami_id is None
    parameters = stack["Parameters"]
    assert parameters["AvailabilityZoneId"]["Type"] == "String" and "Default" not in parameters["AvailabilityZoneId"]
    assert parameters["AmiId"] == {"Type": "AWS::EC2::Image::Id", **{k: v for k, v in parameters["AmiId"].items()
                                                                   if k == "Description"}}
    assert subnet["Properties"]["AvailabilityZoneId"] == {"Ref": "AvailabilityZoneId"}
    assert [s["Ref"] for s in cluster["Subnets"]] == [s["Ref"] for s in single["Subnets"]] == [
        next(k for k, v in stack["Resources"].items() if v is subnet)]
    for compute in (cluster, single):
        assert compute["MinvCpus"] == 0  # trn1 instances only run while jobs do
        # The pinned AMI: a deploy never swaps the Neuron driver by surprise.
        assert compute["Ec2Configuration"] == [{"ImageIdOverride": {"Ref": "AmiId"}, "ImageType": "ECS_AL2023"}]
    expected = "Retain" if cfg.retain_data else "Delete"
    logs = resources_of_type(stack, "AWS::Logs::LogGroup")
    assert logs
    for group in logs.values():
        assert group["DeletionPolicy"] == expected
        assert group["Properties"]["RetentionInDays"] == training.log_retention_days
    templates = resources_of_type(stack, "AWS::EC2::LaunchTemplate")
    assert len(templates) == 2  # the cluster's and the single-node hosts'
    for launch_template in templates.values():
        volumes = launch_template["Properties"]["LaunchTemplateData"]["BlockDeviceMappings"]
        assert [(v["Ebs"]["Encrypted"], v["Ebs"]["VolumeSize"]) for v in volumes] == [(True, training.root_volume_gib)]
    jobs = resources_of_type(stack, "AWS::Batch::JobDefinition")
    assert len(jobs) == 4  # training, compile, evaluation, batch inference
    for name, job in jobs.items():
        props = job["Properties"]
        assert props["RetryStrategy"]["Attempts"] == training.retry_attempts
        timeout = training.job_timeout_seconds if "Training" in name else training.single_node_timeout_seconds
        assert props["Timeout"]["AttemptDurationSeconds"] == timeout
        container = props["ContainerProperties"] if "ContainerProperties" in props else (
            props["NodeProperties"]["NodeRangeProperties"][0]["Container"])
        environment = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert environment["NEURON_CC_FLAGS"] == training.neuron_cc_flags
        assert environment["NEURON_COMPILE_CACHE_URL"] == {"Fn::Join": ["", [
            "s3://", {"Fn::ImportValue": f"{cfg.stack_prefix}-prod-Storage-CompileCacheBucketName"}, "/neuron-cache/"]]}
    policies = resources_of_type(stack, "AWS::Batch::SchedulingPolicy").values()
    assert len(policies) == 2  # one per queue: multi-node and single-node jobs share by the same rules
    for policy in policies:
        shares = policy["Properties"]["FairsharePolicy"]
        assert {s["ShareIdentifier"]: s["WeightFactor"] for s in shares["ShareDistribution"]} == dict(training.shares)
        assert shares["ShareDecaySeconds"] == training.share_decay_seconds


# ---------------------------------------------------------------- changes that must reach the template


def test_a_changed_revision_changes_the_compile_hash_and_reaches_the_job(platform_synth):
    """A different revision is a different model: it must compile again, into a new prefix."""
    cfg, base = platform_synth("dev")
    _, pinned = platform_synth("dev", stable_diffusion__compile__revision="0123abcd")
    before = one(template(base, cfg, "StableDiffusion"), "Custom::NeuronCompilation")["Properties"]
    after = one(template(pinned, cfg, "StableDiffusion"), "Custom::NeuronCompilation")["Properties"]
    assert after["Compile"]["Revision"] == "0123abcd"  # the handler passes Compile.* to the job as its environment
    assert after["Hash"] != before["Hash"]
    assert after["ArtifactsPrefix"] != before["ArtifactsPrefix"]


def test_newly_staged_weights_compile_again_into_a_new_prefix(platform_synth):
    """prod's pinned weights: staging a new prefix must not keep serving what the old one compiled."""
    cfg, base = platform_synth("prod")
    _, restaged = platform_synth("prod", stable_diffusion__compile__weights_prefix="stable-diffusion-2-1-base-v2/")
    before = one(template(base, cfg, "StableDiffusion"), "Custom::NeuronCompilation")["Properties"]
    after = one(template(restaged, cfg, "StableDiffusion"), "Custom::NeuronCompilation")["Properties"]
    assert after["Compile"]["ModelId"]["Fn::Join"][1][-1] == "/weights/stable-diffusion-2-1-base-v2/"
    assert after["Hash"] != before["Hash"]
    assert after["ArtifactsPrefix"] != before["ArtifactsPrefix"]


def test_a_changed_scaling_setting_reaches_the_policy(platform_synth):
    cfg, assembly = platform_synth(
        "dev", multi_model__autoscaling__max_rps_per_instance="10", multi_model__autoscaling__scale_in_cooldown_seconds="60")
    tracking = one(template(assembly, cfg, "MultiModel"), "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"][
        "TargetTrackingScalingPolicyConfiguration"]
    assert (tracking["TargetValue"], tracking["ScaleInCooldown"]) == (10 * 60 * 0.5, 60)


def test_the_compile_job_receives_the_configured_inputs_as_its_environment(platform_synth, monkeypatch):
    """Template -> custom resource handler -> SubmitJob: what the compile job actually runs with."""
    from ml_constructs.neuron_compile.runtime import handler

    cfg, assembly = platform_synth("dev", stable_diffusion__compile__revision="0123abcd")
    properties = one(template(assembly, cfg, "StableDiffusion"), "Custom::NeuronCompilation")["Properties"]
    # What CloudFormation resolves at deploy time: the bucket, queue and definition names.
    deployed = {k: (v if isinstance(v, (str, dict)) and not _is_intrinsic(v) else f"<{k}>")
                for k, v in properties.items()}
    submitted = []

    class Batch:
        def submit_job(self, **request):
            submitted.append(request)
            return {"jobId": "job-1"}

    monkeypatch.setattr(handler, "_batch", lambda: Batch())
    monkeypatch.setattr(handler, "_manifest_exists", lambda compile_: False)
    monkeypatch.setattr(handler, "_active_jobs", lambda queue, name: [])
    handler.on_event({"RequestType": "Create", "ResourceProperties": deployed})
    [request] = submitted
    environment = {e["name"]: e["value"] for e in request["containerOverrides"]["environment"]}
    compile_ = cfg.stable_diffusion.compile
    assert environment == {
        "MODEL_ID": compile_.model_id, "MODEL_REVISION": "0123abcd", "HEIGHT": str(compile_.height),
        "WIDTH": str(compile_.width), "DTYPE": compile_.dtype, "COMPILER_ARGS": "", "EXPORTER": "optimum-neuron",
        "UPLOAD_URL": f"s3://<ArtifactsBucket>/neuron-artifacts/{properties['Hash']}/",
    }


def _is_intrinsic(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref"))
