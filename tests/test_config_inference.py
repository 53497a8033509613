"""Inference sections: documented defaults, per-environment sizes, and every rule's message."""
from __future__ import annotations

import pytest

from config import ConfigError, load_config


def test_stable_diffusion_defaults_are_the_documented_w1_values():
    sd = load_config("prod").stable_diffusion
    assert (sd.instance_type, sd.instance_count, sd.volume_size_gb) == ("ml.inf2.xlarge", 1, 400)
    assert sd.container_startup_health_check_timeout_seconds == 360
    assert (sd.tensor_parallel_degree, sd.dtype, sd.runtime, sd.mode) == (2, "bf16", "current", "optimum-neuron")
    assert sd.serving_image == (
        "huggingface-pytorch-inference-neuronx:2.8.0-transformers4.55.4-neuronx-py310-sdk2.26.0-ubuntu22.04")
    seed = load_config("prod", overrides={"stable_diffusion.runtime": "seed"}).stable_diffusion
    assert (seed.mode, seed.serving_image) == ("no-code", "djl-inference:0.24.0-neuronx-sdk2.14.1")
    assert sd.autoscaling.enabled is False and sd.autoscaling.max_rps_per_instance == 0.8


def test_llm_models_are_the_documented_w3_values():
    llm = load_config("prod").llm
    assert llm.image_tag == "0.19.0-deepspeed0.7.3-cu113"
    models = {m.name: m for m in llm.resolved_models()}
    assert sorted(models) == ["bloom-176b", "opt-30b"]
    bloom, opt = models["bloom-176b"], models["opt-30b"]
    assert (bloom.instance_type, bloom.tensor_parallel_degree, bloom.dtype, bloom.volume_size_gb) == (
        "ml.p4d.24xlarge", 8, "int8", None)
    assert (opt.instance_type, opt.tensor_parallel_degree, opt.dtype) == ("ml.g5.24xlarge", 4, "fp16")
    for model in (bloom, opt):
        assert model.model_data_download_timeout_seconds == model.container_startup_health_check_timeout_seconds == 2400
        assert model.instance_count == 1 and model.use_uncompressed_model_data is False


def test_multi_model_prod_and_dev_sizes():
    prod, dev = load_config("prod").multi_model, load_config("dev").multi_model
    assert (prod.instance_type, prod.instance_count, prod.model_cache) == ("ml.c5d.18xlarge", 20, "Enabled")
    assert (prod.max_idle_time_seconds, prod.model_count, prod.image_tag) == (600, 1000, "0.23.0-cpu-full")
    assert prod.autoscaling.enabled and (prod.autoscaling.min_capacity, prod.autoscaling.max_capacity) == (20, 40)
    assert (dev.instance_type, dev.instance_count, dev.autoscaling.min_capacity, dev.autoscaling.max_capacity) == (
        "ml.m5.large", 1, 1, 2)


def test_one_llm_value_is_overridden_without_restating_the_model():
    llm = load_config("prod", overrides={"llm.models.opt-30b.instance_count": "2"}).llm
    models = {m.name: m for m in llm.resolved_models()}
    assert models["opt-30b"].instance_count == 2 and models["opt-30b"].tensor_parallel_degree == 4
    assert models["bloom-176b"].instance_count == 1


def test_llm_models_can_be_disabled_added_and_switched_to_uncompressed(tmp_path):
    overlay = tmp_path / "o.toml"
    overlay.write_text(
        "[llm.models.bloom-176b]\nenabled = false\n"
        "[llm.models.opt-30b]\nuse_uncompressed_model_data = true\n"
        "[llm.models.opt-13b]\ninstance_type = 'ml.g5.12xlarge'\ntensor_parallel_degree = 4\n"
        "dtype = 'fp16'\nweights_prefix = 'opt-13b/'\n"
    )
    models = {m.name: m for m in load_config("prod", overlay_file=str(overlay)).llm.resolved_models()}
    assert sorted(models) == ["opt-13b", "opt-30b"]
    assert models["opt-30b"].use_uncompressed_model_data is True
    assert models["opt-13b"].model_data_download_timeout_seconds == 2400


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"stable_diffusion.serving_mode": "script"}, "stable_diffusion.serving_mode: got 'script', allowed: 'optimum-neuron', 'no-code', 'byo-script'"),
        ({"stable_diffusion.dtype": "int4"}, "stable_diffusion.dtype: got 'int4', allowed: 'bf16', 'fp16', 'fp32'"),
        ({"stable_diffusion.volume_size_gb": "513"}, "stable_diffusion.volume_size_gb: got 513, allowed range: 1 to 512"),
        ({"stable_diffusion.volume_size_gb": "0"}, "got 0, allowed range: 1 to 512"),
        ({"stable_diffusion.container_startup_health_check_timeout_seconds": "59"}, "got 59, allowed range: 60 to 3600"),
        ({"stable_diffusion.model_data_download_timeout_seconds": "3601"}, "got 3601, allowed range: 60 to 3600"),
        ({"stable_diffusion.tensor_parallel_degree": "0"}, "stable_diffusion.tensor_parallel_degree: got 0, allowed range: 1 to 64"),
        ({"stable_diffusion.instance_count": "0"}, "stable_diffusion.instance_count: got 0, allowed range: 1 to 100"),
        ({"stable_diffusion.instance_type": "inf2.xlarge"}, "stable_diffusion.instance_type: got 'inf2.xlarge', which does not match"),
        ({"stable_diffusion.image_tag": "a:b"}, "stable_diffusion.image_tag: got 'a:b', which does not match"),
        ({"stable_diffusion.compiled_artifacts_key": "/abs/"}, "stable_diffusion.compiled_artifacts_key: got '/abs/', which does not match"),
        ({"stable_diffusion.compiled_artifacts_key": "no-slash"}, "compiled_artifacts_key: got 'no-slash', which does not match"),
        ({"stable_diffusion.compiled_artifacts_url": "https://x/y/"}, "compiled_artifacts_url: got 'https://x/y/', which does not match"),
        ({"stable_diffusion.compiled_artifacts_url": "s3://bucket-a/sd"}, "compiled_artifacts_url: got 's3://bucket-a/sd', allowed: an S3 prefix ending with '/'"),
        ({"stable_diffusion.autoscaling.safety_factor": "1.5"}, "stable_diffusion.autoscaling.safety_factor: got 1.5, allowed range: 0.05 to 1"),
        ({"stable_diffusion.autoscaling.max_rps_per_instance": "0"}, "autoscaling.max_rps_per_instance: got 0.0, allowed range: 0.001 to 100000"),
        ({"stable_diffusion.autoscaling.scale_in_cooldown_seconds": "-1"}, "scale_in_cooldown_seconds: got -1, allowed range: 0 to 3600"),
        ({"stable_diffusion.autoscaling.min_capacity": "3"}, "stable_diffusion.autoscaling.min_capacity: got 3, allowed: at most max_capacity (2)"),
        ({"stable_diffusion.autoscaling.enabled": "true", "stable_diffusion.instance_count": "3"},
         "stable_diffusion.instance_count: got 3, allowed: autoscaling.min_capacity (1) to autoscaling.max_capacity (2)"),
        ({"stable_diffusion.alarms.model_latency_p99_ms": "0"}, "stable_diffusion.alarms.model_latency_p99_ms: got 0.0, allowed range: 1 to 3600000"),
        ({"stable_diffusion.alarms.cpu_percent": "101"}, "stable_diffusion.alarms.cpu_percent: got 101.0, allowed range: 1 to 100"),
        ({"multi_model.model_cache": "On"}, "multi_model.model_cache: got 'On', allowed: 'Enabled', 'Disabled'"),
        ({"multi_model.instance_count": "0"}, "multi_model.instance_count: got 0, allowed range: 1 to 1000"),
        ({"multi_model.max_idle_time_seconds": "0"}, "multi_model.max_idle_time_seconds: got 0, allowed range: 1 to 86400"),
        ({"multi_model.model_count": "0"}, "multi_model.model_count: got 0, allowed range: 1 to 100000"),
        ({"multi_model.min_workers": "4", "multi_model.max_workers": "2"}, "multi_model.min_workers: got 4, allowed: at most max_workers (2)"),
        ({"multi_model.max_workers": "0"}, "multi_model.max_workers: got 0, allowed range: 1 to 1024"),
        ({"multi_model.instance_count": "50"}, "multi_model.instance_count: got 50, allowed: autoscaling.min_capacity (20) to autoscaling.max_capacity (40)"),
        ({"llm.models.opt-30b.tensor_parallel_degree": "0"}, "llm.models.opt-30b.tensor_parallel_degree: got 0, allowed range: 1 to 64"),
        ({"llm.models.opt-30b.dtype": "int4"}, "llm.models.opt-30b.dtype: got 'int4', allowed: 'int8', 'fp16', 'bf16', 'fp32'"),
        ({"llm.models.opt-30b.volume_size_gb": "600"}, "llm.models.opt-30b.volume_size_gb: got 600, allowed range: 1 to 512"),
        ({"llm.models.opt-30b.model_data_download_timeout_seconds": "4000"}, "got 4000, allowed range: 60 to 3600"),
        ({"llm.models.opt-30b.weights_prefix": "opt"}, "llm.models.opt-30b.weights_prefix: got 'opt', which does not match"),
        ({"llm.models.opt-30b.unknown": "1"}, "llm.models.opt-30b.unknown: unknown key 'unknown'"),
        ({"llm.models.gpt-x.instance_count": "1"}, "llm.models.gpt-x: a new model needs instance_type, tensor_parallel_degree, dtype, weights_prefix"),
        ({"llm.models.Bad_Name.instance_count": "1"}, "llm.models.Bad_Name: model name 'Bad_Name' does not match"),
        ({"llm.image_tag": "x y"}, "llm.image_tag: got 'x y', which does not match"),
        # Rules that depend on the instance type: reported with the config key and the flag.
        ({"stable_diffusion.tensor_parallel_degree": "4"},
         "stable_diffusion.tensor_parallel_degree: got 4, allowed: at most 2 (ml.inf2.xlarge has 2 NeuronCores)"),
        ({"stable_diffusion.instance_type": "ml.g5.xlarge"},
         "stable_diffusion.volume_size_gb: got 400, allowed: not set: ml.g5.xlarge has local NVMe instance storage"),
        ({"stable_diffusion.instance_type": "ml.t2.medium", "stable_diffusion.autoscaling.enabled": "true",
          "stable_diffusion.tensor_parallel_degree": "1", "stable_diffusion.volume_size_gb": "null"},
         "stable_diffusion.instance_type: got 'ml.t2.medium', allowed: a non-burstable instance type"),
        ({"multi_model.instance_type": "ml.inf2.xlarge"},
         "multi_model.instance_type: got 'ml.inf2.xlarge', allowed: a CPU instance type"),
        ({"multi_model.volume_size_gb": "100"},
         "multi_model.volume_size_gb: got 100, allowed: not set: ml.c5d.18xlarge has local NVMe instance storage"),
        ({"llm.models.bloom-176b.volume_size_gb": "100"},
         "llm.models.bloom-176b.volume_size_gb: got 100, allowed: not set: ml.p4d.24xlarge has local NVMe"),
        ({"llm.models.opt-30b.tensor_parallel_degree": "8"},
         "llm.models.opt-30b.tensor_parallel_degree: got 8, allowed: at most 4 (ml.g5.24xlarge has 4 GPUs)"),
        ({"llm.models.opt30b.instance_type": "ml.g5.24xlarge", "llm.models.opt30b.tensor_parallel_degree": "4",
          "llm.models.opt30b.dtype": "fp16", "llm.models.opt30b.weights_prefix": "opt30b/"},
         "model name 'opt30b' names the same endpoint (Opt30b) as 'opt-30b'"),
        # Patterns and ranges not covered above.
        ({"stable_diffusion.image_repository": "Bad Repo"}, "stable_diffusion.image_repository: got 'Bad Repo', which does not match"),
        ({"multi_model.image_repository": "-x"}, "multi_model.image_repository: got '-x', which does not match"),
        ({"llm.image_repository": "A"}, "llm.image_repository: got 'A', which does not match"),
        ({"multi_model.instance_type": "c5.large"}, "multi_model.instance_type: got 'c5.large', which does not match"),
        ({"multi_model.image_tag": "a:b"}, "multi_model.image_tag: got 'a:b', which does not match"),
        ({"multi_model.volume_size_gb": "513"}, "multi_model.volume_size_gb: got 513, allowed range: 1 to 512"),
        ({"llm.models.opt-30b.instance_type": "g5.24xlarge"}, "llm.models.opt-30b.instance_type: got 'g5.24xlarge', which does not match"),
        ({"llm.models.opt-30b.instance_count": "0"}, "llm.models.opt-30b.instance_count: got 0, allowed range"),
        ({"llm.models.opt-30b.container_startup_health_check_timeout_seconds": "59"}, "got 59, allowed range: 60 to 3600"),
        ({"llm.models.opt-30b.model_latency_p99_ms": "0"}, "llm.models.opt-30b.model_latency_p99_ms: got 0"),
    ],
)
def test_each_bad_inference_value_names_key_value_and_allowed(overrides, expected):
    with pytest.raises(ConfigError) as exc:
        load_config("prod", overrides=overrides)
    assert expected in str(exc.value)


def test_compile_output_and_a_configured_url_cannot_both_feed_the_endpoint():
    with pytest.raises(ConfigError) as exc:
        load_config("prod", overrides={"stable_diffusion.compiled_artifacts_url": "s3://my-bucket/sd/"})
    assert "stable_diffusion.compiled_artifacts_url: got 's3://my-bucket/sd/' while compile.enabled is true" in str(exc.value)
    cfg = load_config("prod", overrides={"stable_diffusion.compiled_artifacts_url": "s3://my-bucket/sd/",
                                         "stable_diffusion.compile.enabled": "false"})
    assert cfg.stable_diffusion.compiled_artifacts_url == "s3://my-bucket/sd/"


def test_compile_dtype_must_match_the_serving_dtype():
    with pytest.raises(ConfigError) as exc:
        load_config("prod", overrides={"stable_diffusion.compile.dtype": "fp16"})
    assert "stable_diffusion.compile.dtype: got 'fp16', allowed: 'bf16' (the serving dtype)" in str(exc.value)


def test_compile_settings_are_validated_through_the_platform_config():
    with pytest.raises(ConfigError) as exc:
        load_config("dev", overrides={"stable_diffusion.compile.compiler_args.unet": "--optlevel O1"})
    assert "stable_diffusion.compile.compiler_args.unet" in str(exc.value) and "O1" in str(exc.value)


SEED = {"stable_diffusion.runtime": "seed"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stable_diffusion.serving_mode": "no-code"},
         "stable_diffusion.serving_mode: got 'no-code', allowed for runtime 'current': 'optimum-neuron'"),
        (SEED | {"stable_diffusion.serving_mode": "optimum-neuron"},
         "stable_diffusion.serving_mode: got 'optimum-neuron', allowed for runtime 'seed': 'no-code', 'byo-script'"),
        (SEED | {"stable_diffusion.image_tag": "0.23.0-neuronx-sdk2.12.0"},
         "stable_diffusion.image_tag: got '0.23.0-neuronx-sdk2.12.0', allowed for runtime profile "
         "'stable_diffusion/seed': 0.24.0-neuronx-sdk2.14.1"),
        (SEED | {"stable_diffusion.image_repository": "pytorch-inference-neuronx"},
         "stable_diffusion.image_repository: got 'pytorch-inference-neuronx', allowed for runtime 'seed': "
         "'djl-inference'; the no-code package only runs on the image its profile was verified against"),
        (SEED | {"stable_diffusion.dtype": "fp16", "stable_diffusion.compile.dtype": "fp16"},
         "stable_diffusion.dtype: got 'fp16', allowed with serving_mode 'no-code': 'bf16', 'fp32'"),
        ({"stable_diffusion.instance_type": "ml.g5.2xlarge", "stable_diffusion.volume_size_gb": "null",
          "stable_diffusion.tensor_parallel_degree": "1"},
         "stable_diffusion.instance_type: got 'ml.g5.2xlarge', allowed: an ml.inf2.* instance type"),
        (SEED | {"stable_diffusion.compile.image": "djl-inference:0.29.0-neuronx-sdk2.19.1"},
         "stable_diffusion.compile.image: got 'djl-inference:0.29.0-neuronx-sdk2.19.1' (Neuron SDK 2.19.1), "
         "allowed: an image with Neuron SDK 2.14.1"),
        ({"stable_diffusion.endpoint_enabled": "false", "stable_diffusion.compile.enabled": "false"},
         "stable_diffusion.endpoint_enabled: got false with compile.enabled false"),
        ({"stable_diffusion.runtime": "legacy"}, "stable_diffusion.runtime: got 'legacy'"),
        ({"stable_diffusion.compile.compiler_args.unet": "--target=inf2 -O3"},
         "stable_diffusion.compile.compiler_args: got non-default flags with serving_mode 'optimum-neuron'"),
    ],
)
def test_runtime_contract_violations_are_config_errors(overrides, message):
    with pytest.raises(ConfigError) as exc:
        load_config("dev", overrides=overrides)
    assert message in str(exc.value) and "(from " in str(exc.value)


def test_prod_refuses_unpinned_hub_weights():
    with pytest.raises(ConfigError) as exc:
        load_config("prod", overrides={"stable_diffusion.compile.weights_prefix": "null"})
    assert "stable_diffusion.compile.revision: got None for 'stabilityai/stable-diffusion-2-1-base'" in str(exc.value)
