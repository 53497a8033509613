"""The job runtime on the image's real PyTorch/XLA (torch 2.9 + torch-xla 2.9), on XLA's CPU device.

``PJRT_DEVICE=CPU`` gives torch-xla's PJRT CPU client: the reference training loop, the
collective check and the device probe run here exactly as in the image, only the device
differs. What exists only on Neuron hardware (the Neuron PJRT plugin, neuronx-cc, the
runtime's collectives over EFA) is not here.

One limit shapes these tests: torch-xla 2.9's CPU client is per process
(``torch_xla/csrc/runtime/pjrt_registry.cpp`` at v2.9.0 builds it with
``xla::GetPjRtCpuClient(async, CPU_NUM_DEVICES)``, no distributed key-value store, unlike
the GPU and plugin clients), so under ``torchrun --nproc-per-node 2`` every process is its
own world of one device (``torch_xla.runtime.world_size()`` is 1). The tests therefore run
training and the collective check on one rank, and use two ranks where the point is the
process boundary: torchrun's per-rank error files and the collective check refusing ranks
that do not share a world.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from xla_helpers import PROFILE_DIR


@pytest.fixture
def xla_env(tmp_path) -> dict[str, str]:
    """The environment a torchrun worker gets in the image, with XLA on the CPU."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RANK", "WORLD_SIZE", "MASTER_"))},
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(PROFILE_DIR),
        "PJRT_DEVICE": "CPU",
        "PYTHONUNBUFFERED": "1",
        "PROGRESS_FILE": str(tmp_path / "progress"),
        "TMPDIR": str(tmp_path),
    }


