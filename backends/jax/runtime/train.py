"""Training steps: many optimiser steps fused into one compiled ``lax.scan`` chunk.

Inside a chunk each step draws its batch on the device (base, target, coupling, time, latent z),
evaluates the emitted loss, takes the gradient and the optimiser update, and updates the EMA of the
weights; nothing returns to the host until the chunk ends. Each step's random key is
``fold_in(key(seed), step)``, so the result does not depend on how steps are split into chunks:
a resumed run repeats an uninterrupted one exactly. Between chunks the host checks the losses
(a non-finite loss stops the run, keeping the last good checkpoint), draws the progress bar and
writes checkpoints (shared/loop.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from . import networks


def time_sampler(entry: dict):
    """(key, n) -> t of shape (n,) for the time law ``entry``."""
    args = entry["args"]
    if entry["name"] == "logit_normal":
        return lambda key, n: jax.nn.sigmoid(args["mean"] + args["std"] * jax.random.normal(key, (n,)))
    low, high = float(args["low"]), float(args["high"])
    return lambda key, n: low + (high - low) * jax.random.uniform(key, (n,))


def loss_function(spec: dict, module, dtype):
    """loss(params, t, x0, x1, z): the mean over the batch and the elements of each trained
    network's integrand, summed over the networks (MATH.md section 2, the loss L[f])."""
    shape = tuple(spec["shape"])

    def loss(params, t, x0, x1, z):
        tb = t.reshape((-1,) + (1,) * len(shape))
        xt = module.interpolant(tb, x0, x1, z)
        out = networks.outputs(spec, params, t, xt, dtype)
        terms = module.losses(tb, x0, x1, z, out)
        return sum(jnp.mean(jnp.broadcast_to(v, xt.shape).astype(jnp.float32))
                   for v in terms.values())
    return loss


def make_update(spec: dict, module, opt: optax.GradientTransformation, dtype):
    """One optimiser step on a given batch: (state, t, x0, x1, z) -> (state, loss), with the
    debiased EMA of the weights."""
    decay = float(spec["train"]["ema"])
    loss = loss_function(spec, module, dtype)

    def update(state, t, x0, x1, z):
        value, grads = jax.value_and_grad(loss)(state["params"], t, x0, x1, z)
        updates, opt_state = opt.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        ema = state["ema"]
        if decay > 0:  # the debiased EMA, kept in its debiased form: the first step copies
            count = (state["step"] + 1).astype(jnp.float32)
            d = jnp.float32(decay)  # one precision throughout: the first rate is exactly 1
            rate = (1 - d) / (1 - d ** count)
            ema = jax.tree_util.tree_map(lambda e, p: e + rate * (p - e), ema, params)
        return {"params": params, "opt": opt_state, "ema": ema, "step": state["step"] + 1}, value

    return update


def make_step(spec: dict, module, draw, opt: optax.GradientTransformation, root_key, dtype):
    """One training step as a function state -> (state, loss), for ``lax.scan``: the batch is
    drawn with the key ``fold_in(root_key, step)``."""
    shape = tuple(spec["shape"])
    batch = int(spec["train"]["batch"])
    draw_time = time_sampler(spec["time_law"])
    update = make_update(spec, module, opt, dtype)
    latent = spec["latent"]

    def step(state, _):
        key = jax.random.fold_in(root_key, state["step"])
        k_pair, k_time, k_z = jax.random.split(key, 3)
        x0, x1 = draw(k_pair, batch)
        t = draw_time(k_time, batch)
        z = jax.random.normal(k_z, (batch,) + shape) if latent else 0.0
        return update(state, t, x0, x1, z)

    return step


def chunk_runner(step):
    """A compiled function (state, length) -> (state, losses); one compilation per length."""
    cache = {}

    def run(state, length: int):
        if length not in cache:
            cache[length] = jax.jit(lambda s: jax.lax.scan(step, s, None, length=length))
        return cache[length](state)
    return run
