"""Objective kinds: one module per kind in this package, each registering an ``Objective`` under
its name (the spec's ``objective``). An objective draws its own batch and computes a scalar loss
from it, so it may need more than the networks' outputs at (t, x_t): the network at two times,
a Jacobian-vector product (``ops.jvp``), samples and log-densities of the model itself
(``model.field``, ``model.sample``), a condition input. The backends' training loops only take
``draw`` and ``loss`` and differentiate the loss in the weights.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..kinds import Registry


class Objective(ABC):
    @abstractmethod
    def draw(self, model, data=None):
        """(rng, n, step) -> the batch of one step, a tuple of arrays; ``step`` is the
        optimiser step it is drawn for (an integer array in JAX), or None."""

    @abstractmethod
    def loss(self, model, network):
        """``loss(*batch)`` -> a scalar float32 array, the networks evaluated by
        ``network(t, x)`` (a mapping of their outputs, keyed as the emitted functions read
        them) at the weights being trained."""


OBJECTIVES: Registry[Objective] = Registry("objective", package=__name__)
