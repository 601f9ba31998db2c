"""Maximum likelihood for a normalizing flow: the loss is -mean log q(x) over a batch of the
target's samples (``likelihood``: a data file or a stdlib density), or over the states of MCMC
chains (``forward_kl``: the adaptive loop hands them over as the data), which minimises the
forward KL divergence KL(p || q) up to p's entropy."""

from __future__ import annotations

import numpy as np

from ....errors import Diagnostic, TfmRuntimeError
from .. import densities
from . import OBJECTIVES, Objective


@OBJECTIVES.register("likelihood", "forward_kl")
class Likelihood(Objective):
    def draw(self, model, data=None):
        ops, shape = model.ops, model.shape
        array = model._density_array("target", data) if data is not None else None
        if model.spec.objective == "forward_kl":
            if array is None:
                raise TfmRuntimeError(Diagnostic(
                    "Runtime", "A flow trained by forward_kl learns from MCMC chains; its "
                    "flow_mcmc sampler trains it (tfmc run), not fit() alone."))
            rows = ops.asarray(np.asarray(array, np.float32))

            def draw(rng, n, step=None):
                return (rows[rng.randint(rows.shape[0], (n,))],)
            return draw
        sample = densities.sampler(ops, model.spec.target, shape, model._density_array(
            "target", data))

        def draw(rng, n, step=None):
            return (sample(rng, n),)
        if not _hutchinson(model):
            return draw

        def draw_with_probes(rng, n, step=None):
            data_rng, probe_rng = rng.split(2)
            return draw(data_rng, n, step) + (probe_rng.rademacher((n,) + shape),)
        return draw_with_probes

    def loss(self, model, network):
        xp = model.ops.xp
        flow = model.flow_density(network)

        def loss(x, probe=None):
            return -xp.mean(flow.log_prob(x, probe))
        return loss


def _hutchinson(model) -> bool:
    """Whether the model's flow estimates its divergence by Hutchinson's trick in training (a
    cnf flow with ``divergence = hutchinson``): each batch point then comes with a probe."""
    return model.spec.flows[0].args.get("divergence") == "hutchinson"
