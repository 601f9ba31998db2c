"""Couplings of a batch (x0, x1) (MATH.md section 2, Couplings ν).

- ``independent`` and ``paired``: the batch as drawn (paired data are drawn with shared indices);
- ``minibatch_ot``: the exact assignment minimising sum |x0_i - x1_pi(i)|^2 (OT-CFM), solved by
  scipy's ``linear_sum_assignment`` through ``jax.pure_callback`` (exact OT has no fixed-shape
  device algorithm; torchcfm solves it on the host too);
- ``sinkhorn(reg)``: the entropic plan with regularisation ``reg`` relative to the mean cost,
  computed on the device in the log domain (iterations stop when every row marginal is within
  0.1% of 1/n, or after 2000); each x0_i is paired with x1_j, j drawn from row i.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ...shared.couplings import SINKHORN_MAX_ITERATIONS, SINKHORN_TOLERANCE, assignment


def _costs(x0, x1):
    a, b = x0.reshape(x0.shape[0], -1), x1.reshape(x1.shape[0], -1)
    return jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2 * a @ b.T


def _assignment(cost: np.ndarray) -> np.ndarray:
    return assignment(cost).astype(np.int32)


def minibatch_ot(key, x0, x1):
    cost = _costs(x0, x1)
    perm = jax.pure_callback(_assignment, jax.ShapeDtypeStruct((x0.shape[0],), jnp.int32), cost)
    return x0, x1[perm]


def sinkhorn_plan(cost, reg):
    """log of the entropic OT plan between uniform weights (log-domain Sinkhorn)."""
    n, m = cost.shape
    eps = reg * jnp.mean(cost)
    log_a, log_b = -jnp.log(n) * jnp.ones(n), -jnp.log(m) * jnp.ones(m)

    def row_error(f, g):
        rows = jax.nn.logsumexp((f[:, None] + g[None, :] - cost) / eps, axis=1)
        return jnp.max(jnp.abs(jnp.expm1(rows - log_a)))

    def body(state):
        i, f, g, _ = state
        f = eps * log_a - eps * jax.nn.logsumexp((g[None, :] - cost) / eps, axis=1)
        g = eps * log_b - eps * jax.nn.logsumexp((f[:, None] - cost) / eps, axis=0)
        return i + 1, f, g, row_error(f, g)

    def running(state):
        i, _, _, error = state
        return (i < SINKHORN_MAX_ITERATIONS) & (error > SINKHORN_TOLERANCE)

    zeros_n, zeros_m = jnp.zeros(n, cost.dtype), jnp.zeros(m, cost.dtype)
    _, f, g, _ = jax.lax.while_loop(running, body, (0, zeros_n, zeros_m, jnp.inf))
    return (f[:, None] + g[None, :] - cost) / eps


def make(entry: dict):
    """(key, x0, x1) -> (x0, x1) for the coupling ``entry`` (SPEC's coupling)."""
    name = entry["name"]
    if name in ("independent", "paired"):
        return lambda key, x0, x1: (x0, x1)
    if name == "minibatch_ot":
        return minibatch_ot
    if name == "sinkhorn":
        reg = float(entry["args"]["reg"])

        def sinkhorn(key, x0, x1):
            log_plan = sinkhorn_plan(_costs(x0, x1), reg)
            j = jax.random.categorical(key, log_plan, axis=1)
            return x0, x1[j]
        return sinkhorn
    raise ValueError(f"unknown coupling {name}")
