"""Pure checks of AWS limits, shared by the trainium_batch constructs and ``config``.

No CDK import: ``config`` checks settings with these without starting jsii.
"""
from __future__ import annotations

import re
from typing import Mapping

MAX_SHARES = 500
# "limited to 255 alphanumeric characters" (Batch API reference, ShareAttributes / SubmitJob).
_SHARE_ID = re.compile(r"[A-Za-z0-9]{1,255}")
ECR_URI = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?P<cn>\.cn)?/"
    r"(?P<name>[a-z0-9][a-z0-9._/-]*)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127})|@(?P<digest>sha256:[0-9a-f]{64}))"
)
IMAGE_URI_HELP = "an image with a tag or digest, e.g. 123456789012.dkr.ecr.us-west-2.amazonaws.com/trainium-training:1"


def image_uri_problem(uri: str) -> str | None:
    """None if ``uri`` names one image version (a tag or a digest), else what is wrong."""
    if ECR_URI.fullmatch(uri):
        return None
    if re.fullmatch(r"[a-z0-9.-]+(:\d+)?/[a-z0-9._/-]+(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|@sha256:[0-9a-f]{64})", uri):
        return None
    return f"got {uri!r}, expected {IMAGE_URI_HELP}"


def fair_share_problems(
    shares: Mapping[str, float], share_decay_seconds: int, compute_reservation: int
) -> list[tuple[str, str]]:
    """``(setting, message)`` for each fair-share limit broken (docs/aws-limits.md: weights
    0.0001-999.9999, decay <= 604,800 s, <= 500 share identifiers, reservation 0-99 %)."""
    problems = []
    if not shares:
        problems.append(("shares", "at least one share identifier is required (SubmitJob must name one)"))
    if len(shares) > MAX_SHARES:
        problems.append(("shares", f"got {len(shares)} share identifiers, at most {MAX_SHARES} are allowed"))
    for name, weight in shares.items():
        if not _SHARE_ID.fullmatch(name):
            problems.append((f"shares.{name}", f"{name!r} is not a share identifier: 1-255 letters and digits"))
        if not 0.0001 <= weight <= 999.9999:
            problems.append((f"shares.{name}", f"got weight {weight!r}, allowed range: 0.0001 to 999.9999"))
    if not 0 <= share_decay_seconds <= 604800:
        problems.append(("share_decay_seconds", f"got {share_decay_seconds}, allowed range: 0 to 604800"))
    if not 0 <= compute_reservation <= 99:
        problems.append(("compute_reservation", f"got {compute_reservation}, allowed range: 0 to 99"))
    return problems
