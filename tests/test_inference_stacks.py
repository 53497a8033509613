"""The three inference stacks: documented prod values, dev sizes, packages, wiring; nag-clean synths."""
from __future__ import annotations

import json

import re
import tarfile
from pathlib import Path

import pytest

from config import load_config
from ml_constructs.packaging import parse_properties
from ml_constructs.sagemaker import accelerator_count
from stacks.stable_diffusion_stack import StableDiffusionStack
from stacks.storage_stack import ArtifactStorageStack
from tests.helpers import new_checked_app, platform_key_reference, policy_statements, resources_of_type


def only(template, resource_type):
    found = list(resources_of_type(template, resource_type).values())
    assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
    return found[0]["Properties"]


def by_id_prefix(template, resource_type, prefix):
    found = [v["Properties"] for k, v in resources_of_type(template, resource_type).items() if k.startswith(prefix)]
    assert len(found) == 1
    return found[0]


def package_properties(assembly, model_properties) -> dict[str, str]:
    """serving.properties inside the tarball the model's ModelDataUrl points at."""
    key = re.search(r"/([0-9a-f]{64})\.gz$", model_properties["PrimaryContainer"]["ModelDataUrl"]["Fn::Sub"])[1]
    with tarfile.open(Path(assembly.directory) / f"asset.{key}.tar.gz") as tar:
        return parse_properties(tar.extractfile("serving.properties").read().decode())


@pytest.fixture(scope="module")
def prod(platform_synth):
    cfg, assembly = platform_synth("prod")
    return assembly, {s.stack_name: s.template for s in assembly.stacks}


@pytest.fixture(scope="module")
def dev(platform_synth):
    cfg, assembly = platform_synth("dev")
    return assembly, {s.stack_name: s.template for s in assembly.stacks}


def test_enabled_flags_decide_the_stacks(prod, dev, platform_synth):
    assert sorted(prod[1]) == [
        "MlAccel-prod-Llm", "MlAccel-prod-MultiModel", "MlAccel-prod-StableDiffusion", "MlAccel-prod-Storage",
        "MlAccel-prod-Training",
    ]
    assert sorted(dev[1]) == ["MlAccel-dev-MultiModel", "MlAccel-dev-StableDiffusion", "MlAccel-dev-Storage"]
    _, off = platform_synth("dev", stable_diffusion__enabled="false", multi_model__enabled="false")
    assert [s.stack_name for s in off.stacks] == ["MlAccel-dev-Storage"]


def test_prod_stable_diffusion_endpoint_is_the_documented_one(prod):
    """prod runs the current profile: the Hugging Face Neuron image serving the compile output uncompressed."""
    template = prod[1]["MlAccel-prod-StableDiffusion"]
    config = only(template, "AWS::SageMaker::EndpointConfig")
    assert config["ProductionVariants"][0] | {"ModelName": None} == {
        "ContainerStartupHealthCheckTimeoutInSeconds": 360, "InitialInstanceCount": 1, "InitialVariantWeight": 1,
        "InstanceType": "ml.inf2.xlarge", "ModelName": None, "VariantName": "AllTraffic", "VolumeSizeInGB": 400,
        "ModelDataDownloadTimeoutInSeconds": 600,  # prod.toml: bounds the worst-case deploy (deploy_budget.py)
    }
    assert config["KmsKeyId"] == platform_key_reference(prod[0], "MlAccel-prod-Storage")
    container = only(template, "AWS::SageMaker::Model")["PrimaryContainer"]
    (compile_id,) = [k for k, v in template["Resources"].items() if v["Type"] == "Custom::NeuronCompilation"]
    assert container["Environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    assert container["ModelDataSource"]["S3DataSource"] == {
        "CompressionType": "None", "S3DataType": "S3Prefix", "S3Uri": {"Fn::GetAtt": [compile_id, "ArtifactsUrl"]}}
    assert container["Image"]["Fn::Join"][1][-1] == (
        "/huggingface-pytorch-inference-neuronx:2.8.0-transformers4.55.4-neuronx-py310-sdk2.26.0-ubuntu22.04")
    compile_props = template["Resources"][compile_id]["Properties"]
    assert compile_props["Compile"]["Exporter"] == "optimum-neuron"
    assert compile_props["Compile"]["CompilerArgs"] == ""


def test_prod_compiles_staged_weights_only(prod):
    """prod never downloads from the hub: the job reads the staged prefix, nothing else under weights/."""
    template = prod[1]["MlAccel-prod-StableDiffusion"]
    (compile_resource,) = [v for v in template["Resources"].values() if v["Type"] == "Custom::NeuronCompilation"]
    assert compile_resource["Properties"]["Compile"]["ModelId"] == {"Fn::Join": ["", [
        "s3://", {"Fn::ImportValue": "MlAccel-prod-Storage-ModelsBucketName"}, "/weights/stable-diffusion-2-1-base/"]]}
    assert compile_resource["Properties"]["Compile"]["Revision"] == ""
    # The job's script turns the hub off for an s3:// model (tests/test_neuron_compile_job_entrypoint.py
    # runs it), and the optimum-neuron export skips the hub compile cache (its contract test).
    (job,) = [v for v in template["Resources"].values() if v["Type"] == "AWS::Batch::JobDefinition"]
    script = job["Properties"]["ContainerProperties"]["Command"][-1]
    assert 'case "$MODEL_ID" in s3://*) export HF_HUB_OFFLINE=1 ;; esac' in script


def test_seed_profile_still_serves_the_djl_no_code_package(platform_synth):
    _, assembly = platform_synth("prod", stable_diffusion__runtime="seed")
    template = assembly.get_stack_by_name("MlAccel-prod-StableDiffusion").template
    container = only(template, "AWS::SageMaker::Model")["PrimaryContainer"]
    (compile_id, compile_resource), = [
        (k, v) for k, v in template["Resources"].items() if v["Type"] == "Custom::NeuronCompilation"]
    assert container["Environment"] == {"OPTION_MODEL_ID": {"Fn::GetAtt": [compile_id, "ArtifactsUrl"]}}
    assert container["Image"]["Fn::Join"][1][-1] == "/djl-inference:0.24.0-neuronx-sdk2.14.1"
    props = package_properties(assembly, only(template, "AWS::SageMaker::Model"))
    assert props == {"engine": "Python", "option.entryPoint": "djl_python.transformers_neuronx",
                     "option.use_stable_diffusion": "True", "option.tensor_parallel_degree": "2", "option.dtype": "bf16"}
    assert int(props["option.tensor_parallel_degree"]) <= accelerator_count("ml.inf2.xlarge")
    # Per-component flags from AWS's samples reach the job: unet-inference for the UNet and VAE decoder only.
    assert json.loads(compile_resource["Properties"]["Compile"]["CompilerArgs"]) == {
        "text_encoder": "--target=inf2", "unet": "--target=inf2 --model-type=unet-inference",
        "vae_decoder": "--target=inf2 --model-type=unet-inference", "vae_post_quant_conv": "--target=inf2"}
    assert compile_resource["Properties"]["Compile"]["Exporter"] == "torch-neuronx"
    warnings = [m.data for s in assembly.stacks for m in s.find_metadata_by_type("aws:cdk:warning")]
    assert any("0.24.0-neuronx-sdk2.14.1 is end-of-life" in str(w) for w in warnings)


def test_endpoint_disabled_builds_only_the_compiled_artifacts(platform_synth):
    _, assembly = platform_synth("prod", stable_diffusion__endpoint_enabled="false")
    template = assembly.get_stack_by_name("MlAccel-prod-StableDiffusion").template
    (compile_resource,) = [v for v in template["Resources"].values() if v["Type"] == "Custom::NeuronCompilation"]
    assert compile_resource["Properties"]["WaitForCompletion"] == "false"  # the deploy does not wait for it
    assert not resources_of_type(template, "AWS::SageMaker::Model")
    assert not resources_of_type(template, "AWS::SageMaker::Endpoint")


@pytest.mark.parametrize("runtime", ["current", "seed"])
def test_stable_diffusion_role_reads_the_compiled_artifacts_only(platform_synth, runtime):
    _, assembly = platform_synth("prod", stable_diffusion__runtime=runtime)
    template = assembly.get_stack_by_name("MlAccel-prod-StableDiffusion").template
    (compile_resource,) = [v for v in template["Resources"].values() if v["Type"] == "Custom::NeuronCompilation"]
    content_hash = compile_resource["Properties"]["Hash"]
    role_id = only(template, "AWS::SageMaker::Model")["ExecutionRoleArn"]["Fn::GetAtt"][0]
    reads = [s for p in resources_of_type(template, "AWS::IAM::Policy").values()
             if {"Ref": role_id} in p["Properties"]["Roles"]
             for s in p["Properties"]["PolicyDocument"]["Statement"] if s["Action"] == "s3:GetObject"]
    objects = [r for s in reads for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    compiled = {"Fn::Join": ["", [{"Fn::ImportValue": "MlAccel-prod-Storage-ModelsBucketArn"},
                                   f"/neuron-artifacts/{content_hash}/*"]]}
    assert compiled in objects
    # Nothing else under neuron-artifacts/: only this compile's output.
    assert not [r for r in objects if "/neuron-artifacts/" in json.dumps(r) and r != compiled]


def test_dev_stable_diffusion_without_platform_key_and_multi_model_small(dev):
    sd = only(dev[1]["MlAccel-dev-StableDiffusion"], "AWS::SageMaker::EndpointConfig")
    assert "KmsKeyId" not in sd
    mme = only(dev[1]["MlAccel-dev-MultiModel"], "AWS::SageMaker::EndpointConfig")["ProductionVariants"][0]
    assert (mme["InstanceType"], mme["InitialInstanceCount"]) == ("ml.m5.large", 1)
    target = only(dev[1]["MlAccel-dev-MultiModel"], "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 2)


def test_prod_multi_model_endpoint_is_the_documented_one(prod):
    template = prod[1]["MlAccel-prod-MultiModel"]
    pv = only(template, "AWS::SageMaker::EndpointConfig")["ProductionVariants"][0]
    assert (pv["InstanceType"], pv["InitialInstanceCount"]) == ("ml.c5d.18xlarge", 20)
    assert "VolumeSizeInGB" not in pv
    # prod.toml bounds both (the worst-case deploy, scripts/deploy_budget.py); unset, each counts 3600 s.
    assert (pv["ModelDataDownloadTimeoutInSeconds"], pv["ContainerStartupHealthCheckTimeoutInSeconds"]) == (300, 300)
    container = only(template, "AWS::SageMaker::Model")["PrimaryContainer"]
    assert container["Mode"] == "MultiModel" and container["MultiModelConfig"] == {"ModelCacheSetting": "Enabled"}
    assert container["ModelDataUrl"] == {"Fn::Join": ["", ["s3://", {"Fn::ImportValue": "MlAccel-prod-Storage-ModelsBucketName"}, "/multi-model/"]]}
    # The image is built at deploy from runtime_profiles/multi_model/current (an asset in the bootstrap repository).
    assert "container-assets" in container["Image"]["Fn::Sub"]
    assert container["Environment"] == {"MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    policy = only(template, "AWS::ApplicationAutoScaling::ScalingPolicy")["TargetTrackingScalingPolicyConfiguration"]
    assert policy["TargetValue"] == 200 * 60 * 0.5
    target = only(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (20, 40)


def test_each_endpoint_outputs_its_name(prod):
    for name in ("MlAccel-prod-StableDiffusion", "MlAccel-prod-MultiModel"):
        outputs = prod[1][name]["Outputs"]
        assert any("EndpointName" in str(o["Value"]) for o in outputs.values())
    assert sum("EndpointName" in str(o["Value"]) for o in prod[1]["MlAccel-prod-Llm"]["Outputs"].values()) == 2


def test_end_of_life_images_are_reported_as_warnings(prod):
    warnings = [m.data for s in prod[0].stacks for m in s.find_metadata_by_type("aws:cdk:warning")]
    # Every prod workload runs its supported `current` runtime profile: nothing end-of-life.
    assert not any("end-of-life" in str(w) for w in warnings), warnings


def test_byo_script_mode_uses_its_package_without_entry_point(platform_synth):
    _, assembly = platform_synth("dev", stable_diffusion__runtime="seed", stable_diffusion__serving_mode="byo-script")
    model = only(assembly.get_stack_by_name("MlAccel-dev-StableDiffusion").template, "AWS::SageMaker::Model")
    props = package_properties(assembly, model)
    assert "option.entryPoint" not in props and props["option.tensor_parallel_degree"] == "2"




def sd_stack(**overrides):
    cfg = load_config("dev", overrides=overrides)
    app = new_checked_app()
    storage = ArtifactStorageStack(app, "Storage", storage=cfg.storage, retain_data=False)
    stack = StableDiffusionStack(app, "Sd", config=cfg.stable_diffusion, storage=storage)
    return stack, app.synth().get_stack_by_name("Sd").template


def test_configured_compiled_artifacts_url_is_read_where_it_points():
    _, template = sd_stack(**{"stable_diffusion.compiled_artifacts_url": "s3://other-bucket/sd21/",
                              "stable_diffusion.compile.enabled": "false", "stable_diffusion.runtime": "seed"})
    env = only(template, "AWS::SageMaker::Model")["PrimaryContainer"]["Environment"]
    assert env == {"OPTION_MODEL_ID": "s3://other-bucket/sd21/"}
    statements = policy_statements(template)
    assert {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::other-bucket/sd21/*"]]} in [
        r for s in statements if s["Action"] == "s3:GetObject" for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    ]
    listing = [s for s in statements if s["Action"] == "s3:ListBucket" and s["Condition"]["StringLike"]["s3:prefix"] == ["sd21/*"]]
    assert listing


def test_invalid_endpoint_settings_fail_the_platform_synth(platform_synth):
    with pytest.raises(ValueError, match=r"tensor_parallel_degree: got 4, allowed: at most 2 \(ml.inf2.xlarge has 2 NeuronCores\)"):
        platform_synth("dev", stable_diffusion__tensor_parallel_degree="4")
    with pytest.raises(ValueError, match="volume_size_gb: got 100, allowed: not set: ml.p4de.24xlarge has local NVMe"):
        platform_synth("prod", **{"llm__models__bloom-176b__volume_size_gb": "100"})
    with pytest.raises(ValueError, match="instance_type: got 'ml.inf2.xlarge', allowed: a CPU instance type"):
        platform_synth("dev", multi_model__instance_type="ml.inf2.xlarge")


def test_non_default_options_pass_cfn_lint(platform_synth):
    from cfnlint.api import ManualArgs, lint_file

    from tests.cfn_lint_policy import IGNORED_RULES, LINT_REGIONS

    _, assembly = platform_synth(
        "prod",
        stable_diffusion__autoscaling__enabled="true",
        stable_diffusion__compiled_artifacts_url="s3://my-bucket/sd/",
        stable_diffusion__compile__enabled="false",
        multi_model__model_cache="Disabled",
    )
    config = ManualArgs(regions=LINT_REGIONS, ignore_checks=sorted(IGNORED_RULES))
    templates = sorted(Path(assembly.directory).glob("*-Llm.template.json")) + sorted(
        Path(assembly.directory).glob("*-StableDiffusion.template.json")
    ) + sorted(Path(assembly.directory).glob("*-MultiModel.template.json"))
    assert len(templates) == 3
    assert [f"{t.name}: {m}" for t in templates for m in lint_file(t, config=config)] == []


def test_prod_compiles_at_deploy_and_serves_the_compile_output(platform_synth):
    """The compile custom resource's ArtifactsUrl is the model's OPTION_MODEL_ID, read-only to the endpoint."""
    cfg, assembly = platform_synth("prod", stable_diffusion__runtime="seed",
                                   stable_diffusion__compile__weights_prefix="null",
                                   stable_diffusion__compile__revision="a" * 40)
    template = assembly.get_stack_by_name("MlAccel-prod-StableDiffusion").template
    (compile_id, compile_resource), = [
        (k, v) for k, v in template["Resources"].items() if v["Type"] == "Custom::NeuronCompilation"
    ]
    env = only(template, "AWS::SageMaker::Model")["PrimaryContainer"]["Environment"]
    assert env["OPTION_MODEL_ID"] == {"Fn::GetAtt": [compile_id, "ArtifactsUrl"]}
    assert compile_resource["Properties"]["Compile"]["ModelId"] == cfg.stable_diffusion.compile.model_id
    assert compile_resource["Properties"]["Compile"]["Revision"] == "a" * 40  # reaches the job as MODEL_REVISION
    _, other = platform_synth("prod", stable_diffusion__runtime="seed", stable_diffusion__compile__weights_prefix="null",
                              stable_diffusion__compile__revision="b" * 40)
    (other_resource,) = [v for v in other.get_stack_by_name("MlAccel-prod-StableDiffusion").template["Resources"].values()
                         if v["Type"] == "Custom::NeuronCompilation"]
    assert other_resource["Properties"]["Hash"] != compile_resource["Properties"]["Hash"]  # the revision is hashed
    assert compile_resource["Properties"]["Compile"]["Dtype"] == cfg.stable_diffusion.dtype


def test_compile_disabled_serves_the_configured_key(platform_synth):
    _, assembly = platform_synth("prod", stable_diffusion__compile__enabled="false", stable_diffusion__runtime="seed")
    template = assembly.get_stack_by_name("MlAccel-prod-StableDiffusion").template
    assert not [v for v in template["Resources"].values() if v["Type"] == "Custom::NeuronCompilation"]
    env = only(template, "AWS::SageMaker::Model")["PrimaryContainer"]["Environment"]
    assert "/neuron-artifacts/stable-diffusion-2-1-base/" in json.dumps(env["OPTION_MODEL_ID"])


def docker_asset(assembly, stack_name: str) -> tuple[dict, Path]:
    """The stack's one Docker image asset: its manifest entry and its staged build context."""
    manifest = json.loads((Path(assembly.directory) / f"{stack_name}.assets.json").read_text())
    (entry,) = manifest["dockerImages"].values()
    return entry, Path(assembly.directory) / entry["source"]["directory"]


def test_prod_multi_model_image_is_built_from_the_current_profile(prod):
    from runtime_profiles import load_profile

    profile = load_profile("multi_model", "current")
    entry, context = docker_asset(prod[0], "MlAccel-prod-MultiModel")
    assert entry["source"]["dockerBuildArgs"] == {"BASE_IMAGE": "deepjavalibrary/djl-serving:0.36.0-cpu-full"}
    assert entry["source"]["platform"] == "linux/amd64"
    # Exactly what the build needs: editing profile.toml or the test requirements does not rebuild the image.
    assert sorted(p.name for p in context.iterdir()) == ["Dockerfile", "check_lock.py", "requirements.lock"]
    assert (context / "requirements.lock").read_bytes() == profile.lock_file.read_bytes()
    image = only(prod[1]["MlAccel-prod-MultiModel"], "AWS::SageMaker::Model")["PrimaryContainer"]["Image"]["Fn::Sub"]
    assert image.endswith(":" + entry["destinations"]["current_account-current_region-728c4fae"]["imageTag"])
    warnings = [m.data for m in prod[0].get_stack_by_name("MlAccel-prod-MultiModel").find_metadata_by_type("aws:cdk:warning")]
    assert not [w for w in warnings if "end-of-life" in str(w)]


def test_prod_multi_model_alarms_and_dashboard_watch_the_model_cache(prod):
    template = prod[1]["MlAccel-prod-MultiModel"]
    alarms = {p["MetricName"]: p for p in (a["Properties"] for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values())}
    hit = alarms["ModelCacheHit"]
    assert (hit["Namespace"], hit["Statistic"], hit["Threshold"], hit["ComparisonOperator"]) == (
        "AWS/SageMaker", "Average", 0.5, "LessThanThreshold")
    wait, download = alarms["ModelLoadingWaitTime"], alarms["ModelDownloadingTime"]
    assert (wait["ExtendedStatistic"], wait["Threshold"]) == ("p99", 5000 * 1000)  # microseconds
    assert (download["ExtendedStatistic"], download["Threshold"]) == ("p99", 3000 * 1000)
    assert all(a["TreatMissingData"] == "notBreaching" for a in alarms.values())
    body = json.dumps(only(template, "AWS::CloudWatch::Dashboard")["DashboardBody"])
    for metric in ("ModelCacheHit", "ModelLoadingWaitTime", "LoadedModelCount", "ModelDownloadingTime", "ModelLatency"):
        assert f'\\"{metric}\\"' in body
    assert '\\"/aws/sagemaker/Endpoints\\",\\"LoadedModelCount\\"' in body


def test_seed_runtime_builds_on_0_23_and_warns_end_of_life(platform_synth):
    _, assembly = platform_synth("dev", multi_model__runtime="seed")
    entry, context = docker_asset(assembly, "MlAccel-dev-MultiModel")
    assert entry["source"]["dockerBuildArgs"] == {"BASE_IMAGE": "deepjavalibrary/djl-serving:0.23.0-cpu-full"}
    assert "check_lock.py /opt/ml-platform/requirements.lock 3.8\n" in (context / "Dockerfile").read_text()
    warnings = [str(m.data) for m in assembly.get_stack_by_name("MlAccel-dev-MultiModel").find_metadata_by_type("aws:cdk:warning")]
    assert any("is end-of-life: djl-inference:0.23.0-cpu-full runs Python 3.8" in w for w in warnings)


def test_a_prebuilt_image_uri_is_used_as_is_and_pull_is_granted_on_its_repository(platform_synth):
    uri = "111111111111.dkr.ecr.us-east-1.amazonaws.com/team/mme:0.36.0-cpu-full-lock1"
    _, assembly = platform_synth("dev", multi_model__image_uri=uri)
    template = assembly.get_stack_by_name("MlAccel-dev-MultiModel").template
    parts = only(template, "AWS::SageMaker::Model")["PrimaryContainer"]["Image"]["Fn::Join"][1]
    assert "".join("amazonaws.com" if p == {"Ref": "AWS::URLSuffix"} else p for p in parts) == uri
    manifest = json.loads((Path(assembly.directory) / "MlAccel-dev-MultiModel.assets.json").read_text())
    assert not manifest.get("dockerImages")  # nothing is built
    pulls = [st for st in policy_statements(template) if "ecr:BatchGetImage" in st["Action"]]
    assert [st["Resource"] for st in pulls] == ["arn:aws:ecr:us-east-1:111111111111:repository/team/mme"]
