"""Random-walk Metropolis: the proposal y = x + eps z, z ~ N(0, I), symmetric, so the log
Metropolis-Hastings ratio is U(x) - U(y). The classical target acceptance is 0.234 (Roberts,
Gelman & Gilks 1997). It evaluates grad U at its proposals only when a kernel of the cycle needs
the gradient at every state."""

from __future__ import annotations

from .. import KERNELS, Kernel, metropolis_hastings


@KERNELS.register("rwm")
class RandomWalkMetropolis(Kernel):
    name = "rwm"
    accept = 0.234

    def evaluations(self, args):
        return 1, 0

    def step(self, ops, potential, state, step_size, draws, args, context=None):
        x, u, grad = state
        z, uniform = draws
        y = x + step_size * z
        v, h = potential.evaluate(y, grad)
        return metropolis_hastings(ops.xp, state, (y, v, h), u - v, uniform)
