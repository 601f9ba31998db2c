"""The PyTorch side of ``runtime/energy_model.py``: arrays on one device (CUDA when there is
one); programs run as they are (gradients of energies are taken inside, by autograd). With
``devices``, this process is one of a run's processes and runs its share of the chains and
particles (runtime/distributed.py)."""

from __future__ import annotations

from ...runtime import energy_model as shared
from . import distributed
from .ops import Ops, default_device, device as _device


class TorchEnergyModel(shared.EnergyModel):
    backend = "torch"

    def __init__(self, module, root=".", device=None, compile: bool | None = None,
                 devices: int | None = None):
        self.device = _device(device) if device is not None else default_device()
        split = devices is not None or distributed.launched() > 1  # one process of several
        if split:  # one process per device (CUDA: LOCAL_RANK's)
            self.device = distributed.device_of_rank(None if device is None else self.device)
        self.ops = Ops(self.device)
        super().__init__(module, root)
        if split:  # chains and particles split over the processes
            self.layout = distributed.ProcessLayout(devices, self.device)

    def program(self, key: tuple, fn):
        return fn
