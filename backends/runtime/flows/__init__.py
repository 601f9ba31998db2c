"""Normalizing flows as network kinds: invertible maps x = f(z) of the sample shape, with the
exact log-determinant of their Jacobian both ways, written once for both backends with
``ops.xp`` and the backend's ``Layers`` (as the field networks of ``networks.py``).

Conventions. ``push(xp, layers, args, shape, z)`` maps base points z (B, *shape) to x = f(z)
and returns (x, log|det df/dz|), the log-determinant one number per point (B,); ``pull(xp,
layers, args, shape, x)`` maps back, z = f^-1(x), and returns (z, log|det df^-1/dx|), which is
minus push's at z. So with z ~ p_Z the density of x is log p_X(x) = log p_Z(z) + pull's logdet,
and a pushed sample has log p_X(x) = log p_Z(z) - push's logdet. Both compute in float32 on the
points flattened to (B, dim), dim the product of the shape; only the conditioners' products run
in the compute dtype (``layers.dtype``).

A coupling flow is ``layers`` coupling layers followed by one elementwise affine layer (with
``mask = learned``, each coupling layer preceded by a learned linear mixing):

- coupling layer k splits the coordinates by a fixed mask m_k (1 where it transforms): the kept
  coordinates pass unchanged and condition, through an MLP, an invertible elementwise map of
  each transformed one, u_i -> g(u_i; theta_i(kept)). Its Jacobian is triangular, so its
  log-determinant is the sum of log g'(u_i) over the transformed coordinates, and its inverse
  runs the same conditioner on the same kept coordinates and inverts g. The kinds differ by g:
  an affine map (``realnvp.py``) or a monotone rational-quadratic spline (``spline.py``);
- the masks: ``alternating`` transforms the coordinates whose flat index has the parity of k,
  ``checkerboard`` those whose multi-index (over the sample shape) sums to the parity of k (the
  same as alternating for a vector; the black or white squares of a lattice), so consecutive
  layers transform complementary halves; ``learned`` maps the coordinates by a learned
  invertible matrix W_k = L_k (U_k + diag e^s_k) before coupling layer k and then transforms
  those of parity k in the mixed basis (``permutation.py``: exact inverse by a linear solve,
  log-determinant sum(s_k); zero parameters give W_k = I);
- the conditioner of layer k is an MLP (dense layers with the network's activation between) fed
  with all dim coordinates, the transformed ones zeroed, and giving P numbers per coordinate
  (B, dim * P) read as (B, dim, P); ``depth`` hidden layers of ``width``. Its last layer starts
  at zero (``zero``), which makes every g the identity, so the flow starts as the identity;
- the final affine layer x_i = u_i exp(s_i) + mu_i has a location mu and a log-scale s per
  coordinate, learned and starting at zero: a dense layer of fan_in 1, weight (2 dim, 1) and
  bias (2 dim,), applied to the constant input 1 (so every weight of a flow is a dense layer
  ``<network>.<i>.weight|bias``); it lets a flow scale a unit normal to a wide target. Its
  log-scale is soft-clamped to AFFINE_CLAMP (c tanh(s / c)): a bad step cannot overflow.

The dense layers, in order (``sizes``): the depth + 1 layers of coupling layer 0's conditioner,
then those of layer 1, ..., then the final affine layer (always the last). With ``mask =
learned`` each coupling layer's block starts with its mixing layer, dim -> dim (weight: L - I
below the diagonal, U above; bias: s; zero at start), before its conditioner's depth + 1.
"""

from __future__ import annotations

import math
from typing import Callable

import attrs
import numpy as np

from .permutation import learned, mix

AFFINE_CLAMP = 15.0  # the final affine layer's log-scale lies in (-15, 15): scales up to 3e6
MASKS = ("alternating", "checkerboard", "learned")


@attrs.frozen
class FlowPasses:
    """A flow's two passes: ``push(xp, layers, args, shape, z) -> (x, logdet)`` with logdet =
    log|det dx/dz| per point (B,), and ``pull(xp, layers, args, shape, x) -> (z, logdet)`` with
    logdet = log|det dz/dx| (B,); points (B, *shape), float32 out."""

    push: Callable
    pull: Callable
    # a cnf's flow-matching pair (xp, layers, args, shape, t, z, x) -> (prediction, target)
    matching: Callable | None = None


def transformed(mask: str, shape: tuple[int, ...], k: int) -> np.ndarray:
    """The mask of coupling layer k, flat (dim,) float32: 1 where it transforms, 0 where it keeps
    (``alternating``, and ``learned`` in the basis of its mixing layer: flat index of parity
    k % 2; ``checkerboard``: sum of the multi-index of parity k % 2)."""
    if mask in ("alternating", "learned"):
        parity = np.arange(math.prod(shape)) % 2
    elif mask == "checkerboard":
        parity = (np.indices(tuple(shape)).sum(axis=0) % 2).reshape(-1)
    else:
        raise ValueError(f"unknown flow mask '{mask}' (known: {', '.join(MASKS)})")
    return (parity == k % 2).astype(np.float32)


def conditioner(xp, layers, first: int, depth: int, h):
    """The MLP of dense layers first, ..., first + depth on h (B, n): the network's activation
    after every layer but the last; products in the compute dtype, the result float32."""
    h = layers.cast(h, layers.dtype)
    for i in range(first, first + depth):
        h = layers.act(layers.layer(i, h))
    return layers.cast(layers.layer(first + depth, h), xp.float32)


def soft_clamp(xp, s, bound: float):
    """bound tanh(s / bound): s where |s| << bound, never beyond +-bound."""
    return bound * xp.tanh(s / bound)


@attrs.frozen
class Coupling:
    """The elementwise map g of a coupling kind: ``parameters(args)``: P, the conditioner's
    numbers per coordinate; ``apply(xp, layers, args, theta, u, inverse)`` with theta (B, dim,
    P) and u (B, dim) float32 gives (g(u), log g'(u)), or with ``inverse`` (g^-1(u), log
    (g^-1)'(u)), elementwise (B, dim); zero theta must give the identity."""

    parameters: Callable[[dict], int]
    apply: Callable


def _block(args: dict) -> int:
    """The dense layers of one coupling layer: its mixing layer (``mask = learned``) and its
    conditioner's depth + 1; coupling layer k's are k * block, ..., k * block + block - 1."""
    return args["depth"] + 1 + int(learned(args))


def coupling_sizes(coupling: Coupling) -> Callable:
    """The ``sizes`` of a coupling flow: each layer's mixing dim -> dim (``mask = learned``
    only) and conditioner dim -> width (depth times) -> dim * P, then the final affine layer 1
    -> 2 dim (``scalar`` does not apply to flows)."""

    def sizes(args: dict, shape: tuple[int, ...], scalar: bool = False) -> list[tuple[int, int]]:
        dim, width, depth = math.prod(shape), args["width"], args["depth"]
        widths = [dim] + [width] * depth + [dim * coupling.parameters(args)]
        one = [(dim, dim)] * int(learned(args)) + list(zip(widths[:-1], widths[1:]))
        return one * args["layers"] + [(1, 2 * dim)]
    return sizes


def coupling_zero(args: dict, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The mixing layers (``mask = learned``), the last layer of every conditioner and the final
    affine layer."""
    n = _block(args)
    mixing = tuple(k * n for k in range(args["layers"])) if learned(args) else ()
    last = tuple(k * n + n - 1 for k in range(args["layers"]))
    return tuple(sorted(mixing + last)) + (args["layers"] * n,)


def affine_layer(xp, layers, i: int, dim: int):
    """The final affine layer (dense layer i) of a flow: its location and log-scale, each (1,
    dim) float32."""
    ones = layers.cast(layers.constant(np.ones((1, 1), np.float32)), layers.dtype)
    out = layers.cast(layers.layer(i, ones), xp.float32)
    return out[:, :dim], soft_clamp(xp, out[:, dim:], AFFINE_CLAMP)


def _affine(xp, layers, args, dim: int):
    return affine_layer(xp, layers, args["layers"] * _block(args), dim)


def _couple(xp, layers, args, shape, coupling: Coupling, k: int, u, inverse: bool):
    """Coupling layer k on u (B, dim): (u', log|det du'/du|) (B,), its mixing layer (``mask =
    learned``) not included."""
    dim, first = u.shape[1], k * _block(args) + int(learned(args))
    m = layers.constant(transformed(args.get("mask", "alternating"), shape, k))
    theta = conditioner(xp, layers, first, args["depth"], u * (1 - m))
    theta = xp.reshape(theta, (u.shape[0], dim, coupling.parameters(args)))
    y, logd = coupling.apply(xp, layers, args, theta, u, inverse)
    return m * y + (1 - m) * u, xp.sum(m * logd, axis=-1)


def coupling_passes(coupling: Coupling) -> FlowPasses:
    """push and pull of a coupling flow with elementwise map ``coupling`` (module docstring)."""

    def push(xp, layers, args, shape, z):
        batch, dim = z.shape[0], math.prod(shape)
        u = layers.cast(xp.reshape(z, (batch, dim)), xp.float32)
        logdet = xp.zeros_like(u[:, 0])
        for k in range(args["layers"]):
            if learned(args):
                u, ld = mix(xp, layers, k * _block(args), u, False)
                logdet = logdet + ld
            u, ld = _couple(xp, layers, args, shape, coupling, k, u, False)
            logdet = logdet + ld
        mu, s = _affine(xp, layers, args, dim)
        x = u * xp.exp(s) + mu
        return xp.reshape(x, (batch,) + tuple(shape)), logdet + xp.sum(s)

    def pull(xp, layers, args, shape, x):
        batch, dim = x.shape[0], math.prod(shape)
        u = layers.cast(xp.reshape(x, (batch, dim)), xp.float32)
        mu, s = _affine(xp, layers, args, dim)
        u = (u - mu) * xp.exp(-s)
        logdet = xp.zeros_like(u[:, 0]) - xp.sum(s)
        for k in reversed(range(args["layers"])):
            u, ld = _couple(xp, layers, args, shape, coupling, k, u, True)
            logdet = logdet + ld
            if learned(args):
                u, ld = mix(xp, layers, k * _block(args), u, True)
                logdet = logdet + ld
        return xp.reshape(u, (batch,) + tuple(shape)), logdet

    return FlowPasses(push, pull)


def register(name: str, coupling: Coupling) -> None:
    """Registers the coupling flow of elementwise map ``coupling`` as network kind ``name``."""
    from ..networks import NETWORKS, NetworkKind
    NETWORKS.register(name)(NetworkKind(coupling_sizes(coupling), None,
                                        flow=coupling_passes(coupling), zero=coupling_zero))


from . import cnf, realnvp, spline  # noqa: E402,F401  (each registers its kind)
