"""Inpainting: samples of the target whose coordinates on a mask are given (docs/conditional.md).

The model's ODE (or forward SDE) is guided by replacing the data prediction d = E[x1 | x_t = x]
with its value given the observed coordinates y = M x1 (M picks the masked ones), under a
Gaussian approximation of x1 given x_t. Where the noise part of x_t is Gaussian, with variance
sigma(t)^2 and x1's coefficient beta(t), the covariance of x1 given x_t is
C = (sigma^2 / beta) J, J the Jacobian of d in x (Tweedie's second-order formula), so that

    d_y = d + J M^T (M J M^T)^-1 (y - M d)

(the factor sigma^2 / beta cancels). The velocity and the score are functions of x and d alone
there (the emitted ``given_data``, compiler/derive.py), so the guided field is
``given_data(t, x, d_y)``. For a Gaussian target this is the exact field of the target
conditioned on y; for others it is approximate: the error is that of the Gaussian
approximation of x1 given x_t, largest at intermediate t (docs/conditional.md measures it).

The masked system is solved for every point at once, with points of different masks in one
batch: A u = P (y - d), A = P J P + (I - P) (P the diagonal of the point's mask), so that u is
zero off the mask and (M J M^T)^-1 M (y - d) on it; J is symmetrised (the exact one is
symmetric), its negative eigenvalues (a covariance has none; a network's Jacobian may) are
set to zero, and a ridge of 1% of J's mean eigenvalue on the mask (as if y had a little noise)
keeps A invertible and damps the directions where a network's J is mostly error. Written once on
the array API; ``ops.value_and_jacobian`` gives J (forward mode per point in JAX, reverse mode
per dimension in torch).
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import Diagnostic, TfmSemanticError

OBSERVED = "inpainting.observed"  # the key of a sampling pass's (values, mask) among its weights
RIDGE = 1e-2  # relative to the mean eigenvalue of J: observation noise of 1% of its scale
SIGN_ITERATIONS = 28  # of the matrix sign function in ``positive_part``
EARLY = 0.05  # before this time, J is taken at this time (it vanishes at t = 0)


def error(message: str, suggestion: str | None = None) -> TfmSemanticError:
    return TfmSemanticError(Diagnostic("Semantic", message, suggestion=suggestion))


def observations(module, spec, observed, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(values, mask) as float32 arrays of shape (n, *shape) from ``observed``: one point, or
    one per point, of the target's shape with NaN where a coordinate is not observed; the
    values are 0 off the mask. Errors name what is wrong."""
    if getattr(module, "given_data", None) is None:
        raise error(f"Inpainting needs the model's fields as functions of its data prediction, "
                    f"which holds where the noise of x_t is Gaussian: a normal base with one "
                    f"mean and one scale, and an independent coupling (this model: base "
                    f"{spec.base.name}, coupling {spec.coupling.name}).",
                    "Use base x0 ~ normal(0, 1) with coupling independent.")
    if "data" not in spec.fields:
        raise error("Inpainting needs the data prediction E[x1 | x_t], which the trained "
                    "networks do not determine.", "Train a network on velocity or on data.")
    shape = tuple(spec.shape)
    values = np.asarray(observed)
    if values.dtype.kind not in "biuf":
        raise error(f"The observed values hold {values.dtype} values; they are numbers, with "
                    "NaN where a coordinate is not observed.")
    values = values.astype(np.float32)
    if values.shape == shape and n is not None:
        values = np.broadcast_to(values, (n,) + shape)
    if values.shape[1:] != shape or values.ndim != len(shape) + 1 or (
            n is not None and len(values) != n):
        dims = ", ".join(map(str, shape))
        want = f"({dims}) or ({n}, {dims})" if n is not None else f"(points, {dims})"
        raise error(f"The observed values have shape {values.shape}; the model's samples have "
                    f"shape ({dims}): give an array of shape {want}, NaN where a coordinate "
                    "is not observed.")
    infinite = np.isinf(values)
    if infinite.any():
        point = int(np.argmax(infinite.reshape(len(values), -1).any(1)))
        raise error(f"The observed values of point {point} hold an infinite value; observed "
                    "coordinates are finite, and NaN marks those not observed.")
    mask = np.isfinite(values)
    return np.where(mask, values, 0).astype(np.float32), mask.astype(np.float32)


def data_given(ops, data, t, x, values, mask):
    """d_y: the data prediction at (t, x) given the observed ``values`` on ``mask`` (both
    (B, *shape)); ``data`` is the model's (t, x) -> E[x1 | x_t = x]. J is taken at max(t,
    EARLY): at t = 0, d is the target's mean and J vanishes, and near it the network's error
    in J outweighs J; only J's directions matter (d_y is unchanged when J is scaled), and
    those change little there (the covariance of x1 given x_t tends to the target's)."""
    xp, t = ops.xp, ops.time(t, x)
    value, jac = ops.value_and_jacobian(data, xp.maximum(t, EARLY), x)
    # d at t itself: the linearisation's value from EARLY on, one more network pass before
    d = ops.cond(xp.all(t >= EARLY), lambda: value, lambda: data(t, x))
    batch, dim = x.shape[0], math.prod(x.shape[1:])
    jac = (jac + xp.permute_dims(jac, (0, 2, 1))) / 2
    jac = positive_part(xp, jac)  # a covariance: negative directions are the network's error
    p = xp.reshape(mask, (batch, dim))
    residual = p * xp.reshape(values - d, (batch, dim))
    block = p[:, :, None] * jac * p[:, None, :]
    eye = xp.eye(dim, dtype=x.dtype)
    ridge = RIDGE * xp.sum(jac * eye, axis=(1, 2)) / dim + 1e-12
    a = block + eye * ((1 - p) + ridge[:, None] * p)[:, :, None]
    u = solve_positive(ops, a, residual)
    return d + xp.reshape(xp.matmul(jac, u[:, :, None])[:, :, 0], x.shape)


def positive_part(xp, a, iterations: int = SIGN_ITERATIONS):
    """(a + |a|) / 2 of each symmetric matrix of the batch a (n, d, d): its eigenvalues below 0
    set to 0, by matrix products alone, |a| = a sign(a) with sign(a) from the Newton-Schulz
    iteration X <- X (3 I - X^2) / 2 started at a over its Frobenius norm. An eigenvalue r times
    the largest grows about 1.5-fold per iteration until it converges, so those above about
    1e-4 of the largest are exact; smaller ones are kept in part, and matter as little. (JAX's
    LAPACK eigh stalled the XLA CPU runtime inside a sampler's loop at 10,000 points.)"""
    norm = xp.sqrt(xp.sum(a * a, axis=(1, 2), keepdims=True)) + 1e-30
    x = a / norm
    eye = xp.eye(a.shape[-1], dtype=a.dtype)
    for _ in range(iterations):
        x = 0.5 * xp.matmul(x, 3 * eye - xp.matmul(x, x))
    return (a + xp.matmul(a, x)) / 2


def solve_positive(ops, a, b):
    """u with a u = b for each positive definite a (n, d, d) and b (n, d) of the batch: Gauss-
    Jordan elimination without pivoting (the pivots of a positive definite matrix stay positive),
    a loop of d steps of array work (``ops.scan``). LAPACK's batched solve and eigh, inside a
    sampler's loop, stalled the XLA CPU runtime at 30,000 to 100,000 points."""
    xp = ops.xp
    index = xp.arange(a.shape[-1])

    def step(carry, k):
        a, b = carry
        e = xp.astype(index == k, a.dtype)  # the pivot's row and column, one-hot
        row = xp.sum(a * e[None, :, None], axis=1)
        column = xp.sum(a * e[None, None, :], axis=2)
        factor = column / xp.sum(row * e, axis=1)[:, None] * (1 - e)
        b = b - factor * xp.sum(b * e, axis=1)[:, None]
        return (a - factor[:, :, None] * row[:, None, :], b), None

    (a, b), _ = ops.scan(step, (a, b), index)
    return b / xp.sum(a * xp.eye(a.shape[-1], dtype=a.dtype), axis=2)


def _split(weights):
    observed = weights[OBSERVED]
    return observed, {k: v for k, v in weights.items() if k != OBSERVED}


def _guided(model, weights):
    """(t, x) -> (t per point, the velocity and the score given the observations among
    ``weights``)."""
    (values, mask), rest = _split(weights)
    data, given, ops = model.field("data", rest), model.module.given_data, model.ops

    def fields(t, x):
        t = ops.time(t, x)
        return t, given(t, x, data_given(ops, data, t, x, values, mask))
    return fields


def field(model, name: str, weights):
    """(t, x) -> the field ``name`` (velocity or score) given the observations among
    ``weights``."""
    if name not in ("velocity", "score"):
        raise error(f"Inpainting guides the velocity and the score, not the {name}.")
    fields = _guided(model, weights)
    return lambda t, x: model.ops.full(fields(t, x)[1][name], x)


def drift(model, entry, weights):
    """(t, x) -> the forward SDE's drift b + eps s of sampler ``entry`` given the observations
    among ``weights``."""
    fields, eps = _guided(model, weights), model.eps(entry.name)

    def f(t, x):
        t, given = fields(t, x)
        return model.ops.full(given["velocity"] + eps(t) * given["score"], x)
    return f
