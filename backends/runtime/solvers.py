"""ODE and SDE solvers, written once for both backends (docs/maths.md §5).

Fixed-step methods are explicit Runge-Kutta schemes given by their Butcher tableaux
(``tableaus.py``): euler (order 1), midpoint and heun (order 2), rk4 (order 4), run as one
``ops.scan`` over the steps (one compiled ``lax.scan`` in JAX, a loop in torch). States may be an
array or a tuple of arrays (the likelihood integrates (x, log-density) together); time runs from
t0 to t1 in either direction. The times of a run (t0 + k h at step k, plus c_i h at stage i) are
computed once in float64 and handed to the loop as one array of the state's dtype, so in torch no
step waits for a host-to-device copy. ``adaptive`` is Dormand-Prince 5(4) from the backend's
library (diffrax, torchdiffeq; ``ops.adaptive``). Euler-Maruyama integrates
dX = drift dt + sqrt(2 eps(t)) dW.
"""

from __future__ import annotations

import math

import numpy as np

from .ops import first_leaf, tree_map
from .tableaus import ORDERS, TABLEAUS  # noqa: F401 (ORDERS: solvers.ORDERS)


def _axpy(y, h, coefficients, ks):
    """y + h sum_i a_i k_i (terms with a zero coefficient skipped)."""
    out = y
    for a, k in zip(coefficients, ks):
        if a:
            out = tree_map(lambda o, kk, a=a: o + (h * a) * kk, out, k)
    return out


def _rk(f, a, b, times, y, h):
    ks = [f(times[0], y)]
    for i, row in enumerate(a):
        ks.append(f(times[i + 1], _axpy(y, h, row, ks)))
    return _axpy(y, h, b, ks)


def _times(ops, values, like):
    return ops.asarray(np.asarray(values, dtype=np.float64), like.dtype)


def rk_step(ops, f, method: str, t: float, y, h: float):
    """One step of ``method`` from (t, y) with step h."""
    a, b, c = TABLEAUS[method]
    return _rk(f, a, b, _times(ops, [t + ci * h for ci in c], first_leaf(y)), y, h)


def fixed_step(ops, f, y0, t0: float, t1: float, steps: int, method: str,
               trajectory: bool = False):
    """Integrate dy/dt = f(t, y) with ``steps`` equal steps; returns y(t1), and with
    ``trajectory`` the states at every step (steps + 1 of them, y0 first; for a tuple state a
    tuple of such stacks)."""
    a, b, c = TABLEAUS[method]
    t0, t1 = float(t0), float(t1)
    h = (t1 - t0) / steps
    times = _times(ops, [[(t0 + k * h) + ci * h for ci in c] for k in range(steps)], first_leaf(y0))

    def body(y, stage_times):
        y = _rk(f, a, b, stage_times, y, h)
        return y, (y if trajectory else None)

    y1, path = ops.scan(body, y0, times, trajectory)
    if trajectory:
        xp = ops.xp
        return y1, tree_map(lambda p, s: xp.concat([s[None, ...], p], axis=0), path, y0)
    return y1


def unrolled(f, y0, t0: float, t1: float, steps: int, method: str):
    """``fixed_step`` without ``ops``: the steps unrolled in Python, the times Python floats;
    for code that holds no ops and is traced or differentiated as a whole (a cnf flow's
    passes, ``flows/cnf.py``)."""
    a, b, c = TABLEAUS[method]
    h = (float(t1) - float(t0)) / steps
    y = y0
    for k in range(steps):
        t = float(t0) + k * h
        y = _rk(f, a, b, [t + ci * h for ci in c], y, h)
    return y


def _sqrt(xp, value):
    if isinstance(value, (int, float)):  # a constant eps: no array, no copy to the device
        return math.sqrt(value) if value >= 0 else math.nan
    return xp.sqrt(value)


def euler_maruyama(ops, drift, eps, key, x0, t0: float, t1: float, steps: int,
                   trajectory: bool = False):
    """dX = drift(t, X) dt + sqrt(2 eps(t)) dW from t0 to t1 (t1 < t0 runs backward in time: the
    drift is then the backward drift b - eps s and dt is negative). The noise of each step is
    drawn from its own key of ``key``'s stream; eps(t) may return a number or an array."""
    t0, t1 = float(t0), float(t1)
    h = (t1 - t0) / steps
    times = _times(ops, [t0 + k * h for k in range(steps)], x0)
    xp = ops.xp

    def body(x, inputs):
        t, k = inputs
        noise = ops.random(k).normal(x.shape, x.dtype)
        x = x + h * drift(t, x) + _sqrt(xp, 2 * eps(t) * abs(h)) * noise
        return x, (x if trajectory else None)

    x1, path = ops.scan(body, x0, (times, ops.random(key).keys(steps)), trajectory)
    if trajectory:
        return x1, xp.concat([x0[None, ...], path], axis=0)
    return x1


def dopri5(ops, f, y0, t0: float, t1: float, rtol: float, atol: float, max_steps: int = 4096):
    """Adaptive Dormand-Prince 5(4): (y(t1), number of steps taken, accepted and rejected)."""
    return ops.adaptive(f, y0, t0, t1, rtol, atol, max_steps)
