"""Independence Metropolis-Hastings with a normalizing flow q as the proposal: y = T(z) with a
fresh latent z ~ N(0, I), whatever the current state, accepted with probability

    min(1, exp(-U(y)) q(x) / (exp(-U(x)) q(y))),

so the chains keep exp(-U) invariant however poor q is (for a cnf flow, whose density is its
ODE's only up to the solver's error, to that error); where q covers the target, a chain jumps
between modes in one step. The flow's weights reach the step as the run's ``context`` (a
compiled program's argument, so a flow trained further runs without compiling again); the
flow itself is ``args["proposal"]`` (a FlowProposal the model puts there). A proposal whose
point or energy is not finite is rejected (``metropolis_hastings``). It has no step size."""

from __future__ import annotations

from .. import KERNELS, Kernel, metropolis_hastings


@KERNELS.register("flow_mh")
class FlowIndependence(Kernel):
    name = "flow_mh"
    accept = 0.5  # (no step size to adapt)
    has_step = False

    def evaluations(self, args):
        return 1, 0

    def step(self, ops, potential, state, step_size, draws, args, context=None):
        x, u, grad = state
        z, uniform = draws
        flow = args["proposal"].bind(context)
        y, log_qy = flow.sample(z)
        log_qx = flow.log_prob(x)
        v, h = potential.evaluate(y, grad)
        return metropolis_hastings(ops.xp, state, (y, v, h), (u - v) + (log_qx - log_qy),
                                   uniform)
