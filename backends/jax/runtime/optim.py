"""Optimisers and learning-rate schedules of the train block, from optax.

``constant_lr(warmup)``: linear warm-up from 0 to lr over ``warmup`` steps, then lr.
``cosine_decay(warmup, final)``: the same warm-up, then a cosine from lr down to ``final`` (a learning rate)
at the last step. ``clip c > 0`` clips the global gradient norm to c before the update.
"""

from __future__ import annotations

import optax


def schedule(train: dict, steps: int):
    lr = float(train["optimizer"]["args"]["lr"])
    sched = train["lr_schedule"]
    warmup = int(sched["args"]["warmup"])
    if sched["name"] == "cosine_decay":
        return optax.warmup_cosine_decay_schedule(
            0.0, lr, warmup_steps=warmup, decay_steps=max(steps, warmup + 1),
            end_value=float(sched["args"]["final"]))
    if warmup == 0:
        return optax.constant_schedule(lr)
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup),
                                 optax.constant_schedule(lr)], [warmup])


def optimizer(train: dict, steps: int) -> optax.GradientTransformation:
    """The optimiser of the train block, its schedule spanning ``steps`` steps."""
    opt, args = train["optimizer"]["name"], train["optimizer"]["args"]
    lr = schedule(train, steps)
    if opt == "adam":
        base = optax.adam(lr, b1=args["b1"], b2=args["b2"], eps=args["eps"])
    elif opt == "adamw":
        base = optax.adamw(lr, b1=args["b1"], b2=args["b2"], eps=args["eps"],
                           weight_decay=args["weight_decay"])
    else:
        base = optax.sgd(lr, momentum=args["momentum"] or None)
    if train["clip"] > 0:
        return optax.chain(optax.clip_by_global_norm(float(train["clip"])), base)
    return base
