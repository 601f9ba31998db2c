"""Adaptive Dormand-Prince 5(4) on the probability-flow ODE (diffrax in JAX, torchdiffeq in
torch, set up alike: ``ops.adaptive``)."""

from __future__ import annotations

from .. import solvers
from . import SAMPLERS, SamplerKind


@SAMPLERS.register("dopri5")
class Dopri5(SamplerKind):
    trajectory = False

    def _solve(self, model, entry, f, y0, a, b):
        rtol, atol = float(entry.args["rtol"]), float(entry.args["atol"])
        return solvers.dopri5(model.ops, f, y0, a, b, rtol, atol)[0]

    def run(self, model, entry, weights, x, key, t0, t1, trajectory):
        return self._solve(model, entry, model.field("velocity", weights), x, t0, t1)

    def integrate(self, model, entry, f, y0, t0, t1):
        return self._solve(model, entry, f, y0, t1, t0)
