"""Training progress: a per-run heartbeat metric, and a watchdog that ends a run that stopped.

A hung collective does not crash anything: every rank waits, the job holds its nodes
until the Batch timeout (days). Progress reporting is opt-in: the program's global rank 0
writes the number of its last completed step to ``PROGRESS_FILE`` (the reference
program does; :func:`write_step`). On the main node the entrypoint then

* publishes how many steps were completed since the last publication, once per
  ``period``, as ``TrainingStepsCompleted`` with the run's id as the ``RunId`` dimension
  (one time series per run: one healthy run never hides a hung one);
* runs :class:`Watchdog`: once the program has reported a first step, no new step for
  ``HANG_AFTER_SECONDS`` stops torchrun, and the main node exits with the retryable code
  (Batch ends a multi-node job when its main node exits and stops the other nodes), so
  the next attempt resumes from the newest checkpoint on other hosts.

A program that never writes the file is never called hung (it has the job's timeout only);
neither is a run still compiling its first step, nor one that wrote :func:`write_done` after
its last step (a final export or upload can outlast ``HANG_AFTER_SECONDS``).
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

LOG = logging.getLogger("trainium_runtime.heartbeat")
METRIC_NAME = "TrainingStepsCompleted"
RUN_DIMENSION = "RunId"
# What the watchdog logs when it stops a run; the stack counts these lines (a metric filter).
STALLED_MARKER = "TRAINING STALLED"


# What write_done puts in the progress file: training is over, the watchdog stands down.
DONE = "done"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def read_step(path: Path) -> int | None:
    """The last step the program reported; None before the first report, or once it is done."""
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text or "0")
    except ValueError:
        return None


def is_done(path: Path) -> bool:
    """True once the program wrote :func:`write_done`."""
    return _read(path) == DONE


def _replace(path: Path, text: str) -> None:
    """Atomically replace the progress file (the publisher never reads half a number)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_step(path: Path, step: int) -> None:
    """Report the last completed training step (global rank 0 only)."""
    _replace(path, str(step))


def write_done(path: Path) -> None:
    """Report that training is over: what follows (a final export, an upload) may take any time.

    The watchdog is disarmed for the rest of the run; the job's timeout still bounds it.
    """
    _replace(path, DONE)


class _Periodic:
    """A daemon thread that calls ``_tick`` every ``period`` s until ``stop`` or until ``_tick`` returns True."""

    def __init__(self, name: str, period: float) -> None:
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _tick(self) -> bool:
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            if self._tick():
                return


class Heartbeat(_Periodic):
    """Publishes ``TrainingStepsCompleted`` per ``RunId`` every ``period`` s."""

    def __init__(
        self, cloudwatch: Any, namespace: str, run_id: str, progress_file: Path, period: float = 60.0
    ) -> None:
        self._cloudwatch, self._namespace, self._run_id = cloudwatch, namespace, run_id
        super().__init__("heartbeat", period)
        self._progress = progress_file
        self._last: int | None = None

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
                MetricData=[{**datum, "Dimensions": [{"Name": RUN_DIMENSION, "Value": self._run_id}]}],
            )
        except Exception as exc:  # noqa: BLE001 - a lost data point must never stop training
            LOG.warning("heartbeat: could not publish: %s", exc)
        return done

    def _tick(self) -> bool:
        self.publish_once()
        return False


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


class Watchdog(_Periodic):
    """Calls ``stop`` once when a run that reported progress completes no step for ``hang_after`` s.

    ``check`` is called periodically (``start`` runs it on a thread every ``poll`` s).
    Before the program's first report the watchdog is unarmed: compiling the first graphs
    or loading data takes as long as it takes; after :func:`write_done` it is disarmed.
    """

    def __init__(self, progress_file: Path, hang_after: float, stop: Callable[[str], None], *,
                 poll: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__("watchdog", poll)
        self._progress, self._hang_after, self._stop_run = progress_file, hang_after, stop
        self._clock = clock
        self._step: int | None = None
        self._since = clock()
        self.stalled: str | None = None

    def check(self) -> bool:
        """True once the run is stalled (and ``stop`` has been called)."""
        if self.stalled is not None:
            return True
        if is_done(self._progress):
            return False  # training is over: the program's export or upload is not a hang
        step, now = read_step(self._progress), self._clock()
        if step is None:
            return False  # not reporting (yet): unarmed
        if step != self._step:
            self._step, self._since = step, now
            return False
        if now - self._since < self._hang_after:
            return False
        self.stalled = (f"{STALLED_MARKER}: no training step completed for {now - self._since:.0f} s "
                        f"after step {step} (HANG_AFTER_SECONDS={self._hang_after:g})")
        LOG.error("%s: stopping the run", self.stalled)
        self._stop_run(self.stalled)
        return True

    def _tick(self) -> bool:
        return self.check()


def watchdog_from_env(env: dict[str, str], stop: Callable[[str], None]) -> Watchdog | None:
    """The main node's watchdog, or None when the job definition sets no ``HANG_AFTER_SECONDS``."""
    raw = env.get("HANG_AFTER_SECONDS")
    if not raw:
        return None
    path = Path(env.get("PROGRESS_FILE", "/tmp/trainium-progress"))
    return Watchdog(path, float(raw), stop, poll=min(30.0, float(raw) / 4))
