"""Writes ``breast_cancer.npz``, the data of the ``breast_cancer_logistic`` target: the Wisconsin
diagnostic breast-cancer data set as scikit-learn bundles it (``load_breast_cancer``: 569
tumours, 30 features, no download), prepared for a Bayesian logistic regression.

- ``X`` float32 (569, 31): column 0 the intercept (ones), columns 1..30 the features standardised
  to mean 0 and standard deviation 1 (population standard deviation, as scikit-learn's
  ``StandardScaler``), computed in float64;
- ``y`` float32 (569,): the labels in {-1, +1} (+1 benign, -1 malignant).

Run ``python stdlib/data/make_breast_cancer.py`` from the repository root to regenerate both
copies: ``stdlib/data/breast_cancer.npz`` (read by the runtime) and
``examples/data/breast_cancer.npz`` (read by the example through the language's constants).
The runtime only loads the file; it never imports scikit-learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def breast_cancer() -> dict[str, np.ndarray]:
    """The design matrix with its intercept column, and the labels in {-1, +1}."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    features = np.asarray(data.data, dtype=np.float64)
    standard = (features - features.mean(0)) / features.std(0)
    X = np.concatenate([np.ones((len(standard), 1)), standard], axis=1).astype(np.float32)
    y = (2.0 * np.asarray(data.target, dtype=np.float64) - 1.0).astype(np.float32)
    return {"X": X, "y": y}


def main() -> None:
    root = Path(__file__).resolve().parents[2]
    arrays = breast_cancer()
    for path in (root / "stdlib" / "data" / "breast_cancer.npz",
                 root / "examples" / "data" / "breast_cancer.npz"):
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)
        print(f"{path}: X {arrays['X'].shape}, y {arrays['y'].shape}")


if __name__ == "__main__":
    main()
