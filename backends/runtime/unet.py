"""``unet``: the U-Net of the image diffusion and flow-matching papers (Ronneberger et al.; the
time-conditioned form of Ho et al. and Dhariwal & Nichol), written once for both backends with
``ops.xp`` and the backend's ``Layers`` (runtime/networks.py).

For an image x (C, H, W) and a time t:

- the time embedding: t and its 16 sinusoidal features (``networks.time_features``), a dense
  layer to 4 * channels, the activation, a dense layer of 4 * channels;
- a 3 x 3 convolution from C to ``channels``;
- down: for each level l with multiplier m_l, ``blocks`` residual blocks to channels * m_l (each
  followed by self-attention where the resolution is in ``attention``); the result is kept for
  the skip connection of that level; between levels a 2 x 2 average pool halves the resolution;
- the middle: a residual block, self-attention, a residual block;
- up, the levels in reverse: the kept result of the level concatenated in channels, ``blocks``
  residual blocks (with attention as on the way down), then, between levels, nearest-neighbour
  upsampling by 2 and a 3 x 3 convolution;
- out: group norm, the activation, a 3 x 3 convolution back to C channels (to 1 channel summed
  over the pixels for a scalar output), starting at zero, so the network starts as the zero field.

A residual block from c to c': group norm, activation, 3 x 3 convolution to c'; plus a dense layer
of the activated time embedding, added per channel; group norm, activation, dropout at the rate
``dropout`` (training only: runtime/dropout.py), 3 x 3 convolution; added to the input (through
a 1 x 1 convolution where c != c'). Self-attention at one resolution:
group norm, a 1 x 1 convolution to queries, keys and values, one head over the H * W positions
(softmax in float32), a 1 x 1 convolution, added to the input. Group norm uses ``groups`` groups
(every channel count must divide by it), eps 1e-5, float32 statistics, a learned scale and shift.

The layers are listed by ``_plan`` in the order the forward pass uses them; both walk the same
loops. Layer kinds: ("dense", in, out), ("conv", in, out, k), ("norm", channels).
"""

from __future__ import annotations

import itertools
import math

from . import dropout
from .networks import (NETWORKS, TIME_FEATURES, NetworkKind, label_width, time_features, times,
                       with_labels)

NORM_EPS = 1e-5


def _levels(args) -> list[int]:
    return [args["channels"] * m for m in args["multipliers"]]


def _plan(args, shape, scalar) -> list[tuple]:
    """The layers in the order the forward pass takes them."""
    ch, blocks, attend = args["channels"], args["blocks"], set(args["attention"])
    emb, specs = 4 * ch, []

    def resblock(cin, cout):
        specs.extend([("norm", cin), ("conv", cin, cout, 3), ("dense", emb, cout), ("norm", cout),
                      ("conv", cout, cout, 3)] + ([("conv", cin, cout, 1)] if cin != cout else []))

    def attention(c):
        specs.extend([("norm", c), ("conv", c, 3 * c, 1), ("conv", c, c, 1)])

    specs.extend([("dense", times(args) * (1 + 2 * TIME_FEATURES) + label_width(args), emb),
                  ("dense", emb, emb),
                  ("conv", shape[0], ch, 3)])
    cur, res, kept = ch, shape[1], []
    levels = _levels(args)
    for level, width in enumerate(levels):
        for _ in range(blocks):
            resblock(cur, width)
            cur = width
            if res in attend:
                attention(cur)
        kept.append(cur)
        if level < len(levels) - 1:
            res //= 2
    resblock(cur, cur)
    attention(cur)
    resblock(cur, cur)
    for level in reversed(range(len(levels))):
        width = levels[level]
        cin = cur + kept.pop()
        for _ in range(blocks):
            resblock(cin, width)
            cin = cur = width
            if res in attend:
                attention(cur)
        if level > 0:
            specs.append(("conv", cur, cur, 3))
            res *= 2
    specs.extend([("norm", cur), ("conv", cur, 1 if scalar else shape[0], 3)])
    return specs


def _sizes(args, shape, scalar):
    return [(s[1], s[1] if s[0] == "norm" else s[2]) for s in _plan(args, shape, scalar)]


def _zero(args, shape):
    return (len(_plan(args, shape, False)) - 1,)


def group_norm(xp, layers, i: int, h, groups: int):
    """Group norm of h (B, C, H, W) with layer i's scale and shift (statistics in float32)."""
    b, c, height, width = h.shape
    g = xp.reshape(layers.cast(h, xp.float32), (b, groups, (c // groups) * height * width))
    mean = xp.mean(g, axis=2, keepdims=True)
    var = xp.mean((g - mean) ** 2, axis=2, keepdims=True)
    g = xp.reshape((g - mean) / xp.sqrt(var + NORM_EPS), (b, c, height, width))
    g = g * layers.weight(i)[None, :, None, None] + layers.bias(i)[None, :, None, None]
    return layers.cast(g, layers.dtype)


def _attention(xp, layers, at, h, groups):
    b, c, height, width = h.shape
    norm, qkv_layer, out_layer = at(), at(), at()  # _plan's order
    qkv = xp.reshape(layers.layer(qkv_layer, group_norm(xp, layers, norm, h, groups)),
                     (b, 3, c, height * width))
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
    scores = layers.cast(xp.matmul(xp.permute_dims(q, (0, 2, 1)), k), xp.float32) / math.sqrt(c)
    scores = xp.exp(scores - xp.max(scores, axis=-1, keepdims=True))
    weights = layers.cast(scores / xp.sum(scores, axis=-1, keepdims=True), layers.dtype)
    out = xp.matmul(v, xp.permute_dims(weights, (0, 2, 1)))  # (B, C, HW): sum_j v[:, j] w[i, j]
    return h + layers.layer(out_layer, xp.reshape(out, (b, c, height, width)))


def _resblock(xp, layers, at, h, temb, cin, cout, groups, rate):
    norm1, conv1, dense, norm2, conv2 = at(), at(), at(), at(), at()  # _plan's order
    r = layers.layer(conv1, layers.act(group_norm(xp, layers, norm1, h, groups)))
    r = r + layers.layer(dense, temb)[:, :, None, None]
    r = dropout.drop(xp, layers, layers.act(group_norm(xp, layers, norm2, r, groups)), rate, conv2)
    r = layers.layer(conv2, r)
    return (layers.layer(at(), h) if cin != cout else h) + r


def _pool(xp, h):
    b, c, height, width = h.shape
    return xp.mean(xp.reshape(h, (b, c, height // 2, 2, width // 2, 2)), axis=(3, 5))


def _upsample(xp, h):
    b, c, height, width = h.shape
    wide = xp.broadcast_to(h[:, :, :, None, :, None], (b, c, height, 2, width, 2))
    return xp.reshape(wide, (b, c, 2 * height, 2 * width))


def _forward(xp, layers, args, shape, scalar, t, x):
    ch, blocks, attend, groups = args["channels"], args["blocks"], set(args["attention"]), \
        args["groups"]
    rate = float(args.get("dropout", 0))
    counter = itertools.count()

    def at() -> int:
        return next(counter)

    temb = layers.cast(time_features(xp, layers, t), layers.dtype)
    temb = layers.act(layers.layer(at(), with_labels(xp, layers, temb)))
    temb = layers.act(layers.layer(at(), temb))  # the blocks take the activated embedding
    h = layers.layer(at(), layers.cast(layers.cast(x, xp.float32), layers.dtype))
    cur, res, kept = ch, shape[1], []
    levels = _levels(args)
    for level, width in enumerate(levels):
        for _ in range(blocks):
            h = _resblock(xp, layers, at, h, temb, cur, width, groups, rate)
            cur = width
            if res in attend:
                h = _attention(xp, layers, at, h, groups)
        kept.append(h)
        if level < len(levels) - 1:
            h, res = _pool(xp, h), res // 2
    h = _resblock(xp, layers, at, h, temb, cur, cur, groups, rate)
    h = _attention(xp, layers, at, h, groups)
    h = _resblock(xp, layers, at, h, temb, cur, cur, groups, rate)
    for level in reversed(range(len(levels))):
        width = levels[level]
        skip = kept.pop()
        h = xp.concat([h, skip], axis=1)
        cin = cur + skip.shape[1]
        for _ in range(blocks):
            h = _resblock(xp, layers, at, h, temb, cin, width, groups, rate)
            cin = cur = width
            if res in attend:
                h = _attention(xp, layers, at, h, groups)
        if level > 0:
            h, res = layers.layer(at(), _upsample(xp, h)), res * 2
    norm, last = at(), at()
    y = layers.cast(layers.layer(last, layers.act(group_norm(xp, layers, norm, h, groups))),
                    xp.float32)
    return xp.sum(y, axis=(1, 2, 3)) if scalar else y


NETWORKS.register("unet")(NetworkKind(_sizes, _forward, convolution=True, zero=_zero,
                                      plan=_plan))
