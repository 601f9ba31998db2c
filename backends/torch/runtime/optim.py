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


def schedule(train: dict, steps: int):
    """k -> the learning rate of update k."""
    lr = float(train["optimizer"]["args"]["lr"])
    sched = train["lr_schedule"]
    warmup = int(sched["args"]["warmup"])
    cosine = sched["name"] == "cosine_decay"
    final = float(sched["args"]["final"]) if cosine else lr
    decay = max(steps, warmup + 1) - warmup

    def rate(k: int) -> float:
        if k < warmup:
            return lr * k / warmup
        if not cosine:
            return lr
        done = min(k - warmup, decay) / decay
        return final + (lr - final) * 0.5 * (1 + math.cos(math.pi * done))
    return rate


def optimizer(train: dict, params) -> torch.optim.Optimizer:
    """The optimiser of the train block over ``params`` (its rate is set before every step)."""
    opt, args = train["optimizer"]["name"], train["optimizer"]["args"]
    params = list(params)
    lr = float(args["lr"])
    if opt == "adam":  # fused: one kernel for all the weights (CPU and CUDA)
        return torch.optim.Adam(params, lr, betas=(args["b1"], args["b2"]), eps=args["eps"],
                                fused=True)
    if opt == "adamw":
        return torch.optim.AdamW(params, lr, betas=(args["b1"], args["b2"]), eps=args["eps"],
                                 weight_decay=args["weight_decay"], fused=True)
    return torch.optim.SGD(params, lr, momentum=args["momentum"] or 0.0, foreach=True)


def clip(grads: list[torch.Tensor], limit: float) -> None:
    """Scale ``grads`` in place to a global norm of at most ``limit``."""
    norm = torch.nn.utils.get_total_norm(grads)
    torch._foreach_mul_(grads, torch.clamp(limit / norm, max=1.0))
