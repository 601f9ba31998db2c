"""Reverse KL for a normalizing flow against the target's energy U: with x = T(z), z ~ N(0, I),

    loss = mean over the batch of log q(x) + beta U(x),

which is KL(q || p_beta) - log Z_beta for p_beta ∝ exp(-beta U), so at beta = 1 the loss plus
log Z is the divergence (the loss is an upper bound on -log Z). With ``anneal`` = N > 0 the
inverse temperature rises linearly from ``beta0`` to 1 over the first N steps (tempering
against mode collapse early in training), then stays at 1. Needs no sample of the target; it
evaluates U and, through the flow, its gradient once per point and step."""

from __future__ import annotations

from . import OBJECTIVES, Objective


@OBJECTIVES.register("reverse_kl")
class ReverseKL(Objective):
    def draw(self, model, data=None):
        ops, shape = model.ops, model.shape
        xp = ops.xp
        anneal = int(model.spec.objective_args.get("anneal", 0))
        beta0 = float(model.spec.objective_args.get("beta0", 0.01))

        def draw(rng, n, step=None):
            z = rng.normal((n,) + shape)
            if anneal > 0 and step is not None:
                rise = beta0 + (1 - beta0) * ops.asarray(step) / anneal
                beta = xp.minimum(rise, ops.asarray(1.0))
            else:
                beta = ops.asarray(1.0)
            return z, beta
        return draw

    def loss(self, model, network):
        xp = model.ops.xp
        flow = model.flow_density(network)
        energy = model.target_energy

        def loss(z, beta):
            x, log_q = flow.sample(z)
            return xp.mean(log_q + beta * energy(x))
        return loss
