"""Euler-Maruyama on the forward SDE dX = (b + eps s) dt + sqrt(2 eps) dW, from the base to the
target, or on the backward one (drift b - eps s, time running down) from the target to the base
(docs/maths.md §5.3). The drift and eps(t) are the emitted module's ``drifts`` and
``EPS[name]``."""

from __future__ import annotations

from .. import solvers
from . import SAMPLERS, SamplerKind


def _backward(entry) -> bool:
    return entry.args.get("direction") == "backward"


@SAMPLERS.register("euler_maruyama")
class EulerMaruyama(SamplerKind):
    def rank(self, entry) -> int:
        return 2 if _backward(entry) else 1

    def start(self, entry) -> str:
        return "target" if _backward(entry) else "base"

    def finite(self, model, entry, t, x, out) -> list:
        return [model.module.drifts(t, x, out)[entry.name], model.eps(entry.name)(t)]

    def run(self, model, entry, weights, x, key, t0, t1, trajectory):
        a, b = (t1, t0) if _backward(entry) else (t0, t1)
        return solvers.euler_maruyama(model.ops, model.drift(entry.name, weights),
                                      model.eps(entry.name), key, x, a, b,
                                      int(entry.args["steps"]), trajectory)
