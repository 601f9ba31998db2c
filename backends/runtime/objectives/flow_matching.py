"""Flow matching for a continuous normalizing flow (a ``cnf`` network): the velocity v of the
flow's ODE is regressed on the straight paths from its latent to the target's samples
(conditional flow matching with the linear interpolant; Lipman et al. 2023, Liu et al. 2023),

    loss = mean over the batch of |v(t, u_t) - (u - z)|^2 / dim,    u_t = (1 - t) z + t u,

z ~ N(0, I) the latent, x a target sample, u = x mapped back through the flow's final affine
layer (fixed at the target's location and scale, ``flows/cnf.py``), t ~ U(0, 1). Its minimiser
is the velocity whose ODE carries N(0, I) to the standardised target, so the trained flow is
a generative model of the target, with the exact density of its ODE (the cnf's log-determinant)
and draws, usable wherever a flow is: importance sampling, flow_mh, SMC from the flow. Needs
samples of the target; no simulation of the ODE in training. A flow with ``symmetry = sign``
learns one mirror half: the samples are folded, x -> sign(sum of x) x, as its start is."""

from __future__ import annotations

import math

from .. import densities
from . import OBJECTIVES, Objective


@OBJECTIVES.register("flow_matching")
class FlowMatching(Objective):
    def draw(self, model, data=None):
        ops, shape = model.ops, model.shape
        sample = densities.sampler(ops, model.spec.target, shape,
                                   model._density_array("target", data))

        symmetric = model.spec.flows[0].args.get("symmetry") == "sign"
        xp = ops.xp

        def draw(rng, n, step=None):
            data_rng, latent_rng, time_rng = rng.split(3)
            x = sample(data_rng, n)
            if symmetric:  # one mirror half: q = 2 p 1[sum x > 0] gives q_s = p for an even p
                total = xp.sum(xp.reshape(x, (n, -1)), axis=1)
                x = xp.where(xp.reshape(total < 0, (n,) + (1,) * len(shape)), -x, x)
            return time_rng.uniform((n,)), latent_rng.normal((n,) + shape), x
        return draw

    def loss(self, model, network):
        xp = model.ops.xp
        matching = model.flow_matching(network, model.flow_name)
        dim = math.prod(model.shape)

        def loss(t, z, x):
            prediction, target = matching(t, z, x)
            residual = xp.reshape(prediction - target, (t.shape[0], dim))
            return xp.mean(xp.sum(residual * residual, axis=1)) / dim
        return loss
