"""S3 helpers of the tools: ``s3://bucket/prefix/`` arguments, and the content hash kept in object metadata."""
from __future__ import annotations

import argparse
from typing import Any


def parse_s3_prefix(value: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``); an argparse type."""
    if not value.startswith("s3://") or not value[5:].split("/", 1)[0]:
        raise argparse.ArgumentTypeError(f"got {value!r}, expected s3://bucket/prefix/")
    bucket, _, prefix = value[5:].partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


# Publishers store each object's sha256 here (x-amz-meta-sha256) and skip an upload whose hash matches:
# the ETag is no content hash under SSE-KMS or multipart uploads.
HASH_KEY = "sha256"


def stored_hash(client: Any, bucket: str, key: str) -> str | None:
    """The sha256 an earlier upload stored on ``key``, or None when there is no such object.

    Any other refusal (a 403 included: S3 answers it for a missing key too when ListBucket is not
    granted) is raised, so a publisher never takes "not allowed to look" for "absent" and re-uploads.
    """
    from botocore.exceptions import ClientError

    try:
        return client.head_object(Bucket=bucket, Key=key)["Metadata"].get(HASH_KEY)
    except ClientError as err:
        if err.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
