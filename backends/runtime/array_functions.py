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
    """log(sum_i exp(values_i)) of arrays that broadcast together and numbers (at least one
    argument is an array: the compiler folds an all-number call)."""
    arrays = [v for v in values if hasattr(v, "shape")]
    like = max(arrays, key=lambda v: len(v.shape))
    shape = tuple(like.shape)
    stacked = xp.stack([xp.zeros_like(like) + v for v in values], axis=-1)
    return logsumexp(xp, stacked, (len(shape),))
