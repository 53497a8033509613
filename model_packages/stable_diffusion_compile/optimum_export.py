"""The optimum-neuron export (runtime profile "current"), called by compile.py ``--exporter optimum-neuron``.

Exports the text encoder, UNet and VAE with ``NeuronStableDiffusionPipeline.from_pretrained(...,
export=True, batch_size=1, height, width, num_images_per_prompt=1)`` (optimum-neuron v0.4.1,
optimum/neuron/modeling_diffusion.py) and saves the pipeline, then copies ``optimum_serving/code/``
beside it: SageMaker copies the prefix to /opt/ml/model uncompressed, where the Hugging Face
inference toolkit finds ``code/inference.py``. Compiler flags are optimum-neuron's own
(``auto_cast=matmul`` in the dtype); ``--compiler-args`` must be empty here.

``disable_neuron_cache=True``: otherwise ``_export`` looks the compiled graphs up in the public hub
compile cache first (``create_hub_compile_cache_proxy().download_folder``, modeling_diffusion.py
v0.4.1) and serves whatever it finds there: the artifacts come from this compile, and a compile from
staged weights never reaches the hub (the job script also sets ``HF_HUB_OFFLINE=1`` for them).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
AUTO_CAST_TYPES = {"bf16": "bf16", "fp16": "fp16", "fp32": None}


def export(source: str, revision: str | None, height: int, width: int, dtype: str, out: Path,
           pipeline_class: Any = None) -> None:
    if pipeline_class is None:
        from optimum.neuron import NeuronStableDiffusionPipeline as pipeline_class
    cast = AUTO_CAST_TYPES[dtype]
    kwargs: dict[str, Any] = {"auto_cast": "matmul", "auto_cast_type": cast} if cast else {"auto_cast": None}
    kwargs["disable_neuron_cache"] = True
    if revision:
        kwargs["revision"] = revision
    pipe = pipeline_class.from_pretrained(source, export=True, batch_size=1, height=height, width=width,
                                          num_images_per_prompt=1, **kwargs)
    pipe.save_pretrained(out)
    shutil.copytree(HERE / "optimum_serving" / "code", out / "code")
