"""The runtime's densities and couplings (``backends/runtime/densities.py``, ``couplings.py``),
each property checked for both backends through their ``Ops``: the exact assignment against POT,
the Sinkhorn plan's marginals, the plain and unknown couplings, every sampler's shape, dtype and
determinism for a seeded key, the data and normal samplers, densities without a sampler, the
normal's log density against scipy; then every sampler's moments against the other backend's."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from backend_params import backend_ops_of, pairing_cost as _cost, to_numpy as _numpy  # tests/
from tfm.backends.runtime import couplings, densities, targets
from tfm.backends.runtime.spec import Call
from tfm.errors import TfmSemanticError

DENSITIES = {
    "normal": ({"mean": [1.0, -2.0], "scale": 0.5}, (2,)),
    "moons": ({"noise": 0.05}, (2,)),
    "circles": ({"noise": 0.05, "factor": 0.5}, (2,)),
    "s_curve": ({"noise": 0.05}, (2,)),
    "swiss_roll": ({"noise": 0.5}, (2,)),
    "eight_gaussians": ({"radius": 2.0, "scale": 0.1}, (2,)),
    "checkerboard": ({}, (2,)),
    "gmm40": ({}, (2,)),
    "gmm50": ({}, (50,)),
    "funnel": ({}, (10,)),
    "many_well": ({}, (32,)),
    "box": ({"low": [-1.0, 0.0], "high": [2.0, 3.0]}, (2,)),
}
ENERGY_ONLY = {"phi4", "breast_cancer_logistic"}  # stdlib targets without an exact sampler


def _rng(ops, seed: int):
    return ops.random(ops.key(seed))


def _compiled(ops, fn, static_argnums=()):
    """``fn`` (of arrays and keys) compiled in JAX, as the runtime runs it there (one compilation
    instead of one per operation); as it is in torch."""
    if ops.name == "jax":
        import jax
        return jax.jit(fn, static_argnums=static_argnums)
    return fn


_SAMPLERS: dict = {}
N = 20_000  # points per draw of a density: enough for its moments


def _sampler(ops, name: str):
    """(seed) -> N draws of the density ``name`` of DENSITIES, compiled once per backend for all
    the tests."""
    if (ops.name, name) not in _SAMPLERS:
        args, shape = DENSITIES[name]
        draw = densities.sampler(ops, Call(name, args), shape)
        compiled = _compiled(ops, lambda key: draw(ops.random(key), N))
        _SAMPLERS[ops.name, name] = lambda seed: compiled(ops.key(seed))
    return _SAMPLERS[ops.name, name]


def _normal(ops, seed: int, shape, shift: float = 0.0):
    return ops.asarray(np.random.default_rng(seed).normal(size=shape) + shift)


def test_every_density_is_registered():
    assert set(DENSITIES) | {"data"} | ENERGY_ONLY == set(densities.DENSITIES.names())


# --- couplings ----------------------------------------------------------------------------------

def test_minibatch_ot_exact_is_the_optimal_permutation(backend_ops):
    _, ops = backend_ops
    x0, x1 = _normal(ops, 0, (64, 2)), _normal(ops, 1, (64, 2), 3.0)
    assert isinstance(couplings.COUPLINGS["minibatch_ot"], couplings.MinibatchOT)
    couple = couplings.make(ops, Call("minibatch_ot", {"solver": "exact"}))
    a, b = _compiled(ops, lambda key, x0, x1: couple(ops.random(key), x0, x1))(ops.key(0), x0, x1)
    assert np.array_equal(_numpy(a), _numpy(x0))
    rows = {tuple(r) for r in _numpy(b).round(6)}
    assert rows == {tuple(r) for r in _numpy(x1).round(6)}  # a permutation of x1
    assert _cost(_numpy(a), _numpy(b)) < _cost(_numpy(x0), _numpy(x1))
    ot = pytest.importorskip("ot")
    exact = ot.emd2(np.full(64, 1 / 64), np.full(64, 1 / 64),
                    ot.dist(_numpy(x0).astype(np.float64), _numpy(x1).astype(np.float64)))
    assert _cost(_numpy(a), _numpy(b)) / 64 == pytest.approx(exact, rel=1e-5)
    # the host assignment (scipy), and the backend's, give the coupling's permutation
    perm = couplings.exact_assignment(_numpy(couplings.costs(ops.xp, x0, x1)))
    assert np.array_equal(_numpy(x1)[perm], _numpy(b))
    assert np.array_equal(_numpy(ops.assignment(couplings.costs(ops.xp, x0, x1))), perm)
    # the default solver pairs the same batch within 0.5% of that optimum (tests/
    # test_assignment.py has the solver's own tests)
    couple = couplings.make(ops, Call("minibatch_ot", {"solver": "device"}))
    a, b = _compiled(ops, lambda key, x0, x1: couple(ops.random(key), x0, x1))(ops.key(0), x0, x1)
    assert {tuple(r) for r in _numpy(b).round(6)} == rows
    assert exact <= _cost(_numpy(a), _numpy(b)) / 64 <= 1.005 * exact


def test_the_host_assignment_is_the_cheapest_permutation():
    cost = np.random.default_rng(7).uniform(size=(6, 6))
    best = min(itertools.permutations(range(6)), key=lambda p: cost[range(6), p].sum())
    perm = couplings.exact_assignment(cost)
    assert perm.dtype == np.int64 and tuple(perm) == best


def test_costs_are_squared_distances_between_flattened_points(backend_ops):
    _, ops = backend_ops
    x0, x1 = _normal(ops, 0, (5, 2, 3)), _normal(ops, 1, (7, 2, 3))
    want = ((_numpy(x0).reshape(5, 1, 6) - _numpy(x1).reshape(1, 7, 6)) ** 2).sum(-1)
    assert np.allclose(_numpy(couplings.costs(ops.xp, x0, x1)), want, atol=1e-4)


def test_sinkhorn_plan_has_uniform_marginals_and_pairs_close_points(backend_ops):
    _, ops = backend_ops
    x0, x1 = _normal(ops, 0, (32, 2)), _normal(ops, 1, (32, 2))
    plan = _compiled(ops, lambda x0, x1: couplings.sinkhorn_plan(ops, couplings.costs(ops.xp, x0, x1),
                                                                 0.05))(x0, x1)
    plan = np.exp(_numpy(plan))
    assert plan.shape == (32, 32)
    assert np.allclose(plan.sum(1), 1 / 32, rtol=1.1e-3)
    assert np.allclose(plan.sum(0), 1 / 32, rtol=1e-5)
    sink = couplings.make(ops, Call("sinkhorn", {"reg": 0.01}))

    couple = _compiled(ops, lambda key, x0, x1: sink(ops.random(key), x0, x1))
    a, b = couple(ops.key(2), x0, x1)
    assert np.array_equal(_numpy(a), _numpy(x0))
    assert {tuple(r) for r in _numpy(b)} <= {tuple(r) for r in _numpy(x1)}  # rows of x1
    assert _cost(_numpy(x0), _numpy(b)) < 0.5 * _cost(_numpy(x0), _numpy(x1))
    _, again = couple(ops.key(2), x0, x1)
    assert np.array_equal(_numpy(b), _numpy(again))


def test_plain_and_unknown_couplings(backend_ops):
    _, ops = backend_ops
    x0, x1 = ops.xp.zeros((4, 2)), ops.xp.ones((4, 2))
    for name in ("independent", "paired"):
        a, b = couplings.make(ops, Call(name, {}))(_rng(ops, 0), x0, x1)
        assert a is x0 and b is x1
    with pytest.raises(TfmSemanticError, match="coupling 'nope'"):
        couplings.make(ops, Call("nope", {}))


# --- densities ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(DENSITIES))
def test_sampler_shape_dtype_and_determinism(backend_ops, name):
    backend, ops = backend_ops
    args, shape = DENSITIES[name]
    draw = _sampler(ops, name)
    x = draw(3)
    assert tuple(x.shape) == (N, *shape) and x.dtype == ops.xp.float32
    if backend == "torch":
        assert x.device.type == "cpu"
    values = _numpy(x)
    assert np.isfinite(values).all()
    assert np.array_equal(values, _numpy(draw(3)))
    assert not np.array_equal(values, _numpy(draw(4)))


def test_data_sampler_draws_rows_of_the_data(backend_ops):
    _, ops = backend_ops
    data = np.arange(30, dtype=np.float64).reshape(10, 3)
    draw = densities.sampler(ops, Call("data", {}), (3,), data=data)
    x = draw(_rng(ops, 0), 200)
    assert tuple(x.shape) == (200, 3) and x.dtype == ops.xp.float32
    assert np.array_equal(_numpy(x), _numpy(draw(_rng(ops, 0), 200)))
    rows = {tuple(r) for r in _numpy(x)}
    assert rows <= {tuple(r) for r in data.astype(np.float32)} and len(rows) == 10


def test_normal_sampler_broadcasts_its_arguments(backend_ops):
    _, ops = backend_ops
    draw = densities.sampler(ops, Call("normal", {"mean": 2.0, "scale": [1.0, 2.0, 3.0]}), (3,))
    x = _numpy(draw(_rng(ops, 0), 20_000))
    assert np.allclose(x.mean(0), 2.0, atol=0.1)
    assert np.allclose(x.std(0), [1.0, 2.0, 3.0], rtol=0.05)
    assert np.array_equal(densities.vector(2.0, 3), np.full(3, 2.0, np.float32))
    assert np.array_equal(densities.vector([1, 2], 2), np.array([1, 2], np.float32))


def test_a_density_without_a_sampler_raises_the_semantic_error(backend_ops, monkeypatch):
    """An unknown name, and a registered density with a log-density but no exact sampler."""
    _, ops = backend_ops
    with pytest.raises(TfmSemanticError, match="'banana' has no exact sampler"):
        densities.sampler(ops, Call("banana", {}), (2,))
    assert densities.log_prob(ops, Call("banana", {}), (2,)) is None
    normal = densities.DENSITIES["normal"]
    densities.DENSITIES.register("log_only")(densities.Density(log_prob=normal.log_prob))
    try:
        with pytest.raises(TfmSemanticError, match="'log_only' has no exact sampler"):
            densities.sampler(ops, Call("log_only", {"mean": 0.0, "scale": 1.0}), (2,))
        logp = densities.log_prob(ops, Call("log_only", {"mean": 0.0, "scale": 1.0}), (2,))
        assert np.allclose(_numpy(logp(ops.xp.zeros((3, 2)))), -math.log(2 * math.pi), rtol=1e-6)
    finally:
        densities.DENSITIES.unregister("log_only")
    assert "log_only" not in densities.DENSITIES


def test_gmm40_draws_are_near_the_shared_means(backend_ops):
    _, ops = backend_ops
    means = targets.gmm40_means()
    assert means.shape == (40, 2) and means.dtype == np.float32
    assert np.array_equal(means, targets.gmm40_means()) and np.abs(means).max() <= 40
    assert targets.GMM40_STD == pytest.approx(math.log(1 + math.e))
    x = _numpy(_sampler(ops, "gmm40")(0))
    nearest = np.sqrt(((x[:, None, :] - means[None]) ** 2).sum(-1)).min(1)
    assert nearest.max() < 6 * targets.GMM40_STD
    se = np.sqrt(x.var(0) / len(x))
    assert np.all(np.abs(x.mean(0) - means.mean(0)) < 5 * se)


def test_normal_log_prob_matches_scipy(backend_ops):
    backend, ops = backend_ops
    stats = pytest.importorskip("scipy.stats")
    mean, scale = [0.5, -1.0, 2.0, 0.0, 1.0, 3.0], [1.0, 2.0, 0.5, 1.5, 1.0, 0.25]
    x_np = np.random.default_rng(6).normal(size=(7, 2, 3))
    # torch takes float64 points as well; JAX (without x64) float32 ones
    x = ops.asarray(x_np, ops.xp.float64 if backend == "torch" else ops.xp.float32)
    x_np = _numpy(x).astype(np.float64)
    got = densities.log_prob(ops, Call("normal", {"mean": mean, "scale": scale}), (2, 3))(x)
    assert tuple(got.shape) == (7,)
    want = stats.norm.logpdf(x_np.reshape(7, 6), mean, scale).sum(1)
    assert np.allclose(_numpy(got), want, rtol=1e-5)
    scalar = densities.log_prob(ops, Call("normal", {"mean": 0.0, "scale": 1.0}), (2, 3))
    assert np.allclose(_numpy(scalar(x)), stats.norm.logpdf(x_np.reshape(7, 6)).sum(1), rtol=1e-5)
    assert densities.log_prob(ops, Call("moons", {"noise": 0.1}), (2,)) is None


# --- both backends draw from the same law -------------------------------------------------------

def _agree(a: np.ndarray, b: np.ndarray, z: float = 5.0):
    """Means of a and b (and of their squares) within z Monte Carlo standard errors."""
    for f in (lambda v: v, lambda v: v * v):
        fa, fb = f(a.astype(np.float64)), f(b.astype(np.float64))
        se = np.sqrt(fa.var(0) / len(fa) + fb.var(0) / len(fb))
        assert np.all(np.abs(fa.mean(0) - fb.mean(0)) < z * se + 1e-9), (fa.mean(0), fb.mean(0), se)


@pytest.mark.parametrize("name", sorted(DENSITIES))
def test_moments_match_between_the_backends(name):
    jax_ops, torch_ops = backend_ops_of("jax"), backend_ops_of("torch")
    ours, theirs = _numpy(_sampler(torch_ops, name)(5)), _numpy(_sampler(jax_ops, name)(5))
    if name == "funnel":  # the other coordinates are too heavy-tailed for second moments
        ours, theirs = ours[:, :1], theirs[:, :1]
    _agree(ours, theirs)
    if name == "checkerboard":  # which squares are filled
        cells = lambda x: np.floor(x).astype(int) @ np.array([1, 10])  # noqa: E731
        assert set(np.unique(cells(ours))) == set(np.unique(cells(theirs)))
