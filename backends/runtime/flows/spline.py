"""The ``spline`` flow: rational-quadratic spline couplings (Durkan, Bekasov, Murray and
Papamakarios, "Neural Spline Flows", 2019), then the final affine layer of every coupling flow
(``flows/__init__.py``). Args: ``layers``, ``bins`` (K, default 8), ``bound`` (B, default 5),
``width``, ``depth``, ``activation``, ``mask``.

Each transformed coordinate goes through a monotone spline g of K bins on [-B, B], the identity
outside (linear tails). The conditioner gives 3K - 1 numbers per coordinate: K unnormalised bin
widths, K unnormalised bin heights and K - 1 unnormalised derivatives at the inner knots. The
widths are a softmax, floored at MIN_BIN_WIDTH (w = m + (1 - K m) softmax), times 2B; their
cumulative sums from -B are the knots x^(0) = -B < ... < x^(K) = B, and the heights likewise
give y^(0) = -B < ... < y^(K) = B. The derivatives delta^(k) at the inner knots are MIN_DERIVATIVE
+ softplus(raw + c), c chosen so that raw = 0 gives 1; at the outer knots they are 1, so g and
g' join the tails continuously. Zero parameters give equal bins and unit derivatives: the
identity.

In bin k (x^(k) <= x < x^(k+1)), with w_k = x^(k+1) - x^(k), h_k = y^(k+1) - y^(k), the slope
s_k = h_k / w_k and xi = (x - x^(k)) / w_k in [0, 1] (the paper's eq. 4 and its derivative):

    g(x)  = y^(k) + h_k [s_k xi^2 + delta^(k) xi (1 - xi)] / [s_k + D_k xi (1 - xi)],
    g'(x) = s_k^2 [delta^(k+1) xi^2 + 2 s_k xi (1 - xi) + delta^(k) (1 - xi)^2]
            / [s_k + D_k xi (1 - xi)]^2,        D_k = delta^(k+1) + delta^(k) - 2 s_k.

The inverse solves g(x) = y in the bin of y (y^(k) <= y < y^(k+1)) for xi, the root in [0, 1]
of a xi^2 + b xi + c = 0 with a = h_k (s_k - delta^(k)) + (y - y^(k)) D_k, b = h_k delta^(k) -
(y - y^(k)) D_k, c = -s_k (y - y^(k)), taken as xi = 2c / (-b - sqrt(b^2 - 4ac)) (the form that
does not cancel), and log (g^-1)'(y) = -log g'(x) there.

Each point's bin is the number of inner knots at or below it, selected by a one-hot sum over the
K bins (the same code in both array namespaces, no gather or search).
"""

from __future__ import annotations

import math

import numpy as np

from . import Coupling, register

MIN_BIN_WIDTH = 1e-3  # fraction of 2B every bin keeps at least
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3  # the smallest slope at an inner knot
DEFAULTS = {"bins": 8, "bound": 5.0}
_UNIT = math.log(math.expm1(1 - MIN_DERIVATIVE))  # softplus(_UNIT) + MIN_DERIVATIVE = 1


def _bins(args: dict) -> int:
    return int(args.get("bins", DEFAULTS["bins"]))


def _parameters(args: dict) -> int:
    return 3 * _bins(args) - 1


def _softmax(xp, a):
    e = xp.exp(a - xp.max(a, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def _softplus(xp, a):
    return xp.maximum(a, xp.zeros_like(a)) + xp.log1p(xp.exp(-xp.abs(a)))


def _knots(xp, raw, bound: float, least: float):
    """Knots -B = k_0 < ... < k_K = B (..., K + 1) from unnormalised bin sizes (..., K)."""
    bins = raw.shape[-1]
    sizes = least + (1 - least * bins) * _softmax(xp, raw)
    inner = -bound + 2 * bound * xp.cumulative_sum(sizes[..., :-1], axis=-1)
    ends = xp.ones_like(raw[..., :1]) * bound
    return xp.concat([-ends, inner, ends], axis=-1)


def _pick(xp, onehot, values):
    """The value of each point's bin: values (..., K) summed against its one-hot (..., K)."""
    return xp.sum(onehot * values, axis=-1)


def _spline(xp, layers, args, theta, u, inverse: bool):
    bins, bound = _bins(args), float(args.get("bound", DEFAULTS["bound"]))
    xs = _knots(xp, theta[..., :bins], bound, MIN_BIN_WIDTH)
    ys = _knots(xp, theta[..., bins:2 * bins], bound, MIN_BIN_HEIGHT)
    ones = xp.ones_like(theta[..., :1])
    inner = MIN_DERIVATIVE + _softplus(xp, theta[..., 2 * bins:] + _UNIT)
    deltas = xp.concat([ones, inner, ones], axis=-1)

    inside = xp.abs(u) <= bound
    v = xp.where(inside, u, xp.zeros_like(u))  # the tails' points stay finite in the spline
    knots = ys if inverse else xs
    index = xp.sum(xp.astype(v[..., None] >= knots[..., 1:-1], xp.float32), axis=-1)
    onehot = xp.astype(index[..., None] == layers.constant(np.arange(bins, dtype=np.float32)),
                       xp.float32)
    x0, w = _pick(xp, onehot, xs[..., :-1]), _pick(xp, onehot, xs[..., 1:] - xs[..., :-1])
    y0, h = _pick(xp, onehot, ys[..., :-1]), _pick(xp, onehot, ys[..., 1:] - ys[..., :-1])
    d0, d1 = _pick(xp, onehot, deltas[..., :-1]), _pick(xp, onehot, deltas[..., 1:])
    s = h / w
    curve = d1 + d0 - 2 * s

    if inverse:
        dy = v - y0
        a = h * (s - d0) + dy * curve
        b = h * d0 - dy * curve
        c = -s * dy
        root = xp.sqrt(xp.maximum(b * b - 4 * a * c, xp.zeros_like(b)))
        xi = 2 * c / (-b - root)
        out = x0 + xi * w
    else:
        xi = (v - x0) / w
    t = xi * (1 - xi)
    denominator = s + curve * t
    if not inverse:
        out = y0 + h * (s * xi * xi + d0 * t) / denominator
    slope = s * s * (d1 * xi * xi + 2 * s * t + d0 * (1 - xi) * (1 - xi)) / (
        denominator * denominator)
    logd = -xp.log(slope) if inverse else xp.log(slope)
    return xp.where(inside, out, u), xp.where(inside, logd, xp.zeros_like(logd))


register("spline", Coupling(_parameters, _spline))
