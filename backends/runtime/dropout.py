"""Dropout in training (the U-Net's residual blocks, docs/backends.md), the same in both backends
bit for bit: a training batch of a model with dropout carries one seed per example (whole
numbers below 2^30, drawn with the batch, so sharded with its rows and repeated on resume), and
the mask of an activation is a counter-based hash of (the example's seed, the site, the
element's index). Each hash round is a 30-bit xorshift followed by an addition of key material
modulo 2^30; the operands are masked so that no int32 operation overflows (the result is
defined, and equal, in JAX and torch). Sampling, scoring and every evaluation pass no seeds: no
dropout there.

A network kind applies it with ``drop(xp, layers, h, rate, site)``; ``layers`` carries the
seeds (``Seeded``) only on the training pass of the regression objective.
"""

from __future__ import annotations

SEED_LIMIT = 2**30  # seeds are drawn in [0, SEED_LIMIT)
_MASK30 = 2**30 - 1
_ROUNDS = 4


class Seeded:
    """``layers`` with the per-example dropout ``seeds`` (B,) of a training pass."""

    def __init__(self, layers, seeds):
        self._layers, self.seeds = layers, seeds

    def __getattr__(self, name):
        return getattr(self._layers, name)


def _shl(x, k: int):
    """x << k on 30 bits, the bits shifted out dropped before the shift (no overflow)."""
    return (x & ((1 << (30 - k)) - 1)) << k


def _round(x, key):
    """One round, a bijection of [0, 2^30): xorshift (13, 17, 5), then + key modulo 2^30
    (both terms below 2^30, so the sum stays below 2^31)."""
    x = x ^ _shl(x, 13)
    x = x ^ (x >> 17)
    x = x ^ _shl(x, 5)
    return (x + key) & _MASK30


def uniform(xp, layers, seeds, site: int, shape: tuple[int, ...]):
    """Numbers in [0, 1) (float32, 24 bits) of the given activation shape (B, ...): a hash of
    the example's seed, ``site`` and the element's index."""
    keys, key = [], layers.cast(seeds, xp.int32) & _MASK30
    for r in range(_ROUNDS):
        key = _round(key, (site * 7919 + r * 104729 + 1) & _MASK30)
        keys.append(xp.reshape(key, (-1,) + (1,) * (len(shape) - 1)))
    index, stride = 0, 1
    for axis in reversed(range(1, len(shape))):  # the element's flat index, from small aranges
        size = shape[axis]
        along = layers.cast(layers.constant(list(range(size))), xp.int32) * stride
        index = index + xp.reshape(along, (1,) * axis + (size,) + (1,) * (len(shape) - axis - 1))
        stride *= size
    x = index + 0 * keys[0]
    for key in keys:
        x = _round(x, key)
    return layers.cast(x >> 6, xp.float32) * (1.0 / 2**24)


def rate(net) -> float:
    """The fraction of activations a network (a spec Network) drops in training (0: none)."""
    return float(net.args.get("dropout", 0))


def used(spec) -> bool:
    """Whether a network of the model drops activations in training."""
    return any(rate(net) > 0 for net in spec.networks)


def drop(xp, layers, h, fraction: float, site: int):
    """Inverted dropout of h (B, ...) on a training pass (``layers.seeds`` set): each element
    kept with probability 1 - fraction and scaled by 1 / (1 - fraction); h as it is otherwise."""
    seeds = getattr(layers, "seeds", None)
    if seeds is None or fraction <= 0:
        return h
    keep = uniform(xp, layers, seeds, site, tuple(h.shape)) >= fraction
    return xp.where(keep, h / (1.0 - fraction), xp.zeros_like(h))
