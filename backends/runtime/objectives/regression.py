"""Regression of each trained network on its target along the interpolant (docs/maths.md §2): a
batch is (t, x0, x1, z), x_t the emitted ``interpolant``, and the loss the mean over the batch
and the elements of each network's emitted integrand w(t) |N(t, x_t) - Y|^2, summed over the
networks (but those whose weights are fixed, ``Spec.frozen``). A model with dropout
(runtime/dropout.py) adds one seed per example to the batch; its networks drop only here. A
model conditioned on labels (docs/conditional.md) adds each example's label after the seeds
(None in the seeds' place without dropout), replaced by "no label" (``classes``) with the
probability ``Spec.label_drop`` (classifier-free guidance)."""

from __future__ import annotations

from .. import couplings, dropout, networks, time_laws
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
        classes, drop = model.spec.classes, model.spec.label_drop
        vectors = bool(model.spec.condition_size)
        conditioned = model.spec.conditioned
        xp = ops.xp

        def draw(rng, n, step=None):
            k_pairs, k_time, k_latent, *rest = rng.split(3 + int(dropping) + int(conditioned))
            k_drop = rest.pop(0) if dropping else None
            k_label = rest.pop(0) if conditioned else None
            x0, x1, *labels = pairs(k_pairs, n)
            t = times(k_time, n)
            z = k_latent.normal((n,) + shape) if latent else zero
            # one dropout seed per example, drawn and sharded with its row
            seeds = k_drop.randint(dropout.SEED_LIMIT, (n,)) if dropping else None
            if not conditioned:
                return (t, x0, x1, z, seeds) if dropping else (t, x0, x1, z)
            y = labels[0]
            if vectors:  # the vector and its "given" flag, both zero where dropped
                y = networks.encode_conditions(xp, y)
                if drop > 0:
                    kept = xp.astype(k_label.uniform((n,)) >= drop, xp.float32)
                    y = y * kept[:, None]
            elif drop > 0:  # classifier-free guidance: some examples train the "no label" field
                y = xp.where(k_label.uniform((n,)) < drop, xp.full_like(y, classes), y)
            return t, x0, x1, z, seeds, y
        return draw

    def loss(self, model, network):
        ops, module, xp = model.ops, model.module, model.ops.xp
        trailing = (1,) * len(model.shape)
        frozen = model.spec.frozen  # fixed weights: their regression is not trained

        def loss(t, x0, x1, z, seeds=None, labels=None):
            tb = xp.reshape(t, (-1,) + trailing)
            xt = module.interpolant(tb, x0, x1, z)
            if labels is not None:
                out = network(t, xt, seeds, labels)
            else:
                out = network(t, xt) if seeds is None else network(t, xt, seeds)
            terms = module.losses(tb, x0, x1, z, out)
            return sum(xp.mean(ops.full(v, xt, xp.float32)) for name, v in terms.items()
                       if name not in frozen)
        return loss
