"""``s3://bucket/prefix/`` arguments."""
from __future__ import annotations

import argparse


def parse_s3_prefix(value: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``); an argparse type."""
    if not value.startswith("s3://") or not value[5:].split("/", 1)[0]:
        raise argparse.ArgumentTypeError(f"got {value!r}, expected s3://bucket/prefix/")
    bucket, _, prefix = value[5:].partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""
