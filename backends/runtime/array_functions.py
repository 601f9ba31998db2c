"""Array functions that emitted energies call beyond the array API (written once, on ``xp``):
the stable log-sum-exp over axes and of several numbers."""

from __future__ import annotations


def logsumexp(xp, v, axis: tuple[int, ...]):
    """log(sum(exp(v))) over ``axis``, with the largest value taken out first so that nothing
    overflows (an all -inf slice gives -inf)."""
    top = xp.max(v, axis=axis, keepdims=True)
    top = xp.where(xp.isfinite(top), top, xp.zeros_like(top))
    total = xp.sum(xp.exp(v - top), axis=axis, keepdims=True)
    return xp.squeeze(xp.log(total) + top, axis=axis)


def logsumexp_args(xp, *values):
    """log(sum_i exp(values_i)) of arrays of one shape (or numbers that broadcast to it)."""
    shape = ()
    for v in values:
        if hasattr(v, "shape") and len(v.shape) > len(shape):
            shape = tuple(v.shape)
            like = v
    stacked = xp.stack([v if hasattr(v, "shape") and tuple(v.shape) == shape
                        else xp.full(shape, v, dtype=like.dtype) + xp.zeros_like(like)
                        for v in values], axis=-1)
    return logsumexp(xp, stacked, (len(shape),))
