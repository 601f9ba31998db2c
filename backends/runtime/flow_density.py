"""A normalizing flow with its weights bound, as objectives and samplers use it, written once
for both backends.

A flow T maps a latent z ~ N(0, I) of the sample's shape to x = T(z). ``push`` gives x and
log|det dT/dz| at z, ``pull`` gives z = T^-1(x) and log|det dT^-1/dx| at x (the network kinds
in ``runtime/flows/``), so the flow's density is, by the change of variables,

    log q(x) = log N(T^-1(x); 0, I) + log|det dT^-1/dx|,

and a draw x = T(z) comes with log q(x) = log N(z; 0, I) - log|det dT/dz| at no extra cost.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import attrs

LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(xp, z):
    """log N(z; 0, I) of each point of a batch (n, *shape): (n,)."""
    dim = math.prod(z.shape[1:])
    return -0.5 * xp.sum(xp.reshape(z * z, (z.shape[0], dim)), axis=1) - 0.5 * dim * LOG_2PI


@attrs.frozen(eq=False)
class FlowDensity:
    """``push(z) -> (x, log|det dx/dz|)``, ``pull(x) -> (z, log|det dz/dx|)`` of one flow."""

    xp: Any
    push: Callable
    pull: Callable

    def sample(self, z):
        """The flow's draws from latents z (n, *shape) and their log-densities: (x, log q(x))."""
        x, logdet = self.push(z)
        return x, standard_normal_log_prob(self.xp, z) - logdet

    def log_prob(self, x):
        """log q(x) of each point (n, *shape): (n,)."""
        z, logdet = self.pull(x)
        return standard_normal_log_prob(self.xp, z) + logdet


@attrs.frozen(eq=False)
class FlowProposal:
    """The flow ``name`` of a model, to be bound to weights inside a compiled program:
    ``bind(context)`` with the weights the run passes (``context``) gives its FlowDensity. One
    per model and flow, so that programs keyed by it are found again with new weights."""

    model: Any = attrs.field(repr=False)
    name: str

    def bind(self, context) -> FlowDensity:
        return self.model.flow_density(self.model.bound(context), self.name)

    def __repr__(self) -> str:
        return f"FlowProposal({self.name!r})"
