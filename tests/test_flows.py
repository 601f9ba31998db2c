"""The normalizing-flow network kinds (backends/runtime/flows): realnvp and spline couplings with
both masks, for JAX and PyTorch. At their initial weights they are the identity; on perturbed
weights they invert exactly both ways, their log-determinants are those of the autodiff
Jacobian, the density they define integrates to one, the spline is the identity outside its
bound with unit slope at it, and the two backends agree. Initial weights are reproducible, with
exactly the listed layers at zero, and the field networks' draws are unchanged."""

from __future__ import annotations

import functools
import math
import zlib
from types import SimpleNamespace

import numpy as np
import pytest

from backend_params import to_numpy
from tfm.backends.runtime import init, networks
from tfm.backends.runtime.flows import transformed
from tfm.backends.runtime.spec import Network

KINDS = ("realnvp", "spline")
BOUND = 5.0  # the spline's bound in these tests (the kind's default)


def flow(kind: str, mask: str = "alternating", layers: int = 2, **extra) -> Network:
    args = {"layers": layers, "width": 16, "depth": 2, "activation": "silu", "mask": mask}
    if kind == "spline":
        args.update(bins=6, bound=BOUND)
    args.update(extra)
    return Network("T", kind, args, None, "flow", "T")


def perturbed(net: Network, shape, seed: int = 0, scale: float = 0.4) -> dict[str, np.ndarray]:
    """The initial weights plus a seeded normal of std scale / sqrt(fan_in) on every weight and
    bias, the zero-initialised layers included (so the flow is far from the identity)."""
    params = init.init_params([net], shape, seed)
    rng = np.random.default_rng(1000 + seed)
    out = {}
    for name, value in params.items():
        fan_in = params[name.rsplit(".", 1)[0] + ".weight"].shape[1]
        noise = rng.standard_normal(value.shape) * scale / math.sqrt(fan_in)
        out[name] = (value + noise).astype(np.float32)
    return out


@functools.lru_cache(maxsize=None)
def _jax_passes(kind: str, args: tuple, shape: tuple[int, ...]):
    """push and pull of a flow compiled with its weights as an argument, so that the tests of
    one flow share the compilations (eager JAX would compile each operation on its own)."""
    import jax
    from tfm.backends.jax.runtime import networks as jax_networks
    net = Network("T", kind, dict(args), None, "flow", "T")
    return (jax.jit(lambda params, z: jax_networks.push(net, params, z, shape)),
            jax.jit(lambda params, x: jax_networks.pull(net, params, x, shape)))


class Flow:
    """push and pull of one flow on numpy arrays, by the backend's own entry points (torch:
    ``functional_call(module, weights, (x, inverse))``)."""

    def __init__(self, backend: str, net: Network, shape, params: dict[str, np.ndarray]):
        self.backend, self.net, self.shape = backend, net, tuple(shape)
        if backend == "jax":
            import jax.numpy as jnp
            from tfm.backends.jax.runtime import networks as jax_networks
            self.jnp, self.impl = jnp, jax_networks
            self.params = {k: jnp.asarray(v) for k, v in params.items()}
        else:
            import torch
            from tfm.backends.torch.runtime import networks as torch_networks
            self.torch = torch
            self.module = torch_networks.Network(net, self.shape, torch.float32)
            prefix = net.name + "."
            self.weights = {k[len(prefix):]: torch.as_tensor(v) for k, v in params.items()}

    def array(self, x):
        if self.backend == "jax":
            return self.jnp.asarray(x, dtype=self.jnp.float32)
        return self.torch.as_tensor(np.asarray(x), dtype=self.torch.float32)

    def run(self, x, inverse: bool):
        """The backend's arrays (points, logdet) of push (pull with ``inverse``)."""
        if self.backend == "jax":
            fn = self.impl.pull if inverse else self.impl.push
            return fn(self.net, self.params, x, self.shape)
        return self.torch.func.functional_call(self.module, self.weights, (x, inverse))

    def passes(self, points, inverse: bool):
        if self.backend == "jax":
            key = (self.net.kind, tuple(sorted(self.net.args.items())), self.shape)
            return _jax_passes(*key)[inverse](self.params, points)
        return self.run(points, inverse)

    def push(self, z):
        x, logdet = self.passes(self.array(z), False)
        return to_numpy(x), to_numpy(logdet)

    def pull(self, x):
        z, logdet = self.passes(self.array(x), True)
        return to_numpy(z), to_numpy(logdet)

    def jacobian(self, z) -> tuple[np.ndarray, np.ndarray]:
        """log|det| of the autodiff Jacobian of push at each point of z (n, *shape), and push's
        logdet there (one compiled function in JAX)."""
        dim = math.prod(self.shape)

        def one(v):
            x, logdet = self.run(v[None], False)
            return x[0], logdet[0]

        if self.backend == "jax":
            import jax
            jac, logdet = jax.jit(jax.vmap(jax.jacfwd(one, has_aux=True)))(self.array(z))
        else:
            func = self.torch.func
            jac, logdet = func.vmap(func.jacrev(one, has_aux=True))(self.array(z))
        jac = to_numpy(jac).reshape(len(z), dim, dim).astype(np.float64)
        return np.linalg.slogdet(jac)[1], to_numpy(logdet)


def points(shape, n: int = 16, seed: int = 0, spread: float = 2.0) -> np.ndarray:
    """n points of moderate size (normal of std ``spread``), one coordinate of the first few
    set well beyond the spline's bound (its tails)."""
    rng = np.random.default_rng(seed)
    z = (spread * rng.standard_normal((n, math.prod(shape)))).astype(np.float32)
    z[0, 0], z[1, -1], z[2, 0], z[2, -1] = 7.5, -9.0, 6.0, -5.5
    return z.reshape((n,) + tuple(shape))


def close(a, b, tol: float = 1e-5):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape,mask", [((3,), "alternating"), ((4, 4), "checkerboard")])
def test_initial_flow_is_the_identity(backend, kind, shape, mask):
    net = flow(kind, mask)
    f = Flow(backend, net, shape, init.init_params([net], shape, 3))
    z = points(shape)
    x, logdet = f.push(z)
    close(x, z)
    np.testing.assert_allclose(logdet, 0, atol=1e-5)
    back, logdet = f.pull(z)
    close(back, z)
    np.testing.assert_allclose(logdet, 0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape,mask", [((3,), "alternating"), ((4, 4), "checkerboard")])
def test_flow_inverts_exactly_both_ways(backend, kind, shape, mask):
    net = flow(kind, mask)
    f = Flow(backend, net, shape, perturbed(net, shape))
    z = points(shape, seed=1)
    x, push_logdet = f.push(z)
    assert np.abs(x - z).max() > 0.1 and np.abs(push_logdet).max() > 0.1  # far from identity
    back, pull_logdet = f.pull(x)
    close(back, z)
    np.testing.assert_allclose(pull_logdet, -push_logdet, atol=1e-4)

    x = points(shape, seed=2, spread=3.0)
    z, pull_logdet = f.pull(x)
    back, push_logdet = f.push(z)
    close(back, x)
    np.testing.assert_allclose(push_logdet, -pull_logdet, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape,mask", [((2,), "alternating"), ((3,), "alternating"),
                                        ((2, 2), "checkerboard")])
def test_logdet_is_that_of_the_jacobian(backend, kind, shape, mask):
    net = flow(kind, mask)
    f = Flow(backend, net, shape, perturbed(net, shape, seed=4))
    z = points(shape, n=6, seed=3)
    jacobian, push_logdet = f.jacobian(z)
    np.testing.assert_allclose(jacobian, push_logdet, atol=2e-4)
    assert np.abs(push_logdet).max() > 0.1  # far from the identity


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape,mask", [((3,), "alternating"), ((4, 4), "checkerboard")])
def test_jax_and_torch_agree(kind, shape, mask):
    pytest.importorskip("jax")
    pytest.importorskip("torch")
    net = flow(kind, mask)
    params = perturbed(net, shape, seed=5)
    a, b = Flow("jax", net, shape, params), Flow("torch", net, shape, params)
    z = points(shape, seed=6)
    for one, other in zip(a.push(z) + a.pull(z), b.push(z) + b.pull(z)):
        close(one, other)


@pytest.mark.parametrize("kind", KINDS)
def test_density_integrates_to_one(backend, kind):
    """p(x) = N(pull(x); 0, I) |det dpull/dx| summed over a grid on [-12, 12]^2 by the midpoint
    rule."""
    shape = (2,)
    net = flow(kind, layers=3)
    f = Flow(backend, net, shape, perturbed(net, shape, seed=7))
    step = 24 / 400
    axis = -12 + step * (np.arange(400) + 0.5)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    z, logdet = f.pull(grid.astype(np.float32))
    log_p = -0.5 * np.sum(z.astype(np.float64) ** 2, axis=-1) - math.log(2 * math.pi) + logdet
    assert np.exp(log_p).sum() * step ** 2 == pytest.approx(1, abs=1e-3)
    # not a unit normal: the flow moved the mass
    assert np.abs(np.exp(log_p) - np.exp(-0.5 * np.sum(grid ** 2, -1)) / (2 * math.pi)).max() > 1e-2


def _without_final_affine(net: Network, shape, params: dict) -> dict:
    last = net.args["layers"] * (net.args["depth"] + 1)
    params = dict(params)
    for part in ("weight", "bias"):
        params[f"{net.name}.{last}.{part}"] = np.zeros_like(params[f"{net.name}.{last}.{part}"])
    return params


def test_spline_is_the_identity_outside_its_bound(backend):
    shape = (4,)
    net = flow("spline")
    f = Flow(backend, net, shape, _without_final_affine(net, shape, perturbed(net, shape, 8)))
    rng = np.random.default_rng(9)
    outside = np.sign(rng.standard_normal((8, 4))) * rng.uniform(BOUND + 1e-3, 20, (8, 4))
    x, logdet = f.push(outside.astype(np.float32))
    np.testing.assert_array_equal(x, outside.astype(np.float32))
    np.testing.assert_array_equal(logdet, 0)
    z, logdet = f.pull(outside.astype(np.float32))
    np.testing.assert_array_equal(z, outside.astype(np.float32))
    np.testing.assert_array_equal(logdet, 0)

    # coordinates beyond the bound stay, those inside move
    mixed = outside.astype(np.float32)
    mixed[:, 1::2] = rng.uniform(-2, 2, (8, 2))
    x, _ = f.push(mixed)
    np.testing.assert_array_equal(x[:, 0::2], mixed[:, 0::2])
    assert np.abs(x[:, 1::2] - mixed[:, 1::2]).min() > 1e-3

    # at the bound the spline meets the tails with value and slope 1: near-boundary points move
    # by about their distance to it and have a log-determinant near 0
    edge = np.sign(rng.standard_normal((8, 4))).astype(np.float32) * np.float32(BOUND - 1e-3)
    x, logdet = f.push(edge)
    np.testing.assert_allclose(x, edge, atol=5e-3)
    np.testing.assert_allclose(logdet, 0, atol=5e-2)


def test_final_affine_layer_scales_and_shifts(backend):
    """With identity couplings, the final affine layer alone: x = z exp(s) + mu."""
    shape, net = (3,), flow("realnvp")
    params = init.init_params([net], shape, 0)
    last = net.args["layers"] * (net.args["depth"] + 1)
    mu, s = np.array([1.0, -2.0, 0.5], np.float32), np.array([0.5, -1.0, 2.0], np.float32)
    params[f"T.{last}.bias"] = np.concatenate([mu, s])
    f = Flow(backend, net, shape, params)
    z = points(shape)
    x, logdet = f.push(z)
    clamped = 15 * np.tanh(s / 15)
    close(x, z * np.exp(clamped) + mu)
    close(logdet, np.full(len(z), clamped.sum()))


def test_masks():
    np.testing.assert_array_equal(transformed("alternating", (5,), 0), [1, 0, 1, 0, 1])
    np.testing.assert_array_equal(transformed("alternating", (5,), 3), [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(transformed("checkerboard", (5,), 1),
                                  transformed("alternating", (5,), 1))
    board = transformed("checkerboard", (3, 4), 0).reshape(3, 4)
    np.testing.assert_array_equal(board, [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]])
    np.testing.assert_array_equal(transformed("alternating", (3, 4), 0).reshape(3, 4),
                                  [[1, 0, 1, 0]] * 3)
    with pytest.raises(ValueError):
        transformed("stripes", (4,), 0)


def test_layer_sizes_and_zero_layers():
    shape = (3,)
    sizes = networks.layer_sizes("realnvp", flow("realnvp", layers=2).args, shape, False)
    assert sizes == [(3, 16), (16, 16), (16, 6)] * 2 + [(1, 6)]
    sizes = networks.layer_sizes("spline", flow("spline", layers=2, bins=4).args, shape, False)
    assert sizes == [(3, 16), (16, 16), (16, 33)] * 2 + [(1, 6)]
    kind = networks.NETWORKS["spline"]
    assert kind.forward is None and kind.flow is not None
    assert kind.zero(flow("spline", layers=2).args, shape) == (2, 5, 6)
    assert networks.NETWORKS["mlp"].zero({}, shape) == ()


@pytest.mark.parametrize("kind", KINDS)
def test_initial_weights_are_reproducible_with_zero_last_layers(kind):
    shape, net = (2, 3), flow(kind, layers=3)
    a, b = init.init_params([net], shape, 11), init.init_params([net], shape, 11)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    other = init.init_params([net], shape, 12)
    zero = set(networks.NETWORKS[kind].zero(net.args, shape))
    assert zero == {2, 5, 8, 9}
    for i in range(len(networks.layer_sizes(kind, net.args, shape, False))):
        for part in ("weight", "bias"):
            value = a[f"T.{i}.{part}"]
            if i in zero:
                assert not value.any()
            else:
                assert np.abs(value).min() > 0 and not np.array_equal(value, other[f"T.{i}.{part}"])


def test_field_network_draws_are_unchanged():
    """An mlp's weights are the uniform draws of init.py's generator in layer order, as before
    flows (the goldens' initial weights)."""
    net = Network("v", "mlp", {"width": 8, "depth": 2, "activation": "silu"}, "x1", "vector", "v")
    params = init.init_params([net], (3,), 5)
    rng = np.random.Generator(np.random.PCG64([5, zlib.crc32(b"v")]))
    for i, (fan_in, fan_out) in enumerate([(4, 8), (8, 8), (8, 3)]):
        bound = 1 / math.sqrt(fan_in)
        weight = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)
        bias = rng.uniform(-bound, bound, (fan_out,)).astype(np.float32)
        np.testing.assert_array_equal(params[f"v.{i}.weight"], weight)
        np.testing.assert_array_equal(params[f"v.{i}.bias"], bias)


def test_outputs_skip_flows_and_forward_refuses_them(backend):
    shape = (3,)
    field = Network("v", "mlp", {"width": 8, "depth": 2, "activation": "silu"}, "x1", "vector", "v")
    spec = SimpleNamespace(shape=list(shape), networks=[flow("realnvp"), field])
    params = init.init_params(spec.networks, shape, 0)
    x = points(shape, n=4)
    if backend == "jax":
        import jax.numpy as jnp
        from tfm.backends.jax.runtime import networks as jax_networks
        out = jax_networks.outputs(spec, {k: jnp.asarray(v) for k, v in params.items()}, 0.5,
                                   jnp.asarray(x))
        with pytest.raises(TypeError):
            jax_networks.apply(spec.networks[0], params, 0.5, jnp.asarray(x), shape)
    else:
        import torch
        from tfm.backends.torch.runtime import networks as torch_networks
        nets = torch.nn.ModuleDict({n.name: torch_networks.Network(n, shape, torch.float32)
                                    for n in spec.networks})
        nets.load_state_dict({k: torch.as_tensor(v) for k, v in params.items()})
        out = torch_networks.outputs(spec, nets, 0.5, torch.as_tensor(x))
        z, logdet = nets["T"].push(torch.as_tensor(x))  # initial weights: the identity
        close(to_numpy(z), x)
        with pytest.raises(TypeError):
            nets["T"](torch.tensor(0.5), torch.as_tensor(x))
    assert set(out) == {"v"} and to_numpy(out["v"]).shape == (4, 3)
