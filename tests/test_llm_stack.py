"""The LLM stack as deployed: prod on the current LMI profile, the seed profile, and the rendered
serving configuration of each, key by key, against the documentation of that version."""
from __future__ import annotations

import json
import re
from pathlib import Path

import aws_cdk as cdk
import pytest

from ml_constructs.sagemaker import ContainerImage, EndpointValidationError, ModelData, RealtimeEndpoint, VariantSettings
from tests.model_packages.conftest import PACKAGES, load_module
from tests.helpers import resources_of_type

WEIGHTS_BUCKET = {"Fn::ImportValue": "MlAccel-prod-Storage-ModelsBucketName"}
MODELS = {"Bloom176b": ("bloom-176b", "ml.p4de.24xlarge"), "Opt30b": ("opt-30b", "ml.g5.24xlarge")}
# Weights prefixes on the current runtime: BLOOM's bf16 snapshot has a prefix of its own, so the seed's
# files (its DeepSpeed model.py and DJL serving.properties) never meet it.
PROD_PREFIXES = {"Bloom176b": "bloom-176b-bf16/", "Opt30b": "opt-30b/"}

# Every LMI option the current profile renders, with the page of LMI 20 (djl-serving v0.36.0) that
# documents it. Environment form: option.<key> -> OPTION_<KEY> (configurations.md, "Environment
# Variable Configurations").
LMI_20_DOCUMENTED = {
    # serving/docs/lmi/deployment_guide/configurations.md, "LMI Common Configurations"
    "OPTION_TENSOR_PARALLEL_DEGREE": "configurations.md: option.tensor_parallel_degree, 1 to the GPU count",
    "OPTION_DTYPE": "configurations.md: option.dtype, fp32 | fp16 | bf16",
    "OPTION_MAX_ROLLING_BATCH_SIZE": "configurations.md: option.max_rolling_batch_size, requests/sequences at a time",
    "OPTION_MODEL_LOADING_TIMEOUT": "configurations.md: option.model_loading_timeout, seconds (default 1800)",
    # serving/docs/lmi/user_guides/vllm_user_guide.md: vLLM EngineArgs pass through as option.<arg>;
    # the guide's sample configurations set OPTION_MAX_MODEL_LEN.
    "OPTION_MAX_MODEL_LEN": "vllm_user_guide.md: pass-through EngineArg max_model_len",
    # vllm_user_guide.md, "Mapping Configuration": JSON-valued EngineArgs pass through (vLLM's
    # override_generation_config; its max_new_tokens is a server-wide limit on generated tokens).
    "OPTION_OVERRIDE_GENERATION_CONFIG": "vllm_user_guide.md: mapping pass-through override_generation_config",
    # vllm_user_guide.md, "Runtime Quantization": option.quantize=<fp8|bitsandbytes>
    "OPTION_QUANTIZE": "vllm_user_guide.md: option.quantize",
    # vllm_user_guide.md, "Boolean Configuration" example
    "OPTION_ENABLE_PREFIX_CACHING": "vllm_user_guide.md: option.enable_prefix_caching",
}


def llm_template(assembly, env: str = "prod") -> dict:
    return assembly.get_stack_by_name(f"MlAccel-{env}-Llm").template


def model_of(template: dict, prefix: str) -> dict:
    found = [v["Properties"] for k, v in resources_of_type(template, "AWS::SageMaker::Model").items()
             if k.startswith(prefix)]
    assert len(found) == 1
    return found[0]


def variant_of(template: dict, prefix: str) -> dict:
    found = [v["Properties"]["ProductionVariants"] for k, v in
             resources_of_type(template, "AWS::SageMaker::EndpointConfig").items() if k.startswith(prefix)]
    assert len(found) == 1 and len(found[0]) == 1
    return found[0][0]


def warnings_of(assembly, stack: str) -> list[str]:
    return [str(m.data) for m in assembly.get_stack_by_name(stack).find_metadata_by_type("aws:cdk:warning")]


@pytest.fixture(scope="module")
def prod(platform_synth):
    return platform_synth("prod")[1]


@pytest.fixture(scope="module")
def seed(platform_synth):
    return platform_synth("prod", llm__runtime="seed")[1]


def test_prod_serves_both_models_on_the_current_lmi_image_without_end_of_life_warning(prod):
    template = llm_template(prod)
    for prefix in MODELS:
        image = model_of(template, prefix)["PrimaryContainer"]["Image"]
        assert json.dumps(image).endswith('"/djl-inference:0.36.0-lmi20.0.0-cu128"]]}')
    assert not [w for w in warnings_of(prod, "MlAccel-prod-Llm") if "end-of-life" in w]


def test_prod_variants_run_the_cuda_12_ami_with_the_documented_instances(prod):
    template = llm_template(prod)
    for prefix, (_name, instance_type) in MODELS.items():
        variant = variant_of(template, prefix)
        # A CUDA 12.8 image does not start on the default p4d/g5 AMI (driver 470, CUDA 11.4).
        assert variant["InferenceAmiVersion"] == "al2-ami-sagemaker-inference-gpu-2-1"
        assert (variant["InstanceType"], variant["InitialInstanceCount"]) == (instance_type, 1)
        assert variant["ModelDataDownloadTimeoutInSeconds"] == variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 2400
        assert "VolumeSizeInGB" not in variant  # local NVMe


def test_prod_weights_come_uncompressed_from_each_models_prefix(prod):
    template = llm_template(prod)
    for prefix in MODELS:
        container = model_of(template, prefix)["PrimaryContainer"]
        assert "ModelDataUrl" not in container
        assert container["ModelDataSource"]["S3DataSource"] == {
            "CompressionType": "None", "S3DataType": "S3Prefix",
            "S3Uri": {"Fn::Join": ["", ["s3://", WEIGHTS_BUCKET, f"/weights/{PROD_PREFIXES[prefix]}"]]},
        }


def test_prod_lmi_configuration_key_by_key(prod):
    template = llm_template(prod)
    expected = {
        # BLOOM-176B: the published checkpoint in bf16, its training precision; max_model_len is the
        # whole 2048-token context of both models (a smaller one only refuses more requests).
        "Bloom176b": {"OPTION_TENSOR_PARALLEL_DEGREE": "8", "OPTION_DTYPE": "bf16", "OPTION_MAX_ROLLING_BATCH_SIZE": "4",
                      "OPTION_MAX_MODEL_LEN": "2048", "OPTION_MODEL_LOADING_TIMEOUT": "2400",
                      "OPTION_OVERRIDE_GENERATION_CONFIG": '{"max_new_tokens": 400}'},
        "Opt30b": {"OPTION_TENSOR_PARALLEL_DEGREE": "4", "OPTION_DTYPE": "fp16", "OPTION_MAX_ROLLING_BATCH_SIZE": "4",
                   "OPTION_MAX_MODEL_LEN": "2048", "OPTION_MODEL_LOADING_TIMEOUT": "2400",
                   "OPTION_OVERRIDE_GENERATION_CONFIG": '{"max_new_tokens": 1024}'},
    }
    for prefix, environment in expected.items():
        rendered = model_of(template, prefix)["PrimaryContainer"]["Environment"]
        assert rendered == environment
        assert set(rendered) <= set(LMI_20_DOCUMENTED), set(rendered) - set(LMI_20_DOCUMENTED)
        # No model id: LMI loads what ModelDataSource placed in /opt/ml/model (configurations.md).
        assert not {"HF_MODEL_ID", "OPTION_MODEL_ID"} & set(rendered)


def test_extra_lmi_options_and_runtime_quantization_are_rendered(platform_synth):
    _, assembly = platform_synth(
        "prod", **{"llm__models__opt-30b__serving_options__enable_prefix_caching": "true",
                   "llm__models__opt-30b__quantize": "fp8"})
    environment = model_of(llm_template(assembly), "Opt30b")["PrimaryContainer"]["Environment"]
    assert (environment["OPTION_ENABLE_PREFIX_CACHING"], environment["OPTION_QUANTIZE"]) == ("true", "fp8")
    assert set(environment) <= set(LMI_20_DOCUMENTED)


def test_an_unpinned_prod_refuses_a_region_without_p4de_at_deploy(prod, seed):
    # The environment-agnostic synth cannot check the region; CloudFormation's rule does, before any resource.
    rules = llm_template(prod).get("Rules", {})
    rule = rules["Bloom176bInstanceTypeInThisRegion"]["Assertions"][0]
    assert rule["Assert"] == {"Fn::Contains": [["us-east-1", "us-west-2"], {"Ref": "AWS::Region"}]}
    assert rule["AssertDescription"].startswith(
        "llm.models.bloom-176b.instance_type ml.p4de.24xlarge is hosted by SageMaker only in us-east-1, us-west-2")
    assert not [k for k in rules if k.startswith("Opt30b")]  # g5 is not restricted by region here
    assert "Bloom176bInstanceTypeInThisRegion" not in llm_template(seed).get("Rules", {})  # seed: p4d


def test_roles_read_their_own_weights_prefix_only(prod):
    template = llm_template(prod)
    for prefix in MODELS:
        role_id = model_of(template, prefix)["ExecutionRoleArn"]["Fn::GetAtt"][0]
        resources = [r for p in resources_of_type(template, "AWS::IAM::Policy").values()
                     if {"Ref": role_id} in p["Properties"]["Roles"]
                     for s in p["Properties"]["PolicyDocument"]["Statement"] if "s3:GetObject" in json.dumps(s["Action"])
                     for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
        weights = [r for r in resources if "/weights/" in json.dumps(r)]
        assert weights == [{"Fn::Join": ["", [{"Fn::ImportValue": "MlAccel-prod-Storage-ModelsBucketArn"},
                                              f"/weights/{PROD_PREFIXES[prefix]}*"]]}]


# ---- the seed profile ----------------------------------------------------------------------


def test_seed_synthesizes_the_documented_deepspeed_stack_with_its_warning(seed):
    template = llm_template(seed)
    for prefix, (name, _instance) in MODELS.items():
        container = model_of(template, prefix)["PrimaryContainer"]
        assert json.dumps(container["Image"]).endswith('"/djl-inference:0.19.0-deepspeed0.7.3-cu113"]]}')
        assert container["ModelDataSource"]["S3DataSource"]["S3Uri"] == {
            "Fn::Join": ["", ["s3://", WEIGHTS_BUCKET, f"/weights/{name}/"]]}
        # CUDA 11.3 runs on the default AMI: no override.
        assert "InferenceAmiVersion" not in variant_of(template, prefix)
    assert any("0.19.0-deepspeed0.7.3-cu113 is end-of-life" in w for w in warnings_of(seed, "MlAccel-prod-Llm"))


def test_seed_environment_is_what_djl_0_19_and_the_handler_read(seed):
    template = llm_template(seed)
    handler = load_module(PACKAGES / "llm_deepspeed" / "model.py")
    expected = {"Bloom176b": ("8", "int8", 400, 4), "Opt30b": ("4", "fp16", 1024, 4)}
    for prefix, (degree, dtype, tokens, batch) in expected.items():
        environment = model_of(template, prefix)["PrimaryContainer"]["Environment"]
        # TENSOR_PARALLEL_DEGREE: DJL Serving 0.19 reads it when serving.properties has none
        # (djl-serving 0.19.0-dlc engines/python/src/main/java/ai/djl/python/engine/PyEnv.java).
        # MODEL_LOADING_TIMEOUT: DJL 0.19's Python worker load timeout, 240 s unless set (PyEnv.java
        # getModelLoadingTimeout; serving/docs/configurations.md), raised to SageMaker's 2400 s health check.
        assert set(environment) == {"TENSOR_PARALLEL_DEGREE", "MODEL_DTYPE", "MAX_NEW_TOKENS", "MAX_BATCH_SIZE",
                                    "MODEL_LOADING_TIMEOUT"}
        assert environment["MODEL_LOADING_TIMEOUT"] == "2400"
        settings = handler.Settings.from_env(environment, {"dtype": "fp16"})
        assert (str(settings.tensor_parallel_degree), settings.dtype) == (degree, dtype)
        assert handler.Limits.from_env(environment) == handler.Limits(tokens, batch)


def test_seed_template_passes_cfn_lint(seed):
    from cfnlint.api import ManualArgs, lint_file

    from tests.cfn_lint_policy import IGNORED_RULES, LINT_REGIONS

    template = Path(seed.directory) / "MlAccel-prod-Llm.template.json"
    config = ManualArgs(regions=LINT_REGIONS, ignore_checks=sorted(IGNORED_RULES))
    assert [str(m) for m in lint_file(template, config=config)] == []


def test_current_template_passes_cfn_lint(prod):
    from cfnlint.api import ManualArgs, lint_file

    from tests.cfn_lint_policy import IGNORED_RULES, LINT_REGIONS

    template = Path(prod.directory) / "MlAccel-prod-Llm.template.json"
    config = ManualArgs(regions=LINT_REGIONS, ignore_checks=sorted(IGNORED_RULES))
    assert [str(m) for m in lint_file(template, config=config)] == []


# ---- InferenceAmiVersion on the construct --------------------------------------------------


def endpoint(instance_type: str, ami: str) -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S", env=cdk.Environment(region="us-east-1"))
    RealtimeEndpoint(
        stack, "E", image=ContainerImage.deep_learning_container("djl-inference", "0.36.0-lmi20.0.0-cu128"),
        model_data=ModelData.from_s3_url("s3://b/w/", uncompressed=True),
        variant=VariantSettings(instance_type=instance_type, inference_ami_version=ami),
    )


@pytest.mark.parametrize(("instance_type", "ami", "allowed"), [
    ("ml.g5.24xlarge", "al2-ami-sagemaker-inference-neuron-2",
     " (built for Inferentia2/Trainium instances) for ml.g5.24xlarge, allowed: al2-ami-sagemaker-inference-gpu-2,"),
    ("ml.inf2.48xlarge", "al2-ami-sagemaker-inference-gpu-3-1",
     " (built for GPU instances) for ml.inf2.48xlarge, allowed: al2-ami-sagemaker-inference-neuron-2"),
    ("ml.m5.large", "al2-ami-sagemaker-inference-gpu-2",
     " (built for GPU instances) for ml.m5.large, allowed: not set (ml.m5.large has no accelerators)"),
    ("ml.g5.24xlarge", "al2-gpu-9", ", allowed: al2-ami-sagemaker-inference-gpu-2, "),
])
def test_an_ami_for_other_accelerators_is_refused_by_the_construct(instance_type, ami, allowed):
    # The construct says what the configuration says (ml_constructs/sagemaker/instances.py inference_ami_problem).
    with pytest.raises(EndpointValidationError, match=re.escape(f"inference_ami_version: got '{ami}'{allowed}")):
        endpoint(instance_type, ami)


def test_an_ami_for_the_instances_accelerators_is_accepted():
    endpoint("ml.p4d.24xlarge", "al2-ami-sagemaker-inference-gpu-2-1")
    endpoint("ml.inf2.xlarge", "al2-ami-sagemaker-inference-neuron-2")
