"""The probability-flow ODE of a trained velocity as a normalizing flow, written once for both
backends: what a sampler on the target's energy gets when it names an ODE sampler as its flow
(``importance(flow = ode)``, ``flow_mh``, ``flow_smc``, ``flow_ais``).

With the base N(m, diag s^2) and the sampler's fixed-step solver Phi from t0 to t1 of
dX/dt = b(t, X), the flow is T(z) = Phi(m + s z) for latents z ~ N(0, I). The solver carries the
log-determinant along, as the likelihood does (runtime/likelihood.py): d/dt log|det| = div b
(exact, the trace of the Jacobian), so

- ``push(z)``: x = Phi(m + s z), log|det dx/dz| = sum log s + integral_t0^t1 div b dt, integrated
  forward;
- ``pull(x)``: z = (Phi^-1(x) - m) / s, log|det dz/dx| = -integral_t0^t1 div b dt - sum log s,
  integrated backward from x, as ``Model.log_prob`` does.

Both integrals are the solver's, so they equal the exact flow's only up to its discretisation
error, and push and pull are each other's inverse only to that error: importance weights and
Metropolis-Hastings ratios are exact for the density the solver computes, which is the density
of the push to the solver's accuracy (docs/flows.md). Only fixed-step solvers qualify: an
adaptive solver chooses its steps for the whole batch, so a point's value would depend on the
other points solved with it (the compiler refuses it).
"""

from __future__ import annotations

import math

import numpy as np

from .densities import vector
from .flow_density import FlowDensity
from .samplers import kind_of


def ode_flow_density(model, entry, weights) -> FlowDensity:
    """The FlowDensity of the ODE sampler ``entry`` of ``model`` (the model object of an
    interpolant model) with ``weights``."""
    ops, xp, shape = model.ops, model.ops.xp, model.shape
    kind = kind_of(entry)
    t0, t1 = model.interval(entry)
    dim = math.prod(shape)
    base = model.spec.base
    mean = vector(base.args["mean"], dim).reshape(shape)
    scale = vector(base.args["scale"], dim).reshape(shape)
    log_scale = float(np.sum(np.log(scale.astype(np.float64))))
    mean, scale = ops.asarray(mean), ops.asarray(scale)
    velocity = model.field("velocity", weights)

    def f(t, state):
        return ops.velocity_and_divergence(velocity, t, state[0])

    def zero(x):
        return xp.zeros_like(xp.reshape(x, (x.shape[0], -1))[:, 0])

    def push(z):
        # integrate's ends swapped: from t0 forward to t1
        x, integral = kind.integrate(model, entry, f, (mean + scale * z, zero(z)), t1, t0)
        return x, log_scale + integral

    def pull(x, probe=None):
        # from t1 back to t0: the integral is -integral_t0^t1 div b dt
        x0, integral = kind.integrate(model, entry, f, (x, zero(x)), t0, t1)
        return (x0 - mean) / scale, integral - log_scale

    return FlowDensity(xp, push, pull)
