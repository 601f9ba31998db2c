"""Samplers: fixed-step ODE solvers, adaptive dopri5 (diffrax) and Euler-Maruyama.

Fixed-step methods are explicit Runge-Kutta schemes given by their Butcher tableaux, run as one
``lax.scan`` over the steps (so the whole trajectory is one compiled program): euler (order 1),
midpoint and heun (order 2), rk4 (order 4). States may be any pytree (the likelihood integrates
(x, log-density) together). Time runs from t0 to t1 in either direction.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp

from ...shared.tableaus import ORDERS, TABLEAUS  # noqa: F401 (ORDERS: solvers.ORDERS)


_tm = jax.tree_util.tree_map


def _axpy(y, h, coefficients, ks):
    out = y
    for a, k in zip(coefficients, ks):
        if a:
            out = _tm(lambda o, kk, a=a: o + (h * a) * kk, out, k)
    return out


def rk_step(f, method: str, t, y, h):
    a, b, c = TABLEAUS[method]
    ks = [f(t, y)]
    for i, row in enumerate(a):
        ks.append(f(t + c[i + 1] * h, _axpy(y, h, row, ks)))
    return _axpy(y, h, b, ks)


def fixed_step(f, y0, t0: float, t1: float, steps: int, method: str, trajectory: bool = False):
    """Integrate dy/dt = f(t, y) with ``steps`` equal steps; returns y(t1), and with
    ``trajectory`` the states at every step (steps + 1 of them, y0 first)."""
    h = (t1 - t0) / steps

    def body(y, k):
        y = rk_step(f, method, t0 + k * h, y, h)
        return y, (y if trajectory else None)

    y1, path = jax.lax.scan(body, y0, jnp.arange(steps))
    if trajectory:
        path = _tm(lambda p, s: jnp.concatenate([s[None], p]), path, y0)
        return y1, path
    return y1


def dopri5(f, y0, t0: float, t1: float, rtol: float, atol: float, max_steps: int = 4096):
    """Adaptive Dormand-Prince 5(4) with a PID step-size controller (diffrax)."""
    term = diffrax.ODETerm(lambda t, y, args: f(t, y))
    sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), t0=t0, t1=t1, dt0=(t1 - t0) / 20, y0=y0,
                              stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
                              max_steps=max_steps)
    return _tm(lambda y: y[-1], sol.ys), sol.stats["num_steps"]


def euler_maruyama(drift, eps, key, x0, t0: float, t1: float, steps: int,
                   trajectory: bool = False):
    """dX = drift(t, X) dt + sqrt(2 eps(t)) dW from t0 to t1 (t1 < t0 runs backward in time:
    the drift is then the backward drift b - eps s and dt is negative)."""
    h = (t1 - t0) / steps
    keys = jax.random.split(key, steps)

    def body(x, inputs):
        k, key = inputs
        t = t0 + k * h
        noise = jax.random.normal(key, x.shape, x.dtype)
        x = x + h * drift(t, x) + jnp.sqrt(2 * eps(t) * abs(h)) * noise
        return x, (x if trajectory else None)

    x1, path = jax.lax.scan(body, x0, (jnp.arange(steps), keys))
    if trajectory:
        return x1, jnp.concatenate([x0[None], path])
    return x1
