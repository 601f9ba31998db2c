"""Sampler kinds: one module per kind in this package, each registering a ``SamplerKind`` under
the prelude names it implements. The model object asks the kind of a sampler (``kind_of``) for
everything that depends on it: where it starts, how it ranks as a default, which of its values
must be finite at an end of its interval, how it runs, and, for a deterministic transport, how
it integrates the probability-flow ODE for log-densities. Nothing else branches on a sampler's
name.

To add a kind: its ``primitive sampler`` line in the prelude, its signature in
``compiler/kinds.py`` (the fields it needs), and one module here; docs/architecture.md walks
through an example.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..kinds import Registry
from ....errors import Diagnostic, TfmSemanticError


class SamplerKind(ABC):
    """The defaults describe a deterministic sampler of the velocity that keeps a fixed-step
    trajectory; a kind overrides what differs. ``model`` is the backend's model object: ``ops``,
    ``module`` (the emitted module), ``field(name, weights)``, ``drift(name, weights)`` and
    ``eps(name)``."""

    #: it can return the states at every step (``sample(trajectory=True)``)
    trajectory = True

    @property
    def density(self) -> bool:
        """It gives log-densities: it transports deterministically, and its kind defines
        ``integrate``."""
        return type(self).integrate is not SamplerKind.integrate

    def rank(self, entry) -> int:
        """Preference as the default sampler (lowest first): deterministic ones first, then
        SDEs run forward; samplers that end at the base come last."""
        return 0

    def start(self, entry) -> str:
        """The role whose density the sampler starts from: ``base`` or ``target``."""
        return "base"

    def inpaints(self, entry) -> bool:
        """It can be guided by observed coordinates (runtime/inpainting.py): it runs the
        model's velocity (``field``) or drift (``drift``) from the base."""
        return self.start(entry) == "base"

    def finite(self, model, entry, t, x, out) -> list:
        """The values that must be finite at time t for the sampler to start or end there
        (the emitted functions on points ``x`` and stand-in network outputs ``out``)."""
        return [model.module.FIELDS["velocity"](t, x, out)]

    @abstractmethod
    def run(self, model, entry, weights, x, key, t0: float, t1: float, trajectory: bool):
        """Samples from the starting points x (and the states at every step, with
        ``trajectory``); ``key`` for the sampler's own noise."""

    def integrate(self, model, entry, f, y0, t0: float, t1: float):
        """y(t0) of dy/dt = f(t, y) integrated from y(t1) = y0 (the likelihood's backward run).
        A kind that transports deterministically defines it, and so gives log-densities."""
        raise self.no_density(entry)

    def no_density(self, entry) -> TfmSemanticError:
        """The error for log-densities asked of a sampler of this kind, which gives none."""
        return no_density(entry)


def no_density(entry) -> TfmSemanticError:
    """The error for log-densities asked of a sampler whose kind gives none."""
    return TfmSemanticError(Diagnostic(
        "Semantic", f"The sampler '{entry.name}' ({entry.method}) gives no log-densities.",
        suggestion="Log-densities need a deterministic (ODE) sampler: euler, heun, rk4, "
        "dopri5, ..."))


SAMPLERS: Registry[SamplerKind] = Registry("sampler", package=__name__)


def kind_of(entry) -> SamplerKind:
    """The kind of a spec Sampler."""
    return SAMPLERS[entry.method]
