"""Step-size adaptation by dual averaging (Nesterov 2009, as Hoffman & Gelman 2014 use it for
NUTS, their Algorithm 5): during warm-up the log step size of each kernel is driven so that the
running mean of (target - acceptance) vanishes,

    H_m = (1 - 1 / (m + t0)) H_{m-1} + (target - alpha_m) / (m + t0)
    log eps_m = mu - sqrt(m) / gamma * H_m,     mu = log(10 eps_0)
    log eps_bar_m = m^-kappa log eps_m + (1 - m^-kappa) log eps_bar_{m-1}

with gamma = 0.05, t0 = 10, kappa = 0.75; alpha_m is the acceptance probability of iteration m
averaged over the chains (one step size per kernel, shared by all chains). Warm-up steps with
eps_m; sampling uses the averaged eps_bar. The state is a tuple of arrays of shape (kernels,), so
the update runs inside a compiled ``ops.scan``.
"""

from __future__ import annotations

import math

import numpy as np

GAMMA = 0.05
T0 = 10.0
KAPPA = 0.75


def start(ops, step_sizes):
    """The state before warm-up from each kernel's initial step size eps_0:
    (log eps, log eps_bar, H, m, mu)."""
    log_eps = ops.asarray(np.log(np.asarray(step_sizes, dtype=np.float64)))
    zeros = ops.xp.zeros_like(log_eps)
    return log_eps, zeros, zeros, zeros, log_eps + math.log(10.0)


def update(xp, state, accept, target):
    """One dual-averaging update from the iteration's mean acceptance of each kernel (kernels,)
    towards ``target`` (kernels,)."""
    log_eps, log_eps_bar, h, m, mu = state
    m = m + 1
    w = 1 / (m + T0)
    h = (1 - w) * h + w * (target - accept)
    log_eps = mu - xp.sqrt(m) / GAMMA * h
    eta = m ** -KAPPA
    log_eps_bar = eta * log_eps + (1 - eta) * log_eps_bar
    return log_eps, log_eps_bar, h, m, mu


def step_sizes(xp, state):
    """The step sizes warm-up steps with (eps_m)."""
    return xp.exp(state[0])


def adapted(xp, state):
    """The step sizes after warm-up (eps_bar)."""
    return xp.exp(state[1])
