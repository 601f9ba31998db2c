"""The ``cnf`` flow: a continuous normalizing flow (Chen et al., "Neural ordinary differential
equations", 2018; Grathwohl et al., FFJORD, 2019), then the final affine layer of every flow
(``flows/__init__.py``). Args: ``width``, ``depth``, ``activation`` (the velocity's MLP, as the
``mlp`` kind), ``steps`` and ``solver`` (the fixed-step solver of the ODE), ``divergence``
(``exact`` or ``hutchinson``, for training only, see below).

The flow is the time-1 map of the ODE du/dt = v(t, u) from t = 0, v an MLP of (u, t) whose
last layer starts at zero (so a fresh flow is the identity), followed by the affine layer. Along
a path the log-density changes by the divergence (the instantaneous change of variables),

    d/dt log|det du(t)/du(0)| = div v(t, u(t)),

so push integrates (u, l) with dl/dt = div v from t = 0 to 1 and its log|det dx/dz| is l(1)
plus the affine layer's; pull integrates the same system backwards from t = 1 to 0, and l(0)
is log|det dz/dx|. Both run ``steps`` steps of the explicit Runge-Kutta ``solver``
(runtime/solvers.py, ``unrolled``) and are differentiable, so maximum likelihood
backpropagates through the solver (FFJORD's discretise-then-optimise form). The divergence is
exact: the trace of the Jacobian of v, one derivative per coordinate (``layers.divergence``:
forward mode in JAX, reverse mode under vmap in torch).

Flow matching (``matching``; objectives/flow_matching.py) trains the same velocity without
solving the ODE.

Unlike a coupling flow, push and pull are inverse to each other, and their log-determinants
those of the map, only up to the solver's error (order 4 for rk4: halving the step divides it
by about 16); tests/test_flow_cnf.py measures both. A sampler that uses the flow's density
(importance sampling, flow_mh) is then exact for the ODE flow up to that error.

For training in larger dimensions, ``divergence = hutchinson`` makes the likelihood objective
estimate the divergence by Hutchinson's v . (J v) with one Rademacher probe per point and step
of training (``pull`` given ``probe``): one Jacobian-vector product per evaluation instead of one per
coordinate, unbiased for the log-density, which is what the loss averages (for a flow with
``symmetry = sign`` the logaddexp of the two estimates is biased upward, by Jensen, though
slightly: both share the probe). The samplers and the
reported log-densities always use the exact divergence.
"""

from __future__ import annotations

import math

from ..solvers import unrolled
from . import FlowPasses, affine_layer


def _velocity(xp, layers, args, shape, dim: int):
    """v(t, u) on flat points u (B, dim), t a number: the mlp kind's forward pass, float32."""
    mlp = _mlp()

    def v(t, u):
        times = xp.ones_like(u[:, 0]) * t
        return xp.reshape(mlp(xp, layers, args, (dim,), False, times, u), (u.shape[0], dim))
    return v


def _system(xp, layers, v, probe=None):
    """f(t, (u, l)) = (v(t, u), div v(t, u)): exact, or Hutchinson's estimate with ``probe``."""
    def f(t, state):
        u = state[0]
        if probe is None:
            return layers.divergence(lambda y: v(t, y), u)
        velocity, jv = layers.jvp(lambda y: v(t, y), u, probe)
        return velocity, xp.sum(probe * jv, axis=1)
    return f


def _passes(args) -> tuple:
    return int(args["steps"]), args["solver"]


def push(xp, layers, args, shape, z):
    batch, dim = z.shape[0], math.prod(shape)
    u = layers.cast(xp.reshape(z, (batch, dim)), xp.float32)
    steps, solver = _passes(args)
    v = _velocity(xp, layers, args, shape, dim)
    u, logdet = unrolled(_system(xp, layers, v), (u, xp.zeros_like(u[:, 0])), 0.0, 1.0, steps,
                         solver)
    mu, s = affine_layer(xp, layers, args["depth"] + 1, dim)
    x = u * xp.exp(s) + mu
    return xp.reshape(x, (batch,) + tuple(shape)), logdet + xp.sum(s)


def pull(xp, layers, args, shape, x, probe=None):
    batch, dim = x.shape[0], math.prod(shape)
    u = layers.cast(xp.reshape(x, (batch, dim)), xp.float32)
    mu, s = affine_layer(xp, layers, args["depth"] + 1, dim)
    u = (u - mu) * xp.exp(-s)
    steps, solver = _passes(args)
    v = _velocity(xp, layers, args, shape, dim)
    if probe is not None:
        probe = xp.reshape(probe, (batch, dim))
    u, logdet = unrolled(_system(xp, layers, v, probe), (u, xp.zeros_like(u[:, 0])), 1.0, 0.0,
                         steps, solver)
    return xp.reshape(u, (batch,) + tuple(shape)), logdet - xp.sum(s)


def matching(xp, layers, args, shape, t, z, x):
    """Flow matching's prediction and target for latents z and target samples x (B, *shape)
    at times t (B,): the velocity v(t, u_t) at u_t = (1 - t) z + t u, and u - z, where u is x
    mapped back through the final affine layer. The affine layer is held fixed here (its
    gradient stopped): the velocity learns the transport in the standardised coordinates, and
    the loss cannot shrink by widening the affine scale."""
    batch, dim = z.shape[0], math.prod(shape)
    mu, s = affine_layer(xp, layers, args["depth"] + 1, dim)
    mu, s = layers.stop_gradient(mu), layers.stop_gradient(s)
    u0 = layers.cast(xp.reshape(z, (batch, dim)), xp.float32)
    u1 = (layers.cast(xp.reshape(x, (batch, dim)), xp.float32) - mu) * xp.exp(-s)
    ut = (1 - t[:, None]) * u0 + t[:, None] * u1
    return _mlp()(xp, layers, args, (dim,), False, t, ut), u1 - u0


def _mlp():
    from ..networks import NETWORKS
    return NETWORKS["mlp"].forward


def sizes(args: dict, shape: tuple[int, ...], scalar: bool = False) -> list[tuple[int, int]]:
    """The mlp's layers (dim + 1 -> width, depth times, -> dim), then the affine layer."""
    dim, width, depth = math.prod(shape), args["width"], args["depth"]
    return [(dim + 1, width)] + [(width, width)] * (depth - 1) + [(width, dim), (1, 2 * dim)]


def zero(args: dict, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The velocity's last layer (a fresh flow is the identity) and the affine layer."""
    return (args["depth"], args["depth"] + 1)


def register() -> None:
    from ..networks import NETWORKS, NetworkKind
    NETWORKS.register("cnf")(NetworkKind(sizes, None, flow=FlowPasses(push, pull, matching),
                                         zero=zero))


register()
