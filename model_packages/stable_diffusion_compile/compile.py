"""Ahead-of-time Neuron compilation of a Stable Diffusion pipeline (run on inf2.8xlarge).

    python compile.py --model-id stabilityai/stable-diffusion-2-1-base [--revision REV] \\
        --height 512 --width 512 --dtype bf16 \\
        --compiler-args '{"text_encoder": "--target=inf2", "unet": "--target=inf2 --model-type=unet-inference",
                          "vae_decoder": "--target=inf2 --model-type=unet-inference",
                          "vae_post_quant_conv": "--target=inf2"}' \\
        --output-dir /scratch/sd21 [--upload-url s3://bucket/neuron-artifacts/sd21/]

``--compiler-args`` gives each component its own neuronx-cc flags (a JSON object with exactly
the four component names; a plain string applies to all four). AWS's Neuron Stable Diffusion
samples pass ``--model-type=unet-inference`` for the UNet and the VAE decoder only.

``--model-id`` is a hub id, a local diffusers folder, or an ``s3://`` prefix holding
one (downloaded first). Output (the contract with the serving packages):

    DIR/compiled_model/text_encoder.pt          TorchScript, traced with the tracer; returns
                                                {"last_hidden_state": tensor}: DJL 0.24's
                                                handler reads that key
    DIR/compiled_model/unet.pt                  batch 1: DataParallel runs one half of the
                                                classifier-free-guidance batch per NeuronCore;
                                                the timestep in the model dtype (DJL 0.24's
                                                handler casts it to the sample's dtype)
    DIR/compiled_model/vae_decoder.pt
    DIR/compiled_model/vae_post_quant_conv.pt
    DIR/model_index.json, scheduler/, tokenizer/, text_encoder/config.json, unet/config.json,
    vae/config.json                             the pipeline's configuration; for a square size the
                                                UNet's sample_size is the compiled one, so a
                                                request without a size renders that size
    DIR/<component>/*.safetensors               the weights too, unless --no-pipeline-weights:
                                                DJL 0.22-0.25's built-in handler calls
                                                from_pretrained on DIR before swapping in
                                                compiled_model/, so it needs them
    DIR/manifest.json                           written LAST: its presence marks a complete
                                                output (model, revision, shapes, dtype,
                                                compiler args, versions, sha256 of every file)

With ``--upload-url`` the target is checked first (a one-key listing of the prefix, which
the job role may do; HeadBucket would need unconditional ListBucket), then after compiling every
file is uploaded under that prefix, ``manifest.json`` last.
Any failure exits non-zero with a one-line reason. Host memory: each component is
deep-copied out of the pipeline and the pipeline is freed before tracing starts.
"""
from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import json
import shlex
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from neuron_attention import use_neuron_attention  # noqa: E402  (next to this script in the job image)

COMPILED_DIR = "compiled_model"
COMPILED_FILES = ("text_encoder.pt", "unet.pt", "vae_decoder.pt", "vae_post_quant_conv.pt")
COMPONENTS = tuple(name[: -len(".pt")] for name in COMPILED_FILES)
MANIFEST = "manifest.json"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".onnx")

# tracer(module, example_inputs, name) -> traced module that torch.jit.save can write
Tracer = Callable[[torch.nn.Module, tuple, str], Any]


class CompileError(RuntimeError):
    """A failure with a message fit for the job's log (and exit status 1)."""


def parse_compiler_args(value: str) -> dict[str, str]:
    """``{component: flags}`` from a JSON object naming the four components, or one string for all."""
    if not value.lstrip().startswith("{"):
        return dict.fromkeys(COMPONENTS, value)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"not a JSON object: {err}") from None
    if not isinstance(parsed, dict) or set(parsed) != set(COMPONENTS) or not all(
            isinstance(v, str) for v in parsed.values()):
        raise ValueError(f"expected a JSON object with exactly the keys {', '.join(COMPONENTS)}, each a string")
    return parsed


def neuron_tracer(compiler_args: dict[str, str], workdir: Path) -> Tracer:
    def trace(module: torch.nn.Module, example_inputs: tuple, name: str) -> Any:
        import torch_neuronx

        return torch_neuronx.trace(
            module, example_inputs, compiler_args=shlex.split(compiler_args[name]), compiler_workdir=str(workdir / name)
        )

    return trace


class TextEncoderForTrace(torch.nn.Module):
    """Returns ``{"last_hidden_state": ...}``: what DJL 0.24's no-code handler indexes the traced
    text encoder's output with (``stable_diffusion_inf2.py``, ``NeuronTextEncoder.forward``)."""

    def __init__(self, text_encoder: torch.nn.Module) -> None:
        super().__init__()
        self.text_encoder = text_encoder

    def forward(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"last_hidden_state": self.text_encoder(input_ids, return_dict=False)[0]}


class UNetForTrace(torch.nn.Module):
    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor):
        return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Compile a Stable Diffusion pipeline for Inferentia2")
    parser.add_argument("--model-id", required=True, help="hub id, local folder or s3://bucket/prefix/")
    parser.add_argument("--revision", default=None, help="hub revision (commit, branch or tag)")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--compiler-args", default="",
                        help="neuronx-cc flags per component: a JSON object {component: flags}, or one string for all")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--exporter", choices=("torch-neuronx", "optimum-neuron"), default="torch-neuronx",
                        help="torch-neuronx: compiled_model/*.pt for the DJL packages (runtime seed); "
                             "optimum-neuron: an optimum-neuron pipeline plus code/inference.py (runtime current)")
    parser.add_argument("--upload-url", default=None, help="s3://bucket/prefix/ to upload the output to")
    parser.add_argument("--no-pipeline-weights", action="store_true",
                        help="write only the pipeline's configuration next to compiled_model/ (enough for "
                             "the bring-your-own model.py, not for DJL's built-in handler)")
    args = parser.parse_args(argv)
    for name in ("height", "width"):
        value = getattr(args, name)
        if value % 8 or not 64 <= value <= 2048:
            parser.error(f"--{name}: got {value}, expected a multiple of 8 from 64 to 2048")
    try:
        args.component_args = parse_compiler_args(args.compiler_args)
    except ValueError as err:
        parser.error(f"--compiler-args: {err}")
    if args.exporter == "optimum-neuron" and args.compiler_args.strip():
        parser.error("--compiler-args: optimum-neuron chooses its own compiler flags; give none")
    if args.upload_url and not args.upload_url.startswith("s3://"):
        parser.error(f"--upload-url: got {args.upload_url!r}, expected s3://bucket/prefix/")
    return args


def split_s3_url(url: str) -> tuple[str, str]:
    # Not ml_tools.s3_url: this file ships alone into the compile job's image.
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise CompileError(f"not an S3 URL: {url!r}")
    return bucket, (prefix.rstrip("/") + "/") if prefix.strip("/") else ""


def download_prefix(url: str, dest: Path, client: Any) -> Path:
    bucket, prefix = split_s3_url(url)
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
        if not obj["Key"].endswith("/")
    ]
    if not keys:
        raise CompileError(f"no objects under {url}")
    for key in keys:
        target = dest / key[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))
    return dest


def upload_dir(root: Path, url: str, client: Any) -> int:
    bucket, prefix = split_s3_url(url)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
    # An earlier run's manifest would vouch for a half-replaced prefix while this one uploads.
    client.delete_object(Bucket=bucket, Key=prefix + MANIFEST)
    for path in files + [root / MANIFEST]:  # the manifest last: readers take it as "complete"
        client.upload_file(str(path), bucket, prefix + path.relative_to(root).as_posix())
    return len(files) + 1


def check_upload_target(url: str, client: Any) -> None:
    from botocore.exceptions import ClientError

    bucket, prefix = split_s3_url(url)
    try:
        # Listing under the prefix is what the job role is granted (s3:prefix condition).
        client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "error")
        raise CompileError(f"upload target {url} is not usable: listing it answered {code}") from err


def write_pipeline_files(pipe: Any, out: Path, *, weights: bool) -> None:
    if weights:
        pipe.save_pretrained(out, safe_serialization=True)
        return
    pipe.save_config(out)  # model_index.json
    pipe.scheduler.save_pretrained(out / "scheduler")
    pipe.tokenizer.save_pretrained(out / "tokenizer")
    pipe.text_encoder.config.save_pretrained(out / "text_encoder")
    pipe.unet.save_config(out / "unet")
    pipe.vae.save_config(out / "vae")
    leftovers = [p for p in out.rglob("*") if p.suffix in WEIGHT_SUFFIXES]
    if leftovers:
        raise CompileError(f"weights written although --no-pipeline-weights was given: {leftovers}")


def native_size(pipe: Any, height: int, width: int) -> None:
    """Make the compiled size the saved pipeline's own: DJL 0.24's no-code handler passes only the
    request's parameters, and diffusers 0.16 renders ``unet.config.sample_size * vae_scale_factor``
    pixels when the request names no size, which fails on graphs traced for another size. The
    config holds one number, so only a square size can be the default (the config refuses other
    sizes with serving_mode no-code); model.py always passes the compiled size itself."""
    scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    if height == width:
        pipe.unet.register_to_config(sample_size=height // scale)


def example_inputs(pipe: Any, height: int, width: int, dtype: torch.dtype) -> dict[str, tuple]:
    scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    latent = (1, pipe.vae.config.latent_channels, height // scale, width // scale)
    tokens = pipe.tokenizer.model_max_length
    return {
        "text_encoder.pt": (torch.ones((1, tokens), dtype=torch.int64),),
        "unet.pt": (
            torch.randn((1, pipe.unet.config.in_channels, *latent[2:]), dtype=dtype),
            torch.tensor([999.0], dtype=dtype),  # DJL 0.24 passes timestep.to(sample.dtype)
            torch.randn((1, tokens, pipe.unet.config.cross_attention_dim), dtype=dtype),
        ),
        "vae_decoder.pt": (torch.randn(latent, dtype=dtype),),
        "vae_post_quant_conv.pt": (torch.randn(latent, dtype=dtype),),
    }


# What decides whether the artifacts load where they are served: the compiler, the Neuron
# torch bridge and (runtime "current") optimum-neuron, as installed in the job's image.
VERSIONED_PACKAGES = ("torch", "diffusers", "transformers", "torch-neuronx", "neuronx-cc", "optimum-neuron")


def versions() -> dict[str, str | None]:
    """Installed versions (importlib.metadata) of VERSIONED_PACKAGES; None where one is absent."""
    found: dict[str, str | None] = {}
    for dist in VERSIONED_PACKAGES:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compile_pipeline(args: argparse.Namespace, tracer: Tracer, *, s3_client: Any = None) -> Path:
    from diffusers import StableDiffusionPipeline

    out: Path = args.output_dir
    if out.exists() and any(out.iterdir()):
        # An earlier run's files would be hashed into the manifest and uploaded with this one.
        raise CompileError(f"--output-dir: {out} is not empty; give a new or empty folder")
    if args.upload_url:
        s3_client = s3_client or _s3()
        check_upload_target(args.upload_url, s3_client)  # before an hour of compiling, not after
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        source = args.model_id
        if source.startswith("s3://"):
            source = str(download_prefix(source, Path(scratch), s3_client or _s3()))
        if args.exporter == "optimum-neuron":
            from optimum_export import export

            export(source, args.revision, args.height, args.width, args.dtype, out)
            return finish(args, out, s3_client)
        dtype = DTYPES[args.dtype]
        pipe = StableDiffusionPipeline.from_pretrained(
            source, revision=args.revision, torch_dtype=dtype, safety_checker=None, requires_safety_checker=False
        )
        native_size(pipe, args.height, args.width)
        write_pipeline_files(pipe, out, weights=not args.no_pipeline_weights)
        inputs = example_inputs(pipe, args.height, args.width, dtype)
        components = {
            "text_encoder.pt": TextEncoderForTrace(copy.deepcopy(pipe.text_encoder)),
            "unet.pt": UNetForTrace(copy.deepcopy(pipe.unet)),
            "vae_decoder.pt": copy.deepcopy(pipe.vae.decoder),
            "vae_post_quant_conv.pt": copy.deepcopy(pipe.vae.post_quant_conv),
        }
    del pipe
    gc.collect()

    compiled = out / COMPILED_DIR
    compiled.mkdir(exist_ok=True)
    with use_neuron_attention(*components.values()), torch.no_grad():
        for name in COMPILED_FILES:
            module = components.pop(name).eval()
            traced = tracer(module, inputs[name], name[: -len(".pt")])
            torch.jit.save(traced, str(compiled / name))
            del module, traced
            gc.collect()
    return finish(args, out, s3_client)


def finish(args: argparse.Namespace, out: Path, s3_client: Any) -> Path:
    """The manifest (written last: it marks a complete output), then the upload."""
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {
        "model_id": args.model_id,
        "revision": args.revision,
        "height": args.height,
        "width": args.width,
        "dtype": args.dtype,
        "compiler_args": args.component_args,
        "exporter": args.exporter,
        "pipeline_weights": not args.no_pipeline_weights,
        "versions": versions(),
        "files": {p.relative_to(out).as_posix(): {"sha256": sha256(p), "bytes": p.stat().st_size} for p in files},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if args.upload_url:
        upload_dir(out, args.upload_url, s3_client)
    return out


def _s3() -> Any:
    import boto3

    return boto3.client("s3")


def main(argv: list[str] | None = None, *, tracer: Tracer | None = None, s3_client: Any = None) -> int:
    args = parse_args(argv)
    tracer = tracer or neuron_tracer(args.component_args, Path(tempfile.gettempdir()) / "neuron-workdir")
    try:
        out = compile_pipeline(args, tracer, s3_client=s3_client)
    except CompileError as err:
        print(f"compile failed: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - the job log needs the cause in one line, then the trace
        print(f"compile failed: {type(err).__name__}: {err}", file=sys.stderr)
        import traceback

        traceback.print_exc()
        return 1
    print(f"compiled {args.model_id} into {out}" + (f", uploaded to {args.upload_url}" if args.upload_url else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
