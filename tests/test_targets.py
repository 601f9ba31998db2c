"""The sampling targets of ``stdlib.targets`` (``backends/runtime/targets.py``), for both backends:
each energy against an independent numpy/scipy computation, its gradient (the backend's
autodiff) against central finite differences of that computation in float64, log Z (GMM-40 by
2-D quadrature, the many-well by 1-D quadrature, the others by their normalised densities), the
exact samplers' moments against the truth within sampling error, the many-well's a-marginal by a
Kolmogorov-Smirnov test against its 1-D density, Stein's identity E[x_i dU/dx_i] = 1 tying each
exact sampler to its energy, the phi^4 action's lattice symmetries, the logistic regression's
data file, and FAB's GMM-40 means regenerated with torch."""

from __future__ import annotations

import functools
import importlib.util
import math
import re

import numpy as np
import pytest

from backend_params import to_numpy  # tests/
from tfm.backends.runtime import densities, targets
from tfm.backends.runtime.spec import Call
from tfm.errors import TfmSemanticError

stats = pytest.importorskip("scipy.stats")
from scipy import integrate, special  # noqa: E402

ROOT = targets.stdlib.STDLIB_DIR.parent
SOFTPLUS1 = math.log(1 + math.e)

# name: (arguments, shape, log Z)
TARGETS = {
    "gmm40": ({}, (2,), 0.0),
    "gmm50": ({}, (50,), 0.0),
    "funnel": ({}, (10,), 0.0),
    "many_well": ({}, (32,), 164.6957),
    "phi4": ({"mass2": -4.0, "lam": 8.0}, (8, 8), None),
    "breast_cancer_logistic": ({}, (31,), None),
}
EXACT = ("gmm40", "gmm50", "funnel", "many_well")


def _compiled(ops, fn):
    """fn compiled once in JAX (instead of one compilation per operation); as it is in torch."""
    if ops.name == "jax":
        import jax
        return jax.jit(fn)
    return fn


def _energy(ops, name):
    args, shape, _ = TARGETS[name]
    return densities.energy(ops, Call(name, args), shape)


_DRAWS: dict = {}
N = 20_000  # exact draws per target and backend, shared by the tests of their law


def _draws(ops, name) -> np.ndarray:
    """N exact draws of ``name`` (seed 0), drawn once per backend."""
    if (ops.name, name) not in _DRAWS:
        args, shape, _ = TARGETS[name]
        draw = densities.sampler(ops, Call(name, args), shape)
        _DRAWS[ops.name, name] = to_numpy(draw(ops.random(ops.key(0)), N))
    return _DRAWS[ops.name, name]


# --- independent energies: numpy and scipy in float64, x (n, *shape) -> (n,) -------------------

def _mixture_ref(means):
    def U(x):
        comps = stats.norm.logpdf(x[:, None, :], means.astype(np.float64), SOFTPLUS1).sum(-1)
        return -(special.logsumexp(comps, axis=1) - math.log(len(means)))
    return U


def _funnel_ref(x):
    v = x[:, 0]
    return -(stats.norm.logpdf(v, 0, 3) + stats.norm.logpdf(x[:, 1:], 0, np.exp(v / 2)[:, None]).sum(1))


def _many_well_ref(x):
    total = np.zeros(len(x))
    for k in range(16):
        a, b = x[:, 2 * k], x[:, 2 * k + 1]
        total += a ** 4 - 6 * a ** 2 - 0.5 * a + 0.5 * b ** 2
    return total


def _phi4_ref(phi, mass2=-4.0, lam=8.0):
    """sum over sites of the squared forward differences in both directions (equal, by summation
    by parts, to sum_x sum_mu phi_x (2 phi_x - phi_{x+mu} - phi_{x-mu})), plus the potential."""
    n, L, M = phi.shape
    total = np.zeros(n)
    for i in range(L):
        for j in range(M):
            site = phi[:, i, j]
            total += ((phi[:, (i + 1) % L, j] - site) ** 2 + (phi[:, i, (j + 1) % M] - site) ** 2
                      + mass2 * site ** 2 + lam * site ** 4)
    return total


def _sklearn_breast_cancer():
    """The data prepared from scikit-learn directly, in float64."""
    datasets = pytest.importorskip("sklearn.datasets")
    raw = datasets.load_breast_cancer()
    features = (raw.data - raw.data.mean(0)) / raw.data.std(0)
    return np.hstack([np.ones((len(features), 1)), features]), 2.0 * raw.target - 1.0


def _logistic_ref(w):
    X, y = _sklearn_breast_cancer()
    return np.logaddexp(0.0, -(w @ X.T) * y).sum(1) + 0.5 * (w ** 2).sum(1)


REFERENCES = {
    "gmm40": _mixture_ref(targets.gmm40_means()),
    "gmm50": _mixture_ref(targets.gmm50_means()),
    "funnel": _funnel_ref,
    "many_well": _many_well_ref,
    "phi4": _phi4_ref,
    "breast_cancer_logistic": _logistic_ref,
}


def _points(name) -> np.ndarray:
    """Five float32 points where the energy is worth checking: in and between modes, far out."""
    rng = np.random.default_rng(11)
    shape = TARGETS[name][1]
    if name in ("gmm40", "gmm50"):
        means = targets.gmm40_means() if name == "gmm40" else targets.gmm50_means()
        dim = means.shape[1]
        # between two modes: in 2-D halfway, where both weigh; in 50-D off the middle, where
        # the gradient is not a near-cancellation of two terms of size 90 (float32's 1e-6 of it)
        w = 0.5 if dim == 2 else 0.4
        points = np.concatenate([means[:2] + rng.normal(size=(2, dim)),
                                 w * means[2:3] + (1 - w) * means[3:4],
                                 np.zeros((1, dim)), np.full((1, dim), 55.0)])
    elif name == "funnel":
        v = np.array([-3.0, -1.0, 0.0, 1.5, 3.0])
        points = np.concatenate([v[:, None], np.exp(v / 2)[:, None] * rng.normal(size=(5, 9))], 1)
    elif name == "breast_cancer_logistic":
        points = 0.5 * rng.normal(size=(5,) + shape)
    else:
        points = 1.5 * rng.normal(size=(5,) + shape)
    return points.astype(np.float32)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_energy_matches_an_independent_computation(backend_ops, name):
    _, ops = backend_ops
    x = _points(name)
    got = to_numpy(_compiled(ops, _energy(ops, name))(ops.asarray(x)))
    want = REFERENCES[name](x.astype(np.float64))
    assert got.shape == (5,) and got.dtype == np.float32
    assert np.allclose(got, want, rtol=2e-6, atol=2e-4), (got, want)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_gradient_matches_finite_differences(backend_ops, name):
    _, ops = backend_ops
    x = _points(name)
    U = _energy(ops, name)
    value, grad = _compiled(ops, lambda y: ops.value_and_grad(U, y))(ops.asarray(x))
    grad = to_numpy(grad)
    assert grad.shape == x.shape
    assert np.allclose(to_numpy(value), to_numpy(_compiled(ops, U)(ops.asarray(x))), rtol=1e-6)
    # central differences of the float64 reference, all coordinates of all points at once
    ref, flat = REFERENCES[name], x.astype(np.float64).reshape(5, -1)
    fd = np.empty_like(flat)
    for i in range(flat.shape[1]):
        h = 1e-6 * max(1.0, float(np.abs(flat[:, i]).max()))
        up, down = flat.copy(), flat.copy()
        up[:, i] += h
        down[:, i] -= h
        fd[:, i] = (ref(up.reshape(x.shape)) - ref(down.reshape(x.shape))) / (2 * h)
    scale = np.abs(fd).max(1, keepdims=True)  # per point: float32 autodiff is relative to it
    assert np.all(np.abs(grad.reshape(5, -1) - fd) <= 1e-4 * scale + 1e-4), \
        np.abs(grad.reshape(5, -1) - fd).max(1) / scale[:, 0]


# --- normalising constants ----------------------------------------------------------------------

def test_every_target_of_the_stdlib_file_has_an_energy_and_its_log_Z(backend_ops):
    """The names and shapes declared in stdlib/targets.tfm, registered with an energy that
    gives one finite number per point, and the log Z each is documented with."""
    _, ops = backend_ops
    text = (targets.stdlib.STDLIB_DIR / "targets.tfm").read_text()
    declared = dict(re.findall(r"primitive distribution (\w+)\(.*\) dim (\[[\d, ]+\]|\d+)", text))
    assert set(declared) == set(TARGETS)
    for name, (args, shape, log_Z) in TARGETS.items():
        assert tuple(int(d) for d in re.findall(r"\d+", declared[name])) == shape
        U = _compiled(ops, densities.energy(ops, Call(name, args), shape))
        value = to_numpy(U(ops.xp.zeros((3,) + shape)))
        assert value.shape == (3,) and np.all(np.isfinite(value))
        got = densities.log_Z(Call(name, args))
        assert got == pytest.approx(log_Z, abs=5e-5) if log_Z is not None else got is None
        assert densities.has_log_prob(Call(name, args)) == (name in EXACT)


@pytest.mark.parametrize("name", ["gmm40", "gmm50", "funnel", "many_well"])
def test_log_prob_is_minus_the_energy_minus_log_Z(backend_ops, name):
    _, ops = backend_ops
    args, shape, log_Z = TARGETS[name]
    x = ops.asarray(_points(name))
    logp = to_numpy(densities.log_prob(ops, Call(name, args), shape)(x))
    assert np.allclose(logp, -to_numpy(_energy(ops, name)(x)) - log_Z, rtol=1e-6, atol=1e-4)


def test_gmm40_integrates_to_one(backend_ops):
    """exp(-U) summed on a 0.25-spaced grid over [-50, 50]^2 (for Gaussians of standard deviation
    1.31 the rectangle rule's error is far below float32's): log Z = 0."""
    _, ops = backend_ops
    h = 0.25
    axis = np.arange(-50, 50 + h / 2, h)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2).astype(np.float32)
    U = _compiled(ops, _energy(ops, "gmm40"))
    Z = h * h * float(np.exp(-to_numpy(U(ops.asarray(grid))).astype(np.float64)).sum())
    assert Z == pytest.approx(1.0, abs=2e-5)


def test_many_well_log_Z_by_quadrature():
    """16 (log of the 1-D integral by adaptive quadrature + log sqrt(2 pi)) = 164.6957."""
    one, error = integrate.quad(lambda a: math.exp(-(a ** 4 - 6 * a ** 2 - 0.5 * a)), -np.inf,
                                np.inf, epsabs=0, epsrel=1e-12, points=None)
    assert error < 1e-9 * one
    want = 16 * (math.log(one) + 0.5 * math.log(2 * math.pi))
    assert want == pytest.approx(164.6957, abs=5e-5)
    assert targets.many_well_log_Z() == pytest.approx(want, abs=1e-9)


# --- exact samplers -----------------------------------------------------------------------------

def _within(samples: np.ndarray, truth: np.ndarray, z: float = 5.0):
    """The sample mean within z standard errors of the truth, coordinate by coordinate."""
    se = samples.std(0) / math.sqrt(len(samples))
    assert np.all(np.abs(samples.mean(0) - truth) < z * se), (samples.mean(0), truth, se)


def _nearest(x: np.ndarray, means: np.ndarray):
    """The index of the nearest mean and the squared distance to it, for each point."""
    sq = ((x[:, None, :] - means[None]) ** 2).sum(-1)
    return sq.argmin(1), sq.min(1)


@functools.cache
def _gmm40_nearest_sq() -> float:
    """E[squared distance to the nearest mean] under GMM-40, by the rectangle rule on a
    0.5-spaced grid over [-50, 50]^2 (exact far below sampling error for components of standard
    deviation 1.31)."""
    means, h = targets.gmm40_means().astype(np.float64), 0.5
    axis = np.arange(-50, 50 + h / 2, h)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    sq = ((grid[:, None, :] - means[None]) ** 2).sum(-1)
    density = np.exp(-0.5 * sq / SOFTPLUS1 ** 2).mean(1) / (2 * math.pi * SOFTPLUS1 ** 2)
    return float(h * h * density @ sq.min(1))


@pytest.mark.parametrize("name", ["gmm40", "gmm50"])
def test_mixture_draws_have_the_mixture_moments(backend_ops, name):
    """The mean and second moment of the mixture; the squared distance to the nearest mean, whose
    expectation (2-D: by quadrature of the mixture density; 50-D, where the components are too
    far apart to be confused: 50 sigma^2) tells the components' spread; in 50-D, equal weights."""
    _, ops = backend_ops
    means = (targets.gmm40_means() if name == "gmm40" else targets.gmm50_means()).astype(np.float64)
    dim = means.shape[1]
    x = _draws(ops, name).astype(np.float64)
    assert x.shape == (N, dim)
    _within(x, means.mean(0))
    _within(x * x, (means * means).mean(0) + SOFTPLUS1 ** 2)
    which, sq = _nearest(x, means)
    if dim == 2:
        truth = _gmm40_nearest_sq()
    else:
        gaps = ((means[:, None] - means[None]) ** 2).sum(-1) + np.diag(np.full(40, np.inf))
        assert np.sqrt(gaps.min()) > 100  # no draw is nearer another component than its own
        truth = dim * SOFTPLUS1 ** 2
        counts = np.bincount(which, minlength=40)
        assert stats.chisquare(counts).pvalue > 1e-3, counts
    _within(sq[:, None], truth)


def test_funnel_draws_have_the_funnel_law(backend_ops):
    """v ~ N(0, 9); x_i e^(-v/2) ~ N(0, 1), uncorrelated with v."""
    _, ops = backend_ops
    x = _draws(ops, "funnel").astype(np.float64)
    v, z = x[:, :1], x[:, 1:] * np.exp(-x[:, :1] / 2)
    _within(v, 0.0)
    _within(v * v, 9.0)
    _within(z, 0.0)
    _within(z * z, 1.0)
    _within(v * z, 0.0)


def _well_cdf():
    """The a-marginal's distribution function by the trapezoid rule on 400 001 points (an
    independent table: a different rule and grid from the runtime's)."""
    grid = np.linspace(-5, 5, 400_001)
    dens = np.exp(-(grid ** 4 - 6 * grid ** 2 - 0.5 * grid) - 10)
    cdf = integrate.cumulative_trapezoid(dens, grid, initial=0)
    return grid, cdf / cdf[-1]


def test_many_well_draws_have_the_double_well_law(backend_ops):
    """b ~ N(0, 1); the a-coordinates (16 independent ones per draw, pooled) pass a
    Kolmogorov-Smirnov test against the 1-D density, and their mean is the quadrature's."""
    _, ops = backend_ops
    x = _draws(ops, "many_well").astype(np.float64)
    a, b = x[:, 0::2], x[:, 1::2]
    assert np.abs(a).max() < 4
    _within(b, 0.0)
    _within(b * b, 1.0)
    grid, cdf = _well_cdf()
    result = stats.kstest(a.reshape(-1), lambda q: np.interp(q, grid, cdf))
    assert result.pvalue > 1e-3, result
    weight = lambda f: integrate.quad(  # noqa: E731
        lambda s: f(s) * math.exp(-(s ** 4 - 6 * s ** 2 - 0.5 * s) - 10), -6, 6, epsrel=1e-12)[0]
    _within(a.reshape(-1, 1), weight(lambda s: s) / weight(lambda s: 1.0))
    # both wells are visited, in the proportion of their masses
    right = weight(lambda s: float(s > 0)) / weight(lambda s: 1.0)
    frac = (a > 0).mean()
    assert abs(frac - right) < 5 * math.sqrt(right * (1 - right) / a.size)


@pytest.mark.parametrize("name", EXACT)
def test_exact_draws_satisfy_steins_identity_for_the_energy(backend_ops, name):
    """For x drawn from exp(-U)/Z, integration by parts gives E[x_i dU/dx_i] = 1 for every
    coordinate: the sampler and the energy describe the same law."""
    _, ops = backend_ops
    x = _draws(ops, name)
    _, grad = _compiled(ops, lambda y: ops.value_and_grad(_energy(ops, name), y))(ops.asarray(x))
    terms = (x.astype(np.float64) * to_numpy(grad).astype(np.float64)).reshape(len(x), -1)
    _within(terms, 1.0)


def test_targets_without_an_exact_sampler_say_so(backend_ops):
    _, ops = backend_ops
    for name in ("phi4", "breast_cancer_logistic"):
        args, shape, _ = TARGETS[name]
        with pytest.raises(TfmSemanticError, match=f"'{name}' has no exact sampler"):
            densities.sampler(ops, Call(name, args), shape)
        assert densities.log_prob(ops, Call(name, args), shape) is None


# --- phi^4 --------------------------------------------------------------------------------------

def test_phi4_action_has_the_lattice_symmetries(backend_ops):
    """S(phi) = S(-phi), and S is unchanged by a periodic shift of the lattice and by swapping
    its two axes; the couplings enter as m^2 sum phi^2 + lambda sum phi^4."""
    _, ops = backend_ops
    phi = np.random.default_rng(5).normal(size=(4, 8, 8)).astype(np.float32)
    U = _compiled(ops, _energy(ops, "phi4"))
    S = to_numpy(U(ops.asarray(phi)))
    for moved in (-phi, np.roll(phi, (3, -2), axis=(1, 2)), phi.transpose(0, 2, 1)):
        assert np.allclose(to_numpy(U(ops.asarray(moved))), S, rtol=1e-5)
    other = densities.energy(ops, Call("phi4", {"mass2": 1.0, "lam": 0.5}), (8, 8))
    p2, p4 = (phi.astype(np.float64) ** 2).sum((1, 2)), (phi.astype(np.float64) ** 4).sum((1, 2))
    diff = to_numpy(other(ops.asarray(phi))) - S
    assert np.allclose(diff, (1.0 + 4.0) * p2 + (0.5 - 8.0) * p4, rtol=1e-5)


# --- the logistic regression's data -------------------------------------------------------------

def test_breast_cancer_file_is_the_prepared_scikit_learn_data():
    X, y = targets.breast_cancer()
    assert X.shape == (569, 31) and X.dtype == np.float32 and y.shape == (569,)
    assert y.dtype == np.float32 and set(np.unique(y)) == {-1.0, 1.0}
    assert np.all(X[:, 0] == 1)
    assert np.allclose(X[:, 1:].mean(0), 0, atol=1e-5) and np.allclose(X[:, 1:].std(0), 1, atol=1e-5)
    with np.load(ROOT / "examples" / "data" / "breast_cancer.npz", allow_pickle=False) as copy:
        assert sorted(copy.files) == ["X", "y"]
        assert np.array_equal(copy["X"], X) and np.array_equal(copy["y"], y)
    # the documented script regenerates it exactly
    spec = importlib.util.spec_from_file_location(
        "make_breast_cancer", targets.stdlib.STDLIB_DIR / "data" / "make_breast_cancer.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    pytest.importorskip("sklearn")
    again = script.breast_cancer()
    assert np.array_equal(again["X"], X) and np.array_equal(again["y"], y)
    X64, y64 = _sklearn_breast_cancer()
    assert np.allclose(X, X64, atol=1e-5) and np.array_equal(y, y64)


# --- the means --------------------------------------------------------------------------------

def test_gmm40_means_are_fabs():
    """FAB's means: torch.manual_seed(0); (torch.rand(40, 2) - 0.5) * 80, bit for bit."""
    torch = pytest.importorskip("torch")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        fab = ((torch.rand(40, 2) - 0.5) * 80).numpy()
    means = targets.gmm40_means()
    assert means.dtype == np.float32 and np.array_equal(means, fab)
    assert targets.GMM40_STD == pytest.approx(SOFTPLUS1)


def test_gmm50_means_are_numpys_pcg64_seed_0():
    means = targets.gmm50_means()
    want = np.random.Generator(np.random.PCG64(0)).uniform(-40, 40, (40, 50))
    assert means.dtype == np.float32 and np.array_equal(means, want.astype(np.float32))
    assert np.abs(means).max() <= 40 and np.array_equal(means, targets.gmm50_means())
