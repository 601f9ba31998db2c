"""K steps of a flow map (docs/fewstep.md): x_{k+1} = X_{t_k, t_(k+1)}(x_k) on K equal steps of
the sampler's interval, one network call each; the trajectory is the K + 1 states."""

from __future__ import annotations

from ....errors import Diagnostic, TfmSemanticError
from . import SAMPLERS, SamplerKind


@SAMPLERS.register("fewstep")
class FewStep(SamplerKind):
    def inpaints(self, entry) -> bool:
        return False  # each step is the map, not a field that can be guided

    def finite(self, model, entry, t, x, out) -> list:
        return [x]  # a map has no singular field at an end

    def run(self, model, entry, weights, x, key, t0, t1, trajectory):
        xp, steps = model.ops.xp, int(entry.args["steps"])
        flow_map = model.flow_map(model.network(weights), model.spec.objective_args["network"])
        times = [t0 + (t1 - t0) * k / steps for k in range(steps + 1)]
        states = [x]
        for s, t in zip(times[:-1], times[1:]):
            states.append(flow_map(s, t, states[-1]))
        if trajectory:
            return states[-1], xp.stack(states, axis=0)
        return states[-1]

    def no_density(self, entry) -> TfmSemanticError:
        return TfmSemanticError(Diagnostic(
            "Semantic", f"The sampler '{entry.name}' ({entry.method}) gives no log-densities: a "
            "log-density needs the inverse of the K-step map and its Jacobian determinant, and a "
            "learned map is neither exactly invertible nor given with its determinant.",
            suggestion="Log-densities come from an ODE sampler of the map's velocity (the model's "
            "velocity field): log_prob(x, sampler = ...) with heun, rk4 or dopri5."))
