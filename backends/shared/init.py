"""Initial network weights, drawn with numpy from the model's seed.

Both backends start from these arrays (a backend's own random generator is never used for
weights), so the same spec and seed give the same initial weights in JAX and in PyTorch.
Layouts follow PyTorch: a dense weight is (out, in), a convolution kernel (out, in, kh, kw);
names are ``<network>.<layer>.weight`` and ``<network>.<layer>.bias``.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

TIME_FEATURES = 8  # sinusoidal time features of resmlp and convnet: sin, cos of pi k t, k=1..8


def _rng(seed: int, network: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, zlib.crc32(network.encode())]))


def _dense(rng, fan_in: int, fan_out: int) -> tuple[np.ndarray, np.ndarray]:
    # PyTorch's default for nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
    bound = 1 / math.sqrt(fan_in)
    return (rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32),
            rng.uniform(-bound, bound, (fan_out,)).astype(np.float32))


def _conv(rng, c_in: int, c_out: int, k: int = 3):
    bound = 1 / math.sqrt(c_in * k * k)
    return (rng.uniform(-bound, bound, (c_out, c_in, k, k)).astype(np.float32),
            rng.uniform(-bound, bound, (c_out,)).astype(np.float32))


def layer_sizes(kind: str, args: dict, shape: tuple[int, ...], scalar: bool) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of each dense layer, or channels of each convolution."""
    dim = math.prod(shape)
    out = 1 if scalar else dim
    if kind == "mlp":
        w, depth = args["width"], args["depth"]
        return [(dim + 1, w)] + [(w, w)] * (depth - 1) + [(w, out)]
    if kind == "resmlp":
        w, blocks = args["width"], args["blocks"]
        return [(dim + 1 + 2 * TIME_FEATURES, w)] + [(w, w)] * (2 * blocks) + [(w, out)]
    if kind == "convnet":
        c, depth = args["channels"], args["depth"]
        channels = shape[0]
        sizes = [(channels + 1 + 2 * TIME_FEATURES, c)] + [(c, c)] * (depth - 1)
        return sizes + [(c, 1 if scalar else channels)]
    raise ValueError(f"unknown network kind {kind}")


def init_params(networks: list[dict], shape, seed: int) -> dict[str, np.ndarray]:
    params: dict[str, np.ndarray] = {}
    for net in networks:
        rng = _rng(seed, net["name"])
        scalar = net["output"] == "scalar"
        for i, (fan_in, fan_out) in enumerate(layer_sizes(net["kind"], net["args"], tuple(shape),
                                                          scalar)):
            if net["kind"] == "convnet":
                w, b = _conv(rng, fan_in, fan_out)
            else:
                w, b = _dense(rng, fan_in, fan_out)
            params[f"{net['name']}.{i}.weight"] = w
            params[f"{net['name']}.{i}.bias"] = b
    return params
