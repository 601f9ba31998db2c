"""What both backends' couplings share: the exact assignment of a minibatch (scipy, on the host)
and the stopping rule of Sinkhorn's iterations."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

SINKHORN_MAX_ITERATIONS = 2000
SINKHORN_TOLERANCE = 1e-3  # largest relative error of a row marginal when iterations stop


def assignment(cost: np.ndarray) -> np.ndarray:
    """The permutation pi minimising sum_i cost[i, pi(i)] (int64 column of each row)."""
    _, cols = linear_sum_assignment(np.asarray(cost, dtype=np.float64))
    return cols.astype(np.int64)
