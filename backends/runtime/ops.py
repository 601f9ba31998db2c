"""What an algorithm on arrays may ask of a backend beyond the Python array API.

The runtime's algorithms (densities, time laws, couplings, solvers, the likelihood, samplers,
objectives) are written once, against ``ops.xp`` (the array API namespace of the backend's array
library through array-api-compat: ``jax.numpy``, or array-api-compat's ``torch``) and against
the few things the standard lacks, which each backend's ``Ops`` supplies (``backends/jax/
runtime/ops.py``, ``backends/torch/runtime/ops.py``):

- random numbers: JAX threads explicit keys, torch draws from generators. ``ops.random(key)``
  wraps either in a ``Random`` with the same draws (normal, uniform, randint, rademacher,
  categorical) and ``key()`` to hand a key on to a compiled program;
- derivatives: ``jvp``, per-point Jacobians and the exact divergence (``value_and_jacobian``,
  ``velocity_and_divergence``: forward mode per point in JAX, reverse mode per dimension in
  torch, each the faster one there), an energy's
  value and gradient (``value_and_grad``) and its Hessian-vector products (``hvp``);
- loops: ``scan`` (``lax.scan``; a Python loop in torch) and ``while_loop``;
- host work inside a loop: ``assignment`` (scipy's exact assignment; a callback in JAX);
- adaptive ODE solving: ``adaptive`` (diffrax; torchdiffeq);
- arrays from and to numpy, device placement: ``asarray``, ``numpy``.

A backend's key (``ops.key(seed, index)``) is what compiled programs take as an argument: a JAX
PRNG key, or a seeded ``torch.Generator``.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np


class Random(Protocol):
    """A stream of random numbers. Algorithms use it as JAX keys are used: a Random is drawn
    from once; to draw more, split it first (``a, b = rng.split(2)``). In JAX each split is a
    new key (and a second draw from one Random is an error); in torch every split is the same
    generator, drawn from in the order the streams are used."""

    def split(self, n: int) -> tuple["Random", ...]: ...

    def normal(self, shape: tuple[int, ...], dtype=None) -> Any: ...

    def uniform(self, shape: tuple[int, ...]) -> Any: ...

    def randint(self, high: int, shape: tuple[int, ...]) -> Any: ...

    def rademacher(self, shape: tuple[int, ...], dtype=None) -> Any: ...

    def categorical(self, logits) -> Any:
        """One index per row of ``logits`` (n, m), drawn with probabilities softmax(row)."""

    def key(self) -> Any:
        """A key for another stream (a compiled program's argument)."""

    def keys(self, n: int) -> Any:
        """Keys for n streams, one per step of a loop (``scan``'s xs)."""


class Ops(Protocol):
    name: str
    xp: Any  # the array API namespace
    # xp with matrix products in full float32 precision on every device (a GPU's TF32
    # products keep ~3 significant digits): the namespace energies are evaluated in, since
    # an MCMC acceptance test or an importance weight needs the energy, not an approximation
    exact_xp: Any

    def key(self, seed: int, index: int | None = None) -> Any:
        """The key of seed (and, with ``index``, of its index-th substream)."""

    def random(self, key) -> Random: ...

    def asarray(self, value, dtype=None) -> Any: ...

    def numpy(self, x) -> np.ndarray: ...

    def scan(self, body: Callable, carry, xs, trajectory: bool = False): ...

    def while_loop(self, cond: Callable, body: Callable, state): ...

    def full(self, value, like, dtype=None) -> Any:
        """``value`` (an array that broadcasts to ``like``, or a number) as an array of
        ``like``'s shape and ``dtype`` (default: like's)."""

    def time(self, t, like) -> Any:
        """A time (a number or a 0-d array) as a float32 array on like's device."""

    def stop_gradient(self, x) -> Any: ...

    def jvp(self, f: Callable, primals: tuple, tangents: tuple): ...

    def velocity_and_divergence(self, velocity: Callable, t, x): ...

    def value_and_jacobian(self, f: Callable, t, x) -> tuple[Any, Any]:
        """f(t, x) (n, *shape) of a batch whose points do not interact, and each point's
        Jacobian of f in x, flattened: (n, d, d) with entry [i, a, b] = d f_a / d x_b at x[i]."""

    def value_and_grad(self, f: Callable, x) -> tuple[Any, Any]:
        """f(x) (n,) of a batch x (n, *shape) whose points do not interact (an energy), and
        the gradient of each f(x)[i] with respect to x[i]: (n,), (n, *shape)."""

    def hvp(self, f: Callable, x, v) -> Any:
        """Per point, the Hessian of f at x[i] applied to v[i]: (n, *shape)."""

    def assignment(self, cost) -> Any: ...

    def adaptive(self, f: Callable, y0, t0: float, t1: float, rtol: float, atol: float,
                 max_steps: int = 4096): ...


def tree_map(fn, *trees):
    """``fn`` leaf by leaf over states that are an array or a tuple of arrays."""
    if isinstance(trees[0], tuple):
        return tuple(fn(*leaves) for leaves in zip(*trees))
    return fn(*trees)


def first_leaf(tree):
    return tree[0] if isinstance(tree, tuple) else tree


def all_finite(xp, values) -> bool:
    """Whether every value (arrays or numbers) is finite."""
    return all(bool(xp.all(xp.isfinite(xp.asarray(v)))) for v in values)
