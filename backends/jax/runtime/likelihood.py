"""Log-likelihood by the probability-flow ODE (MATH.md section 3).

log rho1(x) = log rho0(X_t0) - integral_t0^t1 div b(t, X_t) dt, integrating (X, the integral)
backward from X_t1 = x. The divergence is exact (the trace of the Jacobian, one forward-mode
derivative per dimension under ``vmap``) for small dimensions, or Hutchinson's estimate
v . (J v) with one Rademacher probe per point drawn once per trajectory (one ``jvp``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import solvers

def velocity_and_divergence(velocity, t, x):
    """b(t, x) and the trace of db/dx for each point of the batch x (B, *shape): one
    linearisation per point (the primal is computed once), d forward-mode derivatives."""
    shape = x.shape[1:]

    def single(xi):
        def f(y):
            return velocity(t, y.reshape((1,) + shape)).reshape(-1)
        y, tangent = jax.linearize(f, xi.reshape(-1))
        jac = jax.vmap(tangent)(jnp.eye(y.shape[0], dtype=y.dtype))
        return y.reshape(shape), jnp.trace(jac)

    return jax.vmap(single)(x)


def divergence_exact(velocity, t, x):
    """Trace of d velocity / dx for each point of the batch x (B, *shape)."""
    return velocity_and_divergence(velocity, t, x)[1]


def divergence_hutchinson(velocity, t, x, v):
    _, jv = jax.jvp(lambda y: velocity(t, y), (x,), (v,))
    return jnp.sum((v * jv).reshape(x.shape[0], -1), -1)


def log_prob(velocity, base_log_prob, x, t0: float, t1: float, method: str, steps: int = 20,
             exact: bool = True, key=None, rtol: float = 1e-5, atol: float = 1e-5):
    """log rho1(x) for a batch; ``method`` is a fixed-step solver name or ``dopri5``."""
    if exact:
        def f(t, state):
            return velocity_and_divergence(velocity, t, state[0])
    else:
        v = jax.random.rademacher(key, x.shape, x.dtype)

        def f(t, state):  # the jvp's primal is the velocity
            b, jv = jax.jvp(lambda y: velocity(t, y), (state[0],), (v,))
            return b, jnp.sum((v * jv).reshape(b.shape[0], -1), -1)

    state = (x, jnp.zeros(x.shape[0], x.dtype))
    if method == "dopri5":
        (x0, integral), _ = solvers.dopri5(f, state, t1, t0, rtol, atol)
    else:
        x0, integral = solvers.fixed_step(f, state, t1, t0, steps, method)
    # integrating from t1 down to t0 accumulates -integral_t0^t1 div b dt
    return base_log_prob(x0) + integral
