"""Contract tests of the Trainium job runtime, run in the environment built from
``runtime_profiles/training/<profile>/requirements.lock`` with the image's Python
(``python -m runtime_profiles.env test training/current``).

The image copies ``ml_constructs/trainium_batch/runtime/`` to ``/opt/runtime/trainium_runtime/``
and puts ``/opt/runtime`` on ``PYTHONPATH``; the tests import it under the same name, from the
same folder, so nothing of the CDK package (or aws_cdk) is loaded.

``current``'s environment has the image's torch 2.9 and torch-xla 2.9 (test-requirements.txt),
and ``xla/`` runs the reference training loop, the collective check, the device probe and
torchrun's failure reports on XLA's CPU device. ``seed``'s torch-xla 2.1 is not on the package
index: its environment has no torch, ``xla/`` is not collected there, and
tests/test_training_image.py checks the runtime's torch_xla names against pytorch/xla v2.1.0.
What exists only on Neuron hardware stays a stand-in, each citing the Neuron documentation
of what it imitates: ``nccom-test`` and ``fi_info`` answers, ``/dev/neuron*`` and
``/dev/infiniband/uverbs*`` (the tests' runners and globs), ``neuron_parallel_compile``.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# The profile decides: an environment without torch-xla (seed) cannot run xla/.
collect_ignore = [] if importlib.util.find_spec("torch_xla") is not None else ["xla"]

RUNTIME = Path(__file__).resolve().parents[2] / "ml_constructs" / "trainium_batch" / "runtime"

if "trainium_runtime" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "trainium_runtime", RUNTIME / "__init__.py", submodule_search_locations=[str(RUNTIME)]
    )
    assert _spec and _spec.loader
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["trainium_runtime"] = _module
    _spec.loader.exec_module(_module)
