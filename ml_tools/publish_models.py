"""Publish the multi-model endpoint's packages: ``sklearn-0.tar.gz`` .. ``sklearn-N-1.tar.gz``.

Each package is ``model_packages/sklearn_mme/`` (``model.py``, ``serving.properties``)
plus ``model.skops``, packed reproducibly. By default all packages are copies of one
model, as the workload did; ``--distinct-models`` trains one model per package (seed =
the package number). ``--model-file`` takes an existing skops file.

One version lock: the model is trained and serialized here, so this Python and its
packages must be exactly those of the serving image's runtime profile
(``runtime_profiles/multi_model/<runtime>/requirements.lock``). Anything else is refused
before a model is trained or an object uploaded; run the tool with the profile's
environment instead::

    $(python -m runtime_profiles.env python multi_model/current) -m ml_tools publish-models --env prod

A ``--model-file`` was serialized elsewhere: it must record the lock's scikit-learn and
skops versions and hold no type the handler does not trust (checked with skops, so run
the tool where skops is installed, e.g. the current profile's environment).

Settings come from the environment's configuration with ``--env NAME``
(``multi_model.runtime``, ``model_count`` and the worker settings: ``min_workers``,
``max_workers`` (default: the instance type's vCPUs / ``omp_num_threads``),
``job_queue_size``, ``max_idle_time_seconds``), else from the configuration's defaults,
and the S3 prefix from the deployed storage stack's ``MultiModelPackagesUrl`` output;
flags given explicitly win. Every package's ``serving.properties`` carries all four
worker settings.

Uploads go under the endpoint's S3 prefix (its ``ModelDataUrl``) concurrently.
Idempotent: every object carries its tarball's sha256 in the object metadata
``x-amz-meta-sha256``; an object whose stored hash equals the new package's is
skipped. (The ETag is not used: under SSE-KMS, which the project's buckets use in
production, an ETag is not the content's MD5.)
"""
from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import importlib.util
import io
import json
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

from ml_tools.s3_url import HASH_KEY, parse_s3_prefix, stored_hash

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "model_packages" / "sklearn_mme"
TRAIN_SCRIPT = REPO / "model_packages" / "sklearn_mme_training" / "train.py"
MODEL_FILE = "model.skops"
WORKER_KEYS = ("minWorkers", "maxWorkers", "job_queue_size", "max_idle_time")


@dataclass(frozen=True)
class Package:
    key: str  # object key relative to the prefix: what invoke_endpoint's TargetModel names
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class PublishResult:
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _module_from(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _packaging() -> tuple[Any, Any]:
    """The foundation's tarball and properties modules (stdlib only), loaded by path:
    importing the ``ml_constructs.packaging`` package would start aws-cdk-lib's jsii
    runtime (Node.js) just to write tarballs."""
    root = REPO / "ml_constructs" / "packaging"
    return _module_from(root / "tarball.py", "_ml_tarball"), _module_from(root / "properties.py", "_ml_properties")


def build_packages(
    count: int, *, distinct: bool = False, model_file: Path | None = None,
    workers: Mapping[str, int] | None = None,
) -> list[Package]:
    """``count`` packages; ``workers`` ({serving.properties key: value}) overrides the base file."""
    tarball, props = _packaging()
    properties = props.render_properties(PACKAGE_DIR / "serving.properties", dict(workers or {}))
    train = None if model_file else _module_from(TRAIN_SCRIPT, "_sklearn_mme_train")
    shared_model = model_file.read_bytes() if model_file else (None if distinct else train.model_bytes(0))
    packages, cache = [], {}
    with tempfile.TemporaryDirectory() as work:
        for index in range(count):
            model = shared_model if shared_model is not None else train.model_bytes(index)
            if model not in cache:
                out = Path(work) / f"{index}.tar.gz"
                extra = {MODEL_FILE: model, "serving.properties": properties}
                tarball.build_model_tarball(PACKAGE_DIR, out, extra_files=extra)
                cache[model] = out.read_bytes()
            packages.append(Package(f"sklearn-{index}.tar.gz", cache[model]))
    return packages


def environment_hint(profile_key: str) -> str:
    return (f"run it with the profile's environment: $(python -m runtime_profiles.env python {profile_key}) "
            f"-m ml_tools publish-models ...")


def lock_problems(profile: Any, *, version: Callable[[str], str] = metadata.version,
                  python: str | None = None) -> list[str]:
    """How this interpreter differs from ``profile`` (Python minor version and every locked package)."""
    found_python = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    problems = []
    if found_python != profile.python:
        problems.append(f"Python: found {found_python}, the image has {profile.python}")
    for name, locked in sorted(profile.packages.items()):
        try:
            found = version(name)
        except metadata.PackageNotFoundError:
            found = "not installed"
        if found != locked:
            problems.append(f"{name}: found {found}, the lock has {locked}")
    return problems


def model_file_problems(data: bytes, profile: Any) -> list[str]:
    """A skops file's recorded scikit-learn / skops versions against the lock; types the handler won't load."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError):
        return ["--model-file: not a skops file (no schema.json in a zip archive); save it with skops.io.dump"]
    problems = []
    content = schema.get("content", {}).get("content", {})
    recorded = {
        "scikit-learn": json.loads(content.get("_sklearn_version", {}).get("content", "null") or "null"),
        "skops": schema.get("_skops_version"),
    }
    for name, found in recorded.items():
        locked = profile.version_of(name)
        if found != locked:
            problems.append(f"--model-file: saved with {name} {found}, the lock has {locked}")
    try:
        from skops.io import get_untrusted_types
    except ImportError:
        return problems + ["--model-file: checking the types in the file needs skops; "
                           + environment_hint("multi_model/current")]
    trusted = set(_trusted_types())
    untrusted = sorted(set(get_untrusted_types(data=data)) - trusted)
    if untrusted:
        problems.append(f"--model-file: holds types the handler does not trust: {', '.join(untrusted)}")
    return problems


def _trusted_types() -> tuple[str, ...]:
    """model.py's TRUSTED_TYPES, read without importing djl_python (not installed outside DJL)."""
    import ast

    tree = ast.parse((PACKAGE_DIR / "model.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "TRUSTED_TYPES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise RuntimeError("model_packages/sklearn_mme/model.py defines no TRUSTED_TYPES")


def publish(
    client: Any, bucket: str, prefix: str, packages: list[Package], *,
    concurrency: int = 16, dry_run: bool = False, progress: Callable[[int], None] = lambda n: None,
) -> PublishResult:
    result = PublishResult()

    def one(package: Package) -> tuple[str, bool]:
        key = prefix + package.key
        if stored_hash(client, bucket, key) == package.sha256:
            return package.key, False
        if not dry_run:
            client.put_object(Bucket=bucket, Key=key, Body=package.data, ContentType="application/gzip",
                              Metadata={HASH_KEY: package.sha256})
        return package.key, True

    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        for key, changed in pool.map(one, packages):
            (result.uploaded if changed else result.skipped).append(key)
            progress(1)
    return result


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("s3_url", type=parse_s3_prefix, metavar="S3_PREFIX", nargs="?",
                        help="the endpoint's model prefix (its ModelDataUrl), s3://bucket/prefix/; "
                        "with --env, read from the deployed storage stack when left out")
    parser.add_argument("--env", help="take defaults from this environment's multi_model configuration "
                        "(default: the configuration's own defaults)")
    parser.add_argument("--runtime", help="runtime profile whose lock the models must match "
                        "(default: multi_model.runtime, current)")
    parser.add_argument("--count", type=int, help="number of packages (default: multi_model.model_count, 1000)")
    parser.add_argument("--distinct-models", action="store_true", help="train one model per package")
    parser.add_argument("--model-file", type=Path, help="use this skops file instead of training one")
    parser.add_argument("--min-workers", type=int, help="serving.properties minWorkers (default: multi_model.min_workers)")
    parser.add_argument("--max-workers", type=int, help="serving.properties maxWorkers (default: multi_model.max_workers, "
                        "else the instance type's vCPUs / omp_num_threads)")
    parser.add_argument("--job-queue-size", type=int, help="serving.properties job_queue_size "
                        "(default: multi_model.job_queue_size)")
    parser.add_argument("--max-idle-time", type=int, help="serving.properties max_idle_time in seconds "
                        "(default: multi_model.max_idle_time_seconds)")
    parser.add_argument("--concurrency", type=int, default=16, help="parallel uploads (default 16)")
    parser.add_argument("--region", help="AWS region (default: the usual boto3 resolution)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be uploaded, upload nothing")


_FLAG_FOR_KEY = {"minWorkers": "min_workers", "maxWorkers": "max_workers", "job_queue_size": "job_queue_size",
                 "max_idle_time": "max_idle_time"}


def apply_environment(args: argparse.Namespace, *, cloudformation: Any = None) -> list[str]:
    """Fill unset options from ``--env``'s configuration (or the defaults) and the deployed storage stack."""
    from config import ConfigError, load_config  # pure Python: no CDK runtime
    from config.multi_model import MultiModelConfig

    cfg = None
    if args.env is None:
        if args.s3_url is None:
            return ["S3_PREFIX: required unless --env names an environment whose storage stack is deployed"]
        mme = MultiModelConfig()
    else:
        try:
            cfg = load_config(args.env, env_source="--env")
        except ConfigError as err:
            return [str(err)]
        mme = cfg.multi_model
    args.count = mme.model_count if args.count is None else args.count
    args.runtime = mme.runtime if args.runtime is None else args.runtime
    configured = mme.serving_properties()
    args.workers = {key: configured[key] if getattr(args, flag) is None else getattr(args, flag)
                    for key, flag in _FLAG_FOR_KEY.items()}
    if cfg is not None and args.s3_url is None:
        stack = f"{cfg.stack_prefix}-{cfg.environment}-Storage"
        url, problem = storage_output(stack, "MultiModelPackagesUrl", args.region, cloudformation)
        if problem:
            return [problem]
        args.s3_url = parse_s3_prefix(url)
    return []


def storage_output(stack: str, key: str, region: str | None, client: Any = None) -> tuple[str, str | None]:
    """``(value, None)`` of a stack output, or ``("", problem)``."""
    import boto3
    from botocore.exceptions import ClientError

    client = client or boto3.client("cloudformation", region_name=region)
    try:
        outputs = client.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    except ClientError as err:
        return "", f"S3_PREFIX: cannot read stack {stack} ({err.response['Error']['Message']}); deploy it or pass S3_PREFIX"
    for output in outputs:
        if output["OutputKey"] == key:
            return output["OutputValue"], None
    return "", f"S3_PREFIX: stack {stack} has no output {key}; pass S3_PREFIX"


def check(args: argparse.Namespace) -> list[str]:
    problems = []
    if not 1 <= args.count <= 100_000:
        problems.append(f"--count: got {args.count}, allowed: 1 to 100000")
    if not 1 <= args.concurrency <= 256:
        problems.append(f"--concurrency: got {args.concurrency}, allowed: 1 to 256")
    for key, flag in _FLAG_FOR_KEY.items():
        if args.workers[key] < 1:
            problems.append(f"--{flag.replace('_', '-')} ({key}): got {args.workers[key]}, allowed: 1 or more")
    if args.workers["minWorkers"] > args.workers["maxWorkers"]:
        problems.append(f"--min-workers ({args.workers['minWorkers']}) must not exceed --max-workers "
                        f"({args.workers['maxWorkers']})")
    if args.model_file and args.distinct_models:
        problems.append("--model-file and --distinct-models exclude each other")
    if args.model_file and not args.model_file.is_file():
        problems.append(f"--model-file: {args.model_file} does not exist")
    return problems


def version_check(args: argparse.Namespace) -> list[str]:
    """The one version lock, checked where the model is serialized.

    Training here: this interpreter and its packages must be the lock's. ``--model-file``:
    the file must record the lock's scikit-learn and skops versions (it was serialized
    elsewhere; this process only packs and uploads it).
    """
    from runtime_profiles import ProfileError, load_profile

    try:
        profile = load_profile("multi_model", args.runtime)
    except ProfileError as err:
        return [f"--runtime: {err}"]
    if args.model_file is not None:
        return model_file_problems(args.model_file.read_bytes(), profile)
    found = lock_problems(profile)
    if found:
        return [f"this environment does not match runtime profile {profile.key} "
                f"(runtime_profiles/{profile.key}/requirements.lock): " + "; ".join(found) + "; "
                + environment_hint(profile.key)]
    return []


def run(args: argparse.Namespace, *, client: Any = None, cloudformation: Any = None) -> int:
    problems = apply_environment(args, cloudformation=cloudformation)
    problems = problems or check(args)
    problems = problems or version_check(args)
    if problems:
        print("publish-models: " + "; ".join(problems), file=sys.stderr)
        return 2
    import boto3
    from botocore.config import Config
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError
    from tqdm import tqdm

    bucket, prefix = args.s3_url
    packages = build_packages(args.count, distinct=args.distinct_models, model_file=args.model_file,
                              workers=args.workers)
    client = client or boto3.client("s3", region_name=args.region,
                                    config=Config(max_pool_connections=args.concurrency))
    offline = ""
    with tqdm(total=len(packages), unit="pkg", desc="dry run" if args.dry_run else "publishing",
              disable=not sys.stderr.isatty()) as bar:
        try:
            result = publish(client, bucket, prefix, packages, concurrency=args.concurrency,
                             dry_run=args.dry_run, progress=bar.update)
        except (NoCredentialsError, EndpointConnectionError) as err:
            if not args.dry_run:
                raise
            # A dry run works offline: without S3 to compare with, every package would be uploaded.
            result, offline = PublishResult(uploaded=[p.key for p in packages]), f" (S3 not read: {err})"
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"{verb} {len(result.uploaded)}, unchanged {len(result.skipped)}, under s3://{bucket}/{prefix}{offline}")
    return 0
