"""A training heartbeat: steps completed per minute, as a CloudWatch metric an alarm watches.

A hung collective does not crash anything: every rank waits, the job holds its nodes
until the Batch timeout (days). Global rank 0 writes the number of its last completed
step to ``PROGRESS_FILE``; the main node's entrypoint publishes how many steps were
completed since the last publication, once per ``period``, while training runs.
Zero for long enough is a hang; no data at all means no training is running
(the alarm treats missing data as fine).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

LOG = logging.getLogger("trainium_runtime.heartbeat")
METRIC_NAME = "TrainingStepsCompleted"


def read_step(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or "0")
    except (OSError, ValueError):
        return None


def write_step(path: Path, step: int) -> None:
    """Atomically replace the progress file (the publisher never reads half a number)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(str(step))
    tmp.replace(path)


class Heartbeat:
    """Publishes ``TrainingStepsCompleted`` (without dimensions, and per ``RunId``) every ``period`` s."""

    def __init__(
        self, cloudwatch: Any, namespace: str, run_id: str, progress_file: Path, period: float = 60.0
    ) -> None:
        self._cloudwatch, self._namespace, self._run_id = cloudwatch, namespace, run_id
        self._progress, self._period = progress_file, period
        self._last: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def publish_once(self) -> int:
        """Publish the steps completed since the previous call; returns that count."""
        step = read_step(self._progress)
        if step is None:
            done = 0  # nothing written yet: compiling or loading, which counts as no progress
        else:
            done = max(0, step - self._last) if self._last is not None else 0
            self._last = step
        datum: dict[str, Any] = {"MetricName": METRIC_NAME, "Value": float(done), "Unit": "Count"}
        try:
            self._cloudwatch.put_metric_data(
                Namespace=self._namespace,
                MetricData=[datum, {**datum, "Dimensions": [{"Name": "RunId", "Value": self._run_id}]}],
            )
        except Exception as exc:  # noqa: BLE001 - a lost data point must never stop training
            LOG.warning("heartbeat: could not publish: %s", exc)
        return done

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            self.publish_once()


def heartbeat_from_env(env: dict[str, str], run_id: str, client: Callable[[], Any] | None = None) -> Heartbeat | None:
    """The main node's heartbeat, or None when the job definition configures none."""
    namespace = env.get("METRICS_NAMESPACE")
    if not namespace:
        return None
    if client is None:
        import boto3

        cloudwatch = boto3.client("cloudwatch")
    else:
        cloudwatch = client()
    path = Path(env.get("PROGRESS_FILE", "/tmp/trainium-progress"))
    return Heartbeat(cloudwatch, namespace, run_id, path, float(env.get("HEARTBEAT_PERIOD_SECONDS", "60")))
