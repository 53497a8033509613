"""Which model each request goes to, per traffic pattern (no Locust import: testable alone).

- ``uniform``: every model equally likely.
- ``hot``: one model (number 0) takes 90% of requests, the rest share 10% (the
  workload's ``@task(9)`` hot vs ``@task(1)`` rest).
- ``few-hot``: a few models (0 .. hot_count-1, default 5) share 90%, the rest 10%.
"""
from __future__ import annotations

import random

PATTERNS = ("uniform", "hot", "few-hot")
HOT_SHARE = 0.9


def choose_model(pattern: str, rng: random.Random, model_count: int, hot_count: int = 5) -> tuple[int, str]:
    """(model number, group): the group (``hot``/``other``/``uniform``) is the request type in Locust's stats."""
    if pattern == "uniform":
        return rng.randrange(model_count), "uniform"
    hot = 1 if pattern == "hot" else hot_count
    if pattern not in PATTERNS:
        raise ValueError(f"pattern: got {pattern!r}, allowed: {', '.join(PATTERNS)}")
    if not 1 <= hot < model_count:
        raise ValueError(f"{pattern}: {hot} hot model(s) need more than {hot} models, got {model_count}")
    if rng.random() < HOT_SHARE:
        return rng.randrange(hot), "hot"
    return rng.randrange(hot, model_count), "other"
