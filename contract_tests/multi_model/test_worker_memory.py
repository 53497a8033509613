"""The memory a package declares to DJL (``required_memory_mb`` in its serving.properties) covers
what one Python worker really takes: a fresh interpreter that imports the handler, loads the model
and answers a request, as a DJL worker process does, measured by its peak resident set size.

DJL Serving checks free memory against this value before loading a model and answers 507 when it
does not fit, which makes SageMaker unload models (djl-serving v0.36.0
``wlm/src/main/java/ai/djl/serving/wlm/ModelInfo.java`` ``checkAvailableMemory``); an
underestimate lets loads continue until the kernel's OOM killer ends a worker instead.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import PACKAGE

WORKER = """
import json, sys
sys.path.insert(0, {standin!r})
import importlib.util
spec = importlib.util.spec_from_file_location("model", {handler!r})
model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(model)
from djl_python import Input
assert model.handle(Input.load_call({model_dir!r})) is None
assert model.handle(Input.request(json.dumps({{"inputs": [[1.0]] * 100}}))).code == 200
# VmHWM: this process's peak resident set (getrusage's ru_maxrss would keep the forking parent's peak).
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(peak_kib // 1024)
"""
# The container's thread settings (config/multi_model.py container_environment, omp_num_threads = 1).
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def declared_mb() -> int:
    for line in (PACKAGE / "serving.properties").read_text().splitlines():
        if line.startswith("required_memory_mb="):
            return int(line.split("=", 1)[1])
    raise AssertionError("serving.properties declares no required_memory_mb")


def test_one_worker_fits_the_declared_memory(tmp_path: Path, train):
    assert train.main(["--output", str(tmp_path / "model.skops"), "--seed", "3"]) == 0
    script = WORKER.format(standin=str(Path(__file__).parent / "djl_standin"), handler=str(PACKAGE / "model.py"),
                           model_dir=str(tmp_path))
    peak_mb = int(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True,
                                 env={**os.environ, **THREADS}).stdout.strip())
    declared = declared_mb()
    model_mb = (tmp_path / "model.skops").stat().st_size / 2**20
    # The worker must fit, and the declaration must not be so loose that DJL refuses loads that fit.
    assert peak_mb + 1.2 * model_mb <= declared <= 1.5 * peak_mb, (peak_mb, declared)
