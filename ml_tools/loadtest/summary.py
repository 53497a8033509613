"""Load-test results per request kind (``warm`` / ``cold-start``): throughput and p50/p99.

No Locust import: the locustfile records into a :class:`Recorder`, ``run_patterns``
reads the summaries back, and both are testable alone.
"""
from __future__ import annotations

import math
import threading
from typing import Any

KINDS = ("warm", "cold-start")


def percentile(sorted_values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` in (0, 1]) of already sorted values; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


class Recorder:
    """Response times per kind, from many users at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str, list[float]] = {kind: [] for kind in KINDS}
        self._failures: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._started: float | None = None

    def start(self, now: float) -> None:
        self._started = now

    def record(self, kind: str, milliseconds: float, *, failed: bool = False) -> None:
        with self._lock:
            if failed:
                self._failures[kind] += 1
            else:
                self._times[kind].append(milliseconds)

    def summary(self, now: float, *, pattern: str) -> dict[str, Any]:
        """``{pattern, seconds, requests_per_second, <kind>: {count, failures, p50_ms, p99_ms}}``.

        Throughput counts successful requests of every kind over the whole run.
        """
        seconds = max(now - (self._started if self._started is not None else now), 1e-9)
        with self._lock:
            out: dict[str, Any] = {"pattern": pattern, "seconds": round(seconds, 3)}
            total = 0
            for kind in KINDS:
                times = sorted(self._times[kind])
                total += len(times)
                out[kind] = {
                    "count": len(times), "failures": self._failures[kind],
                    "p50_ms": _round(percentile(times, 0.50)), "p99_ms": _round(percentile(times, 0.99)),
                }
        out["requests_per_second"] = round(total / seconds, 1)
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def table(summaries: list[dict[str, Any]]) -> str:
    """A Markdown table, one row per pattern."""
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    lines = [
        "| pattern | req/s | warm requests | warm p50 ms | warm p99 ms | cold starts | cold p50 ms | cold p99 ms | failures |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        warm, cold = s["warm"], s["cold-start"]
        lines.append(
            f"| {s['pattern']} | {s['requests_per_second']:g} | {warm['count']} | {ms(warm['p50_ms'])} | "
            f"{ms(warm['p99_ms'])} | {cold['count']} | {ms(cold['p50_ms'])} | {ms(cold['p99_ms'])} | "
            f"{warm['failures'] + cold['failures']} |"
        )
    return "\n".join(lines)
