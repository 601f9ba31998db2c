"""The PyTorch runtime's solvers and likelihood: solver orders, backward runs and trajectories,
dopri5's tolerance, Euler-Maruyama against the Ornstein-Uhlenbeck law, Hutchinson's estimator,
and the same velocity integrated by both backends (every sampler, log-densities)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchdiffeq")

from tfm.backends.torch.runtime import likelihood, solvers  # noqa: E402

METHODS = sorted(solvers.ORDERS)


# --- solvers: convergence orders on an ODE with a known solution ----------------------------

@pytest.mark.parametrize("method", METHODS)
def test_fixed_step_solvers_converge_at_their_order(method):
    """A rotation at rate 1 + t, y' = (1 + t) (y2, -y1), y(0) = (0, 1), has
    y(1) = (sin 1.5, cos 1.5); halving the step divides the error by 2^order (float64)."""
    def f(t, y):
        assert isinstance(t, torch.Tensor) and t.dtype == torch.float64 and t.ndim == 0
        return torch.stack([y[1], -y[0]]) * (1 + t)
    y0 = torch.tensor([0.0, 1.0], dtype=torch.float64)
    exact = np.array([math.sin(1.5), math.cos(1.5)])
    errors = [float(np.max(np.abs(solvers.fixed_step(f, y0, 0.0, 1.0, n, method).numpy() - exact)))
              for n in (16, 32, 64, 128)]
    observed = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    order = solvers.ORDERS[method]
    assert all(abs(o - order) < 0.1 for o in observed), (method, errors, observed)


def test_fixed_step_solvers_run_backward_and_keep_trajectories():
    def f(t, y):
        return -y
    y1, path = solvers.fixed_step(f, torch.ones(3), 1.0, 0.0, 50, "rk4", trajectory=True)
    assert path.shape == (51, 3)
    assert np.allclose(y1.numpy(), math.e, rtol=1e-5)
    assert torch.equal(path[0], torch.ones(3)) and torch.equal(path[-1], y1)
    # a tuple state keeps a tuple of trajectories
    (a, b), (pa, pb) = solvers.fixed_step(lambda t, y: (-y[0], 2 * y[1]), (torch.ones(3), torch.ones(())),
                                          0.0, 1.0, 40, "heun", trajectory=True)
    assert pa.shape == (41, 3) and pb.shape == (41,)
    assert np.allclose(a.numpy(), math.exp(-1), rtol=1e-3) and abs(float(b) - math.exp(2)) < 1e-2


def test_dopri5_meets_its_tolerance():
    y, steps = solvers.dopri5(lambda t, y: (-2 * t + torch.cos(t)) * y,
                              torch.tensor([1.0], dtype=torch.float64), 0.0, 1.0, 1e-8, 1e-8)
    assert abs(float(y[0]) - math.exp(-1 + math.sin(1))) < 1e-7
    assert 5 <= int(steps) < 200
    back, _ = solvers.dopri5(lambda t, y: (-2 * t + torch.cos(t)) * y, y, 1.0, 0.0, 1e-8, 1e-8)
    assert abs(float(back[0]) - 1) < 1e-7


def test_euler_maruyama_reaches_the_ornstein_uhlenbeck_law():
    """dX = -X dt + sqrt(2 eps) dW with eps = 1/2 from X0 = 2: X1 ~ N(2/e, (1 - e^-2)/2);
    with eps = 0 it is the Euler method, at the same times."""
    gen = torch.Generator().manual_seed(0)
    x = solvers.euler_maruyama(lambda t, y: -y, lambda t: 0.5, gen, torch.full((100_000, 1), 2.0),
                               0.0, 1.0, 200)
    assert abs(float(x.mean()) - 2 / math.e) < 0.01
    assert abs(float(x.var()) - (1 - math.exp(-2)) / 2) < 0.01
    drift = lambda t, y: -y * torch.cos(t)  # noqa: E731
    x0 = torch.linspace(-1, 1, 5, dtype=torch.float64)[:, None]
    x1, path = solvers.euler_maruyama(drift, lambda t: 0 * t, gen, x0, 1.0, 0.0, 30, trajectory=True)
    assert path.shape == (31, 5, 1)
    assert torch.allclose(x1, solvers.fixed_step(drift, x0, 1.0, 0.0, 30, "euler"), rtol=1e-14)


# --- likelihood ---------------------------------------------------------------------------------

def test_hutchinson_is_unbiased_for_a_non_diagonal_jacobian():
    a = torch.tensor([[0.3, 2.0, -1.0], [0.5, -0.2, 0.7], [-1.5, 0.4, 0.9]])

    def velocity(t, x):
        return x @ a.T

    x = torch.ones((20_000, 3))
    v = likelihood._rademacher(torch.Generator().manual_seed(0), x)
    estimates = likelihood.divergence_hutchinson(velocity, 0.0, x, v)
    assert abs(float(estimates.mean()) - float(torch.trace(a))) < 0.05  # sd 2.9 / sqrt(20000)
    assert float(estimates.std()) > 1  # one probe per point really is an estimate here
    exact = likelihood.divergence_exact(velocity, 0.0, x[:5])
    assert np.allclose(exact.numpy(), float(torch.trace(a)), atol=1e-5)


def test_exact_divergence_is_the_jacobian_trace_without_parameter_gradients():
    weight = torch.nn.Parameter(torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))

    def velocity(t, x):
        return torch.tanh(x @ weight) * torch.cos(t)

    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        b, div = likelihood.velocity_and_divergence(velocity, 0.3, x)
    jac = torch.func.vmap(torch.func.jacrev(lambda y: velocity(torch.tensor(0.3), y)))(x)
    assert torch.allclose(b, velocity(torch.tensor(0.3), x)) and not b.requires_grad
    assert torch.allclose(div, torch.diagonal(jac, dim1=1, dim2=2).sum(-1), atol=1e-6)
    base = lambda z: -0.5 * (z ** 2).sum(-1)  # noqa: E731
    assert not likelihood.log_prob(velocity, base, x, 0.0, 1.0, "euler", 4).requires_grad


# --- the same velocity in both backends -----------------------------------------------------

RNG = np.random.default_rng(3)
W1, C1, B1 = RNG.normal(size=(2, 16)), RNG.normal(size=16), RNG.normal(size=16) * 0.1
W2, B2 = RNG.normal(size=(16, 2)) / 4, RNG.normal(size=2) * 0.1
X = RNG.normal(size=(64, 2)).astype(np.float32)


def _velocity(lib, array):
    """A fixed tanh MLP (t, x) -> R^2, written once for jnp and torch."""
    w1, c1, b1, w2, b2 = (array(w) for w in (W1, C1, B1, W2, B2))

    def velocity(t, x):
        return lib.tanh(x @ w1 + t * c1 + b1) @ w2 + b2
    return velocity


def _backends():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    from tfm.backends.jax.runtime import likelihood as jax_likelihood, solvers as jax_solvers
    jax_v = _velocity(jnp, lambda w: jnp.asarray(w, jnp.float32))
    torch_v = _velocity(torch, lambda w: torch.tensor(w, dtype=torch.float32))
    return jax, jnp, jax_solvers, jax_likelihood, jax_v, torch_v


def _base(lib):
    return lambda z: -0.5 * lib.sum(z ** 2, -1) - math.log(2 * math.pi)


def test_both_backends_integrate_the_same_velocity_alike():
    """Every fixed-step method, backward, and dopri5 forward (the same steps taken), float32."""
    jax, jnp, jax_solvers, _, jax_v, torch_v = _backends()

    @jax.jit  # one compilation for all the samplers
    def theirs(x):
        out = {m: jax_solvers.fixed_step(jax_v, x, 1.0, 0.0, 10, m) for m in METHODS}
        return out, jax_solvers.dopri5(jax_v, x, 0.0, 1.0, 1e-6, 1e-6)
    theirs, (jax_dopri5, jax_steps) = theirs(jnp.asarray(X))
    x = torch.tensor(X)
    ours = {m: solvers.fixed_step(torch_v, x, 1.0, 0.0, 10, m) for m in METHODS}
    ours["dopri5"], steps = solvers.dopri5(torch_v, x, 0.0, 1.0, 1e-6, 1e-6)
    theirs["dopri5"] = jax_dopri5
    for m, y in ours.items():
        assert np.abs(y.numpy() - np.asarray(theirs[m])).max() < 1e-5, m
    assert steps == int(jax_steps)


def test_both_backends_give_the_same_log_densities(monkeypatch):
    """rk4 with the exact divergence, dopri5 with Hutchinson's (the same probe in both)."""
    jax, jnp, _, jax_likelihood, jax_v, torch_v = _backends()
    key = jax.random.PRNGKey(0)
    cases = [("rk4", True), ("dopri5", False)]

    @jax.jit
    def theirs(x):
        return [jax_likelihood.log_prob(jax_v, _base(jnp), x, 0.0, 1.0, method, 8, exact, key)
                for method, exact in cases]
    theirs = theirs(jnp.asarray(X))
    # JAX's probe, handed to the torch runtime
    probe = torch.tensor(np.asarray(jax.random.rademacher(key, X.shape, jnp.float32)))
    monkeypatch.setattr(likelihood, "_rademacher", lambda gen, x: probe)
    for (method, exact), value in zip(cases, theirs):
        ours = likelihood.log_prob(torch_v, _base(torch), torch.tensor(X), 0.0, 1.0, method, 8, exact,
                                   torch.Generator())
        assert np.abs(ours.numpy() - np.asarray(value)).max() < 1e-4, (method, exact)


def test_dopri5_backward_to_a_nonzero_end_matches_diffrax():
    """y' = -(1 + t) y from 0.9 down to 0.1 (float64): the last step lands on 0.1 in both
    backends (torchdiffeq negates the step_t of a decreasing interval only when it is a tensor),
    so the two agree to rounding and take the same steps."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from tfm.backends.jax.runtime import solvers as jax_solvers

    y0 = np.array([1.0, 2.0])
    ours, steps = solvers.dopri5(lambda t, y: -(1 + t) * y, torch.tensor(y0), 0.9, 0.1,
                                 1e-6, 1e-6)
    with jax.enable_x64(True):
        theirs, their_steps = jax_solvers.dopri5(lambda t, y: -(1 + t) * y,
                                                 jnp.asarray(y0), 0.9, 0.1, 1e-6, 1e-6)
        theirs = np.asarray(theirs)
    exact = y0 * math.exp(0.8 + (0.81 - 0.01) / 2)
    assert np.allclose(ours.numpy(), theirs, rtol=1e-12, atol=0)
    assert int(steps) == int(their_steps)
    assert np.allclose(ours.numpy(), exact, rtol=1e-5)
