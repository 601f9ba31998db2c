"""Densities drawn on the device: the prelude's ``normal`` and ``data``, the toy2d generators,
and the stdlib targets with exact samplers. ``sampler(spec_entry, ...)`` returns a function
``(key, n) -> (n, *shape)`` float32 that runs inside the compiled training loop.

Toy generators follow scikit-learn's and the flow-matching literature's, with random angles in
place of scikit-learn's evenly spaced ones: moons (two interleaved half circles), circles,
s_curve and swiss_roll (the (x, z) coordinates of the 3-D manifolds), eight_gaussians,
checkerboard.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ....dsl.diagnostics import Diagnostic, TfmSemanticError
from ...shared.densities import GMM40_STD, _vector, gmm40_means

TWO_PI = 2 * math.pi


def _moons(key, n, noise):
    k1, k2, k3 = jax.random.split(key, 3)
    theta = jax.random.uniform(k1, (n,)) * jnp.pi
    inner = jax.random.bernoulli(k2, 0.5, (n,))
    x = jnp.where(inner, 1 - jnp.cos(theta), jnp.cos(theta))
    y = jnp.where(inner, 0.5 - jnp.sin(theta), jnp.sin(theta))
    return jnp.stack([x, y], -1) + noise * jax.random.normal(k3, (n, 2))


def _circles(key, n, noise, factor):
    k1, k2, k3 = jax.random.split(key, 3)
    theta = jax.random.uniform(k1, (n,)) * TWO_PI
    radius = jnp.where(jax.random.bernoulli(k2, 0.5, (n,)), factor, 1.0)
    return radius[:, None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], -1) + \
        noise * jax.random.normal(k3, (n, 2))


def _s_curve(key, n, noise):
    k1, k2 = jax.random.split(key)
    u = 3 * jnp.pi * (jax.random.uniform(k1, (n,)) - 0.5)
    points = jnp.stack([jnp.sin(u), jnp.sign(u) * (jnp.cos(u) - 1)], -1)
    return points + noise * jax.random.normal(k2, (n, 2))


def _swiss_roll(key, n, noise):
    k1, k2 = jax.random.split(key)
    u = 1.5 * jnp.pi * (1 + 2 * jax.random.uniform(k1, (n,)))
    return jnp.stack([u * jnp.cos(u), u * jnp.sin(u)], -1) + noise * jax.random.normal(k2, (n, 2))


def _eight_gaussians(key, n, radius, scale):
    k1, k2 = jax.random.split(key)
    angle = jax.random.randint(k1, (n,), 0, 8) * (TWO_PI / 8)
    centres = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
    return centres + scale * jax.random.normal(k2, (n, 2))


def _checkerboard(key, n):
    k1, k2, k3 = jax.random.split(key, 3)
    a = jax.random.uniform(k1, (n,)) * 4 - 2
    b = jax.random.uniform(k2, (n,)) - jax.random.randint(k3, (n,), 0, 2) * 2.0
    return jnp.stack([a, b + jnp.floor(a) % 2], -1)


def _gmm40(key, n):
    k1, k2 = jax.random.split(key)
    idx = jax.random.randint(k1, (n,), 0, 40)
    return jnp.asarray(gmm40_means())[idx] + GMM40_STD * jax.random.normal(k2, (n, 2))


def _funnel(key, n):
    k1, k2 = jax.random.split(key)
    v = 3 * jax.random.normal(k1, (n, 1))
    return jnp.concatenate([v, jnp.exp(v / 2) * jax.random.normal(k2, (n, 9))], -1)


def sampler(entry: dict, shape: tuple[int, ...], data=None):
    """A function (key, n) -> (n, *shape) drawing from the density ``entry`` (SPEC's base or
    target); ``data`` is the loaded array of a ``data(...)`` density."""
    name, args = entry["name"], entry["args"]
    dim = math.prod(shape)
    if name == "normal":
        mean = jnp.asarray(_vector(args["mean"], dim)).reshape(shape)
        scale = jnp.asarray(_vector(args["scale"], dim)).reshape(shape)
        return lambda key, n: mean + scale * jax.random.normal(key, (n,) + shape)
    if name == "data":
        pool = jnp.asarray(data)
        return lambda key, n: pool[jax.random.randint(key, (n,), 0, pool.shape[0])]
    toys = {"moons": lambda k, n: _moons(k, n, args["noise"]),
            "circles": lambda k, n: _circles(k, n, args["noise"], args["factor"]),
            "s_curve": lambda k, n: _s_curve(k, n, args["noise"]),
            "swiss_roll": lambda k, n: _swiss_roll(k, n, args["noise"]),
            "eight_gaussians": lambda k, n: _eight_gaussians(k, n, args["radius"], args["scale"]),
            "checkerboard": _checkerboard, "gmm40": _gmm40, "funnel": _funnel}
    if name in toys:
        return toys[name]
    raise TfmSemanticError(Diagnostic(
        "Semantic", f"The density '{name}' has no exact sampler, so it cannot be drawn from "
        "during training.", suggestion="Use data(\"file\") with samples of it, or another density."))


def log_prob(entry: dict, shape: tuple[int, ...]):
    """log density of the base for likelihoods: a function (n, *shape) -> (n,), or None."""
    if entry["name"] != "normal":
        return None
    dim = math.prod(shape)
    mean = jnp.asarray(_vector(entry["args"]["mean"], dim))
    scale = jnp.asarray(_vector(entry["args"]["scale"], dim))

    def logp(x):
        u = (x.reshape(x.shape[0], dim) - mean) / scale
        return -0.5 * jnp.sum(u * u, -1) - jnp.sum(jnp.log(scale)) - 0.5 * dim * math.log(2 * math.pi)
    return logp
