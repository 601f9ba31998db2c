"""The PyTorch side of ``runtime/energy_model.py``: arrays on one device (CUDA when there is
one); programs run as they are (gradients of energies are taken inside, by autograd)."""

from __future__ import annotations

from ...runtime import energy_model as shared
from .ops import Ops, default_device, device as _device


class TorchEnergyModel(shared.EnergyModel):
    backend = "torch"

    def __init__(self, module, root=".", device=None, compile: bool | None = None):
        self.device = _device(device) if device is not None else default_device()
        self.ops = Ops(self.device)
        super().__init__(module, root)

    def program(self, key: tuple, fn):
        return fn
