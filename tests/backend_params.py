"""The backends the tests run for (each skipped where its array library is missing; the
``backend`` fixture of conftest.py), helpers to read either backend's arrays, and a model both
backends' tests use."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(
    importlib.util.find_spec(name) is None, reason=f"{name} is not installed"))
    for name in ("jax", "torch")]


def trains(path) -> bool:
    """Whether a model file declares networks of (t, x) trained along an interpolant (a
    generative model), not only samplers of an energy or normalizing flows."""
    from pathlib import Path
    text = Path(path).read_text()
    return "network " in text and "interpolant" in text


def to_numpy(value) -> np.ndarray:
    """A JAX array, a torch tensor (or parameter) or a number as a numpy array."""
    return np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)


# a potential network (the velocity is its gradient in x), with adamw, clip and an EMA
POTENTIAL = """
import stdlib.interpolants
model Potential {
    dim 2
    base x0 ~ normal(0, 1)
    target x1 ~ normal(mean = [1, 1], scale = 1)
    interpolant x_t = linear
    network phi = mlp(width = 32, depth = 2)
    objective { phi ~ potential }
    sampler ode = midpoint(steps = 10)
    train { steps 300  batch 256  optimizer adamw(lr = 3e-3)  clip 1.0  ema 0.99 }
}
"""


def pairing_cost(x0, x1) -> float:
    """sum_i |x0_i - x1_i|^2 of a coupled batch."""
    return float(np.sum((np.asarray(x0) - np.asarray(x1)) ** 2))


def array_module(backend: str):
    """``jax.numpy`` or ``torch``: what the backend's emitted functions compute with."""
    if backend == "torch":
        import torch
        return torch
    import jax.numpy as jnp
    return jnp


def backend_ops_of(name: str):
    """The runtime/ops.py adapter of backend ``name`` (skipped where its libraries are missing)."""
    if name == "jax":
        pytest.importorskip("jax")
        pytest.importorskip("diffrax")
        from tfm.backends.jax.runtime.ops import OPS
        return OPS
    pytest.importorskip("torch")
    pytest.importorskip("torchdiffeq")
    from tfm.backends.torch.runtime.ops import Ops
    return Ops("cpu")
