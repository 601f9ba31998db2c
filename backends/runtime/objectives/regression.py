"""Regression of each trained network on its target along the interpolant (docs/maths.md §2): a
batch is (t, x0, x1, z), x_t the emitted ``interpolant``, and the loss the mean over the batch
and the elements of each network's emitted integrand w(t) |N(t, x_t) - Y|^2, summed over the
networks (but those whose weights are fixed, ``Spec.frozen``). A model with dropout
(runtime/dropout.py) adds one seed per example to the batch; its networks drop only here."""

from __future__ import annotations

from .. import couplings, dropout, time_laws
from . import OBJECTIVES, Objective


@OBJECTIVES.register("regression")
class Regression(Objective):
    def draw(self, model, data=None):
        ops, shape = model.ops, model.shape
        pairs = couplings.pairs(model, data)
        times = time_laws.make(ops, model.spec.time_law)
        latent = model.spec.latent
        zero = ops.asarray(0.0)
        dropping = dropout.used(model.spec)

        def draw(rng, n, step=None):
            k_pairs, k_time, k_latent, *k_drop = rng.split(4 if dropping else 3)
            x0, x1 = pairs(k_pairs, n)
            t = times(k_time, n)
            z = k_latent.normal((n,) + shape) if latent else zero
            if dropping:  # one dropout seed per example, drawn and sharded with its row
                return t, x0, x1, z, k_drop[0].randint(dropout.SEED_LIMIT, (n,))
            return t, x0, x1, z
        return draw

    def loss(self, model, network):
        ops, module, xp = model.ops, model.module, model.ops.xp
        trailing = (1,) * len(model.shape)
        frozen = model.spec.frozen  # fixed weights: their regression is not trained

        def loss(t, x0, x1, z, seeds=None):
            tb = xp.reshape(t, (-1,) + trailing)
            xt = module.interpolant(tb, x0, x1, z)
            out = network(t, xt) if seeds is None else network(t, xt, seeds)
            terms = module.losses(tb, x0, x1, z, out)
            return sum(xp.mean(ops.full(v, xt, xp.float32)) for name, v in terms.items()
                       if name not in frozen)
        return loss
