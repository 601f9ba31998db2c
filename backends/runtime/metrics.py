"""Sample-quality metrics (docs/maths.md §6), on numpy arrays of shape (N, ...).

- ``w2``: the 2-Wasserstein distance between two equally weighted sample sets, by exact optimal
  transport (POT's ``emd2`` on squared Euclidean costs), then the square root;
- ``mmd``: the biased (V-statistic) estimate of the maximum mean discrepancy with a sum of RBF
  kernels exp(-|x - y|^2 / (2 h^2)) at bandwidths h = BANDWIDTHS times the median distance of
  the reference set; the square root of MMD^2 is returned.
"""

from __future__ import annotations

import numpy as np

BANDWIDTHS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def _flat(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(a.shape[0], -1)


def w2(a, b) -> float:
    import ot  # POT imports the array libraries it finds (seconds): only when measuring

    a, b = _flat(a), _flat(b)
    cost = ot.dist(a, b, metric="sqeuclidean")
    weights_a, weights_b = np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b))
    return float(np.sqrt(max(ot.emd2(weights_a, weights_b, cost, numItermax=10_000_000), 0.0)))


def mmd(a, b) -> float:
    a, b = _flat(a), _flat(b)
    both = np.concatenate([a, b])
    d2 = np.sum(both**2, 1)[:, None] + np.sum(both**2, 1)[None, :] - 2 * both @ both.T
    d2 = np.maximum(d2, 0)
    ref = d2[len(a):, len(a):]
    median = np.sqrt(np.median(ref[np.triu_indices(len(b), 1)])) if len(b) > 1 else 1.0
    k = sum(np.exp(-d2 / (2 * (h * median) ** 2)) for h in BANDWIDTHS)
    n = len(a)
    value = k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()
    return float(np.sqrt(max(value, 0.0)))
