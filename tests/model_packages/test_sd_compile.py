"""The compile script run end to end on CPU: a tiny SD pipeline, torch.jit.trace as the
tracer, the documented output layout and manifest, upload to moto's S3."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import boto3
import pytest
import torch
from moto import mock_aws

from tests.model_packages.conftest import PACKAGES, load_module

sys.path.insert(0, str(PACKAGES / "stable_diffusion_compile"))
compile_sd = load_module(PACKAGES / "stable_diffusion_compile" / "compile.py")
import neuron_attention as attention  # noqa: E402  (the module compile.py imports)
PER_COMPONENT = {"text_encoder": "--target=inf2", "unet": "--target=inf2 --model-type=unet-inference -O1",
                 "vae_decoder": "--target=inf2 --model-type=unet-inference", "vae_post_quant_conv": "--target=inf2"}
ARGS = ["--height", "64", "--width", "64", "--dtype", "bf16", "--compiler-args", json.dumps(PER_COMPONENT)]


class RecordingTracer:
    """torch.jit.trace, noting what it was given (the Neuron tracer's stand-in on CPU)."""

    def __init__(self):
        self.calls: list[tuple[str, list[tuple[int, ...]], list[torch.dtype]]] = []
        self.neuron_attention_active: list[bool] = []
        self.attention: dict[str, tuple[int, int]] = {}  # name -> (attention layers, layers that scored)

    def __call__(self, module, example_inputs, name):
        from diffusers.models.attention_processor import Attention

        self.calls.append((name, [tuple(t.shape) for t in example_inputs], [t.dtype for t in example_inputs]))
        installed = Attention.get_attention_scores
        self.neuron_attention_active.append(installed is attention.neuron_attention_scores)
        scored: list[int] = []

        def counting(layer, *args, **kwargs):  # counts what the traced graph really computes
            scored.append(id(layer))
            return installed(layer, *args, **kwargs)

        Attention.get_attention_scores = counting
        try:
            # strict=False: dict outputs, as torch_neuronx.trace allows; the tests run the files instead of check_trace
            traced = torch.jit.trace(module, example_inputs, check_trace=False, strict=False)
        finally:
            Attention.get_attention_scores = installed
        layers = {id(m) for m in module.modules() if isinstance(m, Attention)}
        self.attention[name] = (len(layers), len(set(scored) & layers))
        return traced


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_sd_pipeline: Path) -> Path:
    return tiny_sd_pipeline


@pytest.fixture(scope="module")
def compiled(tiny_pipeline: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled")
    tracer = RecordingTracer()
    rc = compile_sd.main(["--model-id", str(tiny_pipeline), *ARGS, "--output-dir", str(out), "--no-pipeline-weights"],
                         tracer=tracer)
    assert rc == 0
    return out, tracer


def test_output_layout(compiled):
    out, _ = compiled
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "compiled_model/text_encoder.pt", "compiled_model/unet.pt", "compiled_model/vae_decoder.pt",
        "compiled_model/vae_post_quant_conv.pt", "manifest.json", "model_index.json",
        "scheduler/scheduler_config.json", "text_encoder/config.json", "tokenizer/tokenizer.json",
        "tokenizer/tokenizer_config.json", "unet/config.json", "vae/config.json",
    ]


def test_components_traced_with_batch_1_shapes_in_the_dtype(compiled):
    _, tracer = compiled
    assert tracer.calls == [
        ("text_encoder", [(1, 16)], [torch.int64]),
        # The timestep in the model dtype: DJL 0.24's handler passes timestep.to(sample.dtype).
        ("unet", [(1, 4, 32, 32), (1,), (1, 16, 16)], [torch.bfloat16, torch.bfloat16, torch.bfloat16]),
        ("vae_decoder", [(1, 4, 32, 32)], [torch.bfloat16]),
        ("vae_post_quant_conv", [(1, 4, 32, 32)], [torch.bfloat16]),
    ]
    assert tracer.neuron_attention_active == [True] * 4
    # Every attention layer of the UNet and the VAE decoder went through the replacement
    # scores while tracing (the default SDPA processor would bypass it).
    unet_layers, unet_scored = tracer.attention["unet"]
    vae_layers, vae_scored = tracer.attention["vae_decoder"]
    assert unet_layers > 0 and unet_scored == unet_layers
    assert vae_layers > 0 and vae_scored == vae_layers


def test_traced_files_load_and_run(compiled):
    out, _ = compiled
    text = torch.jit.load(str(out / "compiled_model" / "text_encoder.pt"))
    hidden = text(torch.ones((1, 16), dtype=torch.int64))
    assert set(hidden) == {"last_hidden_state"} and hidden["last_hidden_state"].shape == (1, 16, 16)
    unet = torch.jit.load(str(out / "compiled_model" / "unet.pt"))
    noise = unet(torch.randn(1, 4, 32, 32, dtype=torch.bfloat16), torch.tensor([10.0], dtype=torch.bfloat16),
                 hidden["last_hidden_state"])
    assert noise[0].shape == (1, 4, 32, 32)
    decoder = torch.jit.load(str(out / "compiled_model" / "vae_decoder.pt"))
    assert decoder(torch.randn(1, 4, 32, 32, dtype=torch.bfloat16)).shape == (1, 3, 64, 64)


def test_manifest_records_the_build_and_every_file(compiled, tiny_pipeline: Path):
    out, _ = compiled
    manifest = json.loads((out / "manifest.json").read_text())
    assert {k: manifest[k] for k in ("model_id", "revision", "height", "width", "dtype", "compiler_args")} == {
        "model_id": str(tiny_pipeline), "revision": None, "height": 64, "width": 64, "dtype": "bf16",
        "compiler_args": PER_COMPONENT}
    assert manifest["versions"]["torch"] in (torch.__version__, torch.__version__.split("+")[0])
    # Read from the installed packages: absent here, so null (not an environment variable nobody sets).
    assert {manifest["versions"][name] for name in ("torch-neuronx", "neuronx-cc", "optimum-neuron")} == {None}
    assert "neuron_sdk" not in manifest["versions"]
    on_disk = {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert set(manifest["files"]) == set(on_disk)
    for name, path in on_disk.items():
        assert manifest["files"][name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_neuron_attention_matches_diffusers_default():
    from diffusers.models.attention_processor import Attention

    layer = Attention(query_dim=16, heads=2, dim_head=8)
    torch.manual_seed(1)
    for q_len, k_len in ((12, 12), (12, 5)):
        query, key = torch.randn(2, q_len, 8), torch.randn(2, k_len, 8)
        expected = Attention.get_attention_scores(layer, query, key)
        assert torch.allclose(attention.neuron_attention_scores(layer, query, key), expected, atol=1e-6)


def test_s3_source_and_upload_with_manifest_last(tiny_pipeline: Path, tmp_path: Path):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="artifacts")
        for path in tiny_pipeline.rglob("*"):
            if path.is_file():
                s3.upload_file(str(path), "artifacts", f"source/sd/{path.relative_to(tiny_pipeline).as_posix()}")
        s3.put_object(Bucket="artifacts", Key="neuron/sd21/manifest.json", Body=b'{"files": {}}')  # an earlier run
        uploads: list[str] = []
        calls: list[tuple[str, str]] = []
        s3.meta.events.register("before-parameter-build.s3.PutObject",
                                lambda params, **_: uploads.append(params["Key"]))
        s3.meta.events.register("before-parameter-build.s3.*",
                                lambda params, model, **_: calls.append(
                                    (model.name, params.get("Key") or params.get("Prefix") or "")))
        rc = compile_sd.main(["--model-id", "s3://artifacts/source/sd", *ARGS, "--output-dir", str(tmp_path / "o"),
                              "--upload-url", "s3://artifacts/neuron/sd21/"], tracer=RecordingTracer(), s3_client=s3)
        assert rc == 0
        local = sorted(p.relative_to(tmp_path / "o").as_posix() for p in (tmp_path / "o").rglob("*") if p.is_file())
        assert "unet/diffusion_pytorch_model.safetensors" in local  # weights kept for DJL's built-in handler
        assert uploads[-1] == "neuron/sd21/manifest.json"
        writes = [c for c in calls if c[0] in ("PutObject", "DeleteObject")]
        assert writes[0] == ("DeleteObject", "neuron/sd21/manifest.json")  # the old one is gone before any upload
        assert sorted(uploads) == [f"neuron/sd21/{name}" for name in local]
        # Only what the compile job role may do on its own prefix (tests/test_neuron_compile_construct.py
        # pins the role: ListBucket with an s3:prefix condition, Get/Put/Delete/AbortMultipartUpload).
        granted = {"ListObjectsV2", "GetObject", "HeadObject", "PutObject", "DeleteObject", "CreateMultipartUpload",
                   "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"}
        assert {op for op, key in calls if key.startswith("neuron/sd21/")} <= granted
        assert not {op for op, _ in calls} & {"HeadBucket", "ListBuckets", "GetBucketLocation"}
        body = s3.get_object(Bucket="artifacts", Key="neuron/sd21/manifest.json")["Body"].read()
        assert body == (tmp_path / "o" / "manifest.json").read_bytes()


def test_failures_exit_non_zero_with_the_reason(tmp_path: Path, capsys):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="artifacts")
        rc = compile_sd.main(["--model-id", "s3://artifacts/empty/", *ARGS, "--output-dir", str(tmp_path)],
                             tracer=RecordingTracer(), s3_client=s3)
    assert rc == 1
    assert "compile failed: no objects under s3://artifacts/empty/" in capsys.readouterr().err
    assert not (tmp_path / "manifest.json").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--height", "500"], "--height: got 500, expected a multiple of 8 from 64 to 2048"),
        (["--width", "4096"], "--width: got 4096, expected a multiple of 8 from 64 to 2048"),
        (["--dtype", "int8"], "argument --dtype: invalid choice: 'int8'"),
        (["--upload-url", "bucket/prefix"], "--upload-url: got 'bucket/prefix', expected s3://bucket/prefix/"),
        (["--compiler-args", '{"unet": "-O1"}'], "--compiler-args: expected a JSON object with exactly the keys "
                                                  "text_encoder, unet, vae_decoder, vae_post_quant_conv"),
        (["--compiler-args", "{oops"], "--compiler-args: not a JSON object"),
    ],
)
def test_bad_arguments_are_rejected(argv, message, tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        compile_sd.parse_args(["--model-id", "m", "--output-dir", str(tmp_path), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_non_empty_output_dir_is_refused_before_any_work(tmp_path: Path, capsys):
    (tmp_path / "compiled_model").mkdir()
    (tmp_path / "compiled_model" / "unet.pt").write_bytes(b"from an earlier run")
    rc = compile_sd.main(["--model-id", "s3://artifacts/never-read/", *ARGS, "--output-dir", str(tmp_path)],
                         tracer=RecordingTracer(), s3_client=object())  # any S3 call would raise
    assert rc == 1
    assert f"compile failed: --output-dir: {tmp_path} is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["compiled_model", "unet.pt"]


def test_unusable_upload_target_fails_before_compiling(tiny_pipeline: Path, tmp_path: Path, capsys):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")  # the target bucket does not exist
        rc = compile_sd.main(["--model-id", str(tiny_pipeline), *ARGS, "--output-dir", str(tmp_path),
                              "--no-pipeline-weights", "--upload-url", "s3://missing-bucket/sd/"],
                             tracer=RecordingTracer(), s3_client=s3)
    assert rc == 1
    assert "compile failed: upload target s3://missing-bucket/sd/ is not usable: listing it answered NoSuchBucket" in (
        capsys.readouterr().err)
    assert not list(tmp_path.iterdir())  # refused before compiling anything


def test_each_component_reaches_neuronx_cc_with_its_own_flags(monkeypatch, tmp_path: Path):
    seen: dict[str, list[str]] = {}
    fake = type(sys)("torch_neuronx")
    fake.trace = lambda module, inputs, compiler_args, compiler_workdir: seen.setdefault(
        Path(compiler_workdir).name, compiler_args)
    monkeypatch.setitem(sys.modules, "torch_neuronx", fake)
    tracer = compile_sd.neuron_tracer(compile_sd.parse_compiler_args(json.dumps(PER_COMPONENT)), tmp_path)
    for name in PER_COMPONENT:
        tracer(torch.nn.Identity(), (torch.ones(1),), name)
    # AWS's samples: --model-type=unet-inference for the UNet and the VAE decoder only.
    assert seen == {"text_encoder": ["--target=inf2"], "unet": ["--target=inf2", "--model-type=unet-inference", "-O1"],
                    "vae_decoder": ["--target=inf2", "--model-type=unet-inference"],
                    "vae_post_quant_conv": ["--target=inf2"]}


def test_the_optimum_neuron_exporter_gets_the_inputs_and_the_manifest_comes_last(monkeypatch, tmp_path: Path):
    import optimum_export

    seen = []

    def fake_export(source, revision, height, width, dtype, out):
        seen.append((source, revision, height, width, dtype))
        (out / "model_index.json").write_text("{}")

    monkeypatch.setattr(optimum_export, "export", fake_export)
    rc = compile_sd.main(["--model-id", "stabilityai/stable-diffusion-2-1-base", "--revision", "a" * 40,
                          "--height", "512", "--width", "768", "--dtype", "bf16", "--exporter", "optimum-neuron",
                          "--output-dir", str(tmp_path / "o")], tracer=RecordingTracer())
    assert rc == 0
    assert seen == [("stabilityai/stable-diffusion-2-1-base", "a" * 40, 512, 768, "bf16")]
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["exporter"] == "optimum-neuron" and set(manifest["files"]) == {"model_index.json"}


def test_optimum_neuron_takes_no_neuronx_cc_flags(tmp_path: Path, capsys):
    with pytest.raises(SystemExit):
        compile_sd.parse_args(["--model-id", "m", "--output-dir", str(tmp_path), "--exporter", "optimum-neuron",
                               "--compiler-args=--target=inf2"])
    assert "--compiler-args: optimum-neuron chooses its own compiler flags" in capsys.readouterr().err


def test_the_compile_package_installs_nothing_over_the_serving_image():
    # The job runs in the serving image; a requirements.txt here would overlay its libraries.
    assert not (PACKAGES / "stable_diffusion_compile" / "requirements.txt").exists()
