"""Explicit Runge-Kutta solvers of the probability-flow ODE with a fixed number of steps: euler,
midpoint, heun, rk4 (runtime/solvers.py)."""

from __future__ import annotations

from .. import solvers
from . import SAMPLERS, SamplerKind


@SAMPLERS.register(*solvers.TABLEAUS)
class FixedStep(SamplerKind):
    def run(self, model, entry, weights, x, key, t0, t1, trajectory):
        return solvers.fixed_step(model.ops, model.field("velocity", weights), x, t0, t1,
                                  int(entry.args["steps"]), entry.method, trajectory)

    def integrate(self, model, entry, f, y0, t0, t1):
        return solvers.fixed_step(model.ops, f, y0, t1, t0, int(entry.args["steps"]),
                                  entry.method)
