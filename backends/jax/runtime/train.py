"""Training steps in JAX: many optimiser steps fused into one compiled ``lax.scan`` chunk.

Inside a chunk each step draws its batch on the device (the objective's ``draw``: base, target,
coupling, time, latent z), evaluates the objective's loss, takes the gradient and the optax
update, and updates the EMA of the weights; nothing returns to the host until the chunk ends.
Each step's random key is ``fold_in(key(seed), step)``, so the result does not depend on how
steps are split into chunks: a resumed run repeats an uninterrupted one exactly. Between chunks
the host checks the losses (a non-finite loss stops the run, keeping the last good checkpoint),
draws the progress bar and writes checkpoints (runtime/loop.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ...runtime import ema as ema_rule, parallel
from .ops import OPS


def make_update(spec, loss, opt: optax.GradientTransformation, frozen=frozenset()):
    """One optimiser step on a given batch: (state, *batch) -> (state, loss), with the debiased
    EMA of the weights; ``loss(params, *batch)``. The weights named in ``frozen`` stay as they
    are (no gradient flows to them, and their update is zero, weight decay included)."""
    decay = float(spec.train.ema)

    def held(params, *batch):
        return loss({k: jax.lax.stop_gradient(v) if k in frozen else v
                     for k, v in params.items()}, *batch)

    def update(state, *batch):
        value, grads = jax.value_and_grad(held if frozen else loss)(state["params"], *batch)
        updates, opt_state = opt.update(grads, state["opt"], state["params"])
        if frozen:
            updates = {k: jnp.zeros_like(u) if k in frozen else u for k, u in updates.items()}
        params = optax.apply_updates(state["params"], updates)
        ema = state["ema"]
        if decay > 0:
            rate = ema_rule.rate(decay, (state["step"] + 1).astype(jnp.float32))
            ema = jax.tree_util.tree_map(lambda e, p: e + rate * (p - e), ema, params)
        return {"params": params, "opt": opt_state, "ema": ema, "step": state["step"] + 1}, value

    return update


def make_step(spec, draw, update, root_key, layout=None):
    """One training step as a function state -> (state, loss), for ``lax.scan``: the global
    batch is drawn with the key ``fold_in(root_key, step)``, then laid out over the devices
    (``layout.batch``: sharded by rows over a mesh; unchanged on one device, the default)."""
    batch = spec.train.batch
    layout = layout or parallel.Layout()

    def step(state, _):
        rng = OPS.random(jax.random.fold_in(root_key, state["step"]))
        return update(state, *layout.batch(draw(rng, batch, state["step"]), batch))

    return step


def chunk_runner(step, out_sharding=None, capacity: int | None = None):
    """A compiled function (state, length) -> (state, losses). With ``capacity``, one
    compilation runs any length up to it (a loop whose trip count is an argument, the losses
    written into a buffer of ``capacity``), so that a chunk can be sized by time without
    compiling again (runtime/loop.py); without, a ``lax.scan`` compiled per length.
    ``out_sharding``: where the outputs live (a mesh: replicated on every device)."""
    options = {} if out_sharding is None else {"out_shardings": out_sharding}
    if capacity is not None:
        def body(i, carry):
            state, losses = carry
            state, loss = step(state, None)
            return state, losses.at[i].set(loss)

        looped = jax.jit(lambda s, n: jax.lax.fori_loop(
            0, n, body, (s, jnp.zeros((capacity,), jnp.float32))), **options)

        def run_any(state, length: int):
            if not 0 < length <= capacity:
                raise ValueError(f"a chunk of {length} steps; this runner takes 1 to {capacity}")
            state, losses = looped(state, jnp.asarray(length, jnp.int32))
            return state, losses[:length]
        return run_any
    cache = {}

    def run(state, length: int):
        if length not in cache:
            cache[length] = jax.jit(lambda s: jax.lax.scan(step, s, None, length=length),
                                    **options)
        return cache[length](state)
    return run


def scan_runner(update):
    """A compiled function (state, batches) -> (state, losses): one optimiser step per leading
    index of the stacked batches (each array (steps, batch, ...)); compiled once per shape."""
    return jax.jit(lambda state, *batches: jax.lax.scan(lambda s, b: update(s, *b), state,
                                                         batches))
