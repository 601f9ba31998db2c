"""Densities, written once for both backends: the prelude's ``normal`` and ``data``, the toy2d
generators and the stdlib targets with exact samplers, each registered under its prelude name.

A density's ``draw(ops, args, shape, data)`` returns ``(rng, n) -> (n, *shape)`` float32 on the
backend's device (``data``: the loaded array of a ``data(...)`` density); ``log_prob(ops, args,
shape)``, where the density has one in closed form, returns ``x (n, *shape) -> (n,)``.

Draws follow the discipline of ``ops.Random``: a density that draws more than once splits its
stream first. Toy generators follow scikit-learn's and the flow-matching literature's, with random angles in
place of scikit-learn's evenly spaced ones: moons (two interleaved half circles), circles,
s_curve and swiss_roll (the (x, z) coordinates of the 3-D manifolds), eight_gaussians,
checkerboard. Both backends draw from the same law, not the same numbers. The sampling targets
of ``stdlib.targets`` (energies, exact samplers, log Z) are in ``targets.py``, registered here
when this module is imported.
"""

from __future__ import annotations

import math
from typing import Callable

import attrs
import numpy as np

from ...errors import Diagnostic, TfmSemanticError
from .kinds import Registry

TWO_PI = 2 * math.pi


@attrs.frozen
class Density:
    """A density kind: ``draw`` (an exact sampler's factory), ``log_prob`` (the factory of its
    normalised log-density), ``energy`` (the factory of an energy U with density proportional
    to exp(-U), for targets known up to a constant) and ``log_Z`` (args -> log of the integral
    of exp(-U), where it is known), each None where the density has none. A density with a
    ``log_prob`` and no ``energy`` has the energy -log_prob and log Z = 0."""

    draw: Callable | None = None
    log_prob: Callable | None = None
    reads_file: bool = False  # its samples come from a data file (args path, key)
    energy: Callable | None = None
    log_Z: Callable | None = None


DENSITIES: Registry[Density] = Registry("density")


def vector(value, dim: int) -> np.ndarray:
    """A density's scalar or per-coordinate argument (a normal's mean or scale) over ``dim``
    coordinates."""
    array = np.asarray(value, dtype=np.float32).reshape(-1)
    return np.broadcast_to(array, (dim,)).copy() if array.size == 1 else array


def _kind(entry) -> Density:
    """The kind of the density ``entry``; a prelude density the runtime does not implement (an
    energy, a target known only by its energy) has neither a sampler nor a log-density."""
    return DENSITIES[entry.name] if entry.name in DENSITIES else Density()


def sampler(ops, entry, shape: tuple[int, ...], data=None):
    """(rng, n) -> (n, *shape): draws from the density ``entry`` (a spec Call)."""
    kind = _kind(entry)
    if kind.draw is None:
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"The density '{entry.name}' has no exact sampler, so it cannot be drawn "
            "from during training.", suggestion="Use data(\"file\") with samples of it, or "
            "another density."))
    return kind.draw(ops, entry.args, tuple(shape), data)


def reads_file(entry) -> bool:
    """Whether the density ``entry`` draws from a data file."""
    return _kind(entry).reads_file


def log_prob(ops, entry, shape: tuple[int, ...]):
    """x (n, *shape) -> log density (n,) of ``entry``, or None where it has no closed form."""
    kind = _kind(entry)
    return kind.log_prob(ops, entry.args, tuple(shape)) if kind.log_prob else None


def energy(ops, entry, shape: tuple[int, ...]):
    """x (n, *shape) -> U(x) (n,) of the density ``entry`` (exp(-U) proportional to it), or
    None where it has neither an energy nor a log-density."""
    kind = _kind(entry)
    if kind.energy is not None:
        return kind.energy(ops, entry.args, tuple(shape))
    if kind.log_prob is not None:
        logp = kind.log_prob(ops, entry.args, tuple(shape))
        return lambda x: -logp(x)
    return None


def log_Z(entry) -> float | None:
    """log of the integral of exp(-U) for the energy ``energy(entry)`` gives, where known."""
    kind = _kind(entry)
    if kind.energy is not None:
        return None if kind.log_Z is None else float(kind.log_Z(entry.args))
    return 0.0 if kind.log_prob is not None else None


def has_log_prob(entry) -> bool:
    """Whether the density ``entry`` has a closed-form log-density."""
    return _kind(entry).log_prob is not None


def _normal_draw(ops, args, shape, data):
    dim = math.prod(shape)
    mean = ops.asarray(vector(args["mean"], dim).reshape(shape))
    scale = ops.asarray(vector(args["scale"], dim).reshape(shape))
    return lambda rng, n: mean + scale * rng.normal((n,) + shape)


def _normal_log_prob(ops, args, shape):
    xp, dim = ops.xp, math.prod(shape)
    mean, scale = vector(args["mean"], dim), vector(args["scale"], dim)
    log_norm = float(np.sum(np.log(scale.astype(np.float64)))) + 0.5 * dim * math.log(TWO_PI)
    mean, scale = ops.asarray(mean), ops.asarray(scale)

    def logp(x):
        u = (xp.reshape(x, (x.shape[0], dim)) - mean) / scale
        return -0.5 * xp.sum(u * u, axis=-1) - log_norm
    return logp


def _box_draw(ops, args, shape, data):
    dim = math.prod(shape)
    low = ops.asarray(vector(args["low"], dim).reshape(shape))
    high = ops.asarray(vector(args["high"], dim).reshape(shape))
    return lambda rng, n: low + (high - low) * rng.uniform((n,) + shape)


def _box_log_prob(ops, args, shape):
    xp, dim = ops.xp, math.prod(shape)
    low, high = vector(args["low"], dim), vector(args["high"], dim)
    log_volume = float(np.sum(np.log((high - low).astype(np.float64))))
    low, high = ops.asarray(low), ops.asarray(high)

    def logp(x):
        flat = xp.reshape(x, (x.shape[0], dim))
        inside = xp.all((flat >= low) & (flat <= high), axis=-1)
        return xp.where(inside, -log_volume, -math.inf)
    return logp


def _data_draw(ops, args, shape, data):
    pool = ops.asarray(data)  # copied to the device once, here
    return lambda rng, n: pool[rng.randint(pool.shape[0], (n,))]


def _toy(draw: Callable) -> Density:
    """A 2-D density given by ``draw(ops.xp, rng, n, **args)``."""
    return Density(draw=lambda ops, args, shape, data: (
        lambda rng, n: draw(ops.xp, rng, n, **args)))


def _coin(rng, n):
    """n fair Bernoulli draws, as booleans."""
    return rng.uniform((n,)) < 0.5


def _moons(xp, rng, n, noise):
    k_angle, k_moon, k_noise = rng.split(3)
    theta = k_angle.uniform((n,)) * math.pi
    inner = _coin(k_moon, n)[:, None]
    outer = xp.stack([xp.cos(theta), xp.sin(theta)], axis=-1)
    # the inner moon is the outer one turned by pi about (0.5, 0.25): (1, 0.5) - outer
    turned = xp.concat([1 - outer[:, :1], 0.5 - outer[:, 1:]], axis=-1)
    return xp.where(inner, turned, outer) + noise * k_noise.normal((n, 2))


def _circles(xp, rng, n, noise, factor):
    k_angle, k_ring, k_noise = rng.split(3)
    theta = k_angle.uniform((n,)) * TWO_PI
    radius = xp.where(_coin(k_ring, n), float(factor), 1.0)
    ring = xp.stack([xp.cos(theta), xp.sin(theta)], axis=-1)
    return radius[:, None] * ring + noise * k_noise.normal((n, 2))


def _s_curve(xp, rng, n, noise):
    k_u, k_noise = rng.split(2)
    u = 3 * math.pi * (k_u.uniform((n,)) - 0.5)
    points = xp.stack([xp.sin(u), xp.sign(u) * (xp.cos(u) - 1)], axis=-1)
    return points + noise * k_noise.normal((n, 2))


def _swiss_roll(xp, rng, n, noise):
    k_u, k_noise = rng.split(2)
    u = 1.5 * math.pi * (1 + 2 * k_u.uniform((n,)))
    return xp.stack([u * xp.cos(u), u * xp.sin(u)], axis=-1) + noise * k_noise.normal((n, 2))


def _eight_gaussians(ops, args, shape, data):
    angles = np.arange(8) * (TWO_PI / 8)
    centres = ops.asarray(float(args["radius"]) * np.stack([np.cos(angles), np.sin(angles)], -1))
    scale = float(args["scale"])
    def draw(rng, n):
        k_centre, k_noise = rng.split(2)
        return centres[k_centre.randint(8, (n,))] + scale * k_noise.normal((n, 2))
    return draw


def _checkerboard(xp, rng, n):
    k_a, k_b, k_row = rng.split(3)
    a = k_a.uniform((n,)) * 4 - 2
    b = k_b.uniform((n,)) - xp.astype(k_row.randint(2, (n,)), xp.float32) * 2.0
    return xp.stack([a, b + xp.remainder(xp.floor(a), 2)], axis=-1)


DENSITIES.register("normal")(Density(_normal_draw, _normal_log_prob))
DENSITIES.register("data")(Density(_data_draw, reads_file=True))
DENSITIES.register("box")(Density(_box_draw, _box_log_prob))
DENSITIES.register("moons")(_toy(_moons))
DENSITIES.register("circles")(_toy(_circles))
DENSITIES.register("s_curve")(_toy(_s_curve))
DENSITIES.register("swiss_roll")(_toy(_swiss_roll))
DENSITIES.register("eight_gaussians")(Density(_eight_gaussians))
DENSITIES.register("checkerboard")(_toy(_checkerboard))

from . import targets  # noqa: E402,F401  (registers the stdlib targets; it imports this module)
