"""The learned mixing of ``mask = learned``: before each coupling layer, an invertible linear map
of the flattened coordinates, u -> W u, the invertible 1x1 convolution of Glow (Kingma and
Dhariwal, 2018) for a vector of dim coordinates, parametrised by its LU factors:

    W = L (U + diag e^s),    log|det W| = sum_i s_i,

L unit lower triangular, U strictly upper triangular, s a log-scale per coordinate. Glow puts a
fixed permutation P in front (W = P L (U + diag e^s)); here P is the identity, so that zero
parameters give W = I and a fresh flow stays the identity (the coupling layers that follow
start as the alternating split). Its determinant is e^(sum s) > 0 whatever the parameters, so W
is always invertible. Without P, W = L diag(e^s) (I + e^-s U) reaches exactly the matrices whose
leading principal minors are all positive: an open set around I (no reversal of the coordinates
in one step, which a fixed P would give at the price of a flow that does not start as the
identity).

Parameters: one dense layer of the flow, (dim, dim) weight A and (dim,) bias b, both starting at
zero: L = I + (strictly lower part of A), U = strictly upper part of A, s = c tanh(b / c) with c
= MIX_CLAMP (one mixing scales by at most e^c either way; no step can overflow). The diagonal of
A is not used (its gradient is zero, so it stays at its initial zero).

push: y = W u, the product in full float32 precision (``layers.matmul``: a GPU's TF32 products
would break the round trip), log-determinant sum(s); pull: u = W^-1 y by a linear solve
(``xp.linalg.solve``) on the same W, log-determinant -sum(s). The cost is that of a dense
dim x dim map: dim^2 parameters per coupling layer, a (B, dim) x (dim, dim) product per pass and
one dim x dim factorisation in pull (a 64-site lattice: 4096 parameters and 4096 multiply-adds
per point per layer, a 64 x 64 factorisation per pull; a 32 x 32 lattice: 10^6 of each).
"""

from __future__ import annotations

import numpy as np

MIX_CLAMP = 3.0  # the mixing's log-scales lie in (-3, 3)


def learned(args: dict) -> bool:
    """Whether the flow of ``args`` mixes its coordinates before every coupling layer."""
    return args.get("mask", "alternating") == "learned"


def matrix(xp, layers, i: int, dim: int):
    """W (dim, dim) float32 and its log-scales s (dim,) from dense layer i of the flow."""
    a, b = layers.weight(i), layers.bias(i)
    lower = layers.constant(np.tril(np.ones((dim, dim), np.float32), -1))
    eye = layers.constant(np.eye(dim, dtype=np.float32))
    s = MIX_CLAMP * xp.tanh(b / MIX_CLAMP)
    lo = eye + a * lower
    up = a * xp.permute_dims(lower, (1, 0)) + eye * xp.exp(s)[None, :]
    return layers.matmul(lo, up), s


def mix(xp, layers, i: int, u, inverse: bool):
    """Mixing layer i on u (B, dim): (W u, sum s) or, with ``inverse``, (W^-1 u, -sum s); the
    log-determinant one number per point (B,)."""
    w, s = matrix(xp, layers, i, u.shape[1])
    logdet = xp.zeros_like(u[:, 0]) + xp.sum(s)
    if inverse:
        return xp.permute_dims(xp.linalg.solve(w, xp.permute_dims(u, (1, 0))), (1, 0)), -logdet
    return layers.matmul(u, xp.permute_dims(w, (1, 0))), logdet
