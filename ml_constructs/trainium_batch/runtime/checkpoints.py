"""Checkpoints in S3 that survive Batch retries: stable run id, completion marker, resume.

Layout under the checkpoint URL (``CHECKPOINT_URL``, the checkpoints prefix)::

    <run id>/step-0000001000/<files>      the checkpoint's files (state_dict etc.)
    <run id>/step-0000001000/COMPLETE     written last: JSON {step, files: {name: bytes}}

A checkpoint without its marker (the node died mid-upload) is never resumed from.
Needs only boto3, so it is tested without Trainium or torch.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

LOG = logging.getLogger("trainium_runtime.checkpoints")
MARKER = "COMPLETE"
# A missing key is 404 NoSuchKey only to a caller allowed to list it; with s3:ListBucket
# limited by an s3:prefix condition S3 answers 403 AccessDenied instead (Amazon S3 API
# reference, GetObject, "Permissions"). Either means: no marker, not a complete checkpoint.
_MISSING = {"NoSuchKey", "404", "AccessDenied", "403"}
_STEP_DIR = re.compile(r"step-(\d{10})/$")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def run_id_from_env(env: Mapping[str, str] = os.environ) -> str:
    """The run a job belongs to, the same for every Batch attempt and every node.

    ``RUN_ID`` wins (the pipeline sets its execution name). Otherwise the Batch job
    id: it is kept across attempts; multi-node nodes see ``<job id>#<node index>``,
    so the node suffix is dropped.
    """
    run_id = env.get("RUN_ID") or env.get("AWS_BATCH_JOB_ID", "").split("#", 1)[0]
    if not run_id:
        raise ValueError("no run id: set RUN_ID, or run as an AWS Batch job (AWS_BATCH_JOB_ID)")
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r} is not valid: letters, digits, '.', '_', '-' (up to 128)")
    return run_id


@dataclass(frozen=True)
class Checkpoint:
    step: int
    prefix: str  # key prefix of the checkpoint's files, ending in "/"
    files: Mapping[str, int]  # name -> size in bytes, from the marker


class CheckpointStore:
    """Save and find checkpoints of one run under ``s3://bucket/prefix/<run id>/``."""

    def __init__(self, s3_client: Any, checkpoint_url: str, run_id: str) -> None:
        parsed = urlparse(checkpoint_url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"checkpoint URL must be s3://bucket/prefix/, got {checkpoint_url!r}")
        self._s3 = s3_client
        self.bucket = parsed.netloc
        base = parsed.path.lstrip("/")
        if base and not base.endswith("/"):
            base += "/"
        self.run_prefix = f"{base}{run_id}/"

    def step_prefix(self, step: int) -> str:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return f"{self.run_prefix}step-{step:010d}/"

    def save(self, step: int, files: Mapping[str, Path]) -> Checkpoint:
        """Upload ``files`` (name -> local path), then the marker that makes them complete."""
        if not files:
            raise ValueError("a checkpoint needs at least one file")
        prefix = self.step_prefix(step)
        sizes = {}
        for name, path in sorted(files.items()):
            if "/" in name or name == MARKER:
                raise ValueError(f"checkpoint file name {name!r} must be a plain name other than {MARKER}")
            self._s3.upload_file(str(path), self.bucket, prefix + name)
            sizes[name] = Path(path).stat().st_size
        marker = json.dumps({"step": step, "files": sizes}, sort_keys=True).encode()
        self._s3.put_object(Bucket=self.bucket, Key=prefix + MARKER, Body=marker)
        return Checkpoint(step, prefix, sizes)

    def latest(self) -> Checkpoint | None:
        """The complete checkpoint with the highest step, or None."""
        steps = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.run_prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                match = _STEP_DIR.search(common["Prefix"])
                if match:
                    steps.append(int(match.group(1)))
        for step in sorted(steps, reverse=True):
            checkpoint = self._read_marker(step)
            if checkpoint is not None:
                return checkpoint
        return None

    def _read_marker(self, step: int) -> Checkpoint | None:
        prefix = self.step_prefix(step)
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=prefix + MARKER)["Body"].read()
        except self._s3.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in _MISSING:
                raise
            LOG.info("no readable %s marker under %s (%s): skipping that checkpoint", MARKER, prefix, code)
            return None
        marker = json.loads(body)
        return Checkpoint(step=int(marker["step"]), prefix=prefix, files=dict(marker["files"]))

    def download(self, checkpoint: Checkpoint, destination: Path) -> dict[str, Path]:
        """Download the checkpoint's files into ``destination``; returns name -> path."""
        destination.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name in sorted(checkpoint.files):
            target = destination / name
            self._s3.download_file(self.bucket, checkpoint.prefix + name, str(target))
            paths[name] = target
        return paths


def should_checkpoint(step: int, every: int) -> bool:
    """Checkpoint after every ``every`` completed steps (step counts from 1)."""
    if every < 1:
        raise ValueError(f"checkpoint interval must be >= 1, got {every}")
    return step > 0 and step % every == 0
