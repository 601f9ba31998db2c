"""Networks (t, x) -> field, as pure functions of a flat parameter dict (shared/init.py names).

- ``mlp``: t concatenated to the flattened x, ``depth`` hidden layers of ``width``;
- ``resmlp``: t and its sinusoidal features, then ``blocks`` residual blocks of two layers;
- ``convnet``: image-shaped x (C, H, W), t and its features as extra constant channels,
  ``depth`` 3x3 convolutions of ``channels`` and a 3x3 convolution back to C channels.
With ``precision bfloat16`` the matrix products and activations run in bfloat16 and the output
is cast back to float32 (the parameters stay float32: mixed precision).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ...shared.init import TIME_FEATURES, layer_sizes

ACTIVATIONS = {"silu": jax.nn.silu, "relu": jax.nn.relu, "gelu": jax.nn.gelu,
               "tanh": jnp.tanh, "selu": jax.nn.selu, "elu": jax.nn.elu}


def time_features(t):
    """(B,) -> (B, 1 + 2 K): t, sin(pi k t), cos(pi k t) for k = 1..K."""
    k = jnp.arange(1, TIME_FEATURES + 1, dtype=t.dtype) * jnp.pi
    return jnp.concatenate([t[:, None], jnp.sin(t[:, None] * k), jnp.cos(t[:, None] * k)], -1)


def _dense(p, name, h, dtype):
    w, b = p[name + ".weight"], p[name + ".bias"]
    return h @ w.T.astype(dtype) + b.astype(dtype)


def _conv(p, name, h, dtype):
    w, b = p[name + ".weight"].astype(dtype), p[name + ".bias"].astype(dtype)
    y = jax.lax.conv_general_dilated(h, w, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y + b[None, :, None, None]


def apply(net: dict, params: dict, t, x, shape, dtype=jnp.float32):
    """The network's output at (t, x) for a batch: t (B,), x (B, *shape) -> (B, *shape) or (B,)."""
    kind, args, name = net["kind"], net["args"], net["name"]
    act = ACTIVATIONS[args["activation"]]
    scalar = net["output"] == "scalar"
    n = len(layer_sizes(kind, args, tuple(shape), scalar))
    batch = x.shape[0]
    t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (batch,))
    if kind == "convnet":
        feats = time_features(t)[:, :, None, None]
        h = jnp.concatenate([x, jnp.broadcast_to(feats, (batch, feats.shape[1]) + tuple(shape[1:]))], 1)
        h = h.astype(dtype)
        for i in range(n - 1):
            h = act(_conv(params, f"{name}.{i}", h, dtype))
        y = _conv(params, f"{name}.{n - 1}", h, dtype).astype(jnp.float32)
        return y.sum(axis=(1, 2, 3)) if scalar else y
    flat = x.reshape(batch, math.prod(shape))
    if kind == "mlp":
        h = jnp.concatenate([flat, t[:, None]], -1).astype(dtype)
        for i in range(n - 1):
            h = act(_dense(params, f"{name}.{i}", h, dtype))
    else:  # resmlp
        h = jnp.concatenate([flat, time_features(t)], -1).astype(dtype)
        h = _dense(params, f"{name}.0", h, dtype)
        for blk in range(args["blocks"]):
            r = _dense(params, f"{name}.{1 + 2 * blk}", act(h), dtype)
            h = h + _dense(params, f"{name}.{2 + 2 * blk}", act(r), dtype)
        h = act(h)
    y = _dense(params, f"{name}.{n - 1}", h, dtype).astype(jnp.float32)
    return y[:, 0] if scalar else y.reshape((batch,) + tuple(shape))


def outputs(spec: dict, params: dict, t, x, dtype=jnp.float32) -> dict:
    """Every network's output keyed as the emitted functions expect (``grad_NAME`` for a
    potential network: the gradient in x of its scalar output)."""
    out = {}
    shape = tuple(spec["shape"])
    for net in spec["networks"]:
        if net["output"] == "scalar":
            def phi(y, net=net):
                return apply(net, params, t, y, shape, dtype).sum()
            out[net["key"]] = jax.grad(phi)(x)
        else:
            out[net["key"]] = apply(net, params, t, x, shape, dtype)
    return out
