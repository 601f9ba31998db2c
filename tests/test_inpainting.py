"""Inpainting (backends/runtime/inpainting.py, docs/conditional.md): the guided data prediction
is the exact posterior mean of a Gaussian target given x_t and the observed coordinates (with
the ridge's observation noise), on both backends and for masks that differ from point to point;
sampling with the exact field of a Gaussian target gives its exact conditional (ODE and forward
SDE), the same on both backends; bad observations and models that cannot be guided are clear
errors."""

from __future__ import annotations

import numpy as np
import pytest

import tfm
from backend_params import to_numpy  # tests/
from tfm.backends.runtime import inpainting
from tfm.errors import TfmDataError, TfmSemanticError

MEAN = np.array([2.0, -1.0])
COV = np.array([[1.0, 0.8], [0.8, 1.0]])
OBSERVED = 3.0  # x1[0]: then x1[1] ~ N(-1 + 0.8 (3 - 2), 1 - 0.8^2)
CONDITIONAL = (-0.2, 0.36)


def _gaussian_data(xp, mean, cov):
    """(t, x) -> E[x1 | x_t = x] along the linear interpolant from N(0, I) to N(mean, cov)."""
    dim = len(mean)

    def data(t, x):
        t = xp.asarray(t, dtype=x.dtype)
        m, c = xp.asarray(mean, dtype=x.dtype), xp.asarray(cov, dtype=x.dtype)
        cov_t = (1 - t) ** 2 * xp.eye(dim, dtype=x.dtype) + t ** 2 * c
        gain = t * xp.matmul(c, xp.linalg.inv(cov_t))
        return m + xp.matmul(x - t * m, xp.permute_dims(gain, (1, 0)))
    return data


@pytest.mark.parametrize("t", [0.2, 0.5, 0.9])
def test_the_guided_data_prediction_is_the_gaussian_posterior_mean(backend_ops, t):
    _, ops = backend_ops
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 3))
    mean, cov = rng.standard_normal(3), a @ a.T + 0.3 * np.eye(3)
    x = rng.standard_normal((5, 3))
    values = rng.standard_normal((5, 3))
    mask = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0], [0, 0, 1]], float)
    got = to_numpy(inpainting.data_given(
        ops, _gaussian_data(ops.xp, mean, cov), t, ops.asarray(x.astype(np.float32)),
        ops.asarray(np.where(mask > 0, values, 0).astype(np.float32)),
        ops.asarray(mask.astype(np.float32))))
    cov_t = (1 - t) ** 2 * np.eye(3) + t ** 2 * cov
    for i in range(5):  # x1 given x_t, then given the observed coordinates
        gain = t * cov @ np.linalg.inv(cov_t)
        d = mean + gain @ (x[i] - t * mean)
        c = cov - gain @ (t * cov)
        o = mask[i] > 0
        noise = inpainting.RIDGE * np.trace(c) / 3  # the ridge: as if y had this variance
        block = c[np.ix_(o, o)] + noise * np.eye(int(o.sum()))
        want = d + c[:, o] @ np.linalg.solve(block, values[i, o] - d[o]) if o.any() else d
        np.testing.assert_allclose(got[i], want, rtol=2e-4, atol=2e-4)


def _exact_torch():
    import torch

    class Exact(torch.nn.Module):
        """The exact velocity from N(0, I) to N(MEAN, COV) along the linear interpolant."""

        def __init__(self):
            super().__init__()
            self.zero = torch.nn.Parameter(torch.zeros(()))

        def forward(self, t, x):
            t = t[:, None, None]
            mean, cov = torch.tensor(MEAN, dtype=x.dtype), torch.tensor(COV, dtype=x.dtype)
            eye = torch.eye(2, dtype=x.dtype)
            shifted = (x - t[:, :, 0] * mean)[:, :, None]
            gain = torch.linalg.solve((1 - t) ** 2 * eye + t ** 2 * cov, shifted)
            return mean + ((t * cov - (1 - t) * eye) @ gain)[:, :, 0] + self.zero
    return Exact()


def _exact_jax():
    import equinox as eqx
    import jax.numpy as jnp

    class Exact(eqx.Module):
        zero: jnp.ndarray

        def __call__(self, t, x):
            t = t[:, None, None]
            mean, cov, eye = jnp.asarray(MEAN, x.dtype), jnp.asarray(COV, x.dtype), jnp.eye(2)
            shifted = (x - t[:, :, 0] * mean)[:, :, None]
            gain = jnp.linalg.solve((1 - t) ** 2 * eye + t ** 2 * cov, shifted)
            return mean + ((t * cov - (1 - t) * eye) @ gain)[:, :, 0] + self.zero
    return Exact(jnp.zeros(()))


def _exact_model(backend):
    pytest.importorskip(backend)
    net = _exact_torch() if backend == "torch" else _exact_jax()
    return tfm.load("examples/gaussian_to_gaussian.tfm", backend=backend, networks={"b": net})


def test_inpainted_samples_of_a_gaussian_are_its_exact_conditional(in_root):
    m = _exact_model("torch")
    n = 20000
    x = m.sample(n, observed=[OBSERVED, np.nan], seed=1)  # rk4, 10 steps
    assert np.all(x[:, 0] == OBSERVED)
    mean, var = CONDITIONAL
    assert abs(x[:, 1].mean() - mean) < 4 * np.sqrt(var / n)
    assert abs(x[:, 1].var() / var - 1) < 0.04
    # a point of each mask in one batch: the unobserved second, the first, neither
    observed = np.array([[OBSERVED, np.nan], [np.nan, -1.0], [np.nan, np.nan]] * 2000, np.float32)
    y = m.sample(len(observed), observed=observed, seed=2)
    assert abs(y[0::3, 1].mean() - mean) < 0.03 and abs(y[1::3, 0].mean() - 2) < 0.03
    assert abs(y[2::3].mean(0) - MEAN).max() < 0.06 and np.all(y[1::3, 1] == -1)


def test_both_backends_inpaint_alike(in_root):
    start = np.random.default_rng(3).standard_normal((64, 2)).astype(np.float32)
    observed = np.array([[OBSERVED, np.nan], [np.nan, 0.5]] * 32, np.float32)
    got = [_exact_model(b).sample(64, x0=start, observed=observed) for b in ("jax", "torch")]
    np.testing.assert_allclose(got[0], got[1], rtol=1e-4, atol=1e-4)


def test_inpainting_errors(in_root, tmp_path):
    pytest.importorskip("torch")
    m = _exact_model("torch")
    with pytest.raises(TfmSemanticError, match=r"have shape \(3,\).*\(2\) or \(5, 2\)"):
        m.sample(5, observed=[1.0, np.nan, 2.0])
    with pytest.raises(TfmSemanticError, match="point 1 hold an infinite value"):
        m.sample(2, observed=[[1.0, np.nan], [np.inf, np.nan]])
    with pytest.raises(TfmSemanticError, match="hold <U1 values"):
        m.sample(2, observed=["a", "b"])
    sbcfm = tfm.load("examples/moons_sbcfm.tfm", backend="torch")
    with pytest.raises(TfmSemanticError, match="noise of x_t is Gaussian.*coupling sinkhorn"):
        sbcfm.sample(4, observed=[1.0, np.nan])
    from tfm.driver import cli
    with pytest.raises(TfmDataError, match="gives 3 numbers; the model's samples have 2"):
        cli._observed("1,nan,2", (2,))
    with pytest.raises(TfmDataError, match="is not a list of numbers"):
        cli._observed("1;2", (2,))


def test_the_forward_sde_inpaints_too(in_root):
    """circles_vp.tfm's network predicts the base draw along the VP interpolant; with the
    exact prediction for N(MEAN, COV) its SDE sampler (Euler-Maruyama, 200 steps) given the
    first coordinate gives the exact conditional of the second."""
    torch = pytest.importorskip("torch")
    interpolant = tfm.load("examples/circles_vp.tfm", backend="torch").module.interpolant

    class Exact(torch.nn.Module):  # E[x0 | x_t = x]
        def __init__(self):
            super().__init__()
            self.zero = torch.nn.Parameter(torch.zeros(()))

        def forward(self, t, x):
            one, none = torch.ones_like(t), torch.zeros_like(t)
            a = interpolant(t, one, none, none)[:, None, None]
            b = interpolant(t, none, one, none)[:, None, None]
            mean, cov = torch.tensor(MEAN, dtype=x.dtype), torch.tensor(COV, dtype=x.dtype)
            shifted = (x - b[:, :, 0] * mean)[:, :, None]
            cov_t = a ** 2 * torch.eye(2, dtype=x.dtype) + b ** 2 * cov
            return (a * torch.linalg.solve(cov_t, shifted))[:, :, 0] + self.zero

    m = tfm.load("examples/circles_vp.tfm", backend="torch", networks={"eta": Exact()})
    n = 8000
    x = m.sample(n, sampler="sde", observed=[OBSERVED, np.nan], seed=1)
    mean, var = CONDITIONAL
    assert abs(x[:, 1].mean() - mean) < 5 * np.sqrt(var / n)
    assert abs(x[:, 1].var() / var - 1) < 0.08


def test_the_positive_part_sets_negative_eigenvalues_to_zero(backend_ops):
    _, ops = backend_ops
    rng = np.random.default_rng(1)
    q = np.linalg.qr(rng.standard_normal((4, 5, 5)))[0]
    eigenvalues = rng.uniform(-2, 2, (4, 5)) * np.array([1, 1, 1, 1e-2, 1e-3])
    a = (q * eigenvalues[:, None, :]) @ np.swapaxes(q, 1, 2)
    want = (q * np.maximum(eigenvalues, 0)[:, None, :]) @ np.swapaxes(q, 1, 2)
    got = to_numpy(inpainting.positive_part(ops.xp, ops.asarray(a.astype(np.float32))))
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_a_conditioned_model_inpaints_given_its_condition(in_root):
    """The guided data prediction is the condition's: the labels (here condition vectors) go
    with each point through the Jacobian."""
    pytest.importorskip("torch")
    m = tfm.load("examples/gaussian_posterior.tfm", backend="torch")
    cond = np.array([[1.0, -0.5], [2.0, 2.0]] * 3, np.float32)
    x = m.sample(6, cond=cond, observed=[np.nan, 0.3], seed=0)
    start = m.sample(6, cond=cond, seed=0, trajectory=True)[1][0]
    one = [m.sample(1, cond=cond[i:i + 1], x0=start[i:i + 1], observed=[np.nan, 0.3])[0]
           for i in range(2)]
    assert np.all(x[:, 1] == np.float32(0.3)) and np.isfinite(x).all()
    np.testing.assert_allclose(x[:2], np.stack(one), rtol=1e-4, atol=1e-4)


def test_models_without_fields_refuse_conditions_clearly(in_root):
    pytest.importorskip("torch")
    funnel = tfm.load("examples/funnel.tfm", backend="torch")
    with pytest.raises(TfmSemanticError, match="samples its target's energy"):
        funnel.sample(5, observed=[1.0] + [np.nan] * (funnel.shape[0] - 1))
    flow = tfm.load("examples/moons_realnvp.tfm", backend="torch")
    with pytest.raises(TfmSemanticError, match="normalizing flow is not conditioned"):
        flow.sample(5, cond=1)
    with pytest.raises(TfmSemanticError, match="normalizing flow is not conditioned"):
        flow.log_prob(np.zeros((2, 2)), cond=[0, 1])
