"""DJL Serving handler: BLOOM-176B or OPT-30B with DeepSpeed tensor parallelism (runtime profile llm/seed).

One package serves both models; the endpoint's environment tells them apart:

  TENSOR_PARALLEL_DEGREE  GPUs to shard over (default 1; DJL Serving 0.19 reads it too)
  LOCAL_RANK              this process's rank, set by DJL's launcher (default 0)
  MODEL_DTYPE             int8, fp16 or bf16 (default: serving.properties' option.dtype, else fp16)
  MAX_NEW_TOKENS          most tokens one request may generate (default 256)
  MAX_BATCH_SIZE          most prompts in one request, generated as one batch (default 4)
  MODEL_S3_BUCKET, MODEL_S3_PREFIX, MODEL_DOWNLOAD_DIR   only when downloading (see below)

The two limits keep a request inside SageMaker's 60-second real-time invocation limit: the
stack sets them from configuration, where they are checked against the model's assumed
decode rate (docs/llm.md). A request past either gets HTTP 400 naming the limit.

Start-up: the weights are expected in the model directory, placed there by SageMaker from the
uncompressed weights prefix (``ModelDataSource``) together with this file; every rank loads
from there and nothing is downloaded or installed. Only when ``config.json`` is not there,
rank 0 copies ``s3://$MODEL_S3_BUCKET/$MODEL_S3_PREFIX/`` into the scratch folder (several
objects at a time), unless a completion marker from an earlier complete copy of the same
source is there (a marker of another source: the folder is emptied first); the marker is
written only after every object has arrived. That needs boto3, which the DeepSpeed 0.19
image does not have. Every rank then meets at a barrier; if rank 0 failed, all ranks raise
with rank 0's cause (no rank waits for a download that will never come). DeepSpeed's
``init_inference`` then shards the model with kernel injection; a pre-sharded checkpoint
(``ds_inference_config.json`` next to the weights, as published for BLOOM INT8) is loaded
directly.

Request (``application/json``)::

    {"inputs": "text" | ["text", ...], "parameters": {"max_new_tokens": 256, ...}}

Parameters (all optional): ``max_new_tokens`` (1 to MAX_NEW_TOKENS, default the smaller of
256 and MAX_NEW_TOKENS), ``min_new_tokens`` (0 to MAX_NEW_TOKENS), ``do_sample`` (bool,
default false: greedy), ``temperature`` (> 0), ``top_p`` (0 < p <= 1), ``top_k`` (>= 0),
``repetition_penalty`` (> 0). At most MAX_BATCH_SIZE prompts per request; they are
generated as one batch (left-padded).

Response (``application/json``): ``[{"generated_text": "..."}, ...]``, one per
prompt, in order, holding only the new text. A malformed request gets HTTP 400
with ``{"error": "..."}``.
"""
from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from djl_python import Input, Output

MARKER = ".download-complete"
DTYPES = ("int8", "fp16", "bf16")
DOWNLOAD_THREADS = 8
DEFAULT_NEW_TOKENS = 256
# name -> (type, check, description of what is allowed)
PARAMETERS: dict[str, tuple[type, Callable[[Any], bool], str]] = {
    "do_sample": (bool, lambda v: True, "true or false"),
    "temperature": (float, lambda v: v > 0, "a number above 0"),
    "top_p": (float, lambda v: 0 < v <= 1, "a number above 0, at most 1"),
    "top_k": (int, lambda v: v >= 0, "an integer >= 0"),
    "repetition_penalty": (float, lambda v: v > 0, "a number above 0"),
}
TOKEN_PARAMETERS = ("max_new_tokens", "min_new_tokens")
_WHY = "so that a request ends within SageMaker's 60-second invocation limit; longer: asynchronous inference"


class DownloadError(RuntimeError):
    """The weights could not be fetched; the message names the source and the cause."""


class BadRequest(ValueError):
    """The request itself is wrong: answered with HTTP 400."""


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (MAX_NEW_TOKENS, MAX_BATCH_SIZE)."""

    max_new_tokens: int = DEFAULT_NEW_TOKENS
    max_batch_size: int = 4

    @classmethod
    def from_env(cls, env: dict[str, str]) -> "Limits":
        problems: list[str] = []
        tokens = _int_setting(env, "MAX_NEW_TOKENS", str(cls.max_new_tokens), problems, minimum=1)
        batch = _int_setting(env, "MAX_BATCH_SIZE", str(cls.max_batch_size), problems, minimum=1)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(tokens, batch)


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
        problems: list[str] = []
        bucket = env.get("MODEL_S3_BUCKET", "").strip()
        prefix = env.get("MODEL_S3_PREFIX", "").strip().strip("/")
        degree = _int_setting(env, "TENSOR_PARALLEL_DEGREE", "1", problems, minimum=1)
        rank = _int_setting(env, "LOCAL_RANK", "0", problems, minimum=0)
        dtype = env.get("MODEL_DTYPE") or properties.get("dtype", "fp16")
        if dtype not in DTYPES:
            source = "MODEL_DTYPE" if env.get("MODEL_DTYPE") else "option.dtype"
            problems.append(f"{source}: got {dtype!r}, allowed: {', '.join(DTYPES)}")
        if problems:
            raise ValueError("; ".join(problems))
        download_dir = Path(env.get("MODEL_DOWNLOAD_DIR", "/tmp/model"))
        return cls(bucket, prefix + "/" if prefix else "", degree, rank, download_dir, dtype)

    def download_problem(self) -> str | None:
        """Why the weights cannot be downloaded (the source is not named), or None."""
        missing = [name for name, value in (("MODEL_S3_BUCKET", self.bucket), ("MODEL_S3_PREFIX", self.prefix))
                   if not value]
        if not missing:
            return None
        return (f"the weights are not in the model directory and {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set: stage them into the endpoint's weights prefix "
                "(python -m ml_tools stage-weights), which SageMaker copies into the model directory")


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
    try:
        import boto3
        from botocore.config import Config
    except ImportError as err:
        raise DownloadError(f"cannot download the weights: {err} (this image has no boto3, and nothing is "
                            "installed at container start); stage them into the endpoint's weights prefix so "
                            "that SageMaker places them in the model directory") from err

    # Few, quick retries: a wrong bucket or missing permission must stop the
    # container in seconds, not after minutes of back-off. One connection per download thread.
    return boto3.client("s3", config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
                                            max_pool_connections=DOWNLOAD_THREADS * 10))


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

        def fetch(key: str) -> None:
            target = dest / key[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            client.download_file(bucket, key, str(partial))  # itself multipart and threaded for large objects
            partial.replace(target)

        # Several objects at a time: a checkpoint is dozens of shards. The first failure is raised.
        with concurrent.futures.ThreadPoolExecutor(max_workers=DOWNLOAD_THREADS) as pool:
            for done in [pool.submit(fetch, key) for key, _size in keys]:
                done.result()
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
    problem = settings.download_problem()
    if problem:  # every rank knows: no rank waits at the barrier for nothing
        raise DownloadError(problem)
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


def parse_request(body: bytes, limits: Limits = Limits()) -> tuple[list[str], dict[str, Any]]:
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
    if len(prompts) > limits.max_batch_size:
        raise BadRequest(f'"inputs" has {len(prompts)} prompts, at most {limits.max_batch_size} are allowed '
                         f"(this endpoint's MAX_BATCH_SIZE, {_WHY})")
    raw = payload.get("parameters", {})
    if not isinstance(raw, dict):
        raise BadRequest('"parameters" must be an object')
    params: dict[str, Any] = {"max_new_tokens": min(DEFAULT_NEW_TOKENS, limits.max_new_tokens), "do_sample": False}
    for name, value in raw.items():
        if name in TOKEN_PARAMETERS:
            lowest = 1 if name == "max_new_tokens" else 0
            if not _has_type(value, int) or value < lowest:
                raise BadRequest(f"parameter {name!r}: got {json.dumps(value)}, allowed: an integer from {lowest} "
                                 f"to {limits.max_new_tokens}")
            if value > limits.max_new_tokens:
                raise BadRequest(f"parameter {name!r}: got {value}, allowed: at most {limits.max_new_tokens} "
                                 f"(this endpoint's MAX_NEW_TOKENS, {_WHY})")
        elif name not in PARAMETERS:
            allowed_names = sorted([*PARAMETERS, *TOKEN_PARAMETERS])
            raise BadRequest(f"unknown parameter {name!r}, allowed: {', '.join(allowed_names)}")
        else:
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
    """Loads on the first call; ``loader`` returns (model, tokenizer) from the properties.

    ``limits``: what one request may ask for (default: from MAX_NEW_TOKENS and MAX_BATCH_SIZE).
    """

    def __init__(self, loader: Callable[[dict[str, str]], tuple[Any, Any]], limits: Limits | None = None) -> None:
        self.loader = loader
        self.limits = limits
        self.model: Any = None
        self.tokenizer: Any = None

    def handle(self, inputs: Input) -> Output | None:
        if self.model is None:
            self.limits = self.limits or Limits.from_env(dict(os.environ))
            self.model, self.tokenizer = self.loader(inputs.get_properties())
        if inputs.is_empty():
            return None
        try:
            prompts, params = parse_request(inputs.get_as_bytes(), self.limits)
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
