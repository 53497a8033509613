"""Stage a local model snapshot into a weights prefix, where endpoints read it uncompressed.

    python -m ml_tools stage-weights ./bloom-snapshot --env prod --model bloom-176b
    python -m ml_tools stage-weights ./snapshot s3://bucket/weights/my-model/ --revision 1a2b3c

SOURCE is a folder holding the model's files as they are to be served (a Hugging Face
snapshot: ``config.json``, tokenizer files, weight shards). Hidden folders (``.cache``,
``.git``) are not staged. The destination is an explicit ``s3://bucket/prefix/``, or, with
``--env``, the deployed storage stack's ``ModelWeightsUrl`` plus ``--model``'s
``weights_prefix`` (an LLM model of that environment's configuration) or ``--prefix``.

Pinned revision: ``--revision`` (a commit hash), or the one the snapshot records (a Hugging
Face cache folder ``snapshots/<commit>/``, or ``.cache/huggingface/download/*.metadata``
written by ``huggingface-cli download --local-dir``). It is stored with every object
(``x-amz-meta-revision``) and in a manifest next to the prefix (``<prefix>.staged.json``:
revision and each file's sha256), outside what the endpoint loads.

Idempotent by content: every object carries its file's sha256 (``x-amz-meta-sha256``); a
file whose stored hash matches is skipped, so a re-run after an interruption uploads only
what is missing or changed. (ETags are not content hashes under SSE-KMS or multipart.)
Objects under the prefix that the snapshot lacks are listed; ``--delete-stale`` removes
them (SageMaker copies everything under the prefix into the container).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ml_tools.s3_url import HASH_KEY, parse_s3_prefix, stored_hash

REVISION_KEY = "revision"
MANIFEST_SUFFIX = ".staged.json"
_REVISION = re.compile(r"^[0-9a-f]{7,64}$")
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class LocalFile:
    key: str  # relative to the prefix, '/'-separated
    path: Path
    size: int
    sha256: str


@dataclass
class StageResult:
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def snapshot_files(source: Path) -> list[LocalFile]:
    """Every file under ``source`` outside hidden folders, by key; symlinks (HF cache blobs) followed."""
    files = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part.startswith(".") for part in relative.parts[:-1]) or not path.is_file():
            continue
        files.append(LocalFile(relative.as_posix(), path, path.stat().st_size, file_sha256(path)))
    return files


def detect_revision(source: Path) -> str | None:
    """The commit a Hugging Face snapshot records, or None."""
    resolved = source.resolve()
    if resolved.parent.name == "snapshots" and _REVISION.match(resolved.name):
        return resolved.name
    for metadata in sorted((source / ".cache" / "huggingface" / "download").rglob("*.metadata")):
        first = metadata.read_text(encoding="utf-8", errors="replace").splitlines()[:1]
        if first and _REVISION.match(first[0].strip()):
            return first[0].strip()
    return None


def stage(
    client: Any, bucket: str, prefix: str, files: list[LocalFile], *, revision: str,
    concurrency: int = 8, dry_run: bool = False, delete_stale: bool = False,
    progress: Callable[[int], None] = lambda n: None,
) -> StageResult:
    """Upload what differs, skip what matches, then write the manifest (not in a dry run)."""
    from boto3.s3.transfer import TransferConfig

    result = StageResult()
    transfer = TransferConfig(max_concurrency=concurrency)

    def one(item: LocalFile) -> tuple[str, bool]:
        key = prefix + item.key
        if stored_hash(client, bucket, key) == item.sha256:
            progress(item.size)
            return item.key, False
        if not dry_run:
            client.upload_file(str(item.path), bucket, key, Config=transfer, Callback=progress,
                               ExtraArgs={"Metadata": {HASH_KEY: item.sha256, REVISION_KEY: revision}})
        else:
            progress(item.size)
        return item.key, True

    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        for key, changed in pool.map(one, files):
            (result.uploaded if changed else result.skipped).append(key)
    wanted = {prefix + f.key for f in files}
    paginator = client.get_paginator("list_objects_v2")
    result.stale = sorted(obj["Key"][len(prefix):] for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                          for obj in page.get("Contents", []) if obj["Key"] not in wanted)
    if delete_stale and result.stale and not dry_run:
        for start in range(0, len(result.stale), 1000):
            batch = result.stale[start:start + 1000]
            client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": prefix + k} for k in batch]})
        result.deleted = list(result.stale)
    if not dry_run:
        manifest = {"revision": revision, "files": {f.key: {"sha256": f.sha256, "bytes": f.size} for f in files}}
        client.put_object(Bucket=bucket, Key=prefix.rstrip("/") + MANIFEST_SUFFIX, ContentType="application/json",
                          Body=json.dumps(manifest, indent=1, sort_keys=True).encode())
    return result


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, metavar="SOURCE", help="local snapshot folder")
    parser.add_argument("s3_url", type=parse_s3_prefix, metavar="S3_PREFIX", nargs="?",
                        help="destination s3://bucket/prefix/; with --env, taken from the deployed storage stack")
    parser.add_argument("--env", help="environment whose storage stack (ModelWeightsUrl output) receives the files")
    parser.add_argument("--model", help="with --env: the LLM model whose weights_prefix receives the files")
    parser.add_argument("--prefix", help="with --env: a folder under the weights location instead of --model's")
    parser.add_argument("--revision", help="the snapshot's pinned revision (default: what the snapshot records)")
    parser.add_argument("--concurrency", type=int, default=8, help="parallel uploads (default 8)")
    parser.add_argument("--delete-stale", action="store_true", help="delete objects under the prefix not in SOURCE")
    parser.add_argument("--region", help="AWS region (default: the usual boto3 resolution)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be uploaded, upload nothing")


def resolve_destination(args: argparse.Namespace, *, cloudformation: Any = None) -> list[str]:
    """Fill ``args.s3_url`` from ``--env`` and ``--model``/``--prefix``; problems for the user."""
    if args.env is None:
        if args.s3_url is None:
            return ["S3_PREFIX: required unless --env names an environment whose storage stack is deployed"]
        if args.model or args.prefix:
            return ["--model and --prefix need --env (or give S3_PREFIX alone)"]
        return []
    if args.s3_url is not None:
        return ["S3_PREFIX and --env exclude each other"]
    if bool(args.model) == bool(args.prefix):
        return ["with --env, give exactly one of --model (an LLM model) and --prefix (a folder under the weights)"]
    from config import ConfigError, load_config  # pure Python: no CDK runtime

    from ml_tools.publish_models import storage_output

    try:
        cfg = load_config(args.env)
    except ConfigError as err:
        return [str(err)]
    child = args.prefix
    if args.model:
        models = {m.name: m for m in cfg.llm.resolved_models()}
        if args.model not in models:
            return [f"--model: got {args.model!r}, allowed: {', '.join(sorted(models)) or 'none'} "
                    f"(the enabled llm.models of environment {args.env!r})"]
        child = models[args.model].weights_prefix
        if not cfg.llm.profile.settings.get("handler"):  # LMI's vLLM loads it: check the checkpoint first
            problem = checkpoint_problem_of(args.source, models[args.model])
            if problem:
                return [problem]
    if not re.fullmatch(r"[A-Za-z0-9_.\-][A-Za-z0-9_.\-/]*", child.strip("/") or "-") or ".." in child.split("/"):
        return [f"--prefix: got {child!r}, allowed: a relative folder such as my-model/"]
    stack = f"{cfg.stack_prefix}-{cfg.environment}-Storage"
    url, problem = storage_output(stack, "ModelWeightsUrl", args.region, cloudformation)
    if problem:
        return [problem]
    bucket, base = parse_s3_prefix(url)
    args.s3_url = (bucket, base + child.strip("/") + "/")
    return []


def checkpoint_problem_of(source: Path, model: Any) -> str | None:
    """Whether vLLM can serve ``source`` as ``model`` is configured (its config.json's quantization_config)."""
    from config.llm_fit import checkpoint_problem

    config_file = source / "config.json"
    try:
        quantization = json.loads(config_file.read_text(encoding="utf-8")).get("quantization_config")
    except FileNotFoundError:
        return f"SOURCE: {config_file} not found (a Hugging Face snapshot has one; vLLM reads the model from it)"
    except (ValueError, AttributeError) as err:
        return f"SOURCE: {config_file} is not a JSON object: {err}"
    problem = checkpoint_problem(quantization if isinstance(quantization, dict) else None,
                                 model.tensor_parallel_degree, model.prequantized_bits)
    return f"--model {model.name}: {problem} (llm.models.{model.name}, docs/llm.md)" if problem else None


def check(args: argparse.Namespace) -> list[str]:
    problems = []
    if not args.source.is_dir():
        problems.append(f"SOURCE: {args.source} is not a folder")
    if not 1 <= args.concurrency <= 64:
        problems.append(f"--concurrency: got {args.concurrency}, allowed: 1 to 64")
    if args.revision is not None and not _REVISION.match(args.revision):
        problems.append(f"--revision: got {args.revision!r}, allowed: a commit hash (7 to 64 hex digits)")
    if args.s3_url is not None and not args.s3_url[1]:
        problems.append("S3_PREFIX: a folder is required (s3://bucket/prefix/), not a bucket's root")
    return problems


def run(args: argparse.Namespace, *, client: Any = None, cloudformation: Any = None) -> int:
    problems = check(args) or resolve_destination(args, cloudformation=cloudformation)
    problems = problems or check(args)
    revision = args.revision or (detect_revision(args.source) if not problems else None)
    if not problems and revision is None:
        problems.append("--revision: required, the snapshot records none (pin the commit you downloaded)")
    if problems:
        print("stage-weights: " + "; ".join(problems), file=sys.stderr)
        return 2
    import boto3
    from botocore.config import Config
    from tqdm import tqdm

    bucket, prefix = args.s3_url
    files = snapshot_files(args.source)
    if not files:
        print(f"stage-weights: SOURCE: {args.source} holds no files", file=sys.stderr)
        return 2
    client = client or boto3.client("s3", region_name=args.region,
                                    config=Config(max_pool_connections=args.concurrency * 10))
    with tqdm(total=sum(f.size for f in files), unit="B", unit_scale=True, disable=not sys.stderr.isatty(),
              desc="dry run" if args.dry_run else "staging") as bar:
        result = stage(client, bucket, prefix, files, revision=revision, concurrency=args.concurrency,
                       dry_run=args.dry_run, delete_stale=args.delete_stale, progress=bar.update)
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"{verb} {len(result.uploaded)}, unchanged {len(result.skipped)}, revision {revision}, "
          f"under s3://{bucket}/{prefix}")
    if result.stale:
        action = "deleted" if result.deleted else "not in SOURCE (--delete-stale removes them)"
        print(f"{len(result.stale)} object(s) {action}: {', '.join(result.stale[:10])}"
              f"{' ...' if len(result.stale) > 10 else ''}")
    return 0
