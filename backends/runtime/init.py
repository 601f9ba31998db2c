"""Initial network weights, drawn with numpy from the model's seed.

Both backends start from these arrays (a backend's own random generator is never used for
weights), so the same spec and seed give the same initial weights in JAX and in PyTorch.
Layouts follow PyTorch: a dense weight is (out, in), a convolution kernel (out, in, kh, kw);
names are ``<network>.<layer>.weight`` and ``<network>.<layer>.bias``. The layers a kind lists in
``zero(args, shape)`` (a flow's last layers, so that it starts as the identity) are drawn as the
others and then set to zero, so the draws of every other layer do not depend on them.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from .networks import NETWORKS, layer_plan


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


def init_params(networks, shape, seed: int) -> dict[str, np.ndarray]:
    params: dict[str, np.ndarray] = {}
    for net in networks:
        rng = _rng(seed, net.name)
        scalar = net.scalar
        kind = NETWORKS[net.kind]
        zero = set(kind.zero(net.args, tuple(shape)))
        for i, layer in enumerate(layer_plan(kind, net.args, tuple(shape), scalar)):
            if layer[0] == "conv":
                w, b = _conv(rng, *layer[1:])
            elif layer[0] == "norm":  # a norm's scale and shift: 1 and 0, no draws
                w, b = np.ones(layer[1], np.float32), np.zeros(layer[1], np.float32)
            else:
                w, b = _dense(rng, *layer[1:])
            if i in zero:
                w, b = np.zeros_like(w), np.zeros_like(b)
            params[f"{net.name}.{i}.weight"] = w
            params[f"{net.name}.{i}.bias"] = b
    return params
