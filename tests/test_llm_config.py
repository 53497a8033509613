"""The LLM section: documented defaults per runtime profile, overrides, and every rule's message."""
from __future__ import annotations

import pytest

from config import ConfigError, load_config
from config.llm_fit import Precision, fit_problem, generation_problem, weights_gib


def models(cfg) -> dict:
    return {m.name: m for m in cfg.llm.resolved_models()}


def test_prod_defaults_to_the_current_profile_for_both_models():
    cfg = load_config("prod")
    assert cfg.llm.runtime == "current" and cfg.llm.profile.supported
    bloom, opt = models(cfg)["bloom-176b"], models(cfg)["opt-30b"]
    assert (bloom.instance_type, bloom.tensor_parallel_degree) == ("ml.p4de.24xlarge", 8)
    assert (opt.instance_type, opt.tensor_parallel_degree, opt.dtype, opt.prequantized_bits) == (
        "ml.g5.24xlarge", 4, "fp16", None)
    # vLLM has no DeepSpeed INT8: BLOOM-176B is the published checkpoint in bf16 (its training precision),
    # on 8 x A100 80 GB, in a prefix of its own (the seed's holds DeepSpeed's model.py and serving.properties).
    assert (bloom.dtype, bloom.prequantized_bits, bloom.quantize) == ("bf16", None, None)
    assert (bloom.weights_prefix, opt.weights_prefix) == ("bloom-176b-bf16/", "opt-30b/")
    for model in (bloom, opt):
        assert model.inference_ami_version == "al2-ami-sagemaker-inference-gpu-2-1"
        assert model.model_data_download_timeout_seconds == model.container_startup_health_check_timeout_seconds == 2400
        assert model.instance_count == 1 and model.volume_size_gb is None


def test_seed_keeps_the_documented_deepspeed_values():
    cfg = load_config("prod", overrides={"llm.runtime": "seed"})
    assert cfg.llm.profile.image == "djl-inference:0.19.0-deepspeed0.7.3-cu113" and not cfg.llm.profile.supported
    bloom, opt = models(cfg)["bloom-176b"], models(cfg)["opt-30b"]
    assert (bloom.dtype, bloom.prequantized_bits, opt.dtype) == ("int8", None, "fp16")
    assert (bloom.instance_type, bloom.weights_prefix) == ("ml.p4d.24xlarge", "bloom-176b/")
    assert bloom.inference_ami_version is None and opt.inference_ami_version is None


def test_generation_limits_fit_the_60_second_invocation_at_the_documented_rates():
    bloom, opt = models(load_config("prod"))["bloom-176b"], models(load_config("prod"))["opt-30b"]
    # Reported: 4 x 256 tokens at 37.1 tokens/s (BLOOM) and 90.6 tokens/s (OPT), batch 4.
    assert (bloom.max_batch_size, bloom.tokens_per_second) == (4, 9.25)
    assert (opt.max_batch_size, opt.tokens_per_second) == (4, 22.6)
    for model in (bloom, opt):
        assert model.max_new_tokens / model.tokens_per_second <= 48
        # LMI's max_model_len is the whole context: a smaller one only makes vLLM refuse more requests.
        assert model.max_model_len == model.context_length == 2048
        assert model.max_input_tokens + model.max_new_tokens <= 2048


def test_one_value_is_overridden_without_restating_the_model():
    got = models(load_config("prod", overrides={"llm.models.opt-30b.instance_count": "2"}))
    assert got["opt-30b"].instance_count == 2 and got["opt-30b"].tensor_parallel_degree == 4
    assert got["bloom-176b"].instance_count == 1


def test_models_can_be_disabled_and_added_with_their_catalogue_facts(tmp_path):
    overlay = tmp_path / "o.toml"
    overlay.write_text(
        "[llm.models.bloom-176b]\nenabled = false\n"
        "[llm.models.opt-13b]\ninstance_type = 'ml.g5.12xlarge'\ntensor_parallel_degree = 4\n"
        "dtype = 'fp16'\nweights_prefix = 'opt-13b/'\nparameters_billion = 12.9\nattention_heads = 40\n"
        "context_length = 2048\nmax_new_tokens = 512\nmax_input_tokens = 1024\nmax_batch_size = 8\n"
        "tokens_per_second = 30\n"
        "[llm.models.opt-13b.serving_options]\nenable_prefix_caching = 'true'\n"
    )
    got = models(load_config("prod", overlay_file=str(overlay)))
    assert sorted(got) == ["opt-13b", "opt-30b"]
    added = got["opt-13b"]
    assert (added.model_data_download_timeout_seconds, added.inference_ami_version) == (
        2400, "al2-ami-sagemaker-inference-gpu-2-1")
    assert dict(added.serving_options) == {"enable_prefix_caching": "true"}


def test_bloom_on_a_p4d_fits_with_an_8_bit_checkpoint_of_ones_own():
    cfg = load_config("prod", overrides={"llm.models.bloom-176b.prequantized_bits": "8",
                                          "llm.models.bloom-176b.instance_type": "ml.p4d.24xlarge",
                                          "llm.models.bloom-176b.weights_prefix": "bloom-176b-w8a16/"})
    bloom = models(cfg)["bloom-176b"]
    assert (bloom.prequantized_bits, bloom.instance_type) == (8, "ml.p4d.24xlarge")


def test_a_pinned_region_without_the_instance_type_is_refused():
    with pytest.raises(ConfigError) as exc:
        load_config("prod", overrides={"account": "123456789012", "region": "eu-west-1"})
    assert ("llm.models.bloom-176b.instance_type: got 'ml.p4de.24xlarge' with region 'eu-west-1': SageMaker hosts "
            "ml.p4de.24xlarge only in us-east-1, us-west-2; allowed here: runtime 'seed' on ml.p4d.24xlarge "
            "(DeepSpeed INT8), an 8-bit checkpoint on ml.p4d.24xlarge (prequantized_bits = 8), or deploy to a "
            "region listed") in str(exc.value)
    llm = load_config("prod").llm
    assert llm.region_problems("us-west-2") == [] and llm.region_problems(None) == []
    assert [key for key, _ in llm.region_problems("ap-south-1")] == ["models.bloom-176b.instance_type"]


def test_weights_sizes_follow_the_precision():
    assert round(weights_gib(176.2, Precision("fp16").bytes_per_parameter), 1) == 328.2  # "about 352 GB"
    assert round(weights_gib(176.2, Precision("fp16", prequantized_bits=8).bytes_per_parameter), 1) == 164.1
    assert Precision("fp16", quantize="fp8").load_bytes_per_parameter == 2.0  # loads before quantizing
    assert Precision("fp32").bytes_per_parameter == 4.0 and Precision("int8").bytes_per_parameter == 1.0


def test_a_model_that_does_not_fit_names_sizes_and_what_would():
    message = fit_problem("bloom-176b", 176.2, 112, "ml.p4d.24xlarge", 8, Precision("fp16"))
    assert message == (
        "bloom-176b (176.2 B parameters) as fp16 needs 328.2 GiB of weights; ml.p4d.24xlarge with "
        "tensor_parallel_degree 8 offers 8 x 40 GiB, of which 80% (256.0 GiB) may hold weights. Would fit: "
        "prequantized_bits = 8 (164.1 GiB) on ml.p4d.24xlarge with tensor_parallel_degree 8; or fp16 on "
        "ml.p4de.24xlarge (tensor_parallel_degree 8), ml.p5.48xlarge (tensor_parallel_degree 8)")
    assert fit_problem("bloom-176b", 176.2, 112, "ml.p4d.24xlarge", 8, Precision("int8")) is None


def test_fit_counts_only_the_gpus_the_model_is_sharded_over():
    # OPT-30B fp16 (55.9 GiB) fits 4 x 24 GiB but not 2 of them.
    assert fit_problem("opt-30b", 30.0, 56, "ml.g5.24xlarge", 4, Precision("fp16")) is None
    assert "offers 2 x 24 GiB, of which 80% (38.4 GiB)" in fit_problem(
        "opt-30b", 30.0, 56, "ml.g5.24xlarge", 2, Precision("fp16"))


def test_generation_budget_message_names_the_rate_and_the_way_past_it():
    assert generation_problem(443, 9.25, 4) is None
    message = generation_problem(2048, 9.25, 4)
    assert message.startswith("got 2048, allowed: at most 444 at the assumed 9.25 tokens/s per sequence with "
                              "max_batch_size 4 (2048 tokens take about 221 s")
    assert "asynchronous inference" in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # Fit: the documented BLOOM size on the documented instance, without 8-bit weights.
        ({"llm.models.bloom-176b.instance_type": "ml.p4d.24xlarge"},
         "llm.models.bloom-176b.dtype: bloom-176b (176.2 B parameters) as bf16 needs 328.2 GiB of weights"),
        ({"llm.runtime": "seed", "llm.models.bloom-176b.dtype": "fp16"}, "as fp16 needs 328.2 GiB of weights"),
        # Runtime quantization loads at full precision first.
        ({"llm.models.bloom-176b.instance_type": "ml.p4d.24xlarge", "llm.models.bloom-176b.quantize": "fp8"},
         "needs 164.1 GiB of weights, 328.2 GiB while loading before quantization"),
        ({"llm.models.opt-30b.dtype": "fp32"}, "opt-30b (30 B parameters) as fp32 needs 111.8 GiB of weights"),
        # Tensor parallelism: divides the heads, at most the GPUs.
        ({"llm.models.opt-30b.tensor_parallel_degree": "3"},
         "llm.models.opt-30b.tensor_parallel_degree: got 3, allowed: a divisor of the model's 56 attention heads "
         "that ml.g5.24xlarge can hold: 1, 2, 4"),
        ({"llm.models.opt-30b.tensor_parallel_degree": "8"},
         "llm.models.opt-30b.tensor_parallel_degree: got 8, allowed: at most 4 (ml.g5.24xlarge has 4 GPUs)"),
        ({"llm.models.opt-30b.tensor_parallel_degree": "0"},
         "llm.models.opt-30b.tensor_parallel_degree: got 0, allowed range: 1 to 64"),
        # A CUDA image on Inferentia or Trainium.
        ({"llm.models.opt-30b.instance_type": "ml.inf2.48xlarge", "llm.models.opt-30b.inference_ami_version":
          "al2-ami-sagemaker-inference-neuron-2"},
         "llm.models.opt-30b.instance_type: got 'ml.inf2.48xlarge', allowed: a GPU instance type (ml.p*, ml.g*): "
         "runtime profile llm/current runs the CUDA image djl-inference:0.36.0-lmi20.0.0-cu128"),
        ({"llm.runtime": "seed", "llm.models.opt-30b.instance_type": "ml.trn1.32xlarge"},
         "runtime profile llm/seed runs the CUDA image djl-inference:0.19.0-deepspeed0.7.3-cu113"),
        # Inference AMI against the instance family.
        ({"llm.models.opt-30b.inference_ami_version": "al2-ami-sagemaker-inference-neuron-2"},
         "llm.models.opt-30b.inference_ami_version: got 'al2-ami-sagemaker-inference-neuron-2' (built for "
         "Inferentia2/Trainium instances) for ml.g5.24xlarge, allowed: al2-ami-sagemaker-inference-gpu-2,"),
        ({"llm.models.opt-30b.inference_ami_version": "al2-ami-sagemaker-inference-gpu-9"},
         "got 'al2-ami-sagemaker-inference-gpu-9', allowed: al2-ami-sagemaker-inference-gpu-2, "),
        # Generation limits.
        ({"llm.models.opt-30b.max_new_tokens": "1200"},
         "llm.models.opt-30b.max_new_tokens: got 1200, allowed: at most 1084 at the assumed 22.6 tokens/s"),
        ({"llm.models.opt-30b.max_input_tokens": "1500"},
         "llm.models.opt-30b.max_input_tokens: got 1500 + max_new_tokens 1024 = 2524, allowed: at most the "
         "model's context length 2048, so at most 1024"),
        ({"llm.models.opt-30b.max_new_tokens": "2048", "llm.models.opt-30b.tokens_per_second": "100"},
         "llm.models.opt-30b.max_new_tokens: got 2048, allowed: at most 2047 (the model's context is 2048 tokens"),
        ({"llm.models.opt-30b.max_batch_size": "32"},
         "llm.models.opt-30b.tokens_per_second: not set, required when max_batch_size changes"),
        # LMI options.
        ({"llm.models.opt-30b.serving_options.max_num_seqz": "8"},
         "llm.models.opt-30b.serving_options.max_num_seqz: got 'max_num_seqz', allowed: an LMI option of "
         "djl-inference:0.36.0-lmi20.0.0-cu128: cpu_offload_gb_per_gpu,"),
        ({"llm.models.opt-30b.serving_options.tensor_parallel_degree": "2"},
         "llm.models.opt-30b.serving_options.tensor_parallel_degree: got 'tensor_parallel_degree', allowed: set "
         "llm.models.opt-30b.tensor_parallel_degree instead"),
        ({"llm.runtime": "seed", "llm.models.opt-30b.serving_options.enable_prefix_caching": "true"},
         "got 'enable_prefix_caching', allowed: none (runtime profile llm/seed takes no LMI options)"),
        # Precision per profile.
        ({"llm.models.opt-30b.dtype": "int8"},
         "llm.models.opt-30b.dtype: got 'int8', allowed with runtime profile llm/current: fp16, bf16, fp32"),
        ({"llm.runtime": "seed", "llm.models.opt-30b.quantize": "fp8"},
         "llm.models.opt-30b.quantize: got 'fp8', allowed: not set with runtime profile llm/seed"),
        ({"llm.models.bloom-176b.quantize": "fp8", "llm.models.bloom-176b.prequantized_bits": "8"},
         "llm.models.bloom-176b.quantize: got 'fp8' with prequantized_bits 8, allowed: not set for a "
         "pre-quantized checkpoint"),
        ({"llm.models.opt-30b.quantize": "awq"}, "llm.models.opt-30b.quantize: got 'awq', allowed: 'fp8', 'bitsandbytes'"),
        ({"llm.models.opt-30b.prequantized_bits": "16"}, "llm.models.opt-30b.prequantized_bits: got 16, allowed: 0, 4, 8"),
        # Profiles and image tags.
        ({"llm.runtime": "latest"}, "llm.runtime: got 'latest', allowed: 'current', 'seed'"),
        ({"llm.image_tag": "0.33.0-lmi15.0.0-cu128"},
         "llm.image_tag: got '0.33.0-lmi15.0.0-cu128', allowed for runtime profile 'llm/current': 0.36.0-lmi20.0.0-cu128"),
        ({"llm.image_tag": "x y"}, "llm.image_tag: got 'x y', which does not match"),
        # Keys, names and ranges.
        ({"llm.models.opt-30b.dtype": "int4"}, "llm.models.opt-30b.dtype: got 'int4', allowed: 'int8', 'fp16', 'bf16', 'fp32'"),
        ({"llm.models.opt-30b.volume_size_gb": "600"}, "llm.models.opt-30b.volume_size_gb: got 600, allowed range: 1 to 512"),
        ({"llm.models.bloom-176b.volume_size_gb": "100"},
         "llm.models.bloom-176b.volume_size_gb: got 100, allowed: not set: ml.p4de.24xlarge has local NVMe"),
        ({"llm.models.opt-30b.model_data_download_timeout_seconds": "4000"}, "got 4000, allowed range: 60 to 3600"),
        ({"llm.models.opt-30b.container_startup_health_check_timeout_seconds": "59"}, "got 59, allowed range: 60 to 3600"),
        ({"llm.models.opt-30b.weights_prefix": "opt"}, "llm.models.opt-30b.weights_prefix: got 'opt', which does not match"),
        ({"llm.models.opt-30b.unknown": "1"}, "llm.models.opt-30b.unknown: unknown key 'unknown'"),
        ({"llm.models.opt-30b.use_uncompressed_model_data": "true"},
         "llm.models.opt-30b.use_uncompressed_model_data: unknown key"),
        ({"llm.models.gpt-x.instance_count": "1"},
         "llm.models.gpt-x: a new model needs instance_type, tensor_parallel_degree, dtype, weights_prefix, "
         "parameters_billion, attention_heads, context_length, max_new_tokens"),
        ({"llm.models.Bad_Name.instance_count": "1"}, "llm.models.Bad_Name: model name 'Bad_Name' does not match"),
        ({"llm.models.opt30b.instance_type": "ml.g5.24xlarge", "llm.models.opt30b.tensor_parallel_degree": "4",
          "llm.models.opt30b.dtype": "fp16", "llm.models.opt30b.weights_prefix": "opt30b/",
          "llm.models.opt30b.parameters_billion": "30", "llm.models.opt30b.attention_heads": "56",
          "llm.models.opt30b.context_length": "2048", "llm.models.opt30b.max_new_tokens": "100",
          "llm.models.opt30b.max_input_tokens": "100", "llm.models.opt30b.max_batch_size": "1",
          "llm.models.opt30b.tokens_per_second": "10"},
         "model name 'opt30b' names the same endpoint (Opt30b) as 'opt-30b'"),
        ({"llm.models.opt-30b.instance_type": "g5.24xlarge"}, "llm.models.opt-30b.instance_type: got 'g5.24xlarge', which does not match"),
        ({"llm.models.opt-30b.instance_count": "0"}, "llm.models.opt-30b.instance_count: got 0, allowed range"),
        ({"llm.models.opt-30b.model_latency_p99_ms": "0"}, "llm.models.opt-30b.model_latency_p99_ms: got 0"),
        ({"llm.models.opt-30b.tokens_per_second": "0"}, "llm.models.opt-30b.tokens_per_second: got 0.0, allowed range"),
    ],
)
def test_each_bad_llm_value_names_key_value_allowed_and_source(overrides, expected):
    with pytest.raises(ConfigError) as exc:
        load_config("prod", overrides=overrides)
    assert expected in str(exc.value)
    # The bad value's own source, or (a default made wrong by another setting) that setting's: pinned below.
    assert "(from -c set:llm." in str(exc.value) or "(from defaults; because of llm." in str(exc.value)


@pytest.mark.parametrize(
    ("overrides", "source"),
    [
        # dtype (bf16) is bloom's default; the user's smaller instance is what no longer fits.
        ({"llm.models.bloom-176b.instance_type": "ml.p4d.24xlarge"},
         "(from defaults; because of llm.models.bloom-176b.instance_type from "
         "-c set:llm.models.bloom-176b.instance_type)"),
        ({"llm.models.bloom-176b.instance_type": "ml.p4d.24xlarge", "llm.models.bloom-176b.quantize": "fp8"},
         "(from defaults; because of llm.models.bloom-176b.quantize from -c set:llm.models.bloom-176b."
         "quantize and llm.models.bloom-176b.instance_type from -c set:llm.models.bloom-176b.instance_type)"),
        # tokens_per_second is nobody's value; max_batch_size made it required.
        ({"llm.models.opt-30b.max_batch_size": "32"},
         "(from defaults; because of llm.models.opt-30b.max_batch_size from -c set:llm.models.opt-30b.max_batch_size)"),
        # The user's own dtype is named alone: the other keys the fit reads are defaults.
        ({"llm.models.opt-30b.dtype": "fp32"}, "(from -c set:llm.models.opt-30b.dtype)"),
    ],
)
def test_a_default_made_wrong_by_another_setting_names_that_settings_source(overrides, source):
    with pytest.raises(ConfigError) as exc:
        load_config("prod", overrides=overrides)
    (problem,) = exc.value.problems
    assert str(problem).endswith(source)


def test_gpu_memory_catalogue_gives_the_fit_its_sizes():
    from ml_constructs.sagemaker.instances import InstanceType, gpu_instance_types, inference_ami_problem

    sizes = {name: InstanceType.parse(name).accelerator_memory_gib
             for name in ("ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.g5.24xlarge", "ml.g5.xlarge", "ml.inf2.48xlarge")}
    assert sizes == {"ml.p4d.24xlarge": 320, "ml.p4de.24xlarge": 640, "ml.g5.24xlarge": 96, "ml.g5.xlarge": 24,
                     "ml.inf2.48xlarge": None}
    totals = [InstanceType.parse(n).accelerator_memory_gib for n in gpu_instance_types()]
    assert totals == sorted(totals) and "ml.inf2.xlarge" not in gpu_instance_types()
    assert inference_ami_problem("ml.p4d.24xlarge", "al2-ami-sagemaker-inference-gpu-2-1") is None
    assert inference_ami_problem("ml.trn1.32xlarge", "al2-ami-sagemaker-inference-neuron-2") is None
    assert inference_ami_problem("ml.c5.xlarge", "al2-ami-sagemaker-inference-gpu-2") == (
        "got 'al2-ami-sagemaker-inference-gpu-2' (built for GPU instances) for ml.c5.xlarge, "
        "allowed: not set (ml.c5.xlarge has no accelerators)")
