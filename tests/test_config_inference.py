"""Inference sections: documented defaults, per-environment sizes, and every rule's message
(the LLM section: tests/test_llm_config.py)."""
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


def test_multi_model_prod_and_dev_sizes():
    prod, dev = load_config("prod").multi_model, load_config("dev").multi_model
    assert (prod.instance_type, prod.instance_count, prod.model_cache) == ("ml.c5d.18xlarge", 20, "Enabled")
    assert (prod.max_idle_time_seconds, prod.model_count, prod.runtime) == (600, 1000, "current")
    assert prod.image_uri is None and prod.base_image is None  # built from runtime_profiles/multi_model/current
    # Workers chosen per instance type: one single-threaded worker per vCPU at most, one kept per model.
    assert prod.serving_properties() == {"minWorkers": 1, "maxWorkers": 72, "job_queue_size": 1000, "max_idle_time": 600}
    assert dev.serving_properties() == {"minWorkers": 1, "maxWorkers": 2, "job_queue_size": 1000, "max_idle_time": 600}
    assert prod.container_environment() == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    four = load_config("prod", overrides={"multi_model.omp_num_threads": "4"}).multi_model
    assert four.serving_properties()["maxWorkers"] == 18 and four.container_environment()["OMP_NUM_THREADS"] == "4"
    assert prod.autoscaling.enabled and (prod.autoscaling.min_capacity, prod.autoscaling.max_capacity) == (20, 40)
    assert (dev.instance_type, dev.instance_count, dev.autoscaling.min_capacity, dev.autoscaling.max_capacity) == (
        "ml.m5.large", 1, 1, 2)


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
        ({"multi_model.min_workers": "0"}, "multi_model.min_workers: got 0, allowed range: 1 to 1024"),
        ({"multi_model.min_workers": "3", "multi_model.instance_type": "ml.m5.large", "multi_model.autoscaling.enabled": "false"},
         "multi_model.min_workers: got 3, allowed: at most max_workers (2)"),
        ({"multi_model.max_workers": "100"},
         "multi_model.max_workers: got 100 workers x omp_num_threads 1, allowed: at most the 72 vCPUs of ml.c5d.18xlarge"),
        ({"multi_model.max_workers": "40", "multi_model.omp_num_threads": "2"},
         "multi_model.max_workers: got 40 workers x omp_num_threads 2, allowed: at most the 72 vCPUs"),
        ({"multi_model.instance_type": "ml.c5d.metal"},
         "multi_model.max_workers: required: the vCPUs of ml.c5d.metal are not known here"),
        ({"multi_model.omp_num_threads": "0"}, "multi_model.omp_num_threads: got 0, allowed range: 1 to 448"),
        ({"multi_model.job_queue_size": "0"}, "multi_model.job_queue_size: got 0, allowed range: 1 to 100000"),
        ({"multi_model.runtime": "nightly"}, "multi_model.runtime: got 'nightly', allowed: 'current', 'seed'"),
        ({"multi_model.base_image": "deepjavalibrary/djl-serving:0.23.0-cpu-full"},
         "multi_model.base_image: got 'deepjavalibrary/djl-serving:0.23.0-cpu-full', whose tag '0.23.0-cpu-full' is "
         "not built on runtime profile multi_model/current (DJL Serving 0.36.0, Python 3.11, locked in "
         "runtime_profiles/multi_model/current/requirements.lock); allowed: a tag starting with 0.36.0-cpu-full or "
         "0.35.0-cpu-full"),
        ({"multi_model.image_uri": "111111111111.dkr.ecr.us-east-1.amazonaws.com/mme:0.23.0-cpu-full"},
         "multi_model.image_uri: got '111111111111.dkr.ecr.us-east-1.amazonaws.com/mme:0.23.0-cpu-full', whose tag "
         "'0.23.0-cpu-full' is not built on runtime profile multi_model/current"),
        ({"multi_model.runtime": "seed", "multi_model.image_uri": "111111111111.dkr.ecr.us-east-1.amazonaws.com/mme:0.36.0-cpu-full-lock1"},
         "whose tag '0.36.0-cpu-full-lock1' is not built on runtime profile multi_model/seed (DJL Serving 0.23.0, Python 3.8"),
        ({"multi_model.image_uri": "111111111111.dkr.ecr.us-east-1.amazonaws.com/mme:0.36.0-cpu-full",
          "multi_model.base_image": "deepjavalibrary/djl-serving:0.36.0-cpu-full"},
         "multi_model.base_image: only for the image built at deploy; image_uri names a prebuilt one"),
        ({"multi_model.image_uri": "docker.io/library/mme:0.36.0-cpu-full"},
         "multi_model.image_uri: got 'docker.io/library/mme:0.36.0-cpu-full', which does not match"),
        ({"multi_model.base_image": "djl-serving"}, "multi_model.base_image: got 'djl-serving', which does not match"),
        ({"multi_model.alarms.model_cache_hit_min": "1.5"}, "multi_model.alarms.model_cache_hit_min: got 1.5, allowed range: 0 to 1"),
        ({"multi_model.alarms.model_loading_wait_p99_ms": "0"}, "multi_model.alarms.model_loading_wait_p99_ms: got 0"),
        ({"multi_model.instance_count": "50"}, "multi_model.instance_count: got 50, allowed: autoscaling.min_capacity (20) to autoscaling.max_capacity (40)"),
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
        # Patterns and ranges not covered above.
        ({"stable_diffusion.image_repository": "Bad Repo"}, "stable_diffusion.image_repository: got 'Bad Repo', which does not match"),
        ({"multi_model.instance_type": "c5.large"}, "multi_model.instance_type: got 'c5.large', which does not match"),
        ({"multi_model.volume_size_gb": "513"}, "multi_model.volume_size_gb: got 513, allowed range: 1 to 512"),
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
        ({"stable_diffusion.compile.wait_for_completion": "false"},
         "stable_diffusion.compile.wait_for_completion: got false with endpoint_enabled true, allowed: true; the "
         "endpoint would start on an empty artifacts prefix and fail (on a first deploy the rollback deletes the "
         "compile queue, ending the compile). Two steps instead: deploy with endpoint_enabled=false, then with "
         "endpoint_enabled=true once the compile finished"),
        (SEED | {"stable_diffusion.compile.height": "768"},
         "stable_diffusion.compile.height: got 768 with compile.width 512, allowed with serving_mode 'no-code': "
         "equal to compile.width"),
        ({"stable_diffusion.runtime": "legacy"}, "stable_diffusion.runtime: got 'legacy'"),
        ({"stable_diffusion.compile.compiler_args.unet": "--target=inf2 -O3"},
         "stable_diffusion.compile.compiler_args: got non-default flags with serving_mode 'optimum-neuron'"),
    ],
)
def test_runtime_contract_violations_are_config_errors(overrides, message):
    with pytest.raises(ConfigError) as exc:
        load_config("dev", overrides=overrides)
    assert message in str(exc.value) and "(from " in str(exc.value)


def test_the_two_step_first_deploy_and_a_non_square_bring_your_own_size_are_accepted():
    first = load_config("dev", overrides={"stable_diffusion.endpoint_enabled": "false",
                                          "stable_diffusion.compile.wait_for_completion": "false"})
    assert first.stable_diffusion.compile.wait_for_completion is False
    byo = load_config("dev", overrides=SEED | {"stable_diffusion.serving_mode": "byo-script",
                                               "stable_diffusion.compile.height": "768"})
    assert (byo.stable_diffusion.compile.height, byo.stable_diffusion.compile.width) == (768, 512)


def test_prod_refuses_unpinned_hub_weights():
    with pytest.raises(ConfigError) as exc:
        load_config("prod", overrides={"stable_diffusion.compile.weights_prefix": "null"})
    assert "stable_diffusion.compile.revision: got None for 'stabilityai/stable-diffusion-2-1-base'" in str(exc.value)
