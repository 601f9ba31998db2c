"""Optimisers and learning-rate schedules of the train block, from ``torch.optim``, computing the
same updates as the JAX backend's optax chain.

``constant_lr(warmup)``: linear warm-up from 0 to lr over ``warmup`` steps, then lr.
``cosine_decay(warmup, final)``: the same warm-up, then a cosine from lr down to ``final`` (a
learning rate) at the last step. As in optax, the k-th update (k = 0, 1, ...) uses the rate at k.
``clip c > 0`` scales the gradients by min(1, c / global norm) before the update (optax's
``clip_by_global_norm``; torch's ``clip_grad_norm_`` adds 1e-6 to the norm).
"""

from __future__ import annotations

import math

import torch


def _constant(lr: float, args: dict, steps: int):
    warmup = int(args["warmup"])
    return lambda k: lr * k / warmup if k < warmup else lr


def _cosine(lr: float, args: dict, steps: int):
    warmup, final = int(args["warmup"]), float(args["final"])
    decay = max(steps, warmup + 1) - warmup

    def rate(k: int) -> float:
        if k < warmup:
            return lr * k / warmup
        done = min(k - warmup, decay) / decay
        return final + (lr - final) * 0.5 * (1 + math.cos(math.pi * done))
    return rate


def _adam(params, lr, a):  # fused: one kernel for all the weights (CPU and CUDA)
    return torch.optim.Adam(params, lr, betas=(a["b1"], a["b2"]), eps=a["eps"], fused=True)


def _adamw(params, lr, a):
    return torch.optim.AdamW(params, lr, betas=(a["b1"], a["b2"]), eps=a["eps"],
                             weight_decay=a["weight_decay"], fused=True)


def _sgd(params, lr, a):
    return torch.optim.SGD(params, lr, momentum=a["momentum"] or 0.0, foreach=True)


def _sgd_state(a) -> tuple[str, ...]:
    return ("momentum_buffer",) if a.get("momentum") else ()


# each learning-rate schedule and optimiser of the prelude, by name; an optimiser with the names
# of its per-weight state tensors (as checkpoints store them, sorted)
SCHEDULES = {"constant_lr": _constant, "cosine_decay": _cosine}
OPTIMIZERS = {
    "adam": (_adam, lambda a: ("exp_avg", "exp_avg_sq", "step")),
    "adamw": (_adamw, lambda a: ("exp_avg", "exp_avg_sq", "step")),
    "sgd": (_sgd, _sgd_state),
}


def schedule(train, steps: int):
    """k -> the learning rate of update k."""
    return SCHEDULES[train.lr_schedule.name](float(train.optimizer.args["lr"]),
                                             train.lr_schedule.args, steps)


def optimizer(train, params) -> torch.optim.Optimizer:
    """The optimiser of the train block over ``params`` (its rate is set before every step)."""
    make, _ = OPTIMIZERS[train.optimizer.name]
    return make(list(params), float(train.optimizer.args["lr"]), train.optimizer.args)


def state_keys(train) -> tuple[str, ...]:
    """The names of the optimiser's state tensors of one weight."""
    return OPTIMIZERS[train.optimizer.name][1](train.optimizer.args)


def clip(grads: list[torch.Tensor], limit: float) -> None:
    """Scale ``grads`` in place to a global norm of at most ``limit``."""
    norm = torch.nn.utils.get_total_norm(grads)
    torch._foreach_mul_(grads, torch.clamp(limit / norm, max=1.0))
