"""Optimisers and learning-rate schedules of the train block, from optax.

``constant_lr(warmup)``: linear warm-up from 0 to lr over ``warmup`` steps, then lr.
``cosine_decay(warmup, final)``: the same warm-up, then a cosine from lr down to ``final`` (a learning rate)
at the last step. ``clip c > 0`` clips the global gradient norm to c before the update.
"""

from __future__ import annotations

import optax


def _constant(lr: float, args: dict, steps: int):
    warmup = int(args["warmup"])
    if warmup == 0:
        return optax.constant_schedule(lr)
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup),
                                 optax.constant_schedule(lr)], [warmup])


def _cosine(lr: float, args: dict, steps: int):
    warmup = int(args["warmup"])
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup_steps=warmup,
                                              decay_steps=max(steps, warmup + 1),
                                              end_value=float(args["final"]))


# each learning-rate schedule and optimiser of the prelude, by name
SCHEDULES = {"constant_lr": _constant, "cosine_decay": _cosine}
SPANNING = {"cosine_decay"}  # the schedules that depend on the number of steps of the run
OPTIMIZERS = {
    "adam": lambda lr, a: optax.adam(lr, b1=a["b1"], b2=a["b2"], eps=a["eps"]),
    "adamw": lambda lr, a: optax.adamw(lr, b1=a["b1"], b2=a["b2"], eps=a["eps"],
                                       weight_decay=a["weight_decay"]),
    "sgd": lambda lr, a: optax.sgd(lr, momentum=a["momentum"] or None),
}


def schedule(train, steps: int):
    """The learning-rate schedule of the train block, spanning ``steps`` steps."""
    return SCHEDULES[train.lr_schedule.name](float(train.optimizer.args["lr"]),
                                             train.lr_schedule.args, steps)


def span(train, steps: int) -> int | None:
    """What of ``steps`` the optimiser depends on: the number itself where the schedule spans
    the run, else None (one compiled program then serves runs of any length)."""
    return steps if train.lr_schedule.name in SPANNING else None


def optimizer(train, steps: int) -> optax.GradientTransformation:
    """The optimiser of the train block, its schedule spanning ``steps`` steps."""
    base = OPTIMIZERS[train.optimizer.name](schedule(train, steps), train.optimizer.args)
    if train.clip > 0:
        return optax.chain(optax.clip_by_global_norm(float(train.clip)), base)
    return base
