"""The debiased exponential moving average of the weights, kept in its debiased form: after
update k (k = 1, 2, ...) ema <- ema + rate_k (params - ema) with
rate_k = (1 - d) / (1 - d^k), so the first rate is exactly 1 and the EMA starts as a copy of the
weights. Computed in float32 in both backends (``count`` a number or a JAX array)."""

from __future__ import annotations

import numpy as np


def rate(decay: float, count):
    d = np.float32(decay)
    return (np.float32(1) - d) / (np.float32(1) - d ** count)
