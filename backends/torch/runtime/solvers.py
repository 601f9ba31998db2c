"""Samplers: fixed-step ODE solvers, adaptive dopri5 (torchdiffeq) and Euler-Maruyama.

Fixed-step methods are explicit Runge-Kutta schemes given by their Butcher tableaux
(shared/tableaus.py), run as a Python loop over the steps: euler (order 1), midpoint and heun
(order 2), rk4 (order 4). States may be a tensor or a tuple of tensors (the likelihood
integrates (x, log-density) together). Time runs from t0 to t1 in either direction.

``f(t, y)`` is always called with ``t`` a 0-d tensor of the state's (first tensor's) dtype on
its device. The times of a run follow the JAX backend's formula (t0 + k h at step k, plus c_i h
at stage i), computed once in Python floats, rounded to the state's dtype and moved to the
device in one copy: each step then takes views of that table, so no step waits for a
host-to-device copy.
"""

from __future__ import annotations

import math

import torch
from torchdiffeq import odeint

from ...shared.tableaus import ORDERS, TABLEAUS  # noqa: F401 (ORDERS: solvers.ORDERS)


# --- states: a tensor or a tuple of tensors ----------------------------------------------------

def _first(y):
    return y[0] if isinstance(y, tuple) else y


def _map(fn, *ys):
    """fn applied leaf by leaf to states of the same structure."""
    if isinstance(ys[0], tuple):
        return tuple(fn(*leaves) for leaves in zip(*ys))
    return fn(*ys)


def _axpy(y, h, coefficients, ks):
    """y + h sum_i a_i k_i (terms with a zero coefficient skipped, as in the JAX backend)."""
    out = y
    for a, k in zip(coefficients, ks):
        if a:
            out = _map(lambda o, kk, a=a: o + (h * a) * kk, out, k)
    return out


def _times(values, like: torch.Tensor) -> torch.Tensor:
    """Python floats (float64) as a tensor of the state's dtype on its device, in one copy."""
    return torch.tensor(values, dtype=torch.float64).to(device=like.device, dtype=like.dtype)


def _rk(f, a, b, times, y, h):
    ks = [f(times[0], y)]
    for i, row in enumerate(a):
        ks.append(f(times[i + 1], _axpy(y, h, row, ks)))
    return _axpy(y, h, b, ks)


def rk_step(f, method: str, t, y, h):
    """One step of ``method`` from (t, y) with step h (a Python float; t a float or a 0-d
    tensor)."""
    a, b, c = TABLEAUS[method]
    if isinstance(t, torch.Tensor):
        like = _first(y)
        t = t.to(device=like.device, dtype=like.dtype)
        times = [t + ci * h if ci else t for ci in c]
    else:
        times = _times([t + ci * h for ci in c], _first(y))
    return _rk(f, a, b, times, y, h)


def fixed_step(f, y0, t0: float, t1: float, steps: int, method: str, trajectory: bool = False):
    """Integrate dy/dt = f(t, y) with ``steps`` equal steps; returns y(t1), and with
    ``trajectory`` the states at every step (steps + 1 of them, y0 first; for a tuple state, a
    tuple of such stacks)."""
    a, b, c = TABLEAUS[method]
    t0, t1 = float(t0), float(t1)
    h = (t1 - t0) / steps
    times = _times([[(t0 + k * h) + ci * h for ci in c] for k in range(steps)], _first(y0))
    y, path = y0, [y0]
    for k in range(steps):
        y = _rk(f, a, b, times[k], y, h)
        if trajectory:
            path.append(y)
    if trajectory:
        if isinstance(y0, tuple):
            return y, tuple(torch.stack(leaves) for leaves in zip(*path))
        return y, torch.stack(path)
    return y


class _Counted:
    """f(t, y) for torchdiffeq, with the times cast to the state's dtype and the steps counted
    by torchdiffeq's ``callback_step`` hook (called once per attempted step)."""

    def __init__(self, f, dtype):
        self.f, self.dtype, self.steps = f, dtype, 0

    def __call__(self, t, y):
        return self.f(t.to(self.dtype), y)

    def callback_step(self, t0, y0, dt):
        self.steps += 1


def _rms_norm(y):
    """sqrt(mean(y^2)) over all the tensors of a state together (diffrax's norm)."""
    leaves = y if isinstance(y, tuple) else (y,)
    return torch.sqrt(sum(leaf.abs().square().sum() for leaf in leaves)
                      / sum(leaf.numel() for leaf in leaves))


def dopri5(f, y0, t0: float, t1: float, rtol: float, atol: float, max_steps: int = 4096):
    """Adaptive Dormand-Prince 5(4) (torchdiffeq), set up as the JAX backend's diffrax run: first
    step (t1 - t0) / 20, the last step clipped to land on t1 (rather than interpolated past
    it), an I-controller with safety 0.9 and step factors in [0.2, 10], and the error measured
    by the RMS norm over all of a tuple state's tensors together (torchdiffeq's own default for
    tuples is the largest of their separate norms); on the tests' ODEs both backends take the
    same steps and agree to rounding. Returns y(t1) and the number of steps, accepted and
    rejected (diffrax's ``num_steps``), counted by torchdiffeq's per-step callback: with FSAL
    that is (function evaluations - 1) / 6, f(t0) then six new stages a step, the seventh being
    the next step's first. torchdiffeq runs a decreasing interval by negating time internally;
    ``f`` still sees the true t. More than ``max_steps`` steps raise torchdiffeq's
    AssertionError."""
    t0, t1 = float(t0), float(t1)
    if t0 == t1:
        return y0, 0
    like = _first(y0)
    counted = _Counted(f, like.dtype)
    ts = torch.tensor([t0, t1], dtype=torch.float64, device=like.device)
    ys = odeint(counted, y0, ts, rtol=rtol, atol=atol, method="dopri5",
                options={"max_num_steps": max_steps, "first_step": abs(t1 - t0) / 20,
                         "step_t": ts[1:], "norm": _rms_norm})  # a tensor: negated with t
    return _map(lambda y: y[-1], ys), counted.steps


def _sqrt(value):
    if isinstance(value, torch.Tensor):
        return torch.sqrt(value)
    return math.sqrt(value) if value >= 0 else math.nan


def euler_maruyama(drift, eps, gen, x0, t0: float, t1: float, steps: int,
                   trajectory: bool = False):
    """dX = drift(t, X) dt + sqrt(2 eps(t)) dW from t0 to t1 (t1 < t0 runs backward in time:
    the drift is then the backward drift b - eps s and dt is negative). The noise is drawn
    from ``gen`` (a torch.Generator on x0's device, or None for torch's global one); eps(t) may
    return a Python float or a tensor."""
    t0, t1 = float(t0), float(t1)
    h = (t1 - t0) / steps
    times = _times([t0 + k * h for k in range(steps)], x0)
    x, path = x0, [x0]
    for k in range(steps):
        t = times[k]
        noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        x = x + h * drift(t, x) + _sqrt(2 * eps(t) * abs(h)) * noise
        if trajectory:
            path.append(x)
    if trajectory:
        return x, torch.stack(path)
    return x
