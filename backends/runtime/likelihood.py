"""Log-likelihood by the probability-flow ODE, written once for both backends (docs/maths.md §4).

log rho1(x) = log rho0(X_t0) - integral_t0^t1 div b(t, X_t) dt, integrating (X, the integral)
backward from X_t1 = x. The divergence is exact (the trace of the Jacobian,
``ops.velocity_and_divergence``: forward mode per point in JAX, reverse mode per dimension in
torch) for small dimensions, or Hutchinson's estimate v . (J v) with one Rademacher probe per
point drawn once per trajectory (one ``jvp`` per evaluation, whose primal is the velocity).
"""

from __future__ import annotations


def hutchinson(ops, velocity, v):
    """f(t, (x, _)) -> (b(t, x), v . (db/dx) v) for probes v (B, *shape)."""
    xp = ops.xp

    def f(t, state):
        b, jv = ops.jvp(lambda y: velocity(t, y), (state[0],), (v,))
        return b, xp.sum(xp.reshape(v * jv, (b.shape[0], -1)), axis=-1)
    return f


def log_prob(ops, velocity, base_log_prob, x, integrate, exact: bool = True, key=None):
    """log rho1(x) for a batch. ``integrate(f, y0)`` solves dy/dt = f(t, y) from the sampler's
    t1 back to its t0 (the sampler kind's solver); the Hutchinson probe is drawn from ``key``."""
    xp = ops.xp
    if exact:
        def f(t, state):
            return ops.velocity_and_divergence(velocity, t, state[0])
    else:
        f = hutchinson(ops, velocity, ops.random(key).rademacher(x.shape, x.dtype))
    x0, integral = integrate(f, (x, xp.zeros_like(xp.reshape(x, (x.shape[0], -1))[:, 0])))
    # integrating from t1 down to t0 accumulates -integral_t0^t1 div b dt
    return base_log_prob(x0) + integral
