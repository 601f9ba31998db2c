"""A normalizing flow with its weights bound, as objectives and samplers use it, written once
for both backends.

A flow T maps a latent z ~ N(0, I) of the sample's shape to x = T(z). ``push`` gives x and
log|det dT/dz| at z, ``pull`` gives z = T^-1(x) and log|det dT^-1/dx| at x (the network kinds
in ``runtime/flows/``), so the flow's density is, by the change of variables,

    log q(x) = log N(T^-1(x); 0, I) + log|det dT^-1/dx|,

and a draw x = T(z) comes with log q(x) = log N(z; 0, I) - log|det dT/dz| at no extra cost.

A flow declared with ``symmetry = sign`` has the even density

    q_s(x) = (q(x) + q(-x)) / 2,

the mixture of the flow and its mirror image: a draw is T(z) with its sign flipped with
probability 1/2, and log q_s(x) = logaddexp(log q(x), log q(-x)) - log 2 costs one more pull.
For a target symmetric under x -> -x (the phi^4 field, a double well), the flow then has to
learn one of the two mirror modes only, and every proposal reaches either with equal chance.
The sign comes from the latent itself, so the callers draw z as for any flow: with (a, b) the
first two coordinates of z, s = sign(a b) and (a, b) is replaced by (a + i b)^4 / |a + i b|^3.
For (a, b) ~ N(0, I_2) the angle of (a, b) is uniform, its quadrant (which fixes s) is
independent of the angle within the quadrant, and quadrupling the angle maps the latter onto a
uniform angle again, with the radius kept: the new (a, b) is N(0, I_2) and independent of s.
It needs a sample of at least two coordinates.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import attrs

LOG_2PI = math.log(2 * math.pi)
LOG_2 = math.log(2)


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
    symmetric: bool = False  # q_s(x) = (q(x) + q(-x)) / 2 (module docstring)

    def sample(self, z):
        """The flow's draws from latents z (n, *shape) and their log-densities: (x, log q(x))."""
        xp = self.xp
        if not self.symmetric:
            x, logdet = self.push(z)
            return x, standard_normal_log_prob(xp, z) - logdet
        sign, z = sign_and_latent(xp, z)
        x, logdet = self.push(z)
        log_q = standard_normal_log_prob(xp, z) - logdet
        log_q_mirror = self._log_prob(-x)
        sign = xp.reshape(sign, (-1,) + (1,) * (x.ndim - 1))
        return sign * x, xp.logaddexp(log_q, log_q_mirror) - LOG_2

    def log_prob(self, x, probe=None):
        """log q(x) of each point (n, *shape): (n,); with Hutchinson probes (n, *shape), a cnf
        flow's unbiased estimate of it."""
        if not self.symmetric:
            return self._log_prob(x, probe)
        n, xp = x.shape[0], self.xp
        both = self._log_prob(xp.concat([x, -x], axis=0),
                              None if probe is None else xp.concat([probe, probe], axis=0))
        return xp.logaddexp(both[:n], both[n:]) - LOG_2

    def _log_prob(self, x, probe=None):
        z, logdet = self.pull(x) if probe is None else self.pull(x, probe=probe)
        return standard_normal_log_prob(self.xp, z) + logdet


def sign_and_latent(xp, z):
    """A sign s (n,) and a latent z' (n, *shape) from latents z ~ N(0, I), s independent of z'
    and z' ~ N(0, I): s = sign(a b) for the first two coordinates (a, b) of each z, and z' is z
    with (a, b) replaced by (a + i b)^4 / |a + i b|^3 (the module docstring says why)."""
    n = z.shape[0]
    flat = xp.reshape(z, (n, -1))
    a, b = flat[:, 0], flat[:, 1]
    r2 = a * a + b * b
    c, d = a * a - b * b, 2 * a * b  # (a + i b)^2 = c + i d
    r3 = r2 * xp.sqrt(r2)
    safe = xp.where(r3 > 0, r3, xp.ones_like(r3))
    a4, b4 = (c * c - d * d) / safe, 2 * c * d / safe  # (c + i d)^2 / r^3
    sign = xp.where(d < 0, -xp.ones_like(a), xp.ones_like(a))
    rest = flat[:, 2:]
    flat = xp.concat([a4[:, None], b4[:, None], rest], axis=1)
    return sign, xp.reshape(flat, z.shape)


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
