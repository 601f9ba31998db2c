"""Networks, written once for both backends and registered under their prelude names: each kind
gives its layer sizes (from which ``init.py`` draws the initial weights) and its passes, written
with ``ops.xp`` and the backend's ``Layers``. Field networks (t, x) -> field:

- ``mlp``: t concatenated to the flattened x, ``depth`` hidden layers of ``width``;
- ``resmlp``: t and its sinusoidal features, then ``blocks`` residual blocks of two layers;
- ``convnet``: image-shaped x (C, H, W), t and its features as extra constant channels,
  ``depth`` 3x3 convolutions of ``channels`` and a 3x3 convolution back to C channels;
- ``unet`` (``unet.py``): the time-conditioned U-Net of image diffusion models.

A field network of a model whose target carries class labels (the spec's ``classes``
argument, docs/conditional.md) also takes each example's label, as a one-hot vector of
``classes + 1`` entries (the last: no label, which classifier-free guidance trains): ``mlp``
and ``resmlp`` concatenate it to their input, ``convnet`` adds it as constant channels, ``unet``
to the input of its time embedding. ``forward`` gives a network without labels the "no label"
entry.

A field network trained as a flow map (docs/fewstep.md; the spec's ``times`` argument is 2)
takes two times (s, t) wherever it otherwise takes t: ``mlp`` concatenates both to x, the others
take each time's features; ``flow_map`` gives X_{s,t}(x) = x + (t - s) v(s, t, x), and the
network's output at (t, x) is its velocity v(t, t, x).

Normalizing flows (``flows/``: no time, no field output; an invertible map z -> x of the sample
shape with its exact log-determinant both ways, ``push`` and ``pull``):

- ``realnvp``: ``layers`` affine coupling layers (Dinh et al., RealNVP), each conditioned by an
  MLP of ``depth`` hidden layers of ``width`` on the coordinates it keeps;
- ``spline``: ``layers`` rational-quadratic spline coupling layers of ``bins`` bins on
  [-``bound``, ``bound``], identity outside (Durkan et al., neural spline flows);

both alternate the transformed coordinates by ``mask`` (``alternating``, ``checkerboard``, or
``learned``: a learned invertible linear mixing of the coordinates before each coupling layer)
and end in a learned elementwise affine layer; their last layers (and mixing layers) start at
zero, so a flow starts as the identity.

A backend's ``Layers`` applies layer i of a network (``layer(i, h)``: a dense layer, or a k x k
convolution with "same" padding where the weight is 4-D, on the weights named
``<network>.<i>.weight|bias``), its
activation (``act``), casts (``cast(h, dtype)``; ``dtype`` the compute dtype) and places
constants (``constant(array)``); ``weight(i)`` and ``bias(i)`` give layer i's float32 weights
as stored (a flow's mixing layers), ``matmul(a, b)`` a float32 product in full precision (not
TF32 on a GPU); with ``precision bfloat16`` the products
and activations run in bfloat16 and the output is cast back to float32 (the weights stay
float32: mixed precision). A potential network (``output = scalar``) ends in one unit (or one
channel summed over the image).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import attrs
import numpy as np

from . import dropout
from .kinds import Registry

if TYPE_CHECKING:
    from .flows import FlowPasses

TIME_FEATURES = 8  # sinusoidal time features of resmlp and convnet: sin, cos of pi k t, k=1..8


def _no_zero_layers(args: dict, shape: tuple[int, ...]) -> tuple[int, ...]:
    return ()


@attrs.frozen
class NetworkKind:
    """``sizes(args, shape, scalar)``: (fan_in, fan_out) of each layer (channels for
    convolutions); ``forward(xp, layers, args, shape, scalar, t, x)`` with t (B,) float32 and
    x (B, *shape) -> (B, *shape), or (B,) for a scalar output (None for a flow); ``flow``: a
    flow's passes (``flows.FlowPasses``; None for a field network); ``zero(args, shape)``: the
    layers whose weight and bias start at exactly zero (``init.py``)."""

    sizes: Callable
    forward: Callable | None = None
    convolution: bool = False
    flow: FlowPasses | None = None
    zero: Callable[[dict, tuple], tuple[int, ...]] = _no_zero_layers
    # plan(args, shape, scalar): each layer's kind where they are not all of one
    # (``layer_plan``); None: all dense, or all 3x3 convolutions with ``convolution``
    plan: Callable | None = None


NETWORKS: Registry[NetworkKind] = Registry("network")


def layer_sizes(kind: str, args: dict, shape: tuple[int, ...], scalar: bool) -> list[tuple[int, int]]:
    return NETWORKS[kind].sizes(args, tuple(shape), scalar)


def layer_plan(kind: NetworkKind, args: dict, shape: tuple[int, ...], scalar: bool) -> list[tuple]:
    """Each layer's kind and size, in order: ("dense", in, out), ("conv", in, out, k) (a k x k
    convolution, stride 1, "same" padding) or ("norm", channels) (a scale and a shift)."""
    if kind.plan is not None:
        return kind.plan(args, tuple(shape), scalar)
    sizes = kind.sizes(args, tuple(shape), scalar)
    return [("conv", a, b, 3) if kind.convolution else ("dense", a, b) for a, b in sizes]


FREQUENCIES = np.arange(1, TIME_FEATURES + 1, dtype=np.float32) * np.float32(math.pi)


def times(args: dict) -> int:
    """How many times a network takes: 1 for a field of (t, x), 2 for a flow map's (s, t, x)
    (the spec's ``times`` argument, set by the compiler for a network trained as a flow map)."""
    return int(args.get("times", 1))


def label_width(args: dict) -> int:
    """The width of a conditioned network's condition input: its classes plus "no label" (a
    one-hot row), or its condition vectors' size plus "given" (the vector, zero when not given,
    and 1 or 0); 0 for a network without either."""
    size = int(args.get("classes", 0)) or int(args.get("conditions", 0))
    return size + 1 if size else 0


class Labelled:
    """``layers`` with the labels of a pass as one-hot rows (B, classes + 1) in ``labels``."""

    def __init__(self, layers, labels):
        self._layers, self.labels = layers, labels

    def __getattr__(self, name):
        return getattr(self._layers, name)


def with_labels(xp, layers, h, axis: int = -1):
    """``h`` with the pass's one-hot labels concatenated along ``axis`` (as constant planes for
    an image-shaped h (B, C, H, W) and axis 1); ``h`` itself for a network without labels."""
    onehot = getattr(layers, "labels", None)
    if onehot is None:
        return h
    onehot = layers.cast(onehot, h.dtype)
    if h.ndim == 4:
        onehot = xp.broadcast_to(onehot[:, :, None, None], (h.shape[0], onehot.shape[1])
                                 + tuple(h.shape[2:]))
    return xp.concat([h, onehot], axis=axis)


def condition_rows(xp, labels, width: int, batch: int, classes: bool):
    """A pass's condition input (B, width): class labels (B,) as one-hot rows; condition rows
    (B, width) as they are (the vector and its "given" flag, ``encode_conditions``); None as
    "no label" (the last one-hot entry) or "not given" (zeros)."""
    if labels is None:
        if classes:
            return one_hot(xp, xp.full((batch,), width - 1, dtype=xp.int32), width)
        return xp.zeros((batch, width), dtype=xp.float32)
    return one_hot(xp, labels, width) if classes else xp.astype(labels, xp.float32)


def encode_conditions(xp, vectors):
    """Condition vectors (B, k) as a network's rows (B, k + 1): the vector and a 1 ("given")."""
    return xp.concat([xp.astype(vectors, xp.float32),
                      xp.ones((vectors.shape[0], 1), dtype=xp.float32)], axis=1)


def one_hot(xp, labels, width: int):
    """Labels (B,) as one-hot float32 rows (B, width)."""
    return xp.astype(labels[:, None] == xp.arange(width, dtype=labels.dtype)[None, :],
                     xp.float32)


LABELS = "condition.labels"  # the key of a sampling pass's labels among the weights it runs on


def conditioned_outputs(outputs, labels, guidance: float) -> dict:
    """Every network's output for ``labels`` (``outputs(labels)``; None: no label), guided by
    ``guidance`` where labels are given (``guided``): what both backends' networks return."""
    out = outputs(labels)
    if labels is None or not guidance:
        return out
    return guided(out, outputs(None), guidance)


def guided(outputs_with, outputs_without, guidance: float) -> dict:
    """Classifier-free guidance on every network output: (1 + w) N(t, x | c) - w N(t, x | none).
    The emitted fields and drifts are affine in the outputs, so this gives the guided field
    (1 + w) b(t, x | c) - w b(t, x | none) of every field."""
    return {k: (1 + guidance) * outputs_with[k] - guidance * outputs_without[k]
            for k in outputs_with}


def time_columns(t):
    """t (B,) or the times of a flow map (B, 2) -> (B, 1) or (B, 2)."""
    return t[:, None] if t.ndim == 1 else t


def time_features(xp, layers, t):
    """(B,) -> (B, 1 + 2 K): t, sin(pi k t), cos(pi k t) for k = 1..K; a flow map's (B, 2)
    times -> (B, 2 (1 + 2 K)), each time's features in turn."""
    if t.ndim == 2:
        return xp.concat([time_features(xp, layers, t[:, i]) for i in range(t.shape[1])],
                         axis=-1)
    k = t[:, None] * layers.constant(FREQUENCIES)
    return xp.concat([t[:, None], xp.sin(k), xp.cos(k)], axis=-1)


def _dense_out(xp, layers, y, shape, scalar):
    y = layers.cast(y, xp.float32)
    return y[:, 0] if scalar else xp.reshape(y, (y.shape[0],) + tuple(shape))


def _mlp_sizes(args, shape, scalar):
    dim, w, depth = math.prod(shape), args["width"], args["depth"]
    return [(dim + times(args) + label_width(args), w)] + [(w, w)] * (depth - 1) + \
        [(w, 1 if scalar else dim)]


def _mlp(xp, layers, args, shape, scalar, t, x):
    flat = xp.reshape(x, (x.shape[0], math.prod(shape)))
    h = layers.cast(xp.concat([flat, time_columns(t)], axis=-1), layers.dtype)
    h = with_labels(xp, layers, h)
    n = args["depth"] + 1
    for i in range(n - 1):
        h = layers.act(layers.layer(i, h))
    return _dense_out(xp, layers, layers.layer(n - 1, h), shape, scalar)


def _resmlp_sizes(args, shape, scalar):
    dim, w, blocks = math.prod(shape), args["width"], args["blocks"]
    return [(dim + times(args) * (1 + 2 * TIME_FEATURES) + label_width(args), w)] + \
        [(w, w)] * (2 * blocks) + \
        [(w, 1 if scalar else dim)]


def _resmlp(xp, layers, args, shape, scalar, t, x):
    flat = xp.reshape(x, (x.shape[0], math.prod(shape)))
    h = layers.cast(xp.concat([flat, time_features(xp, layers, t)], axis=-1), layers.dtype)
    h = layers.layer(0, with_labels(xp, layers, h))
    blocks = args["blocks"]
    for blk in range(blocks):
        r = layers.layer(1 + 2 * blk, layers.act(h))
        h = h + layers.layer(2 + 2 * blk, layers.act(r))
    return _dense_out(xp, layers, layers.layer(1 + 2 * blocks, layers.act(h)), shape, scalar)


def _convnet_sizes(args, shape, scalar):
    c, depth, channels = args["channels"], args["depth"], shape[0]
    sizes = [(channels + times(args) * (1 + 2 * TIME_FEATURES) + label_width(args), c)] + \
        [(c, c)] * (depth - 1)
    return sizes + [(c, 1 if scalar else channels)]


def _convnet(xp, layers, args, shape, scalar, t, x):
    batch = x.shape[0]
    feats = time_features(xp, layers, t)[:, :, None, None]
    planes = xp.broadcast_to(feats, (batch, feats.shape[1]) + tuple(shape[1:]))
    h = layers.cast(xp.concat([layers.cast(x, xp.float32), planes], axis=1), layers.dtype)
    h = with_labels(xp, layers, h, axis=1)
    n = args["depth"] + 1
    for i in range(n - 1):
        h = layers.act(layers.layer(i, h))
    y = layers.cast(layers.layer(n - 1, h), xp.float32)
    return xp.sum(y, axis=(1, 2, 3)) if scalar else y


NETWORKS.register("mlp")(NetworkKind(_mlp_sizes, _mlp))
NETWORKS.register("resmlp")(NetworkKind(_resmlp_sizes, _resmlp))
NETWORKS.register("convnet")(NetworkKind(_convnet_sizes, _convnet, convolution=True))


def is_flow(net) -> bool:
    """Whether network ``net`` (a spec Network) is a flow (no field output at (t, x))."""
    return NETWORKS[net.kind].flow is not None


def has_output(net) -> bool:
    """Whether network ``net`` (a spec Network) has an output at (t, x) that the emitted
    functions read: not a flow, nor a flow map distilled from a teacher (target ``map``: the
    model's fields come from the other networks; a self-distilled map's velocity is read)."""
    return not is_flow(net) and net.target != "map"


def forward(xp, layers, net, shape, t, x, seeds=None, labels=None):
    """The output of network ``net`` (a spec Network) at (t, x), t broadcast to (B,) float32;
    a flow map's output at (t, x) is its velocity, the tangent of X_{t,u} at u = t. ``seeds``
    (B,): a training pass's dropout seeds (runtime/dropout.py), for a network with dropout.
    ``labels`` (B,) int: each example's class, or ``classes`` for none (the default), for a
    network conditioned on labels."""
    kind = NETWORKS[net.kind]
    if seeds is not None and dropout.rate(net) > 0:
        layers = dropout.Seeded(layers, seeds)
    width = label_width(net.args)
    if width:
        layers = Labelled(layers, condition_rows(xp, labels, width, x.shape[0],
                                                 bool(net.args.get("classes"))))
    if kind.forward is None:
        raise TypeError(f"network '{net.name}' is a {net.kind} flow: it has push and pull, "
                        "no output at (t, x)")
    if net.map:
        t = xp.stack([t, t], axis=1)
    return kind.forward(xp, layers, net.args, tuple(shape), net.scalar, t, x)


def flow_map(xp, layers, net, shape, s, t, x):
    """A flow map's X_{s,t}(x) = x + (t - s) v(s, t, x) (``net`` a spec Network trained as a
    flow map; s, t (B,) float32, x (B, *shape)): the identity at s = t for any weights, with
    velocity v(t, t, x) there."""
    v = NETWORKS[net.kind].forward(xp, layers, net.args, tuple(shape), False,
                                   xp.stack([s, t], axis=1), x)
    step = xp.reshape(t - s, (-1,) + (1,) * len(shape))
    return x + step * v


def push(xp, layers, net, shape, z):
    """Flow ``net``'s map of base points z (B, *shape) -> (x, log|det dx/dz|) ((B,) float32)."""
    return NETWORKS[net.kind].flow.push(xp, layers, net.args, tuple(shape), z)


def pull(xp, layers, net, shape, x, probe=None):
    """Flow ``net``'s inverse map x (B, *shape) -> (z, log|det dz/dx|) ((B,) float32); a
    ``cnf`` flow given Hutchinson probes (B, *shape) estimates the log-determinant with them."""
    if probe is None:
        return NETWORKS[net.kind].flow.pull(xp, layers, net.args, tuple(shape), x)
    return NETWORKS[net.kind].flow.pull(xp, layers, net.args, tuple(shape), x, probe=probe)


def flow_matching(xp, layers, net, shape, t, z, x):
    """A cnf flow's flow-matching prediction and target (``flows/cnf.py``, ``matching``)."""
    matching = NETWORKS[net.kind].flow.matching
    if matching is None:
        raise TypeError(f"network '{net.name}' is a {net.kind} flow: it has no velocity")
    return matching(xp, layers, net.args, tuple(shape), t, z, x)


# the flow kinds and the U-Net register themselves into NETWORKS (they import this module,
# complete by now)
from . import flows  # noqa: E402,F401
from . import unet  # noqa: E402,F401
