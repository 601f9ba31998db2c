"""Densities drawn on the device: the prelude's ``normal`` and ``data``, the toy2d generators,
and the stdlib targets with exact samplers. ``sampler(spec_entry, ...)`` returns a function
``(gen, n) -> (n, *shape)`` float32 on the sampler's device, drawing only from the
``torch.Generator`` ``gen`` (which lives on that device), never from the global generator.

Toy generators follow scikit-learn's and the flow-matching literature's, with random angles in
place of scikit-learn's evenly spaced ones: moons (two interleaved half circles), circles,
s_curve and swiss_roll (the (x, z) coordinates of the 3-D manifolds), eight_gaussians,
checkerboard. They are the JAX runtime's, term for term: both backends draw from the same law
(not the same numbers).
"""

from __future__ import annotations

import math

import torch

from ....dsl.diagnostics import Diagnostic, TfmSemanticError
from ...shared.densities import GMM40_STD, _vector, gmm40_means

TWO_PI = 2 * math.pi
F32 = torch.float32


def _uniform(gen, n, device):
    return torch.rand((n,), generator=gen, device=device, dtype=F32)


def _normal(gen, shape, device):
    return torch.randn(shape, generator=gen, device=device, dtype=F32)


def _coin(gen, n, device):
    """n fair Bernoulli draws, as booleans."""
    return _uniform(gen, n, device) < 0.5


def _randint(gen, n, high, device):
    return torch.randint(0, high, (n,), generator=gen, device=device)


def _moons(gen, n, noise, device):
    theta = _uniform(gen, n, device) * math.pi
    inner = _coin(gen, n, device)[:, None]
    outer = torch.stack([torch.cos(theta), torch.sin(theta)], -1)
    # the inner moon is the outer one turned by pi about (0.5, 0.25): (1, 0.5) - outer
    points = torch.where(inner, torch.cat([1 - outer[:, :1], 0.5 - outer[:, 1:]], -1), outer)
    return points + noise * _normal(gen, (n, 2), device)


def _circles(gen, n, noise, factor, device):
    theta = _uniform(gen, n, device) * TWO_PI
    radius = torch.where(_coin(gen, n, device), float(factor), 1.0).to(F32)
    return radius[:, None] * torch.stack([torch.cos(theta), torch.sin(theta)], -1) + \
        noise * _normal(gen, (n, 2), device)


def _s_curve(gen, n, noise, device):
    u = 3 * math.pi * (_uniform(gen, n, device) - 0.5)
    points = torch.stack([torch.sin(u), torch.sign(u) * (torch.cos(u) - 1)], -1)
    return points + noise * _normal(gen, (n, 2), device)


def _swiss_roll(gen, n, noise, device):
    u = 1.5 * math.pi * (1 + 2 * _uniform(gen, n, device))
    return torch.stack([u * torch.cos(u), u * torch.sin(u)], -1) + noise * _normal(gen, (n, 2), device)


def _eight_gaussians(gen, n, radius, scale, device):
    angles = torch.arange(8, device=device, dtype=F32) * (TWO_PI / 8)
    centres = radius * torch.stack([torch.cos(angles), torch.sin(angles)], -1)
    return centres[_randint(gen, n, 8, device)] + scale * _normal(gen, (n, 2), device)


def _checkerboard(gen, n, device):
    a = _uniform(gen, n, device) * 4 - 2
    b = _uniform(gen, n, device) - _randint(gen, n, 2, device).to(F32) * 2.0
    return torch.stack([a, b + torch.remainder(torch.floor(a), 2)], -1)


def _gmm40(gen, n, means):
    idx = _randint(gen, n, 40, means.device)
    return means[idx] + GMM40_STD * _normal(gen, (n, 2), means.device)


def _funnel(gen, n, device):
    v = 3 * _normal(gen, (n, 1), device)
    return torch.cat([v, torch.exp(v / 2) * _normal(gen, (n, 9), device)], -1)


def sampler(entry: dict, shape: tuple[int, ...], data=None, device="cpu"):
    """A function (gen, n) -> (n, *shape) drawing from the density ``entry`` (SPEC's base or
    target) on ``device``; ``data`` is the loaded array of a ``data(...)`` density (copied to
    the device once, here)."""
    name, args = entry["name"], entry["args"]
    shape = tuple(shape)
    dim = math.prod(shape)
    device = torch.device(device)
    if name == "normal":
        mean = torch.as_tensor(_vector(args["mean"], dim), device=device).reshape(shape)
        scale = torch.as_tensor(_vector(args["scale"], dim), device=device).reshape(shape)
        return lambda gen, n: mean + scale * _normal(gen, (n,) + shape, device)
    if name == "data":
        pool = torch.as_tensor(data, dtype=F32, device=device)
        return lambda gen, n: pool[_randint(gen, n, pool.shape[0], device)]
    if name == "gmm40":
        means = torch.as_tensor(gmm40_means(), device=device)
        return lambda gen, n: _gmm40(gen, n, means)
    toys = {"moons": lambda g, n: _moons(g, n, args["noise"], device),
            "circles": lambda g, n: _circles(g, n, args["noise"], args["factor"], device),
            "s_curve": lambda g, n: _s_curve(g, n, args["noise"], device),
            "swiss_roll": lambda g, n: _swiss_roll(g, n, args["noise"], device),
            "eight_gaussians": lambda g, n: _eight_gaussians(g, n, args["radius"], args["scale"], device),
            "checkerboard": lambda g, n: _checkerboard(g, n, device),
            "funnel": lambda g, n: _funnel(g, n, device)}
    if name in toys:
        return toys[name]
    raise TfmSemanticError(Diagnostic(
        "Semantic", f"The density '{name}' has no exact sampler, so it cannot be drawn from "
        "during training.", suggestion="Use data(\"file\") with samples of it, or another density."))


def log_prob(entry: dict, shape: tuple[int, ...], device="cpu"):
    """log density of the base for likelihoods: a function (n, *shape) -> (n,), or None."""
    if entry["name"] != "normal":
        return None
    dim = math.prod(shape)
    mean = torch.as_tensor(_vector(entry["args"]["mean"], dim), device=device)
    scale = torch.as_tensor(_vector(entry["args"]["scale"], dim), device=device)
    log_norm = torch.sum(torch.log(scale)) + 0.5 * dim * math.log(2 * math.pi)

    def logp(x):
        u = (x.reshape(x.shape[0], dim) - mean) / scale
        return -0.5 * torch.sum(u * u, -1) - log_norm
    return logp
