"""The torch side of ``runtime/flow_model.py``: a flow's network object is the live module
(training) or given weights (``Weights``, applied by ``torch.func.functional_call``); the
module's forward is the flow's push, or its pull with ``inverse``."""

from __future__ import annotations

import numpy as np
import torch

from ...runtime.flow_model import FlowModel, non_finite_loss
from .model import TorchModel


class Weights(dict):
    """Weights by their shared names (``<network>.<layer>.weight``), bound to a model's flows."""


class TorchFlowModel(FlowModel, TorchModel):
    def network(self, weights):
        return Weights(weights)

    def bound(self, weights):
        return Weights(weights)

    def _flow_call(self, network, name: str):
        """call(x, inverse, probe, time, data) of flow ``name`` on ``network`` (its module's
        forward)."""
        module = self.nets[name]
        if isinstance(network, Weights):
            prefix = name + "."
            own = {k[len(prefix):]: v for k, v in network.items() if k.startswith(prefix)}

            def call(x, inverse, probe=None, time=None, data=None):
                return torch.func.functional_call(module, own, (x, inverse, probe, time, data))
        else:  # the live module being trained
            def call(x, inverse, probe=None, time=None, data=None):
                return network.nets[name](x, inverse, probe, time, data)
        return call

    def flow_passes(self, network, name: str):
        call = self._flow_call(network, name)
        return (lambda z: call(z, False)), (lambda x, probe=None: call(x, True, probe))

    def flow_matching(self, network, name: str):
        call = self._flow_call(network, name)
        return lambda t, z, x: call(z, False, None, t, x)

    def train_on(self, *batches) -> np.ndarray:
        update = self._update(int(self.spec.train.steps))
        saved = self._snapshot()
        losses = []
        for i in range(int(batches[0].shape[0])):
            losses.append(float(update(self.step, *(b[i] for b in batches))))
            self.step += 1
        losses = np.asarray(losses, np.float32)
        if not np.isfinite(losses).all():
            bad = self.step - len(losses) + int(np.argmin(np.isfinite(losses)))
            self._restore_snapshot(saved)
            self.step -= len(losses)
            raise non_finite_loss(bad)
        self.history.extend(losses.tolist())
        return losses
