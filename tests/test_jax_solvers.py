"""The JAX backend's solvers on their own: convergence orders on an ODE with a known solution,
backward integration, dopri5 against its tolerance, Euler-Maruyama against the exact
Ornstein-Uhlenbeck law."""

from __future__ import annotations

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from tfm.backends.jax.runtime import solvers  # noqa: E402


@pytest.mark.parametrize("method", sorted(solvers.ORDERS))
def test_fixed_step_solvers_converge_at_their_order(method):
    """A rotation at rate 1 + t, y' = (1 + t) (y2, -y1), y(0) = (0, 1), has
    y(1) = (sin 1.5, cos 1.5); halving the step divides the error by 2^order (float64)."""
    with jax.enable_x64(True):
        def f(t, y):
            return jnp.stack([y[1], -y[0]]) * (1 + t)
        y0 = jnp.array([0.0, 1.0], dtype=jnp.float64)
        exact = np.array([math.sin(1.5), math.cos(1.5)])
        errors = [float(np.max(np.abs(np.asarray(solvers.fixed_step(f, y0, 0.0, 1.0, n, method))
                                      - exact))) for n in (16, 32, 64, 128)]
    observed = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    order = solvers.ORDERS[method]
    assert all(abs(o - order) < 0.1 for o in observed), (method, errors, observed)


def test_fixed_step_solvers_run_backward_and_keep_trajectories():
    def f(t, y):
        return -y
    y1, path = solvers.fixed_step(f, jnp.ones(3), 1.0, 0.0, 50, "rk4", trajectory=True)
    assert path.shape == (51, 3)
    assert np.allclose(y1, math.e, rtol=1e-5)


def test_dopri5_meets_its_tolerance():
    with jax.enable_x64(True):
        y, steps = solvers.dopri5(lambda t, y: (-2 * t + jnp.cos(t)) * y,
                                  jnp.array([1.0], dtype=jnp.float64), 0.0, 1.0, 1e-8, 1e-8)
    assert abs(float(y[0]) - math.exp(-1 + math.sin(1))) < 1e-7
    assert 5 <= int(steps) < 200


def test_euler_maruyama_reaches_the_ornstein_uhlenbeck_law():
    """dX = -X dt + sqrt(2 eps) dW with eps = 1/2 from X0 = 2: X1 ~ N(2/e, (1 - e^-2)/2)."""
    x = solvers.euler_maruyama(lambda t, y: -y, lambda t: 0.5, jax.random.PRNGKey(0),
                               jnp.full((100_000, 1), 2.0), 0.0, 1.0, 200)
    assert abs(float(x.mean()) - 2 / math.e) < 0.01
    assert abs(float(x.var()) - (1 - math.exp(-2)) / 2) < 0.01
