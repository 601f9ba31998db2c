"""Numbers of the densities that both backends draw from, in plain numpy: the fixed means and
the standard deviation of the stdlib's ``gmm40`` target, and ``_vector``, which spreads a
density's scalar or per-coordinate argument (a ``normal``'s mean or scale) over ``dim``
coordinates. The JAX and PyTorch runtimes put these arrays on their device, so that the same
spec draws from the same law in either backend.
"""

from __future__ import annotations

import math

import numpy as np


def gmm40_means() -> np.ndarray:
    """40 means uniform in [-40, 40]^2 (FAB's GMM-40 layout), fixed by a numpy seed."""
    return np.random.Generator(np.random.PCG64(0)).uniform(-40, 40, (40, 2)).astype(np.float32)


GMM40_STD = math.log1p(math.e)  # softplus(1)


def _vector(value, dim):
    array = np.asarray(value, dtype=np.float32).reshape(-1)
    return np.broadcast_to(array, (dim,)).copy() if array.size == 1 else array
