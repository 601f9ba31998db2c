"""Flow matching for a continuous normalizing flow (a ``cnf`` network): the velocity v of the
flow's ODE is regressed on the straight paths from its latent to the target's samples
(conditional flow matching with the linear interpolant; Lipman et al. 2023, Liu et al. 2023),

    loss = mean over the batch of |v(t, u_t) - (u - z)|^2 / dim,    u_t = (1 - t) z + t u,

z ~ N(0, I) the latent, x a target sample, u = x mapped back through the flow's final affine
layer (fixed at the target's location and scale, ``flows/cnf.py``), t ~ U(0, 1). Its minimiser
is the velocity whose ODE carries N(0, I) to the standardised target, so the trained flow is
a generative model of the target, with the exact density of its ODE (the cnf's log-determinant)
and draws, usable wherever a flow is: importance sampling, flow_mh, SMC from the flow. Needs
samples of the target; no simulation of the ODE in training."""

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

        def draw(rng, n, step=None):
            data_rng, latent_rng, time_rng = rng.split(3)
            return (time_rng.uniform((n,)), latent_rng.normal((n,) + shape),
                    sample(data_rng, n))
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
