"""Networks (t, x) -> field as ``nn.Module``s, the same functions as the JAX backend's.

- ``mlp``: t concatenated to the flattened x, ``depth`` hidden layers of ``width``;
- ``resmlp``: t and its sinusoidal features, then ``blocks`` residual blocks of two layers;
- ``convnet``: image-shaped x (C, H, W), t and its features as extra constant channels,
  ``depth`` 3x3 convolutions of ``channels`` and a 3x3 convolution back to C channels.
Each network is an ``nn.ModuleList`` of its layers inside an ``nn.ModuleDict``, so the weights are
named ``<network>.<layer>.weight`` as in shared/init.py and in checkpoints. With ``precision
bfloat16`` the matrix products and activations run in bfloat16 and the output is cast back to
float32 (the parameters stay float32: mixed precision), as in the JAX backend.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...shared.init import TIME_FEATURES, layer_sizes

ACTIVATIONS = {"silu": F.silu, "relu": F.relu, "gelu": lambda h: F.gelu(h, approximate="tanh"),
               "tanh": torch.tanh, "selu": F.selu, "elu": F.elu}  # gelu: jax.nn.gelu's default


def time_features(t):
    """(B,) -> (B, 1 + 2 K): t, sin(pi k t), cos(pi k t) for k = 1..K."""
    k = torch.arange(1, TIME_FEATURES + 1, dtype=t.dtype, device=t.device) * math.pi
    return torch.cat([t[:, None], torch.sin(t[:, None] * k), torch.cos(t[:, None] * k)], -1)


class Network(nn.ModuleList):
    """One network of SPEC's ``networks``: t (B,) or a number, x (B, *shape) -> (B, *shape),
    or (B,) for a scalar (potential) output."""

    def __init__(self, net: dict, shape: tuple[int, ...], dtype: torch.dtype):
        sizes = layer_sizes(net["kind"], net["args"], tuple(shape), net["output"] == "scalar")
        if net["kind"] == "convnet":
            super().__init__(nn.Conv2d(a, b, 3, padding=1) for a, b in sizes)
        else:
            super().__init__(nn.Linear(a, b) for a, b in sizes)
        self.kind, self.args, self.shape, self.dtype = net["kind"], net["args"], tuple(shape), dtype
        self.scalar = net["output"] == "scalar"
        self.act = ACTIVATIONS[self.args["activation"]]

    def _layer(self, i: int, h):
        layer = self[i]
        w, b = layer.weight, layer.bias
        if self.dtype != torch.float32:
            w, b = w.to(self.dtype), b.to(self.dtype)
        if self.kind == "convnet":
            return F.conv2d(h, w, b, padding=1)
        return F.linear(h, w, b)

    def forward(self, t, x):
        batch = x.shape[0]
        if not (isinstance(t, torch.Tensor) and t.shape == (batch,) and t.dtype == torch.float32):
            t = torch.as_tensor(t, dtype=torch.float32, device=x.device).reshape(-1).expand(batch)
        n = len(self)
        if self.kind == "convnet":
            feats = time_features(t)[:, :, None, None]
            h = torch.cat([x.float(), feats.expand((batch, feats.shape[1]) + self.shape[1:])], 1)
            h = h.to(self.dtype)
            for i in range(n - 1):
                h = self.act(self._layer(i, h))
            y = self._layer(n - 1, h).float()
            return y.sum(dim=(1, 2, 3)) if self.scalar else y
        flat = x.reshape(batch, math.prod(self.shape)).to(torch.float32)
        if self.kind == "mlp":
            h = torch.cat([flat, t[:, None]], -1).to(self.dtype)
            for i in range(n - 1):
                h = self.act(self._layer(i, h))
        else:  # resmlp
            h = torch.cat([flat, time_features(t)], -1).to(self.dtype)
            h = self._layer(0, h)
            for blk in range(self.args["blocks"]):
                r = self._layer(1 + 2 * blk, self.act(h))
                h = h + self._layer(2 + 2 * blk, self.act(r))
            h = self.act(h)
        y = self._layer(n - 1, h).to(torch.float32)
        return y[:, 0] if self.scalar else y.reshape((batch,) + self.shape)


def compute_dtype(spec: dict) -> torch.dtype:
    return torch.bfloat16 if spec["train"]["precision"] == "bfloat16" else torch.float32


def build(spec: dict) -> nn.ModuleDict:
    """The model's networks, keyed by name (their weights are set from shared/init.py by the
    runtime, not by torch's initialisers)."""
    shape, dtype = tuple(spec["shape"]), compute_dtype(spec)
    return nn.ModuleDict({net["name"]: Network(net, shape, dtype) for net in spec["networks"]})


def outputs(spec: dict, nets: nn.ModuleDict, t, x) -> dict:
    """Every network's output keyed as the emitted functions expect (``grad_NAME`` for a
    potential network: the gradient in x of its scalar output, by ``torch.func.grad``, which
    composes with training's backward pass and with the likelihood's ``jacfwd``)."""
    out = {}
    for net in spec["networks"]:
        module = nets[net["name"]]
        if net["output"] == "scalar":
            out[net["key"]] = torch.func.grad(lambda y, m=module: m(t, y).sum())(x)
        else:
            out[net["key"]] = module(t, x)
    return out
