"""Diagnostics of sampling runs (backends/runtime/diagnostics.py) and their plots: R-hat and
bulk ESS as ArviZ defines them on our (draws, chains, *shape) arrays, log Z from replicas,
Kish's ESS, the JSON summary, and that each plot writes a PNG."""

import json
import math

import numpy as np
import pytest

from tfm.backends.runtime import diagnostics as dg
from tfm.backends.runtime import plots

PNG = b"\x89PNG\r\n\x1a\n"


def _ar1(rng, draws, chains, dims, rho):
    """Stationary AR(1) chains x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t, (draws, chains, dims)."""
    x = np.empty((draws, chains, dims))
    x[0] = rng.standard_normal((chains, dims))
    noise = math.sqrt(1 - rho**2) * rng.standard_normal((draws, chains, dims))
    for t in range(1, draws):
        x[t] = rho * x[t - 1] + noise[t]
    return x


def test_rhat_near_one_for_independent_chains():
    x = np.random.default_rng(0).standard_normal((1000, 4, 3))
    r = dg.rhat(x)
    assert r.shape == (3,)
    assert np.all(np.abs(r - 1) < 0.01), r


def test_rhat_large_when_chains_disagree():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 4, 2)) + np.arange(4.0)[None, :, None]  # chain means 0..3
    assert np.all(dg.rhat(x) > 1.1)


def test_rhat_and_ess_keep_trailing_shape_and_agree_with_arviz_on_transposed_chains():
    from arviz_stats.base import array_stats

    rng = np.random.default_rng(2)
    x = _ar1(rng, 400, 4, 6, 0.5).reshape(400, 4, 2, 3)
    x[:, 0] += 0.3  # one chain shifted: the chain axis matters
    t = np.moveaxis(x, (1, 0), (-2, -1))  # (2, 3, chains, draws): arviz-stats' defaults
    assert dg.ess_bulk(x).shape == dg.rhat(x).shape == (2, 3)
    np.testing.assert_allclose(dg.ess_bulk(x), array_stats.ess(t, method="bulk"), rtol=1e-12)
    np.testing.assert_allclose(dg.rhat(x), array_stats.rhat(t, method="rank"), rtol=1e-12)
    # the axes swapped (chains read as draws) would give another answer
    assert not np.allclose(dg.ess_bulk(x), dg.ess_bulk(np.swapaxes(x, 0, 1)))


def test_bulk_ess_of_ar1_chains():
    rho, draws, chains = 0.9, 5000, 4
    x = _ar1(np.random.default_rng(3), draws, chains, 3, rho)
    expected = draws * chains * (1 - rho) / (1 + rho)
    ess = dg.ess_bulk(x)
    assert np.all(np.abs(ess / expected - 1) < 0.2), (ess, expected)


def test_log_Z_from_replicas_matches_direct_computation():
    lz = np.random.default_rng(4).normal(0.0, 0.7, size=8)
    z = np.exp(lz)
    log_Z, se = dg.log_Z_from_replicas(lz)
    assert log_Z == pytest.approx(np.log(z.mean()), rel=1e-12)
    assert se == pytest.approx(np.std(z, ddof=1) / (np.sqrt(len(z)) * z.mean()), rel=1e-12)
    assert dg.log_Z_from_replicas([1.3]) == (pytest.approx(1.3), None)


def test_log_Z_from_replicas_is_stable_for_large_log_values():
    small = np.random.default_rng(5).normal(0.0, 0.5, size=5)
    ref_log_Z, ref_se = dg.log_Z_from_replicas(small)
    with np.errstate(over="raise", under="ignore"):
        for shift in (1e3, -1e3):
            log_Z, se = dg.log_Z_from_replicas(small + shift)
            assert np.isfinite(log_Z) and log_Z - shift == pytest.approx(ref_log_Z, abs=1e-9)
            assert se == pytest.approx(ref_se, rel=1e-9)
        assert dg.log_mean_exp(np.array([1000.0, 1000.0 + np.log(3)])) == pytest.approx(1000 + np.log(2))


def test_importance_ess():
    assert dg.importance_ess(np.zeros(100)) == pytest.approx(100)
    assert dg.importance_ess(np.full(50, 1e3)) == pytest.approx(50)  # scale-free, no overflow
    dominant = np.full(100, -50.0)
    dominant[7] = 0.0
    assert dg.importance_ess(dominant) == pytest.approx(1.0, abs=1e-6)
    lw = np.random.default_rng(6).normal(size=200)
    w = np.exp(lw)
    assert dg.importance_ess(lw) == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-12)
    assert dg.importance_ess(np.array([-np.inf, 0.0, 0.0])) == pytest.approx(2.0)


def test_magnetisation():
    phi = np.random.default_rng(7).normal(size=(10, 8, 8))
    np.testing.assert_allclose(dg.magnetisation(phi), phi.mean(axis=(1, 2)))
    assert dg.magnetisation(np.ones((3, 4, 4))).tolist() == [1.0, 1.0, 1.0]


def test_chain_summary_is_json_safe_with_a_constant_coordinate():
    x = np.random.default_rng(8).standard_normal((200, 4, 3))
    x[..., 1] = 2.5  # constant: its R-hat is NaN
    d = dg.chain_summary(x, energy_evals=10_000, grad_evals=9_000,
                         acceptance=[np.full(4, 0.6), 0.9], step_sizes={"mala": 0.1, "rwm": None},
                         kernel_names=["mala", "rwm"])
    json.loads(json.dumps(d, allow_nan=False))
    assert d["chains"] == 4 and d["draws"] == 200
    assert d["energy_evals"] == 10_000 and d["grad_evals"] == 9_000
    assert d["acceptance"] == {"mala": pytest.approx(0.6), "rwm": pytest.approx(0.9)}
    assert d["step_size"] == {"mala": pytest.approx(0.1), "rwm": None}
    finite = dg.rhat(x[..., [0, 2]])
    assert d["rhat_max"] == pytest.approx(finite.max())
    ess = dg.ess_bulk(x)
    assert d["ess_bulk_min"] == pytest.approx(ess[np.isfinite(ess)].min())
    assert d["ess_per_energy_eval"] == pytest.approx(d["ess_bulk_min"] / 10_000)

    flat = dg.chain_summary(np.zeros((50, 2, 2)), 0, 0, [0.5], [0.2], ["hmc"])
    json.dumps(flat, allow_nan=False)
    assert flat["rhat_max"] is None and flat["ess_per_energy_eval"] is None

    text = dg.format_summary({**d, "log_Z": -1.25, "log_Z_stderr": 0.03})
    for part in ("mala", "acceptance 0.600", "R-hat", "bulk ESS", "log Z -1.2500 ± 0.0300",
                 "energy 10000"):
        assert part in text, text


def test_plots_write_pngs(tmp_path):
    rng = np.random.default_rng(9)
    xs, ys = np.linspace(-3, 3, 30), np.linspace(-2, 2, 20)
    u = 0.5 * (xs[None, :] ** 2 + ys[:, None] ** 2)
    chains = rng.standard_normal((100, 6, 3))
    made = {
        "energy.png": lambda p: plots.samples_on_energy(p, rng.standard_normal((300, 5)), (xs, ys, u), "t"),
        "energy_bare.png": lambda p: plots.samples_on_energy(p, rng.standard_normal((300, 1)), None, "t"),
        "traces.png": lambda p: plots.traces(p, chains, "t"),
        "traces_field.png": lambda p: plots.traces(p, rng.standard_normal((50, 2, 4, 4)), "t", chains=4,
                                                   coords=3),
        "log_Z.png": lambda p: plots.log_Z_curve(p, [10, 100, 1000], [-0.5, -0.1, 0.0],
                                                 [0.3, None, 0.02], 0.0, "t"),
        "log_Z_bare.png": lambda p: plots.log_Z_curve(p, [10, 100], [1.0, 1.1], None, None, "t"),
        "hist.png": lambda p: plots.histogram(p, dg.magnetisation(rng.normal(size=(500, 8, 8))),
                                              "t", "magnetisation"),
    }
    for name, draw in made.items():
        draw(tmp_path / name)
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000, name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(made)  # no temporary files left


# --- mode coverage (GMM-40) ----------------------------------------------------------------------

def _gmm40_draws(rng, n, modes=None):
    from tfm.backends.runtime.targets import gmm40_means

    means = gmm40_means().astype(np.float64)
    pick = rng.integers(40, size=n) if modes is None else rng.choice(modes, size=n)
    return means, means[pick] + rng.standard_normal((n, 2))


def test_exact_gmm40_draws_cover_every_mode_evenly():
    rng = np.random.default_rng(0)
    means, x = _gmm40_draws(rng, 40_000)
    shares = dg.mode_shares(x, means)
    assert shares.shape == (40,) and math.isclose(shares.sum(), 1.0)
    assert dg.modes_visited(x, means) == 40
    assert dg.mode_total_variation(shares, np.full(40, 1 / 40)) < 0.02


def test_draws_from_half_the_modes():
    from tfm.backends.runtime.targets import gmm40_means

    rng = np.random.default_rng(1)
    # the 20 modes lowest in y: every other mode is at least 9 away from them
    low = np.argsort(gmm40_means()[:, 1])[:20]
    means, x = _gmm40_draws(rng, 40_000, modes=low)
    assert dg.modes_visited(x, means) == 20
    shares = dg.mode_shares(x, means)
    assert shares[low].sum() == 1.0
    tv = dg.mode_total_variation(shares, np.full(40, 1 / 40))
    assert abs(tv - 0.5) < 0.02, tv


def test_mode_assignment_and_radius():
    means = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.array([[1.0, 1.0], [9.0, 0.5], [6.0, 0.0], [-2.5, 0.0]])
    assert dg.mode_assignment(x, means).tolist() == [0, 1, 1, 0]
    # chains (draws, chains, d) reshape to points
    assert dg.mode_assignment(x.reshape(2, 2, 2), means).tolist() == [0, 1, 1, 0]
    assert dg.mode_shares(x, means).tolist() == [0.5, 0.5, 0.0]
    assert dg.modes_visited(x, means) == 2               # nothing within 3 of (0, 10)
    assert dg.modes_visited(x, means, radius=1.0) == 0   # (9, 0.5) is 1.12 from (10, 0)
    assert dg.modes_visited(x, means, radius=1.2) == 1
    assert dg.modes_visited(x, means, radius=1.5) == 2   # (1, 1) is 1.41 from (0, 0)
    # only a sample's nearest mode counts: (1, 1) is 9.06 from (0, 10) but nearer (0, 0)
    assert dg.modes_visited(x, means, radius=10.0) == 2
    with pytest.raises(ValueError):
        dg.modes_visited(x, means, radius=0.0)


def test_mode_total_variation():
    assert dg.mode_total_variation([1, 0, 0, 0], [0.25] * 4) == pytest.approx(0.75)
    assert dg.mode_total_variation([2, 2, 2, 2], [1, 1, 1, 1]) == 0.0   # normalised: counts work
    assert dg.mode_total_variation([0.5, 0.5, 0], [0, 0, 1]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        dg.mode_total_variation([0.5, 0.5], [1 / 3] * 3)
