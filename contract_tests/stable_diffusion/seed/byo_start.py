"""One start of the bring-your-own handler (model.py) and one request, in a fresh process.

    python byo_start.py COMPILED_DIR SIGNATURES_JSON

Run by test_byo_device_discovery.py under different PYTHONHASHSEED values: the hash seed decides
the order of the set diffusers 0.16 takes the pipeline's device from. Prints one JSON line:
{"first_module": name, "status": HTTP code, "error": message or null}.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path[:0] = [str(HERE), str(REPO / "tests" / "model_packages" / "djl_stub")]

from djl_python import Input  # noqa: E402
from neuron_standin import DataParallel, neuron_loader  # noqa: E402


def main(compiled: str, signatures_file: str) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("byo_model", REPO / "model_packages" / "stable_diffusion_inf2_byo" / "model.py")
    byo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(byo)
    raw = json.loads(Path(signatures_file).read_text())
    signatures = {name: [(tuple(shape), getattr(torch, dtype)) for shape, dtype in sig] for name, sig in raw.items()}
    service = byo.Service(lambda props: byo.load_pipeline(props, jit_load=neuron_loader(signatures),
                                                          data_parallel=DataParallel))
    service.handle(Input(b"", properties={"model_id": compiled, "tensor_parallel_degree": "2"}))
    names, _ = service.pipe._get_signature_keys(service.pipe)
    first = next(n for n in names if isinstance(getattr(service.pipe, n, None), torch.nn.Module))
    error = None
    try:
        out = service.handle(Input(json.dumps({"prompt": "a cat", "parameters": {"num_inference_steps": 1}})))
        status = out.code
    except Exception as err:  # noqa: BLE001 - reported to the test, which names it
        status, error = 500, f"{type(err).__name__}: {err}"
    print(json.dumps({"first_module": first, "status": status, "error": error}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
