"""Log-likelihood by the probability-flow ODE (MATH.md section 3).

log rho1(x) = log rho0(X_t0) - integral_t0^t1 div b(t, X_t) dt, integrating (X, the integral)
backward from X_t1 = x. The divergence is exact (the trace of the Jacobian, one forward-mode
derivative per dimension under ``torch.func.vmap``) for small dimensions, or Hutchinson's
estimate v . (J v) with one Rademacher probe per point drawn once per trajectory (one
``torch.func.jvp``). The torch.func transforms are forward mode, so they run under
``torch.no_grad`` (where ``log_prob`` runs: no parameter gradients are needed); a velocity
that is the gradient of a potential must take it with ``torch.func.grad`` to compose with them.
"""

from __future__ import annotations

import torch
from torch.func import jacfwd, jvp, vmap

from . import solvers

EXACT_MAX_DIM = 32


def _time(t, x):
    """t as a 0-d tensor of x's dtype on its device (a float given directly is converted)."""
    return torch.as_tensor(t, dtype=x.dtype, device=x.device)


def velocity_and_divergence(velocity, t, x):
    """b(t, x) and the trace of db/dx for each point of the batch x (B, *shape): one forward-mode
    Jacobian per point (``jacfwd`` with the value as its auxiliary output, so the network runs
    once per point, its d tangents batched), d forward-mode derivatives."""
    shape = x.shape[1:]
    t = _time(t, x)

    def single(xi):
        def f(y):
            out = velocity(t, y.reshape((1,) + shape)).reshape(-1)
            return out, out
        jac, y = jacfwd(f, has_aux=True)(xi.reshape(-1))
        return y.reshape(shape), torch.diagonal(jac).sum()

    return vmap(single)(x)


def divergence_exact(velocity, t, x):
    """Trace of d velocity / dx for each point of the batch x (B, *shape)."""
    return velocity_and_divergence(velocity, t, x)[1]


def divergence_hutchinson(velocity, t, x, v):
    """v . (d velocity / dx) v for each point of the batch x (B, *shape), probes v (B, *shape)."""
    t = _time(t, x)
    _, jv = jvp(lambda y: velocity(t, y), (x,), (v,))
    return torch.sum((v * jv).reshape(x.shape[0], -1), -1)


def _rademacher(gen, x):
    """+-1 with probability 1/2 each, x's shape, dtype and device, drawn from ``gen``."""
    bits = torch.randint(0, 2, x.shape, generator=gen, device=x.device)
    return (2 * bits - 1).to(x.dtype)


@torch.no_grad()
def log_prob(velocity, base_log_prob, x, t0: float, t1: float, method: str, steps: int = 20,
             exact: bool = True, gen=None, rtol: float = 1e-5, atol: float = 1e-5):
    """log rho1(x) for a batch; ``method`` is a fixed-step solver name or ``dopri5``. The
    Hutchinson probe is drawn once per call from ``gen`` (a torch.Generator on x's device, or
    None for torch's global one)."""
    if exact:
        def f(t, state):
            return velocity_and_divergence(velocity, t, state[0])
    else:
        v = _rademacher(gen, x)

        def f(t, state):  # the jvp's primal is the velocity
            b, jv = jvp(lambda y: velocity(t, y), (state[0],), (v,))
            return b, torch.sum((v * jv).reshape(b.shape[0], -1), -1)

    state = (x, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device))
    if method == "dopri5":
        (x0, integral), _ = solvers.dopri5(f, state, t1, t0, rtol, atol)
    else:
        x0, integral = solvers.fixed_step(f, state, t1, t0, steps, method)
    # integrating from t1 down to t0 accumulates -integral_t0^t1 div b dt
    return base_log_prob(x0) + integral
