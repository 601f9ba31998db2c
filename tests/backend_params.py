"""The backends the tests run for (each skipped where its array library is missing), and
helpers to read either backend's arrays."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(
    importlib.util.find_spec(name) is None, reason=f"{name} is not installed"))
    for name in ("jax", "torch")]


def to_numpy(value) -> np.ndarray:
    """A JAX array, a torch tensor (or parameter) or a number as a numpy array."""
    return np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)


def array_module(backend: str):
    """``jax.numpy`` or ``torch``: what the backend's emitted functions compute with."""
    if backend == "torch":
        import torch
        return torch
    import jax.numpy as jnp
    return jnp
