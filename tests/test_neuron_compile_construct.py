"""NeuronCompilation: what it synthesizes, least privilege, content hash, validation, nag and cfn-lint."""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from cfnlint.api import ManualArgs, lint_file

from config.neuron_compile import NeuronCompileConfig
from config.schema import StorageConfig
from ml_constructs.neuron_compile import CompileInputs, NeuronCompilation, compilation_props
from ml_constructs.neuron_compile.rules import DEFAULT_COMPONENT_ARGS
from stacks.storage_stack import ArtifactStorageStack
from tests.cfn_lint_policy import IGNORED_RULES, LINT_REGIONS
from tests.helpers import new_app, new_checked_app, policy_statements, resources_of_type

SERVING_IMAGE = "djl-inference:0.30.0-neuronx-sdk2.20.1"


@pytest.fixture(scope="module")
def script_dir(tmp_path_factory) -> Path:
    """Stands in for model_packages/stable_diffusion_compile/ (written by another issue)."""
    folder = tmp_path_factory.mktemp("compile-package")
    (folder / "compile.py").write_text("import sys\nprint('compiling', sys.argv[1:])\n")
    return folder


def synth_compile(outdir: Path, script_dir: Path, **props) -> tuple[dict, NeuronCompilation]:
    """Storage in its own stack, the compile in a consumer stack, cdk-nag on: like the platform."""
    app = new_checked_app(outdir)
    storage = ArtifactStorageStack(app, "Storage", storage=StorageConfig(), retain_data=False)
    consumer = cdk.Stack(app, "Compile")
    locations = storage.locations_for(consumer)
    compilation = NeuronCompilation(consumer, "Compile", artifacts=locations.neuron_artifacts,
                                    serving_image=SERVING_IMAGE, script_dir=script_dir, **props)
    assembly = app.synth()  # raises on any unacknowledged cdk-nag finding
    return assembly.get_stack_by_name("Compile").template, compilation


@pytest.fixture(scope="module")
def default(tmp_path_factory, script_dir):
    outdir = tmp_path_factory.mktemp("compile-default")
    template, compilation = synth_compile(outdir, script_dir)
    return template, compilation, outdir


@pytest.fixture(scope="module")
def private_weights(tmp_path_factory, script_dir):
    vpc_app_dir = tmp_path_factory.mktemp("compile-private")
    app = new_checked_app(vpc_app_dir)
    storage = ArtifactStorageStack(app, "Storage", storage=StorageConfig(encryption="s3"), retain_data=False)
    consumer = cdk.Stack(app, "Compile")
    vpc = ec2.Vpc(consumer, "Shared", max_azs=1, nat_gateways=1,
                  flow_logs={"All": ec2.FlowLogOptions()})
    NeuronCompilation(
        consumer, "Compile", artifacts=storage.locations_for(consumer).neuron_artifacts, serving_image=SERVING_IMAGE,
        script_dir=script_dir, model_id="s3://private-weights/sd21/", instance_type="trn1.2xlarge", vpc=vpc,
        vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        wait_for_completion=False, weights_key=cdk.aws_kms.Key(consumer, "WeightsKey", enable_key_rotation=True),
    )
    return app.synth().get_stack_by_name("Compile").template, vpc_app_dir


def only(template: dict, resource_type: str) -> dict:
    (found,) = resources_of_type(template, resource_type).values()
    return found["Properties"]


def test_compute_environment_is_single_node_on_demand_inf2_from_zero(default):
    template, _, _ = default
    env = only(template, "AWS::Batch::ComputeEnvironment")["ComputeResources"]
    assert env["InstanceTypes"] == ["inf2.8xlarge"]  # no "optimal"
    assert env["Type"] == "EC2" and "BidPercentage" not in env
    assert env["AllocationStrategy"] == "BEST_FIT_PROGRESSIVE"
    assert (env["MinvCpus"], env["MaxvCpus"]) == (0, 32)
    assert env["Ec2Configuration"][0]["ImageType"] == "ECS_AL2023"
    assert "neuron" in env["Ec2Configuration"][0]["ImageIdOverride"]["Ref"].lower()
    # The launch template version is pinned, so template edits reach new hosts.
    assert env["LaunchTemplate"]["Version"]["Fn::GetAtt"][1] == "LatestVersionNumber"
    lt = only(template, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert lt["MetadataOptions"]["HttpTokens"] == "required"
    assert lt["BlockDeviceMappings"][0]["Ebs"] == {"Encrypted": True, "VolumeSize": 200, "VolumeType": "gp3"}


def test_queue_cancels_jobs_stuck_without_capacity(default):
    template, _, _ = default
    actions = only(template, "AWS::Batch::JobQueue")["JobStateTimeLimitActions"]
    assert {a["Reason"] for a in actions} >= {"CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"}
    assert all(a["Action"] == "CANCEL" and a["State"] == "RUNNABLE" and a["MaxTimeSeconds"] == 1800 for a in actions)


def test_job_definition_runs_the_compile_package_on_the_neuron_device(default):
    template, compilation, _ = default
    job = only(template, "AWS::Batch::JobDefinition")
    container = job["ContainerProperties"]
    assert container["LinuxParameters"]["Devices"] == [
        {"ContainerPath": "/dev/neuron0", "HostPath": "/dev/neuron0", "Permissions": ["read", "write", "mknod"]}
    ]
    assert {r["Type"]: r["Value"] for r in container["ResourceRequirements"]} == {"VCPU": "32", "MEMORY": "122880"}
    assert container["Command"][:2] == ["bash", "-c"] and "python3 compile.py \"${args[@]}\" || status=$?" in container["Command"][2]
    # djl-inference's entrypoint runs `eval "$@"`: the script travels as one shell-quoted word.
    assert container["Command"][2].startswith("'# Runs inside the Neuron")
    image = json.dumps(container["Image"])
    # the serving images' registry map: it has the regions aws-cdk-lib's region facts lack
    assert "DlcRegistryAccountMap" in image and "/djl-inference:0.30.0-neuronx-sdk2.20.1" in image
    assert template["Mappings"]["DlcRegistryAccountMap"]["mx-central-1"] == {"account": "637423239942"}
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["SCRIPT_KEY"] == cdk.Stack.of(compilation).resolve(compilation.script.object_key)
    assert job["Timeout"] == {"AttemptDurationSeconds": 10800}
    rules = job["RetryStrategy"]["EvaluateOnExit"]
    assert [r["Action"] for r in rules] == ["RETRY", "RETRY", "EXIT", "EXIT"]
    assert rules[0]["OnStatusReason"] == "Host EC2*" and rules[2:] == [
        {"Action": "EXIT", "OnExitCode": "*"}, {"Action": "EXIT", "OnReason": "*"}]
    assert container["Ulimits"] == [{"HardLimit": 65535, "Name": "nofile", "SoftLimit": 65535}]


def test_custom_resource_carries_the_hash_inputs_and_deadlines(default):
    template, compilation, _ = default
    props = only(template, "Custom::NeuronCompilation")
    digest = compilation.content_hash
    assert re.fullmatch(r"[0-9a-f]{32}", digest)
    assert props["Hash"] == digest
    assert props["ArtifactsPrefix"] == f"neuron-artifacts/{digest}/"
    assert props["JobName"] == f"neuron-compile-{digest}"
    assert props["ServiceTimeout"] == "3300"  # 55 min, under CloudFormation's hour
    assert props["TimeoutSeconds"] == "3000" and props["WaitForCompletion"] == "true"
    assert props["Compile"] == {"ModelId": "stabilityai/stable-diffusion-2-1-base", "Revision": "", "Height": "512",
                                "Width": "512", "Dtype": "bf16", "Exporter": "torch-neuronx",
                                "CompilerArgs": json.dumps(DEFAULT_COMPONENT_ARGS, sort_keys=True)}
    # AWS's samples: unet-inference for the UNet and the VAE decoder, the default model type elsewhere.
    assert {k: "unet-inference" in v for k, v in json.loads(props["Compile"]["CompilerArgs"]).items()} == {
        "text_encoder": False, "unet": True, "vae_decoder": True, "vae_post_quant_conv": False}


def test_compile_waits_for_job_permissions_and_the_nat_route(default):
    template, _, _ = default
    (resource,) = resources_of_type(template, "Custom::NeuronCompilation").values()
    depends = resource["DependsOn"]
    assert any("JobRoleDefaultPolicy" in d for d in depends)
    assert any("ExecutionRoleDefaultPolicy" in d for d in depends)
    assert sum("CompileSubnet" in d and "DefaultRoute" in d for d in depends) == 2


def test_artifacts_url_is_the_resources_attribute(default):
    _, compilation, _ = default
    resolved = cdk.Stack.of(compilation).resolve(compilation.artifacts_url)
    assert resolved == {"Fn::GetAtt": [cdk.Stack.of(compilation).get_logical_id(compilation.resource.node.default_child),
                                       "ArtifactsUrl"]}


def test_provider_polls_within_the_hour_with_logged_waiter(default):
    template, _, _ = default
    machine = only(template, "AWS::StepFunctions::StateMachine")
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    definition = json.dumps(machine["DefinitionString"])
    assert '\\"IntervalSeconds\\":60' in definition
    assert '\\"MaxAttempts\\":54' in definition  # (50 + 4) minutes / 1 minute
    handlers = [f for f in resources_of_type(template, "AWS::Lambda::Function").values()
                if f["Properties"].get("Handler", "").startswith("handler.")]
    assert sorted(f["Properties"]["Handler"] for f in handlers) == ["handler.is_complete", "handler.on_event"]
    for function in handlers:
        assert function["Properties"]["Runtime"] == "python3.14"
        assert function["Properties"]["Environment"]["Variables"] == {
            "POWERTOOLS_SERVICE_NAME": "neuron-compile", "LOG_LEVEL": "INFO"}
    managed = sorted(k for k, r in resources_of_type(template, "AWS::IAM::Role").items()
                     if r["Properties"].get("ManagedPolicyArns"))
    # Only the Batch instance role and aws-cdk-lib's default-security-group restriction handler:
    # the Provider framework's Lambdas get our own roles instead of AWSLambdaBasicExecutionRole.
    assert len(managed) == 2
    assert "ComputeEnvironmentInstanceProfileRole" in managed[0] and "VpcRestrictDefaultSG" in managed[1]


def test_job_role_reads_its_script_and_writes_only_its_own_prefix(default):
    template, compilation, _ = default
    (policy,) = [p for k, p in resources_of_type(template, "AWS::IAM::Policy").items() if "JobRole" in k]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    by_action = {json.dumps(s["Action"]): s for s in statements}
    own = ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    assert set(by_action) == {'"s3:GetObject"', json.dumps(own), '"s3:ListBucket"', '["kms:Decrypt", "kms:GenerateDataKey"]'}
    write = json.dumps(by_action[json.dumps(own)]["Resource"])
    assert f"/neuron-artifacts/{compilation.content_hash}/*" in write
    listing = by_action['"s3:ListBucket"']["Condition"]
    assert listing == {"StringLike": {"s3:prefix": [f"neuron-artifacts/{compilation.content_hash}/*"]}}
    assert compilation.script.object_key in json.dumps(by_action['"s3:GetObject"']["Resource"])


def test_handler_role_lists_only_the_manifest_and_submits_only_to_its_queue(default):
    template, compilation, _ = default
    (policy,) = [p for k, p in resources_of_type(template, "AWS::IAM::Policy").items() if "HandlerRole" in k]
    statements = {json.dumps(s["Action"]): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    listing = statements['"s3:ListBucket"']
    assert listing["Condition"] == {"StringEquals": {"s3:prefix": f"neuron-artifacts/{compilation.content_hash}/manifest.json"}}
    submit = json.dumps(statements['"batch:SubmitJob"']["Resource"])
    assert "JobQueue" in submit and "JobDefinition" in submit
    actions = {a for s in statements.values() for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    # Exactly what the handlers call (test_neuron_compile_handler records it), plus their own logging.
    assert actions == {"batch:SubmitJob", "batch:ListJobs", "batch:DescribeJobs", "batch:TerminateJob",
                       "s3:ListBucket", "logs:CreateLogStream", "logs:PutLogEvents"}


def test_no_statement_grants_a_wildcard_action_or_a_whole_bucket(default):
    template, _, _ = default
    for statement in policy_statements(template):
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        assert not any(a.endswith(":*") or a == "*" for a in actions), statement
        assert "arn:aws:s3:::*" not in json.dumps(statement["Resource"])


def test_default_vpc_is_private_with_s3_endpoint_and_flow_logs(default):
    template, _, _ = default
    assert resources_of_type(template, "AWS::EC2::FlowLog")
    assert len(resources_of_type(template, "AWS::EC2::NatGateway")) == 1
    endpoint = only(template, "AWS::EC2::VPCEndpoint")
    assert "s3" in json.dumps(endpoint["ServiceName"])
    env = only(template, "AWS::Batch::ComputeEnvironment")["ComputeResources"]
    private = {k for k in resources_of_type(template, "AWS::EC2::Subnet") if "CompileSubnet" in k}
    assert {s["Ref"] for s in env["Subnets"]} == private and len(private) == 2


def test_templates_are_cfn_lint_clean(default, private_weights):
    outdirs = [default[2], private_weights[1]]
    config = ManualArgs(regions=LINT_REGIONS, ignore_checks=sorted(IGNORED_RULES))
    # The storage stack's template is linted with every environment in test_cli_synth.
    findings = [f"{outdir.name}: {m}" for outdir in outdirs
                for m in lint_file(outdir / "Compile.template.json", config=config)]
    assert findings == []


def test_private_weights_trn1_existing_vpc_and_no_wait(private_weights):
    template, _ = private_weights
    assert not [k for k in resources_of_type(template, "AWS::EC2::VPC") if k.startswith("Compile")]
    env = only(template, "AWS::Batch::ComputeEnvironment")["ComputeResources"]
    assert env["InstanceTypes"] == ["trn1.2xlarge"] and env["MaxvCpus"] == 8
    container = only(template, "AWS::Batch::JobDefinition")["ContainerProperties"]
    assert {r["Type"]: r["Value"] for r in container["ResourceRequirements"]}["MEMORY"] == "29696"
    statements = policy_statements(template)
    reads = [s for s in statements if s["Action"] == "s3:GetObject" and "private-weights/sd21/*" in json.dumps(s["Resource"])]
    assert len(reads) == 1
    listing = [s for s in statements if s["Action"] == "s3:ListBucket" and "private-weights" in json.dumps(s["Resource"])]
    assert listing[0]["Condition"] == {"StringLike": {"s3:prefix": ["sd21/*"]}}
    decrypt = [s for s in statements if s["Action"] == "kms:Decrypt" and "WeightsKey" in json.dumps(s["Resource"])]
    assert len(decrypt) == 1 and "kms:ViaService" in decrypt[0]["Condition"]["StringEquals"]
    props = only(template, "Custom::NeuronCompilation")
    assert props["WaitForCompletion"] == "false" and props["Compile"]["ModelId"] == "s3://private-weights/sd21/"


# ---------------------------------------------------------------- content hash

BASE = CompileInputs(model_id="stabilityai/stable-diffusion-2-1-base", revision="", height=512, width=512,
                     dtype="bf16", compiler_args="--model-type=unet-inference", exporter="torch-neuronx",
                     image=SERVING_IMAGE,
                     instance_type="inf2.8xlarge", script_sha256="a" * 64)


@pytest.mark.parametrize("change", [
    {"model_id": "runwayml/stable-diffusion-v1-5"}, {"revision": "main"}, {"height": 768}, {"width": 768},
    {"dtype": "fp32"}, {"compiler_args": "--model-type=unet-inference -O1"}, {"exporter": "optimum-neuron"},
    {"image": "djl-inference:0.29.0-neuronx-sdk2.19.1"}, {"instance_type": "trn1.2xlarge"},
    {"script_sha256": "b" * 64},
])
def test_every_input_changes_the_hash(change):
    assert replace(BASE, **change).content_hash() != BASE.content_hash()


def test_hash_of_known_inputs_never_drifts():
    # A literal: the hash names S3 prefixes of past deploys, so it must never drift.
    assert BASE.content_hash() == CompileInputs(**vars(BASE)).content_hash()
    # Changed once on purpose with the exporter input (the compile environment changed with it).
    assert BASE.content_hash() == "5edaeb1a79aa1ac400a0e5daad882851"


def test_same_inputs_give_byte_identical_templates(default, tmp_path, script_dir):
    template, _, _ = default
    again, _ = synth_compile(tmp_path, script_dir)
    assert json.dumps(again, sort_keys=True) == json.dumps(template, sort_keys=True)


def test_script_bytes_change_the_hash(tmp_path, script_dir):
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "compile.py").write_text((script_dir / "compile.py").read_text() + "# edited\n")
    stack = cdk.Stack(new_app(), "S")
    storage = ArtifactStorageStack(stack.node.root, "Storage", storage=StorageConfig(), retain_data=False)
    location = storage.storage.locations.neuron_artifacts
    a = NeuronCompilation(storage, "A", artifacts=location, serving_image=SERVING_IMAGE, script_dir=script_dir)
    b = NeuronCompilation(storage, "B", artifacts=location, serving_image=SERVING_IMAGE, script_dir=changed)
    assert a.content_hash != b.content_hash


# ---------------------------------------------------------------- validation


@pytest.fixture
def build(script_dir):
    """Construct (without synthesizing) a NeuronCompilation with these props over the defaults."""
    def construct(**props):
        stack = cdk.Stack(new_app(), "S")
        storage = ArtifactStorageStack(stack.node.root, "Storage", storage=StorageConfig(), retain_data=False)
        kwargs = {"artifacts": storage.storage.locations.neuron_artifacts, "serving_image": SERVING_IMAGE,
                  "script_dir": script_dir, **props}
        return NeuronCompilation(storage, "Compile", **kwargs)
    return construct


@pytest.mark.parametrize("props, message", [
    ({"model_id": "just-a-name"}, "model_id: got 'just-a-name'; expected a Hugging Face hub id"),
    ({"model_id": "s3://weights/sd"}, "model_id: got 's3://weights/sd'; expected"),
    ({"model_id": "s3://weights/sd/", "revision": "main"}, "revision: got 'main'; a revision only applies to a hub id, not to 's3://weights/sd/'"),
    ({"height": 500}, "height: got 500; allowed: a multiple of 8 from 64 to 2048"),
    ({"width": 4096}, "width: got 4096; allowed: a multiple of 8 from 64 to 2048"),
    ({"dtype": "int8"}, "dtype: got 'int8'; allowed: 'bf16', 'fp16', 'fp32'"),
    ({"compiler_args": "--optlevel O1"}, "compiler_args: --optlevel got 'O1', allowed: 1, 2, 3"),
    ({"compiler_args": "--fast"}, "compiler_args: unknown neuronx-cc option '--fast'"),
    ({"compiler_args": {"text_encoder": "", "unet": "--fast", "vae_decoder": "", "vae_post_quant_conv": ""}},
     "compiler_args: unet: unknown neuronx-cc option '--fast'"),
    ({"compiler_args": {"unet": ""}}, "compiler_args: got keys ['unet']; allowed: exactly"),
    ({"exporter": "onnx"}, "exporter: got 'onnx'; allowed: 'torch-neuronx', 'optimum-neuron'"),
    ({"image": "my/neuron:latest"}, "image: got 'my/neuron:latest'; its tag names no Neuron SDK"),
    ({"image": "pytorch-inference-neuronx:2.1.2-neuronx-py310-sdk2.20.2-ubuntu20.04"},
     ("image: compile image 'pytorch-inference-neuronx:2.1.2-neuronx-py310-sdk2.20.2-ubuntu20.04' has Neuron SDK "
     "2.20.2, the serving image 'djl-inference:0.30.0-neuronx-sdk2.20.1' has 2.20.1; artifacts compiled by one SDK "
     "do not load on another; use 'djl-inference:0.30.0-neuronx-sdk2.20.1'")),
    ({"serving_image": "djl-inference:0.30.0-cpu-full"},
     "serving_image: got 'djl-inference:0.30.0-cpu-full'; its tag names no Neuron SDK"),
    ({"serving_image": "djl-inference:0.30.0-cpu-full", "image": SERVING_IMAGE},
     "image: serving image 'djl-inference:0.30.0-cpu-full' names no Neuron SDK version"),
    ({"instance_type": "optimal"}, "instance_type: got 'optimal'; allowed: 'inf2.8xlarge', 'trn1.2xlarge'"),
    ({"timeout": cdk.Duration.minutes(60)}, "timeout: got 60 min; allowed: 5 to 55 min"),
    ({"job_timeout": cdk.Duration.minutes(30)}, "job_timeout: got 30 min, below timeout (50 min)"),
    ({"query_interval": cdk.Duration.seconds(5)}, "query_interval: got 5 s; allowed: 10 to 300 s"),
    ({"script_dir": Path(__file__).parent}, f"script_dir: {str(Path(__file__).parent)!r} has no compile.py"),
    ({"root_volume_gib": 30}, "root_volume_gib: got 30; allowed: 64 to 16384"),
    ({"vpc_subnets": ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)}, "vpc_subnets: given without vpc"),
])
def test_bad_props_fail_with_a_message_naming_prop_value_and_allowed(build, props, message):
    with pytest.raises(ValueError) as exc:
        build(**props)
    assert message in str(exc.value)


def test_the_config_section_maps_onto_the_props(build):
    cfg = NeuronCompileConfig(height=768, width=768, timeout_minutes=40, wait_for_completion=False)
    compilation = build(**compilation_props(cfg))
    assert (compilation.inputs.height, compilation.inputs.width) == (768, 768)
    assert compilation.inputs.model_id == cfg.model_id
    assert json.loads(compilation.inputs.compiler_args) == cfg.compiler_args.as_dict()
    assert compilation.inputs.image == SERVING_IMAGE  # image None: the serving image
    props = cdk.Stack.of(compilation).resolve(compilation.resource.node.default_child._cfn_properties)
    assert props["TimeoutSeconds"] == "2400" and props["WaitForCompletion"] == "false"


def test_a_weights_key_without_s3_weights_is_a_mistake(build):
    stack = cdk.Stack(new_app(), "Keys")
    key = cdk.aws_kms.Key(stack, "Key")
    with pytest.raises(ValueError) as exc:
        build(weights_key=key)
    assert "weights_key: given, but model_id 'stabilityai/stable-diffusion-2-1-base' is not an S3 prefix" in str(exc.value)


def test_all_problems_are_reported_at_once(build):
    with pytest.raises(ValueError) as exc:
        build(height=500, dtype="int8", instance_type="inf2.xlarge")
    assert str(exc.value).count("\n  - ") == 3


def test_staged_weights_are_read_by_the_job_and_named_in_the_hash(script_dir):
    stack = cdk.Stack(new_app(), "S")
    storage = ArtifactStorageStack(stack.node.root, "Storage", storage=StorageConfig(), retain_data=False)
    locations = storage.storage.locations
    hub = NeuronCompilation(storage, "Hub", artifacts=locations.neuron_artifacts, serving_image=SERVING_IMAGE,
                            script_dir=script_dir)
    staged = NeuronCompilation(storage, "Staged", artifacts=locations.neuron_artifacts, serving_image=SERVING_IMAGE,
                               script_dir=script_dir, weights=locations.model_weights.child("sd21/abc/", "weights"))
    assert staged.inputs.model_id == "project-weights:weights/sd21/abc/" and staged.content_hash != hub.content_hash
    props = storage.resolve(staged.resource.node.default_child._cfn_properties)
    assert props["Compile"]["ModelId"]["Fn::Join"][1][-1] == "/weights/sd21/abc/"
    policy = json.dumps(storage.resolve(staged.job_role.node.find_child("DefaultPolicy").node.default_child
                                        ._cfn_properties))
    assert "weights/sd21/abc/*" in policy and "weights/*" not in policy
    with pytest.raises(ValueError, match="revision: got 'main' with weights"):
        NeuronCompilation(storage, "Both", artifacts=locations.neuron_artifacts, serving_image=SERVING_IMAGE,
                          script_dir=script_dir, revision="main", weights=locations.model_weights.child("x/"))


CURRENT_SD_IMAGE = "huggingface-pytorch-inference-neuronx:2.8.0-transformers4.55.4-neuronx-py310-sdk2.26.0-ubuntu22.04"


def pinned_compile(script_dir: Path, region: str) -> dict:
    app = new_app()
    env = cdk.Environment(account="123456789012", region=region)
    storage = ArtifactStorageStack(app, "Storage", storage=StorageConfig(), retain_data=False, env=env)
    consumer = cdk.Stack(app, "Compile", env=env)
    NeuronCompilation(consumer, "Compile", artifacts=storage.locations_for(consumer).neuron_artifacts,
                      serving_image=CURRENT_SD_IMAGE, script_dir=script_dir)
    return cdk.assertions.Template.from_stack(consumer).to_json()


@pytest.mark.parametrize("region, account", [("mx-central-1", "637423239942"), ("ap-southeast-5", "550225433462"),
                                             ("us-east-1", "763104351884")])
def test_a_pinned_region_pulls_the_compile_image_from_its_registry_account(script_dir, region, account):
    # mx-central-1 and ap-southeast-5 are not in aws-cdk-lib's DLC region facts: the compile job must
    # resolve them as the endpoint does, not end up with an empty account.
    template = pinned_compile(script_dir, region)
    container = only(template, "AWS::Batch::JobDefinition")["ContainerProperties"]
    assert container["Image"]["Fn::Join"][1][0] == f"{account}.dkr.ecr.{region}."
    assert f"arn:aws:ecr:{region}:{account}:repository/huggingface-pytorch-inference-neuronx" in json.dumps(template)


def test_a_pinned_region_without_the_compile_image_fails_naming_the_image(script_dir):
    with pytest.raises(ValueError, match=r"image_tag: huggingface-pytorch-inference-neuronx:2\.8\.0-\S+ is not "
                       r"published in af-south-1; regions that have it: ap-northeast-1"):
        pinned_compile(script_dir, "af-south-1")
