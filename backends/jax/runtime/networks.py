"""The JAX side of the networks (``runtime/networks.py`` holds their forward passes): layers as
pure functions of a flat weight dict (``<network>.<i>.weight|bias``, PyTorch layouts), and the
outputs of every network of a model, a potential network's being the gradient in x of its
scalar output; a flow's two passes (``push``, ``pull``), which have no output at (t, x)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ...runtime import networks
from . import conv
from .ops import exact_matmul

ACTIVATIONS = {"silu": jax.nn.silu, "relu": jax.nn.relu, "gelu": jax.nn.gelu,
               "tanh": jnp.tanh, "selu": jax.nn.selu, "elu": jax.nn.elu}


class Layers:
    """Layer i of network ``name`` on the weights ``params``, computing in ``dtype``."""

    def __init__(self, net, params: dict, dtype):
        self.name, self.params, self.dtype = net.name, params, dtype
        self.act = ACTIVATIONS[net.args["activation"]]

    def layer(self, i: int, h):
        w = self.params[f"{self.name}.{i}.weight"].astype(self.dtype)
        b = self.params[f"{self.name}.{i}.bias"].astype(self.dtype)
        if w.ndim == 4:  # a convolution (out, in, kh, kw)
            return conv.conv2d(h, w) + b[None, :, None, None]
        return h @ w.T + b

    def weight(self, i: int):
        """Layer i's weight as stored (float32, PyTorch layout), for maps built from it."""
        return self.params[f"{self.name}.{i}.weight"]

    def bias(self, i: int):
        return self.params[f"{self.name}.{i}.bias"]

    @staticmethod
    def divergence(f, u):
        """f(u) and the trace of its Jacobian at each point of u (B, d), for f mapping (B, d) to
        (B, d) point by point: one linearisation per point, d forward-mode derivatives under
        vmap; differentiable (a cnf flow's log-determinant)."""
        eye = jnp.eye(u.shape[1], dtype=u.dtype)

        def single(ui):
            y, tangent = jax.linearize(lambda y: f(y[None])[0], ui)
            return y, jnp.trace(jax.vmap(tangent)(eye))
        return jax.vmap(single)(u)

    @staticmethod
    def jvp(f, u, v):
        """f(u) and its Jacobian-vector product with v (both (B, d))."""
        return jax.jvp(f, (u,), (v,))

    @staticmethod
    def stop_gradient(h):
        return jax.lax.stop_gradient(h)

    matmul = staticmethod(exact_matmul)  # a @ b in full float32 precision

    @staticmethod
    def cast(h, dtype):
        return h.astype(dtype)

    @staticmethod
    def constant(values):
        return jnp.asarray(values)


def apply(net, params: dict, t, x, shape, dtype=jnp.float32, seeds=None, labels=None):
    """The network's output at (t, x) for a batch: t (B,) or a number, x (B, *shape);
    ``seeds``: a training pass's dropout seeds (runtime/dropout.py); ``labels`` (B,): the
    classes of a conditioned network's examples (docs/conditional.md)."""
    t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (x.shape[0],))
    return networks.forward(jnp, Layers(net, params, dtype), net, shape, t, x, seeds, labels)


def flow_map(net, params: dict, s, t, x, shape, dtype=jnp.float32):
    """A flow map's X_{s,t}(x) for a batch: s, t (B,) or numbers, x (B, *shape)."""
    s, t = (jnp.broadcast_to(jnp.asarray(v, jnp.float32), (x.shape[0],)) for v in (s, t))
    return networks.flow_map(jnp, Layers(net, params, dtype), net, tuple(shape), s, t, x)


class Outputs:
    """Every network's output at (t, x) on ``weights`` (``outputs``), called as a function;
    ``weights`` is kept for what else the objective evaluates (a flow map at two times)."""

    def __init__(self, spec, weights: dict, dtype=jnp.float32, user=None, guidance: float = 0.0):
        self.spec, self.weights, self.dtype, self.user = spec, weights, dtype, user
        self.guidance = guidance

    def __call__(self, t, x, seeds=None, labels=None) -> dict:
        """The outputs at (t, x); with labels given here (training) or among the weights (a
        sampling pass, ``networks.LABELS``), for those classes, guided by ``guidance``."""
        if labels is None:
            labels = self.weights.get(networks.LABELS)
        return networks.conditioned_outputs(
            lambda y: outputs(self.spec, self.weights, t, x, self.dtype, self.user, seeds, y),
            labels, self.guidance)


def push(net, params: dict, z, shape, dtype=jnp.float32):
    """Flow ``net``'s map of base points z (B, *shape): (x, log|det dx/dz|) with logdet (B,)."""
    return networks.push(jnp, Layers(net, params, dtype), net, tuple(shape), z)


def pull(net, params: dict, x, shape, dtype=jnp.float32, probe=None):
    """Flow ``net``'s inverse map of x (B, *shape): (z, log|det dz/dx|) with logdet (B,)
    (estimated with Hutchinson's ``probe`` where a cnf flow is given one)."""
    return networks.pull(jnp, Layers(net, params, dtype), net, tuple(shape), x, probe)


def flow_matching(net, params: dict, t, z, x, shape, dtype=jnp.float32):
    """A cnf flow's flow-matching prediction and target at times t (B,), latents z and target
    samples x (B, *shape)."""
    return networks.flow_matching(jnp, Layers(net, params, dtype), net, tuple(shape), t, z, x)


def outputs(spec, params: dict, t, x, dtype=jnp.float32, user=None, seeds=None,
            labels=None) -> dict:
    """Every network's output keyed as the emitted functions expect (``grad_NAME`` for a
    potential network: the gradient in x of its scalar output); flows and distilled flow maps
    have none (``networks.has_output``). ``user``: the networks passed through the API, by name
    (user_networks.py). ``seeds``: a training pass's dropout seeds (runtime/dropout.py);
    ``labels``: the examples' classes (a conditioned model; default: none)."""
    out = {}
    shape, user = tuple(spec.shape), user or {}
    for net in spec.networks:
        if not networks.has_output(net):
            continue
        if net.name in user:
            def call(y, own=user[net.name]):
                return own(params, t, y)
        else:
            def call(y, net=net):
                return apply(net, params, t, y, shape, dtype, seeds, labels)
        if net.scalar:
            out[net.key] = jax.grad(lambda y, call=call: call(y).sum())(x)
        else:
            out[net.key] = call(x)
    return out
