"""The runtime's solvers and likelihood (``backends/runtime/solvers.py``, ``likelihood.py``), each
property checked for both backends through their ``Ops``: convergence orders on an ODE with a known
solution, backward runs, trajectories and tuple states, dopri5 against its tolerance,
Euler-Maruyama against the Ornstein-Uhlenbeck law, Hutchinson's estimator and the exact
divergence; then the same velocity integrated by both backends (every fixed-step method, dopri5
forward and backward, log-densities)."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest

from backend_params import backend_ops_of, to_numpy as _numpy  # tests/
from tfm.backends.runtime import likelihood, solvers

METHODS = sorted(solvers.ORDERS)


def _x64(name: str):
    """float64 arrays for the duration (JAX needs x64 switched on; torch has them anyway)."""
    if name == "jax":
        import jax
        return jax.enable_x64(True)
    return contextlib.nullcontext()


def _both():
    """The JAX and the torch ops, for the tests comparing the backends."""
    return backend_ops_of("jax"), backend_ops_of("torch")


# --- solvers: convergence orders on an ODE with a known solution ----------------------------

@pytest.mark.parametrize("method", METHODS)
def test_fixed_step_solvers_converge_at_their_order(backend_ops, method):
    """A rotation at rate 1 + t, y' = (1 + t) (y2, -y1), y(0) = (0, 1), has
    y(1) = (sin 1.5, cos 1.5); halving the step divides the error by 2^order (float64). The
    solver hands f its times as 0-d arrays of the state's dtype."""
    name, ops = backend_ops
    xp = ops.xp
    with _x64(name):
        def f(t, y):
            assert t.dtype == xp.float64 and t.ndim == 0
            return xp.stack([y[1], -y[0]]) * (1 + t)
        y0 = ops.asarray([0.0, 1.0], xp.float64)
        exact = np.array([math.sin(1.5), math.cos(1.5)])
        errors = []
        for n in (16, 32, 64, 128):
            y1 = solvers.fixed_step(ops, f, y0, 0.0, 1.0, n, method)
            assert y1.dtype == xp.float64
            errors.append(float(np.max(np.abs(_numpy(y1) - exact))))
    observed = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    order = solvers.ORDERS[method]
    assert all(abs(o - order) < 0.1 for o in observed), (method, errors, observed)


@pytest.mark.parametrize("method", METHODS)
def test_rk_step_is_one_step_of_fixed_step(backend_ops, method):
    name, ops = backend_ops
    xp = ops.xp
    with _x64(name):
        def f(t, y):
            return xp.stack([y[1], -y[0]]) * (1 + t)
        y0 = ops.asarray([0.3, 1.0], xp.float64)
        one = solvers.rk_step(ops, f, method, 0.2, y0, -0.25)
        assert np.allclose(_numpy(one), _numpy(solvers.fixed_step(ops, f, y0, 0.2, -0.05, 1, method)),
                           rtol=1e-14, atol=1e-15)


def test_fixed_step_solvers_run_backward_and_keep_trajectories(backend_ops):
    name, ops = backend_ops
    xp = ops.xp

    def f(t, y):
        return -y
    ones = xp.ones(3)
    y1, path = solvers.fixed_step(ops, f, ones, 1.0, 0.0, 50, "rk4", trajectory=True)
    assert tuple(path.shape) == (51, 3)
    assert np.allclose(_numpy(y1), math.e, rtol=1e-5)
    assert np.array_equal(_numpy(path[0]), np.ones(3)) and np.array_equal(_numpy(path[-1]), _numpy(y1))
    # a tuple state keeps a tuple of trajectories
    (a, b), (pa, pb) = solvers.fixed_step(ops, lambda t, y: (-y[0], 2 * y[1]), (ones, xp.ones(())),
                                          0.0, 1.0, 40, "heun", trajectory=True)
    assert tuple(pa.shape) == (41, 3) and tuple(pb.shape) == (41,)
    assert np.allclose(_numpy(a), math.exp(-1), rtol=1e-3) and abs(float(b) - math.exp(2)) < 1e-2
    assert np.array_equal(_numpy(pa[-1]), _numpy(a)) and float(pb[0]) == 1.0


def test_dopri5_meets_its_tolerance(backend_ops):
    name, ops = backend_ops
    xp = ops.xp
    with _x64(name):
        def f(t, y):
            return (-2 * t + xp.cos(t)) * y
        y, steps = solvers.dopri5(ops, f, ops.asarray([1.0], xp.float64), 0.0, 1.0, 1e-8, 1e-8)
        assert abs(float(y[0]) - math.exp(-1 + math.sin(1))) < 1e-7
        assert 5 <= int(steps) < 200
        back, back_steps = solvers.dopri5(ops, f, y, 1.0, 0.0, 1e-8, 1e-8)
        assert abs(float(back[0]) - 1) < 1e-7
        assert 5 <= int(back_steps) < 200


def test_euler_maruyama_reaches_the_ornstein_uhlenbeck_law(backend_ops):
    """dX = -X dt + sqrt(2 eps) dW with eps = 1/2 from X0 = 2: X1 ~ N(2/e, (1 - e^-2)/2);
    with eps = 0 it is the Euler method, at the same times."""
    name, ops = backend_ops
    xp = ops.xp
    x0 = ops.asarray(np.full((100_000, 1), 2.0))
    x = solvers.euler_maruyama(ops, lambda t, y: -y, lambda t: 0.5, ops.key(0), x0, 0.0, 1.0, 200)
    assert tuple(x.shape) == (100_000, 1) and x.dtype == ops.xp.float32
    assert abs(float(xp.mean(x)) - 2 / math.e) < 0.01
    assert abs(float(xp.var(x)) - (1 - math.exp(-2)) / 2) < 0.01
    with _x64(name):
        def drift(t, y):
            return -y * xp.cos(t)
        z0 = ops.asarray(np.linspace(-1, 1, 5)[:, None], xp.float64)
        z1, path = solvers.euler_maruyama(ops, drift, lambda t: 0 * t, ops.key(0), z0, 1.0, 0.0, 30,
                                          trajectory=True)
        assert tuple(path.shape) == (31, 5, 1)
        assert np.array_equal(_numpy(path[0]), _numpy(z0)) and np.array_equal(_numpy(path[-1]), _numpy(z1))
        euler = solvers.fixed_step(ops, drift, z0, 1.0, 0.0, 30, "euler")
        assert np.allclose(_numpy(z1), _numpy(euler), rtol=1e-14, atol=0)


# --- likelihood ---------------------------------------------------------------------------------

A = np.array([[0.3, 2.0, -1.0], [0.5, -0.2, 0.7], [-1.5, 0.4, 0.9]], dtype=np.float32)


def test_hutchinson_is_unbiased_for_a_non_diagonal_jacobian(backend_ops):
    _, ops = backend_ops
    xp = ops.xp
    a = ops.asarray(A)

    def velocity(t, x):
        return x @ xp.permute_dims(a, (1, 0))

    x = xp.ones((20_000, 3))
    v = ops.random(ops.key(0)).rademacher(x.shape, x.dtype)
    assert set(np.unique(_numpy(v))) == {-1.0, 1.0}
    b, estimates = likelihood.hutchinson(ops, velocity, v)(ops.asarray(0.0), (x, None))
    assert np.allclose(_numpy(b), _numpy(x) @ A.T)
    assert tuple(estimates.shape) == (20_000,)
    trace = float(np.trace(A))
    assert abs(float(xp.mean(estimates)) - trace) < 0.05  # sd 2.9 / sqrt(20000)
    assert float(xp.std(estimates)) > 1  # one probe per point really is an estimate here
    _, exact = ops.velocity_and_divergence(velocity, ops.asarray(0.0), x[:5])
    assert np.allclose(_numpy(exact), trace, atol=1e-5)


def test_exact_divergence_is_the_jacobian_trace_without_parameter_gradients(backend_ops):
    """b = tanh(x W) cos t has db_j/dx_i = W_ij (1 - tanh(x W)_j^2) cos t. In torch W is a
    parameter: neither b nor log_prob (run under no_grad, as the model runs it) carries a graph,
    whether the divergence is exact or Hutchinson's."""
    name, ops = backend_ops
    xp = ops.xp
    rng = np.random.default_rng(1)
    w_np = rng.normal(size=(3, 3)).astype(np.float32)
    x_np = rng.normal(size=(4, 3)).astype(np.float32)
    if name == "torch":
        import torch
        weight = torch.nn.Parameter(torch.tensor(w_np))
        no_grad = torch.no_grad
    else:
        weight, no_grad = ops.asarray(w_np), contextlib.nullcontext

    def velocity(t, x):
        return xp.tanh(x @ weight) * xp.cos(t)

    x, t = ops.asarray(x_np), ops.asarray(0.3)
    with no_grad():
        b, div = ops.velocity_and_divergence(velocity, t, x)
    z = np.tanh(x_np.astype(np.float64) @ w_np)
    assert np.allclose(_numpy(b), z * math.cos(0.3), atol=1e-6)
    want = ((1 - z ** 2) * np.diag(w_np)).sum(-1) * math.cos(0.3)
    assert np.allclose(_numpy(div), want, atol=1e-6)

    def base(y):
        return -0.5 * xp.sum(y ** 2, axis=-1)

    def integrate(f, y0):
        return solvers.fixed_step(ops, f, y0, 1.0, 0.0, 4, "euler")
    with no_grad():
        exact = likelihood.log_prob(ops, velocity, base, x, integrate)
        estimate = likelihood.log_prob(ops, velocity, base, x, integrate, exact=False, key=ops.key(0))
    assert tuple(b.shape) == (4, 3) and tuple(div.shape) == (4,)
    assert tuple(exact.shape) == (4,) and tuple(estimate.shape) == (4,)
    for value in (b, div, exact, estimate):
        assert np.isfinite(_numpy(value)).all()
        if name == "torch":
            assert not value.requires_grad


# --- the same velocity in both backends -----------------------------------------------------

RNG = np.random.default_rng(3)
W1, C1, B1 = RNG.normal(size=(2, 16)), RNG.normal(size=16), RNG.normal(size=16) * 0.1
W2, B2 = RNG.normal(size=(16, 2)) / 4, RNG.normal(size=2) * 0.1
X = RNG.normal(size=(64, 2)).astype(np.float32)


def _velocity(ops):
    """A fixed tanh MLP (t, x) -> R^2, written once for both backends (float32)."""
    xp = ops.xp
    w1, c1, b1, w2, b2 = (ops.asarray(w) for w in (W1, C1, B1, W2, B2))

    def velocity(t, x):
        return xp.tanh(x @ w1 + t * c1 + b1) @ w2 + b2
    return velocity


def _base(xp):
    return lambda z: -0.5 * xp.sum(z ** 2, axis=-1) - math.log(2 * math.pi)


def test_both_backends_integrate_the_same_velocity_alike():
    """Every fixed-step method, backward, and dopri5 forward (the same steps taken), float32."""
    jax_ops, torch_ops = _both()
    import jax
    jax_v, torch_v = _velocity(jax_ops), _velocity(torch_ops)

    @jax.jit  # one compilation for all the methods
    def theirs(x):
        out = {m: solvers.fixed_step(jax_ops, jax_v, x, 1.0, 0.0, 10, m) for m in METHODS}
        return out, solvers.dopri5(jax_ops, jax_v, x, 0.0, 1.0, 1e-6, 1e-6)
    theirs, (jax_dopri5, jax_steps) = theirs(jax_ops.asarray(X))
    x = torch_ops.asarray(X)
    ours = {m: solvers.fixed_step(torch_ops, torch_v, x, 1.0, 0.0, 10, m) for m in METHODS}
    ours["dopri5"], steps = solvers.dopri5(torch_ops, torch_v, x, 0.0, 1.0, 1e-6, 1e-6)
    theirs["dopri5"] = jax_dopri5
    for m, y in ours.items():
        assert y.dtype == torch_ops.xp.float32 and theirs[m].dtype == jax_ops.xp.float32, m
        assert np.abs(_numpy(y) - np.asarray(theirs[m])).max() < 1e-5, m
    assert int(steps) == int(jax_steps)


class _FixedProbe:
    """A ``Random`` whose Rademacher probe is a given array (JAX's, handed to torch)."""

    def __init__(self, probe):
        self.probe = probe

    def rademacher(self, shape, dtype=None):
        assert tuple(shape) == tuple(self.probe.shape)
        return self.probe


def test_both_backends_give_the_same_log_densities(monkeypatch):
    """rk4 with the exact divergence, dopri5 with Hutchinson's (the same probe in both)."""
    jax_ops, torch_ops = _both()
    import jax
    import torch
    jax_v, torch_v = _velocity(jax_ops), _velocity(torch_ops)
    key = jax_ops.key(0)
    cases = [("rk4", True), ("dopri5", False)]

    def integrator(ops, method):
        if method == "dopri5":
            return lambda f, y0: solvers.dopri5(ops, f, y0, 1.0, 0.0, 1e-5, 1e-5)[0]
        return lambda f, y0: solvers.fixed_step(ops, f, y0, 1.0, 0.0, 8, method)

    @jax.jit
    def theirs(x):
        return [likelihood.log_prob(jax_ops, jax_v, _base(jax_ops.xp), x, integrator(jax_ops, method),
                                    exact, key)
                for method, exact in cases]
    theirs = theirs(jax_ops.asarray(X))
    # JAX's probe (log_prob draws it as the first draw of ``key``), handed to the torch runtime
    probe = torch_ops.asarray(np.asarray(jax_ops.random(key).rademacher(X.shape, jax_ops.xp.float32)))
    monkeypatch.setattr(torch_ops, "random", lambda gen: _FixedProbe(probe))
    for (method, exact), value in zip(cases, theirs):
        with torch.no_grad():
            ours = likelihood.log_prob(torch_ops, torch_v, _base(torch_ops.xp), torch_ops.asarray(X),
                                       integrator(torch_ops, method), exact, torch_ops.key(0))
        assert tuple(ours.shape) == (64,) and tuple(value.shape) == (64,)
        assert np.abs(_numpy(ours) - np.asarray(value)).max() < 1e-4, (method, exact)


def test_dopri5_backward_to_a_nonzero_end_matches_diffrax():
    """y' = -(1 + t) y from 0.9 down to 0.1 (float64): the last step lands on 0.1 in both
    backends (torchdiffeq negates the step_t of a decreasing interval only when it is a tensor),
    so the two agree to rounding and take the same steps."""
    jax_ops, torch_ops = _both()
    import torch

    y0 = np.array([1.0, 2.0])
    ours, steps = solvers.dopri5(torch_ops, lambda t, y: -(1 + t) * y,
                                 torch_ops.asarray(y0, torch.float64), 0.9, 0.1, 1e-6, 1e-6)
    assert ours.dtype == torch.float64
    with _x64("jax"):
        import jax.numpy as jnp
        theirs, their_steps = solvers.dopri5(jax_ops, lambda t, y: -(1 + t) * y,
                                             jax_ops.asarray(y0, jnp.float64), 0.9, 0.1, 1e-6, 1e-6)
        theirs = np.asarray(theirs)
    assert theirs.dtype == np.float64
    exact = y0 * math.exp(0.8 + (0.81 - 0.01) / 2)
    assert np.allclose(_numpy(ours), theirs, rtol=1e-12, atol=0)
    assert int(steps) == int(their_steps)
    assert np.allclose(_numpy(ours), exact, rtol=1e-5)
