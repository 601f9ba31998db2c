"""The learned mixing of the coupling flows (``mask = learned``, backends/runtime/flows/
permutation.py): before every coupling layer an invertible matrix W = L (U + diag e^s) of the
flattened coordinates. Its layers' layout and zero start (a fresh flow is the identity), the
matrix its weights give, exact inversion both ways in float32, the log-determinant against the
autodiff Jacobian, the two backends' agreement, and a maximum-likelihood fit of a correlated
Gaussian whose density the flow then matches."""

from __future__ import annotations

import math

import numpy as np
import pytest

from test_flows import Flow, close, flow, perturbed, points
from tfm.backends.runtime import init, networks
from tfm.backends.runtime.flows import permutation, transformed

KINDS = ("realnvp", "spline")


def test_layers_and_zero_layers():
    """Each coupling layer's block starts with its (dim, dim) mixing layer; the mixing layers,
    the conditioners' last layers and the final affine layer (still the last) start at zero."""
    shape = (3,)
    net = flow("realnvp", "learned", layers=2)
    sizes = networks.layer_sizes("realnvp", net.args, shape, False)
    assert sizes == [(3, 3), (3, 16), (16, 16), (16, 6)] * 2 + [(1, 6)]
    zero = networks.NETWORKS["realnvp"].zero(net.args, shape)
    assert zero == (0, 3, 4, 7, 8)
    params = init.init_params([net], shape, 0)
    for i in range(len(sizes)):
        for part in ("weight", "bias"):
            assert params[f"T.{i}.{part}"].any() == (i not in zero)
    # the other masks keep their layout
    assert networks.layer_sizes("spline", flow("spline", "checkerboard", layers=2, bins=4).args,
                                shape, False) == [(3, 16), (16, 16), (16, 33)] * 2 + [(1, 6)]


def test_learned_mask_couples_by_parity():
    np.testing.assert_array_equal(transformed("learned", (5,), 0), [1, 0, 1, 0, 1])
    np.testing.assert_array_equal(transformed("learned", (2, 2), 1), [0, 1, 0, 1])


class NumpyLayers:
    """The part of a backend's ``Layers`` that the mixing uses, on numpy arrays (numpy is an
    array-API namespace too): layer 0's weight and bias."""

    def __init__(self, weight, bias):
        self.weight_, self.bias_ = weight, bias

    def weight(self, i):
        return self.weight_

    def bias(self, i):
        return self.bias_

    @staticmethod
    def constant(values):
        return np.asarray(values)

    @staticmethod
    def matmul(a, b):
        return a @ b


def test_mixing_matrix_is_its_lu_factors():
    """W = L (U + diag e^s) from the layer's weight (strictly lower part: L - I; strictly upper:
    U; diagonal unused) and bias (s, soft-clamped); log|det W| = sum(s); the inverse pass
    undoes the forward one."""
    dim, rng = 5, np.random.default_rng(0)
    a = rng.standard_normal((dim, dim))
    b = rng.standard_normal(dim)
    layers = NumpyLayers(a, b)
    w, s = permutation.matrix(np, layers, 0, dim)
    clamp = permutation.MIX_CLAMP * np.tanh(b / permutation.MIX_CLAMP)
    lower = np.eye(dim) + np.tril(a, -1)
    upper = np.triu(a, 1) + np.diag(np.exp(clamp))
    np.testing.assert_allclose(w, lower @ upper, rtol=1e-12)
    np.testing.assert_allclose(s, clamp, rtol=1e-12)
    assert np.linalg.slogdet(w)[1] == pytest.approx(clamp.sum(), abs=1e-12)
    layers.weight_ = a + np.diag(rng.standard_normal(dim))  # the diagonal is not used
    np.testing.assert_array_equal(permutation.matrix(np, layers, 0, dim)[0], w)

    u = rng.standard_normal((7, dim))
    y, logdet = permutation.mix(np, layers, 0, u, False)
    np.testing.assert_allclose(y, u @ w.T, rtol=1e-12)
    np.testing.assert_allclose(logdet, np.full(7, clamp.sum()), rtol=1e-12)
    back, logdet = permutation.mix(np, layers, 0, y, True)
    np.testing.assert_allclose(back, u, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(logdet, np.full(7, -clamp.sum()), rtol=1e-12)


def learned_flow(kind: str):
    """The flow of most tests here (the same arguments, so that JAX compiles each pass once)."""
    return flow(kind, "learned", layers=2)


def relative_error(a, b) -> float:
    """max |a - b| over the largest coordinate of b (at least 1)."""
    return float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("kind", KINDS)
def test_fresh_flow_is_the_identity(backend, kind):
    """Zero mixing parameters give W = I (no fixed permutation): with the couplings and the
    final affine layer at zero too, a fresh flow maps every point to itself."""
    shape, net = (6,), learned_flow(kind)
    f = Flow(backend, net, shape, init.init_params([net], shape, 3))
    z = points(shape)
    for x, logdet in (f.push(z), f.pull(z)):
        close(x, z)
        np.testing.assert_allclose(logdet, 0, atol=1e-5)


@pytest.mark.parametrize("kind,shape", [("realnvp", (6,)), ("spline", (6,)), ("realnvp", (8, 8))])
def test_flow_inverts_exactly_both_ways(backend, kind, shape):
    """x -> z -> x and z -> x -> z to 1e-5 relative in float32 on random weights of moderate
    size, the mixing layers included (up to a 64-site lattice: a 64 x 64 solve per layer)."""
    net = learned_flow(kind)
    f = Flow(backend, net, shape, perturbed(net, shape, seed=1))
    z = points(shape, seed=2)
    x, push_logdet = f.push(z)
    assert np.abs(x - z).max() > 0.5 and np.abs(push_logdet).max() > 0.5  # far from identity
    back, pull_logdet = f.pull(x)
    assert relative_error(back, z) < 1e-5
    np.testing.assert_allclose(pull_logdet, -push_logdet, rtol=1e-5, atol=1e-4)

    x = points(shape, seed=3, spread=3.0)
    z, pull_logdet = f.pull(x)
    back, push_logdet = f.push(z)
    assert relative_error(back, x) < 1e-5
    np.testing.assert_allclose(push_logdet, -pull_logdet, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_logdet_is_that_of_the_jacobian(backend, kind):
    shape, net = (6,), learned_flow(kind)
    f = Flow(backend, net, shape, perturbed(net, shape, seed=4))
    jacobian, push_logdet = f.jacobian(points(shape, n=6, seed=5))
    np.testing.assert_allclose(jacobian, push_logdet, atol=2e-4)
    assert np.abs(push_logdet).max() > 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_jax_and_torch_agree(kind):
    pytest.importorskip("jax")
    pytest.importorskip("torch")
    shape, net = (6,), learned_flow(kind)
    params = perturbed(net, shape, seed=6)
    a, b = Flow("jax", net, shape, params), Flow("torch", net, shape, params)
    z = points(shape, seed=7)
    for one, other in zip(a.push(z) + a.pull(z), b.push(z) + b.pull(z)):
        close(one, other)


# --- maximum likelihood on a correlated Gaussian -----------------------------------------------

MEAN = np.array([1.0, -1.0, 0.5, 0.0])
COVARIANCE = np.array([[1.0, 0.9, 0.5, 0.0],
                       [0.9, 1.0, 0.6, 0.3],
                       [0.5, 0.6, 1.0, 0.7],
                       [0.0, 0.3, 0.7, 1.0]]) * np.outer([1.5, 1.0, 0.7, 1.2], [1.5, 1.0, 0.7, 1.2])


def _gaussian_log_density(x: np.ndarray) -> np.ndarray:
    d = x - MEAN
    logdet = np.linalg.slogdet(COVARIANCE)[1]
    quad = np.einsum("ni,ij,nj->n", d, np.linalg.inv(COVARIANCE), d)
    return -0.5 * (quad + logdet + len(MEAN) * math.log(2 * math.pi))


def _density(f: Flow, x: np.ndarray) -> np.ndarray:
    """log q(x) = log N(pull(x); 0, I) + pull's logdet (float64) by the flow's own pull."""
    z, logdet = f.pull(x)
    z = z.astype(np.float64)
    return -0.5 * np.sum(z * z, axis=-1) - 0.5 * z.shape[1] * math.log(2 * math.pi) + logdet


def _log_q(backend, f: Flow, params, x):
    """log q(x) as ``_density``, differentiable in the weights ``params``: the backend's arrays."""
    if backend == "jax":
        import jax.numpy as jnp
        from tfm.backends.jax.runtime import networks as jax_networks
        z, logdet = jax_networks.pull(f.net, params, x, f.shape)
        return -0.5 * jnp.sum(z * z, axis=-1) - 0.5 * z.shape[1] * math.log(2 * math.pi) + logdet
    import torch
    z, logdet = torch.func.functional_call(f.module, params, (x, True))
    return -0.5 * torch.sum(z * z, dim=-1) - 0.5 * z.shape[1] * math.log(2 * math.pi) + logdet


def _fit(backend, f: Flow, data: np.ndarray, steps: int, batch: int, lr: float):
    """Adam on the mean negative log-likelihood of batches of ``data``; the fitted weights."""
    rng = np.random.default_rng(0)
    batches = [data[rng.integers(0, len(data), batch)] for _ in range(steps)]
    if backend == "jax":
        import jax
        import optax
        optimizer = optax.adam(lr)

        @jax.jit
        def step(params, state, x):
            loss, grads = jax.value_and_grad(lambda p: -_log_q(backend, f, p, x).mean())(params)
            updates, state = optimizer.update(grads, state, params)
            return optax.apply_updates(params, updates), state, loss

        params, state = f.params, optimizer.init(f.params)
        for x in batches:
            params, state, _ = step(params, state, f.array(x))
        return params
    import torch
    params = {k: v.clone().requires_grad_(True) for k, v in f.weights.items()}
    optimizer = torch.optim.Adam(params.values(), lr=lr)
    for x in batches:
        loss = -_log_q(backend, f, params, f.array(x)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {k: v.detach() for k, v in params.items()}


def _fitted_gap(backend, mask: str, train, test, exact) -> np.ndarray:
    """log p - log q at the points ``test`` for a one-coupling realnvp flow of ``mask`` fitted
    to ``train`` (300 Adam steps of 512 points); checks that the fresh flow is far off."""
    shape = (train.shape[1],)
    net = flow("realnvp", mask, layers=1, width=16, depth=1)
    f = Flow(backend, net, shape, init.init_params([net], shape, 0))
    assert np.mean(exact - _density(f, test)) > 1.0  # the fresh flow, a unit normal, is far off
    fitted = _fit(backend, f, train, steps=300, batch=512, lr=1e-2)
    if backend == "jax":
        f.params = fitted
    else:
        f.weights = fitted
    log_q = _density(f, test)
    assert np.isfinite(log_q).all()
    return exact - log_q


def test_maximum_likelihood_fit_of_a_correlated_gaussian(backend):
    """One coupling layer after a learned mixing, fitted by maximum likelihood to a strongly
    correlated 4-D Gaussian, gives held-out points the Gaussian's exact log-density: the mean
    of log p - log q (an estimate of KL(p || q)) near zero, its spread small, and the mean
    log-likelihood that of the closed form, -(d (1 + log 2 pi) + log det Sigma) / 2. Without
    the mixing (``alternating``), one coupling layer leaves the kept coordinates independent,
    and the same fit stays far off (KL about 0.27): the mixing is what is learned."""
    dim = len(MEAN)
    rng = np.random.default_rng(1)
    chol = np.linalg.cholesky(COVARIANCE)
    train = (MEAN + rng.standard_normal((4096, dim)) @ chol.T).astype(np.float32)
    test = (MEAN + rng.standard_normal((4096, dim)) @ chol.T).astype(np.float32)
    exact = _gaussian_log_density(test.astype(np.float64))
    entropy = 0.5 * (dim * (1 + math.log(2 * math.pi)) + np.linalg.slogdet(COVARIANCE)[1])

    gap = _fitted_gap(backend, "learned", train, test, exact)
    assert abs(np.mean(gap)) < 0.04
    assert np.std(gap) < 0.3  # pointwise, not only on average
    log_q = exact - gap
    assert np.mean(log_q) == pytest.approx(-entropy, abs=0.1)

    if backend == "torch":  # what the test tells apart (once: the faster backend)
        fixed = _fitted_gap(backend, "alternating", train, test, exact)
        assert np.mean(fixed) > 0.15 and np.std(fixed) > 0.5
