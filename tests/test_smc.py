"""Tempering (``backends/runtime/mcmc/tempering.py``): SMC and AIS from N(0, I) to an
unnormalised Gaussian in 5-D with a known normalising constant, with adaptive and fixed
schedules, in both backends; and the host-side pieces on their own: systematic resampling,
the adaptive choice of the next temperature, the cap on temperatures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend_params import BACKENDS, backend_ops_of  # tests/
from tfm.backends.runtime.mcmc import KERNELS
from tfm.backends.runtime.mcmc import tempering
from tfm.backends.runtime.mcmc.tempering import (conditional_ess, ess_fraction, fixed_schedule,
                                                 next_betas, smc, systematic)
from tfm.errors import TfmRuntimeError

DIM, SHIFT, SCALE = 5, 1.0, 0.5
# Z = ∫ exp(-|x - m|^2 / (2 s^2)) dx
LOG_Z = DIM / 2 * math.log(2 * math.pi * SCALE ** 2)
REPLICAS, PARTICLES = 16, 128


def _compiler(name):
    if name == "jax":
        import jax
        return lambda key, fn: jax.jit(fn)
    return lambda key, fn: fn


def _problem(ops):
    xp = ops.xp

    def energy(x):
        return xp.sum((x - SHIFT) ** 2, axis=1) / (2 * SCALE ** 2)

    def base_log_prob(x):
        return -0.5 * xp.sum(x * x, axis=1) - DIM / 2 * math.log(2 * math.pi)
    return energy, base_log_prob


def _run(backend, kernel, args, temperatures=None, ess=0.8, resample=True, moves=3, seed=0,
         replicas=REPLICAS):
    ops = backend_ops_of(backend)
    energy, base_log_prob = _problem(ops)
    k = KERNELS[kernel]
    x0 = np.random.default_rng(seed).standard_normal((replicas * PARTICLES, DIM))
    return smc(ops, _compiler(backend), [(k, args)], base_log_prob, energy, ops.asarray(x0),
               ops.key(seed), replicas, temperatures, ess, moves, resample, [args["step"]],
               [k.target_accept(args)])


MODES = {
    "smc-adaptive-hmc": dict(kernel="hmc", args={"step": 0.3, "leapfrog": 3}),
    "ais-adaptive-mala": dict(kernel="mala", args={"step": 0.5}, resample=False),
    "smc-fixed-mala": dict(kernel="mala", args={"step": 0.5}, temperatures=25),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", sorted(MODES))
def test_tempering_estimates_log_Z_and_samples_the_target(backend, mode):
    """|log Z - truth| < 4 stderr + 0.05; every replica ends at beta = 1 through increasing
    temperatures; the resampled particles have the target's mean and scale; the evaluations
    are counted."""
    settings = MODES[mode]
    result = _run(backend, **settings)
    assert abs(result.log_Z - LOG_Z) < 4 * result.log_Z_stderr + 0.05, (result.log_Z, LOG_Z,
                                                                       result.log_Z_stderr)
    assert 0 < result.log_Z_stderr < 0.2
    assert len(result.log_Z_replicas) == REPLICAS
    for betas, history in zip(result.betas, result.ess_history):
        assert betas[0] == 0.0 and betas[-1] == 1.0 and np.all(np.diff(betas) > 0)
        assert len(history) == len(betas) - 1 and all(0 < e <= 1 for e in history)
    assert result.temperatures_used == max(len(b) for b in result.betas) - 1
    if "temperatures" in settings:
        assert result.temperatures_used == settings["temperatures"]
        np.testing.assert_allclose(result.betas[0][1:], fixed_schedule(settings["temperatures"]))
    else:
        assert 3 <= result.temperatures_used < 100
    x = result.particles
    assert x.shape == (REPLICAS * PARTICLES, DIM) and np.all(np.isfinite(x))
    # 5 standard errors of a mean of the effective number of draws the final weights hold
    assert result.log_weights.shape == (REPLICAS * PARTICLES,)
    ess = PARTICLES * ess_fraction(result.log_weights.reshape(REPLICAS, PARTICLES)).sum()
    tolerance = 5 * SCALE / math.sqrt(ess)
    assert np.max(np.abs(x.mean(0) - SHIFT)) < tolerance, (x.mean(0), ess)
    assert np.max(np.abs(x.std(0) - SCALE)) < tolerance, (x.std(0), ess)
    assert 0.3 < result.acceptance[0] < 1
    # per particle: V at the start; per temperature, the tempered energy and its gradient to
    # start the moves, the moves (MALA 1, HMC 3 evaluations each), V at their end
    per_move = settings["args"].get("leapfrog", 1)
    temperatures = result.temperatures_used
    assert result.energy_evals == REPLICAS * PARTICLES * (1 + temperatures * (2 + 3 * per_move))
    assert result.grad_evals == REPLICAS * PARTICLES * temperatures * (1 + 3 * per_move)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adaptive_smc_keeps_the_conditional_ess_at_its_target(backend):
    """With resampling at every temperature (ess = 0.4 < 1/2 forces it), each reweighting starts
    from equal weights, so the ESS after it equals the conditional ESS the next temperature
    was chosen for: 0.4, except at the last temperature, where beta = 1 is reached first."""
    result = _run(backend, "rwm", {"step": 0.5}, ess=0.4, moves=2, replicas=4)
    for history in result.ess_history:
        np.testing.assert_allclose(history[:-1], 0.4, atol=1e-4)
        assert history[-1] >= 0.4 - 1e-4


def test_systematic_resampling_copies_each_particle_floor_or_ceil_of_n_w_times():
    host = np.random.default_rng(0)
    w = np.random.default_rng(1).dirichlet(np.ones(50), size=3)
    for _ in range(20):
        index = systematic(host, np.log(w))
        counts = np.stack([np.bincount(row, minlength=50) for row in index])
        assert np.all(counts >= np.floor(50 * w) - 1e-9) and np.all(counts <= np.ceil(50 * w))
        assert counts.sum(1).tolist() == [50] * 3


def test_next_temperature_meets_the_conditional_ess_or_reaches_one():
    rng = np.random.default_rng(2)
    log_w = rng.normal(size=(3, 200))
    v = rng.normal(scale=[[30.0], [3.0], [0.01]], size=(3, 200))
    beta = np.array([0.0, 0.5, 0.9])
    nxt = next_betas(log_w, v, beta, 0.7)
    assert np.all(nxt > beta)
    np.testing.assert_allclose(conditional_ess(log_w[:2], v[:2], nxt[:2] - beta[:2]), 0.7,
                               atol=1e-6)
    assert nxt[2] == 1.0  # V barely varies: one step to the target keeps the ESS


@pytest.mark.parametrize("backend", BACKENDS)
def test_tempering_stops_with_a_clear_error_at_the_cap(backend, monkeypatch):
    monkeypatch.setattr(tempering, "MAX_TEMPERATURES", 3)
    with pytest.raises(TfmRuntimeError, match="did not reach beta = 1 within 3 temperatures"):
        _run(backend, "rwm", {"step": 0.5}, ess=0.99, moves=0, replicas=2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_particles_must_split_into_replicas(backend):
    ops = backend_ops_of(backend)
    energy, base_log_prob = _problem(ops)
    with pytest.raises(TfmRuntimeError, match="10 particles do not split into 3 replicas"):
        smc(ops, _compiler(backend), [(KERNELS["rwm"], {"step": 0.5})], base_log_prob, energy,
            ops.asarray(np.zeros((10, DIM))), ops.key(0), 3, None, 0.5, 1, True, [0.5], [0.234])
