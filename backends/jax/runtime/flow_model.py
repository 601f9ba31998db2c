"""The JAX side of ``runtime/flow_model.py``: a flow's network object is its weights (a dict of
arrays), its passes are ``networks.push`` and ``networks.pull``, and optimiser steps on given
batches run as one compiled ``lax.scan``."""

from __future__ import annotations

import numpy as np

from ...runtime.flow_model import FlowModel, non_finite_loss
from . import networks, train
from .model import JaxModel


class JaxFlowModel(FlowModel, JaxModel):
    def network(self, weights):
        return weights

    def bound(self, weights):
        return weights

    def flow_passes(self, network, name: str):
        net, shape, dtype = self.spec.network(name), self.shape, self.dtype
        return (lambda z: networks.push(net, network, z, shape, dtype),
                lambda x, probe=None: networks.pull(net, network, x, shape, dtype, probe))

    def flow_matching(self, network, name: str):
        net, shape, dtype = self.spec.network(name), self.shape, self.dtype
        return lambda t, z, x: networks.flow_matching(net, network, t, z, x, shape, dtype)

    def train_on(self, *batches) -> np.ndarray:
        total = int(self.spec.train.steps)
        key = ("train_on", total)
        if key not in self._compiled:
            self._compiled[key] = train.scan_runner(self._update())
        state, losses = self._compiled[key](self._state(), *batches)
        losses = np.asarray(losses)
        if not np.isfinite(losses).all():
            raise non_finite_loss(self.step + int(np.argmin(np.isfinite(losses))))
        self._set_state(state)
        self.history.extend(float(v) for v in losses)
        return losses
