"""The PyTorch runtime's densities and couplings on their own: the exact assignment, the Sinkhorn
plan's marginals, every sampler's shape, dtype and determinism for a seeded generator, the
samplers' moments against the JAX sampler of the same density, and the normal's log density."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tfm.backends.torch.runtime import couplings, distributions  # noqa: E402
from tfm.dsl.diagnostics import TfmSemanticError  # noqa: E402
from backend_params import pairing_cost as _cost  # noqa: E402  (tests/)

DENSITIES = {
    "normal": ({"mean": [1.0, -2.0], "scale": 0.5}, (2,)),
    "moons": ({"noise": 0.05}, (2,)),
    "circles": ({"noise": 0.05, "factor": 0.5}, (2,)),
    "s_curve": ({"noise": 0.05}, (2,)),
    "swiss_roll": ({"noise": 0.5}, (2,)),
    "eight_gaussians": ({"radius": 2.0, "scale": 0.1}, (2,)),
    "checkerboard": ({}, (2,)),
    "gmm40": ({}, (2,)),
    "funnel": ({}, (10,)),
}


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_minibatch_ot_is_the_optimal_permutation():
    x0 = torch.randn(64, 2, generator=_gen(0))
    x1 = torch.randn(64, 2, generator=_gen(1)) + 3
    a, b = couplings.minibatch_ot(_gen(0), x0, x1)
    assert torch.equal(a, x0)
    rows = {tuple(r) for r in b.numpy().round(6)}
    assert rows == {tuple(r) for r in x1.numpy().round(6)}  # a permutation of x1
    assert _cost(a, b) < _cost(x0, x1)
    ot = pytest.importorskip("ot")
    exact = ot.emd2(np.full(64, 1 / 64), np.full(64, 1 / 64),
                    ot.dist(x0.numpy().astype(np.float64), x1.numpy().astype(np.float64)))
    assert _cost(a, b) / 64 == pytest.approx(exact, rel=1e-5)
    assert couplings.make({"name": "minibatch_ot", "args": {}}) is couplings.minibatch_ot


def test_sinkhorn_plan_has_uniform_marginals_and_pairs_close_points():
    x0 = torch.randn(32, 2, generator=_gen(0))
    x1 = torch.randn(32, 2, generator=_gen(1))
    plan = torch.exp(couplings.sinkhorn_plan(couplings._costs(x0, x1), 0.05)).numpy()
    assert np.allclose(plan.sum(1), 1 / 32, rtol=1.1e-3)
    assert np.allclose(plan.sum(0), 1 / 32, rtol=1e-5)
    sink = couplings.make({"name": "sinkhorn", "args": {"reg": 0.01}})
    _, b = sink(_gen(2), x0, x1)
    assert _cost(x0, b) < 0.5 * _cost(x0, x1)
    _, again = sink(_gen(2), x0, x1)
    assert torch.equal(b, again)


def test_plain_and_unknown_couplings():
    x0, x1 = torch.zeros(4, 2), torch.ones(4, 2)
    for name in ("independent", "paired"):
        a, b = couplings.make({"name": name, "args": {}})(_gen(0), x0, x1)
        assert a is x0 and b is x1
    with pytest.raises(ValueError, match="unknown coupling"):
        couplings.make({"name": "nope", "args": {}})


@pytest.mark.parametrize("name", sorted(DENSITIES))
def test_sampler_shape_dtype_and_determinism(name):
    args, shape = DENSITIES[name]
    draw = distributions.sampler({"name": name, "args": args}, shape)
    x = draw(_gen(3), 500)
    assert x.shape == (500, *shape) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert torch.isfinite(x).all()
    assert torch.equal(x, draw(_gen(3), 500))
    assert not torch.equal(x, draw(_gen(4), 500))


def test_data_sampler_draws_rows_of_the_data():
    data = np.arange(30, dtype=np.float64).reshape(10, 3)
    draw = distributions.sampler({"name": "data", "args": {}}, (3,), data=data)
    x = draw(_gen(0), 200)
    assert x.shape == (200, 3) and x.dtype == torch.float32
    assert torch.equal(x, draw(_gen(0), 200))
    rows = {tuple(r) for r in x.numpy()}
    assert rows <= {tuple(r) for r in data.astype(np.float32)} and len(rows) == 10


def test_normal_sampler_broadcasts_its_arguments():
    draw = distributions.sampler({"name": "normal", "args": {"mean": 2.0, "scale": [1.0, 2.0, 3.0]}},
                                 (3,))
    x = draw(_gen(0), 20_000).numpy()
    assert np.allclose(x.mean(0), 2.0, atol=0.1)
    assert np.allclose(x.std(0), [1.0, 2.0, 3.0], rtol=0.05)


def test_unknown_density_raises_the_jax_error():
    entry = {"name": "banana", "args": {}}
    with pytest.raises(TfmSemanticError) as torch_error:
        distributions.sampler(entry, (2,))
    pytest.importorskip("jax")
    from tfm.backends.jax.runtime import distributions as jax_distributions
    with pytest.raises(TfmSemanticError) as jax_error:
        jax_distributions.sampler(entry, (2,))
    assert str(torch_error.value) == str(jax_error.value)


def test_gmm40_means_are_shared_with_jax():
    pytest.importorskip("jax")
    from tfm.backends.jax.runtime import distributions as jax_distributions
    from tfm.backends.shared import densities
    assert jax_distributions.gmm40_means is densities.gmm40_means
    assert jax_distributions.GMM40_STD == densities.GMM40_STD


def _agree(a: np.ndarray, b: np.ndarray, z: float = 5.0):
    """Means of a and b (and of their squares) within z Monte Carlo standard errors."""
    for f in (lambda v: v, lambda v: v * v):
        fa, fb = f(a.astype(np.float64)), f(b.astype(np.float64))
        se = np.sqrt(fa.var(0) / len(fa) + fb.var(0) / len(fb))
        assert np.all(np.abs(fa.mean(0) - fb.mean(0)) < z * se + 1e-9), (fa.mean(0), fb.mean(0), se)


@pytest.mark.parametrize("name", sorted(DENSITIES))
def test_moments_match_the_jax_sampler(name):
    jax = pytest.importorskip("jax")
    from tfm.backends.jax.runtime import distributions as jax_distributions
    args, shape = DENSITIES[name]
    entry = {"name": name, "args": args}
    n = 20_000
    ours = distributions.sampler(entry, shape)(_gen(5), n).numpy()
    theirs = np.asarray(jax_distributions.sampler(entry, shape)(jax.random.PRNGKey(5), n))
    if name == "funnel":  # the other coordinates are too heavy-tailed for second moments
        ours, theirs = ours[:, :1], theirs[:, :1]
    _agree(ours, theirs)
    if name == "checkerboard":  # which squares are filled
        cells = lambda x: np.floor(x).astype(int) @ np.array([1, 10])  # noqa: E731
        assert set(np.unique(cells(ours))) == set(np.unique(cells(theirs)))


def test_normal_log_prob_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    mean, scale = [0.5, -1.0, 2.0, 0.0, 1.0, 3.0], [1.0, 2.0, 0.5, 1.5, 1.0, 0.25]
    entry = {"name": "normal", "args": {"mean": mean, "scale": scale}}
    x = torch.randn(7, 2, 3, generator=_gen(6), dtype=torch.float64)
    got = distributions.log_prob(entry, (2, 3))(x)
    assert got.shape == (7,)
    want = stats.norm.logpdf(x.numpy().reshape(7, 6), mean, scale).sum(1)
    assert np.allclose(got.numpy(), want, rtol=1e-5)
    scalar = distributions.log_prob({"name": "normal", "args": {"mean": 0.0, "scale": 1.0}}, (2, 3))
    assert np.allclose(scalar(x).numpy(), stats.norm.logpdf(x.numpy().reshape(7, 6)).sum(1), rtol=1e-5)
    assert distributions.log_prob({"name": "moons", "args": {"noise": 0.1}}, (2,)) is None
