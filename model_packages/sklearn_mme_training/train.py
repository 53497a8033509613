"""Train the multi-model endpoint's scikit-learn model: ``model.skops``.

A ``LinearRegression`` fitted on synthetic data ``y = 2x + 1 + noise``, as the
workload describes. Seeded, so the same seed and the same library versions give
the same coefficients and the same file bytes (the archive's timestamps are
fixed, so republishing an unchanged model uploads nothing).

The model is saved with skops, not pickle/joblib: the serving handler loads it
with an explicit list of trusted types. ``model.skops`` is not kept in git: it is
built by ``python -m ml_tools publish-models`` (or this script) in the
environment built from the serving image's lock
(``python -m runtime_profiles.env python multi_model/current``), and shipped
inside the package tarball.

    python model_packages/sklearn_mme_training/train.py --output model.skops [--seed 0]
"""
from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import LinearRegression

SLOPE = 2.0
INTERCEPT = 1.0
# zip entries default to the current time; a fixed one makes the bytes a function of the model.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def make_data(seed: int, samples: int = 1000, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-10.0, 10.0, size=(samples, 1))
    y = SLOPE * x[:, 0] + INTERCEPT + rng.normal(0.0, noise, size=samples)
    return x, y


def train(seed: int = 0) -> LinearRegression:
    x, y = make_data(seed)
    return LinearRegression().fit(x, y)


def canonical_skops(data: bytes) -> bytes:
    """The same skops archive with process-independent bytes.

    skops names each array file and object reference after ``id()`` of the object
    (a memory address) and stamps entries with the current time, so two dumps of
    one model differ. Renumbering both in order of appearance in ``schema.json``
    and fixing the timestamps makes the file a function of the model, so
    republishing an unchanged model uploads nothing.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        schema = json.loads(src.read("schema.json"))
        ids: dict[object, int] = {}
        files: dict[str, str] = {}

        def renumber(node: object) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "__id__":
                        node[key] = ids.setdefault(value, len(ids))
                    elif key == "file" and isinstance(value, str):
                        node[key] = files.setdefault(value, f"{len(files)}{Path(value).suffix}")
                    else:
                        renumber(value)
            elif isinstance(node, list):
                for item in node:
                    renumber(item)

        renumber(schema)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as dst:  # entries stored: the package tarball is gzipped anyway
            for old, new in sorted(files.items(), key=lambda item: item[1]):
                dst.writestr(zipfile.ZipInfo(new, date_time=_ZIP_TIME), src.read(old))
            dst.writestr(zipfile.ZipInfo("schema.json", date_time=_ZIP_TIME), json.dumps(schema, sort_keys=True))
    return out.getvalue()


def model_bytes(seed: int = 0) -> bytes:
    """The skops file's bytes, for packaging without a temporary file."""
    import skops.io as sio

    return canonical_skops(sio.dumps(train(seed)))


def main(argv: list[str] | None = None) -> int:
    import skops.io as sio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("model.skops"), help="where to write the model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(model_bytes(args.seed))
    model = sio.load(args.output, trusted=["sklearn.linear_model._base.LinearRegression"])
    print(f"wrote {args.output}: y = {model.coef_[0]:.4f} x + {model.intercept_:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
