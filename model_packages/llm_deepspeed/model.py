"""DJL Serving handler: BLOOM-176B or OPT-30B with DeepSpeed tensor parallelism.

One package serves both models; the endpoint's environment tells them apart:

  MODEL_S3_BUCKET, MODEL_S3_PREFIX  where the weights are (required)
  TENSOR_PARALLEL_DEGREE            GPUs to shard over (default 1)
  LOCAL_RANK                        this process's rank, set by DJL's launcher (default 0)
  MODEL_DOWNLOAD_DIR                local scratch (default /tmp/model, the EBS-backed volume)

``serving.properties``' ``option.dtype`` (``int8``, ``fp16`` or ``bf16``; DJL passes
it as ``dtype``) picks the inference precision.

Start-up: when SageMaker already placed the weights in the model directory
(uncompressed ``ModelDataSource``: ``config.json`` in ``model_dir``), every rank
loads from there. Otherwise rank 0 copies ``s3://$MODEL_S3_BUCKET/$MODEL_S3_PREFIX/`` into the scratch
folder unless a completion marker from an earlier complete copy of the same source
is there (a marker of another source: the folder is emptied first); the marker is
written only after every object has arrived. Every rank then
meets at a barrier; if rank 0 failed, all ranks raise with rank 0's cause (no rank
waits for a download that will never come). DeepSpeed's ``init_inference`` then
shards the model with kernel injection; a pre-sharded checkpoint
(``ds_inference_config.json`` next to the weights, as published for BLOOM INT8) is
loaded directly.

Request (``application/json``)::

    {"inputs": "text" | ["text", ...], "parameters": {"max_new_tokens": 256, ...}}

Parameters (all optional): ``max_new_tokens`` (1-2048, default 256),
``min_new_tokens`` (0-2048), ``do_sample`` (bool, default false: greedy),
``temperature`` (> 0), ``top_p`` (0 < p <= 1), ``top_k`` (>= 0),
``repetition_penalty`` (> 0). At most 32 prompts per request; they are generated
as one batch (left-padded).

Response (``application/json``): ``[{"generated_text": "..."}, ...]``, one per
prompt, in order, holding only the new text. A malformed request gets HTTP 400
with ``{"error": "..."}``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from djl_python import Input, Output

MARKER = ".download-complete"
MAX_PROMPTS = 32
DTYPES = ("int8", "fp16", "bf16")
# name -> (type, check, description of what is allowed)
PARAMETERS: dict[str, tuple[type, Callable[[Any], bool], str]] = {
    "max_new_tokens": (int, lambda v: 1 <= v <= 2048, "an integer from 1 to 2048"),
    "min_new_tokens": (int, lambda v: 0 <= v <= 2048, "an integer from 0 to 2048"),
    "do_sample": (bool, lambda v: True, "true or false"),
    "temperature": (float, lambda v: v > 0, "a number above 0"),
    "top_p": (float, lambda v: 0 < v <= 1, "a number above 0, at most 1"),
    "top_k": (int, lambda v: v >= 0, "an integer >= 0"),
    "repetition_penalty": (float, lambda v: v > 0, "a number above 0"),
}
DEFAULT_PARAMETERS = {"max_new_tokens": 256, "do_sample": False}


class DownloadError(RuntimeError):
    """The weights could not be fetched; the message names the source and the cause."""


class BadRequest(ValueError):
    """The request itself is wrong: answered with HTTP 400."""


@dataclass(frozen=True)
class Settings:
    bucket: str
    prefix: str
    tensor_parallel_degree: int
    local_rank: int
    download_dir: Path
    dtype: str

    @property
    def source(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @classmethod
    def from_env(cls, env: dict[str, str], properties: dict[str, str]) -> "Settings":
        problems = []
        bucket = env.get("MODEL_S3_BUCKET", "").strip()
        if not bucket:
            problems.append("MODEL_S3_BUCKET is not set: the endpoint's environment must name the weights' bucket")
        prefix = env.get("MODEL_S3_PREFIX", "").strip().strip("/")
        if not prefix:
            problems.append("MODEL_S3_PREFIX is not set: the endpoint's environment must name the weights' prefix")
        degree = _int_setting(env, "TENSOR_PARALLEL_DEGREE", "1", problems, minimum=1)
        rank = _int_setting(env, "LOCAL_RANK", "0", problems, minimum=0)
        dtype = properties.get("dtype", "fp16")
        if dtype not in DTYPES:
            problems.append(f"option.dtype: got {dtype!r}, allowed: {', '.join(DTYPES)}")
        if problems:
            raise ValueError("; ".join(problems))
        download_dir = Path(env.get("MODEL_DOWNLOAD_DIR", "/tmp/model"))
        return cls(bucket, prefix + "/", degree, rank, download_dir, dtype)


def _int_setting(env: dict[str, str], name: str, default: str, problems: list[str], *, minimum: int) -> int:
    raw = env.get(name, default)
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        problems.append(f"{name}: got {raw!r}, expected an integer >= {minimum}")
    return value


def s3_client() -> Any:
    import boto3
    from botocore.config import Config

    # Few, quick retries: a wrong bucket or missing permission must stop the
    # container in seconds, not after minutes of back-off.
    return boto3.client("s3", config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10))


def download_model(bucket: str, prefix: str, dest: Path, client: Any) -> Path:
    """Copy every object under ``s3://bucket/prefix`` into ``dest`` (idempotent via the marker)."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    source = f"s3://{bucket}/{prefix}"
    marker = dest / MARKER
    previous = _marker_source(marker)
    if previous == source:
        logging.info("weights from %s already complete in %s", source, dest)
        return dest
    if previous is not None:
        # Files of another model (e.g. its ds_inference_config.json) would mix with
        # the new weights and could send them down the wrong loading path.
        logging.info("removing %s's weights from %s", previous, dest)
        shutil.rmtree(dest)
    marker.unlink(missing_ok=True)
    try:
        keys = [
            (obj["Key"], obj["Size"])
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
            if not obj["Key"].endswith("/")
        ]
        if not keys:
            raise DownloadError(f"no objects under {source}: check MODEL_S3_BUCKET and MODEL_S3_PREFIX")
        for key, _size in keys:
            target = dest / key[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            client.download_file(bucket, key, str(partial))
            partial.replace(target)
    except ClientError as err:
        error = err.response.get("Error", {})
        raise DownloadError(
            f"downloading {source} failed: {error.get('Code', 'error')}: {error.get('Message', err)}"
        ) from err
    except (BotoCoreError, Boto3Error, OSError) as err:  # Boto3Error: s3transfer's retries exhausted
        raise DownloadError(f"downloading {source} failed: {err}") from err
    total = sum(size for _key, size in keys)
    marker.write_text(json.dumps({"source": source, "objects": len(keys), "bytes": total}))
    logging.info("downloaded %d objects (%d bytes) from %s", len(keys), total, source)
    return dest


def _marker_source(marker: Path) -> str | None:
    try:
        return json.loads(marker.read_text())["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def prepare_weights(settings: Settings, *, barrier: Callable[[], None], client_factory=s3_client) -> Path:
    """Rank 0 downloads, every rank waits at ``barrier``; all ranks fail if the download did."""
    failure: DownloadError | None = None
    if settings.local_rank == 0:
        # Any error (no region, exhausted transfer retries, ...) is raised only after
        # the barrier, so the other ranks are not left waiting until it times out.
        try:
            download_model(settings.bucket, settings.prefix, settings.download_dir, client_factory())
        except DownloadError as err:
            failure = err
        except Exception as err:  # noqa: BLE001 - every cause must reach the barrier
            failure = DownloadError(f"downloading {settings.source} failed: {type(err).__name__}: {err}")
            failure.__cause__ = err
    barrier()
    if failure is not None:
        raise failure
    if _marker_source(settings.download_dir / MARKER) != settings.source:
        raise DownloadError(f"rank {settings.local_rank}: rank 0 did not complete {settings.source}; see rank 0's log")
    return settings.download_dir


def parse_request(body: bytes) -> tuple[list[str], dict[str, Any]]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadRequest(f"request body is not valid JSON: {err}") from None
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise BadRequest('expected {"inputs": "text" or ["text", ...], "parameters": {...}}')
    prompts = payload["inputs"]
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise BadRequest('"inputs" must be a non-empty string or a non-empty list of non-empty strings')
    if len(prompts) > MAX_PROMPTS:
        raise BadRequest(f'"inputs" has {len(prompts)} prompts, at most {MAX_PROMPTS} are allowed')
    raw = payload.get("parameters", {})
    if not isinstance(raw, dict):
        raise BadRequest('"parameters" must be an object')
    params = dict(DEFAULT_PARAMETERS)
    for name, value in raw.items():
        if name not in PARAMETERS:
            raise BadRequest(f"unknown parameter {name!r}, allowed: {', '.join(sorted(PARAMETERS))}")
        kind, check, allowed = PARAMETERS[name]
        if not _has_type(value, kind) or not check(value):
            raise BadRequest(f"parameter {name!r}: got {json.dumps(value)}, allowed: {allowed}")
        params[name] = value
    return prompts, params


def _has_type(value: Any, kind: type) -> bool:
    if kind is bool or isinstance(value, bool):  # JSON true is no number, 1 is no boolean
        return kind is bool and isinstance(value, bool)
    return isinstance(value, (int, float) if kind is float else kind)


def generate(model: Any, tokenizer: Any, prompts: list[str], params: dict[str, Any]) -> list[str]:
    """Batched generation; returns only the new text of each prompt."""
    import torch

    # Decoder-only models continue from the last position: pad on the left so
    # every prompt ends where generation starts.
    tokenizer.padding_side = "left"
    encoded = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
    with torch.no_grad():
        output = model.generate(**encoded, **params, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)


def load_model(settings: Settings, model_dir: Path) -> tuple[Any, Any]:
    """DeepSpeed inference over ``tensor_parallel_degree`` GPUs (needs the LMI DeepSpeed image)."""
    import deepspeed
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    dtype = {"int8": torch.int8, "fp16": torch.float16, "bf16": torch.bfloat16}[settings.dtype]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    presharded = model_dir / "ds_inference_config.json"
    if presharded.exists():
        # Empty (meta) weights: DeepSpeed fills them from the pre-sharded checkpoint.
        config = AutoConfig.from_pretrained(model_dir)
        with deepspeed.OnDevice(dtype=torch.float16, device="meta"):
            model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float16)
        checkpoint = str(presharded)
    else:
        # INT8 is DeepSpeed's quantisation of fp16 weights, not a dtype to load in.
        load_dtype = torch.float16 if dtype is torch.int8 else dtype
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=load_dtype, low_cpu_mem_usage=True)
        checkpoint = None
    engine = deepspeed.init_inference(
        model,
        mp_size=settings.tensor_parallel_degree,
        dtype=dtype,
        replace_with_kernel_inject=True,
        checkpoint=checkpoint,
        base_dir=str(model_dir),
    )
    return engine.module, tokenizer


class Service:
    """Loads on the first call; ``loader`` returns (model, tokenizer) from the properties."""

    def __init__(self, loader: Callable[[dict[str, str]], tuple[Any, Any]]) -> None:
        self.loader = loader
        self.model: Any = None
        self.tokenizer: Any = None

    def handle(self, inputs: Input) -> Output | None:
        if self.model is None:
            self.model, self.tokenizer = self.loader(inputs.get_properties())
        if inputs.is_empty():
            return None
        try:
            prompts, params = parse_request(inputs.get_as_bytes())
        except BadRequest as err:
            return (
                Output().set_code(400).set_message("Bad Request")
                .add_property("content-type", "application/json").add_as_json({"error": str(err)})
            )
        texts = generate(self.model, self.tokenizer, prompts, params)
        return (
            Output().add_property("content-type", "application/json")
            .add_as_json([{"generated_text": text} for text in texts])
        )


def _load_for_djl(properties: dict[str, str]) -> tuple[Any, Any]:
    import deepspeed
    import torch.distributed as dist

    settings = Settings.from_env(dict(os.environ), properties)
    deepspeed.init_distributed()
    return load_model(settings, weights_dir(settings, properties, barrier=dist.barrier))


def weights_dir(settings: Settings, properties: dict[str, str], *, barrier: Callable[[], None],
                client_factory=s3_client) -> Path:
    """The folder to load from: SageMaker's model directory when it already holds the
    weights (uncompressed ModelDataSource), otherwise a fresh or reused download."""
    model_dir = Path(properties.get("model_dir", ""))
    if properties.get("model_dir") and (model_dir / "config.json").is_file():
        logging.info("weights already in %s: not downloading %s", model_dir, settings.source)
        return model_dir
    return prepare_weights(settings, barrier=barrier, client_factory=client_factory)


_service = Service(_load_for_djl)


def handle(inputs: Input) -> Output | None:
    return _service.handle(inputs)
