"""The PyTorch side of the networks (``runtime/networks.py`` holds their forward passes): each
network an ``nn.ModuleList`` of its layers (``nn.Linear`` or ``nn.Conv2d``) inside an
``nn.ModuleDict``, so the weights are named ``<network>.<layer>.weight`` as in runtime/init.py
and in checkpoints; the module is the shared forward pass's ``Layers``. With ``precision
bfloat16`` the products and activations run in bfloat16 with float32 weights, as in JAX. A
flow's module maps points both ways (``push``, ``pull``) and has no output at (t, x)."""

from __future__ import annotations

import functools

import array_api_compat.torch as xp
import torch
import torch.nn.functional as F
from torch import nn

from ...runtime import dropout, networks
from .ops import exact_matmul

ACTIVATIONS = {"silu": F.silu, "relu": F.relu, "gelu": lambda h: F.gelu(h, approximate="tanh"),
               "tanh": torch.tanh, "selu": F.selu, "elu": F.elu}  # gelu: jax.nn.gelu's default


class Network(nn.ModuleList):
    """One network of the spec: t (B,) or a number, x (B, *shape) -> (B, *shape), or (B,) for a
    scalar (potential) output; a flow: x (B, *shape) -> (points, logdet) (``forward(x,
    inverse)``, ``push``, ``pull``)."""

    def __init__(self, net, shape: tuple[int, ...], dtype: torch.dtype):
        kind = networks.NETWORKS[net.kind]
        super().__init__(_module(layer) for layer in
                         networks.layer_plan(kind, net.args, tuple(shape), net.scalar))
        self.net, self.kind, self.shape, self.dtype = net, kind, tuple(shape), dtype
        self.act = ACTIVATIONS[net.args["activation"]]

    def layer(self, i: int, h):
        layer = self[i]
        w, b = layer.weight, layer.bias
        if self.dtype != torch.float32:
            w, b = w.to(self.dtype), b.to(self.dtype)
        if w.ndim == 4:  # a convolution (out, in, kh, kw), "same" padding
            return F.conv2d(h, w, b, padding=w.shape[-1] // 2)
        return F.linear(h, w, b)

    def weight(self, i: int):
        """Layer i's weight as stored (float32), for maps built from it."""
        return self[i].weight

    def bias(self, i: int):
        return self[i].bias

    @staticmethod
    def divergence(f, u):
        """f(u) and the trace of its Jacobian at each point of u (B, d), for f mapping (B, d) to
        (B, d) point by point: reverse mode per point under vmap, differentiable in the
        weights (a cnf flow's log-determinant)."""
        def single(ui):
            y = f(ui[None])[0]
            return y, y
        jac, y = torch.func.vmap(torch.func.jacrev(single, has_aux=True))(u)
        return y, torch.diagonal(jac, dim1=-2, dim2=-1).sum(-1)

    @staticmethod
    def jvp(f, u, v):
        """f(u) and its Jacobian-vector product with v (both (B, d))."""
        return torch.func.jvp(f, (u,), (v,))

    @staticmethod
    def stop_gradient(h):
        return h.detach()

    matmul = staticmethod(exact_matmul)  # a @ b in full float32 precision

    @staticmethod
    def cast(h, dtype):
        return h.to(dtype)

    def constant(self, values):
        return torch.as_tensor(values, device=self[0].weight.device)

    def push(self, z):
        """A flow's map of base points z (B, *shape): (x, log|det dx/dz|) with logdet (B,)."""
        return self.kind.flow.push(xp, self, self.net.args, self.shape, z)

    def pull(self, x, probe=None):
        """A flow's inverse map of x (B, *shape): (z, log|det dz/dx|) with logdet (B,)
        (estimated with Hutchinson's ``probe`` where a cnf flow is given one)."""
        return networks.pull(xp, self, self.net, self.shape, x, probe)

    def forward(self, *inputs, s=None, seeds=None, labels=None):
        """``forward(t, x)``: a field network's output (a flow map's: its velocity);
        ``forward(t, x, s=s)``: a flow map's X_{s,t}(x); ``forward(x, inverse=False)``: a
        flow's ``pull(x)`` if inverse else its ``push(x)`` (so
        ``torch.func.functional_call(module, weights, (x, inverse))`` runs either pass on other
        weights). ``seeds``: a training pass's dropout seeds (runtime/dropout.py); ``labels``:
        the examples' classes, for a network conditioned on labels (docs/conditional.md)."""
        if self.kind.flow is not None:
            return self._flow(*inputs)
        t, x = inputs
        t = _batch_times(t, x)
        if s is not None:
            return networks.flow_map(xp, self, self.net, self.shape, _batch_times(s, x), t, x)
        return networks.forward(xp, self, self.net, self.shape, t, x, seeds, labels)

    def _flow(self, x, inverse: bool = False, probe=None, time=None, data=None):
        if not isinstance(inverse, bool):
            raise TypeError(f"network '{self.net.name}' is a {self.net.kind} flow: it is called "
                            "as (x, inverse), not (t, x)")
        if time is not None:  # a cnf's flow-matching pair at (time, latents x, samples data)
            return networks.flow_matching(xp, self, self.net, self.shape, time, x, data)
        return self.pull(x, probe) if inverse else self.push(x)


def _batch_times(t, x):
    """A time (a number, or (B,)) as a float32 tensor of shape (B,)."""
    batch = x.shape[0]
    if isinstance(t, torch.Tensor) and t.shape == (batch,) and t.dtype == torch.float32:
        return t
    return torch.as_tensor(t, dtype=torch.float32, device=x.device).reshape(-1).expand(batch)


class _Norm(nn.Module):
    """A norm layer's scale and shift (the normalisation itself is in runtime/unet.py)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))


def _module(layer: tuple) -> nn.Module:
    """The module holding one layer of ``networks.layer_plan`` (its weights are set from
    runtime/init.py)."""
    if layer[0] == "conv":
        return nn.Conv2d(layer[1], layer[2], layer[3], padding=layer[3] // 2)
    if layer[0] == "norm":
        return _Norm(layer[1])
    return nn.Linear(layer[1], layer[2])


def compute_dtype(spec) -> torch.dtype:
    return torch.bfloat16 if spec.train.precision == "bfloat16" else torch.float32


def build(spec) -> nn.ModuleDict:
    """The model's networks, keyed by name (their weights are set from runtime/init.py by the
    runtime, not by torch's initialisers)."""
    shape, dtype = tuple(spec.shape), compute_dtype(spec)
    return nn.ModuleDict({net.name: Network(net, shape, dtype) for net in spec.networks})


def outputs(spec, nets: nn.ModuleDict, t, x, seeds=None, labels=None) -> dict:
    """Every network's output keyed as the emitted functions expect (``grad_NAME`` for a
    potential network: the gradient in x of its scalar output, by ``torch.func.grad``, which
    composes with training's backward pass and with the likelihood's ``jacfwd``); flows and
    distilled flow maps have none (``networks.has_output``). ``seeds``: a training pass's
    dropout seeds (runtime/dropout.py), for the networks with dropout; ``labels``: the
    examples' classes (a model conditioned on labels; default: none)."""
    out = {}
    for net in spec.networks:
        if not networks.has_output(net):
            continue
        module = nets[net.name]
        if seeds is not None and dropout.rate(net) > 0:  # user modules take no seeds
            module = functools.partial(module, seeds=seeds)
        if labels is not None:
            module = functools.partial(module, labels=labels)
        if net.scalar:
            out[net.key] = torch.func.grad(lambda y, m=module: m(t, y).sum())(x)
        else:
            out[net.key] = module(t, x)
    return out
