"""The JAX side of ``runtime/energy_model.py``: programs compiled with ``jax.jit``, cached."""

from __future__ import annotations

import jax

from ...runtime import energy_model as shared
from . import sharding
from .ops import OPS


class JaxEnergyModel(shared.EnergyModel):
    backend = "jax"
    ops = OPS

    def __init__(self, module, root=".", devices: int | None = None):
        self._compiled: dict[tuple, object] = {}
        super().__init__(module, root)
        if devices is not None:  # chains and particles split over a mesh of devices
            self.layout = sharding.MeshLayout(devices)

    def program(self, key: tuple, fn):
        if key not in self._compiled:
            self._compiled[key] = jax.jit(fn)
        return self._compiled[key]
