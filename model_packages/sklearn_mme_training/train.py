"""Train the multi-model endpoint's scikit-learn model: ``model.joblib``.

A ``LinearRegression`` fitted on synthetic data ``y = 2x + 1 + noise``, as the
workload describes. Seeded, so the same seed and the same library versions give
the same coefficients (and the same pickle bytes). ``model.joblib`` is not kept
in git: a pickle only loads under compatible numpy/scikit-learn versions, so it
is built by ``python -m ml_tools publish-models`` (or this script) in the
environment whose versions match the serving image, and shipped inside the
package tarball.

    python model_packages/sklearn_mme_training/train.py --output model.joblib [--seed 0]
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LinearRegression

SLOPE = 2.0
INTERCEPT = 1.0


def make_data(seed: int, samples: int = 1000, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-10.0, 10.0, size=(samples, 1))
    y = SLOPE * x[:, 0] + INTERCEPT + rng.normal(0.0, noise, size=samples)
    return x, y


def train(seed: int = 0) -> LinearRegression:
    x, y = make_data(seed)
    return LinearRegression().fit(x, y)


def model_bytes(seed: int = 0) -> bytes:
    """The joblib file's bytes, for packaging without a temporary file."""
    buffer = io.BytesIO()
    joblib.dump(train(seed), buffer)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("model.joblib"), help="where to write the model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(model_bytes(args.seed))
    model = joblib.load(args.output)
    print(f"wrote {args.output}: y = {model.coef_[0]:.4f} x + {model.intercept_:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
