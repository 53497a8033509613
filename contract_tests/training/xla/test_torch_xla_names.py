"""No torch_xla name the runtime uses is missing from the image's torch-xla (2.9 in ``current``)."""
from __future__ import annotations

import importlib

import torch_xla
from xla_names import used_names


def test_the_environment_has_the_images_torch_xla():
    assert torch_xla.__version__.startswith("2.9.")


def test_every_torch_xla_name_the_runtime_uses_exists():
    names = used_names()
    assert {"torch_xla.core.xla_model", "torch_xla.runtime"} <= set(names)  # the scanner sees the runtime
    missing = [f"{module}.{attr}" for module, attrs in sorted(names.items())
               for attr in sorted(attrs) if not hasattr(importlib.import_module(module), attr)]
    assert missing == []


def test_the_names_removed_in_torch_xla_2_7_are_gone_and_unused():
    import torch_xla.core.xla_model as xm

    # Deprecated in 2.6 ("will be removed in release 2.7"), absent in 2.9: the old reference used them.
    assert not hasattr(xm, "xrt_world_size") and not hasattr(xm, "get_ordinal")
    assert not {"xrt_world_size", "get_ordinal"} & used_names()["torch_xla.core.xla_model"]
