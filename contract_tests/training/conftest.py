"""Contract tests of the Trainium job runtime, run in the environment built from
``runtime_profiles/training/<profile>/requirements.lock`` with the image's Python
(``python -m runtime_profiles.env test training/current``).

The image copies ``ml_constructs/trainium_batch/runtime/`` to ``/opt/runtime/trainium_runtime/``
and puts ``/opt/runtime`` on ``PYTHONPATH``; the tests import it under the same name, from the
same folder, so nothing of the CDK package (or aws_cdk) is loaded. torch, torch-xla and the
Neuron tools are not installable here (``base-image.lock``); the code that needs them
(``collective_check.run``, ``train_reference``) imports them inside functions the tests do not
call, and every subprocess (nccom-test, fi_info, torchrun) is replaced by a fake runner.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "ml_constructs" / "trainium_batch" / "runtime"

if "trainium_runtime" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "trainium_runtime", RUNTIME / "__init__.py", submodule_search_locations=[str(RUNTIME)]
    )
    assert _spec and _spec.loader
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["trainium_runtime"] = _module
    _spec.loader.exec_module(_module)
