"""MCMC kernels and chains (``backends/runtime/mcmc``), each property checked in both backends:
every kernel (and a cycle of two) leaves a correlated Gaussian invariant, dual averaging reaches
each kernel's target acceptance, the kept samples and evaluation counts are what the run says;
both backends give the same chains from the same draws; a non-finite energy or gradient at an
initial state is a clear error naming the chain, and proposals into a region where the energy
is NaN are rejected."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend_params import BACKENDS, backend_ops_of  # tests/
from tfm.backends.runtime.mcmc import KERNELS, init_state, potential
from tfm.backends.runtime.mcmc.chains import run_chains
from tfm.errors import TfmRuntimeError

MEAN = np.array([1.0, -1.0, 0.5])
COV = np.array([[1.0, 0.5, 0.2],
                [0.5, 0.8, -0.2],
                [0.2, -0.2, 0.5]])
PRECISION = np.linalg.inv(COV)

# (name, cycle of (kernel, args)): step sizes giving moderate acceptance on the Gaussian
CYCLES = {
    "rwm": [("rwm", {"step": 0.9})],
    "mala": [("mala", {"step": 0.7})],
    "hmc": [("hmc", {"step": 0.6, "leapfrog": 5})],
    "rwm+hmc": [("rwm", {"step": 0.9}), ("hmc", {"step": 0.6, "leapfrog": 3})],
}


def _compiler(name):
    """The tests' program wrapper: jit in JAX, the function itself in torch."""
    if name == "jax":
        import jax
        return lambda key, fn: jax.jit(fn)
    return lambda key, fn: fn


def _cycle(name):
    return [(KERNELS[kernel], args) for kernel, args in CYCLES[name]]


def _gaussian(ops):
    """U(x) = (x - m)^T P (x - m) / 2 of the correlated Gaussian, on batches."""
    xp = ops.xp
    mean, precision = ops.asarray(MEAN), ops.asarray(PRECISION)

    def energy(x):
        d = x - mean
        return 0.5 * xp.sum((d @ precision) * d, axis=1)
    return energy


def _exact(n, seed):
    return np.random.default_rng(seed).multivariate_normal(MEAN, COV, size=n).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cycle", sorted(CYCLES))
def test_kernels_leave_a_gaussian_invariant(backend, cycle):
    """2048 chains started from exact draws, 20 iterations at a fixed step size: the final
    states are again 2048 independent draws, whose mean and covariance must agree with the
    truth within 5 standard errors (an unadjusted Langevin step of this size would move a
    variance by over 10 standard errors). The chains must have moved, and the evaluations are
    counted as the kernels say (the cycle's RWM evaluates gradients too, since its HMC needs them)."""
    ops = backend_ops_of(backend)
    kernels = _cycle(cycle)
    chains, steps = 2048, 20
    x0 = _exact(chains, seed=1)
    result = run_chains(ops, _compiler(backend), kernels, potential(ops, _gaussian(ops)),
                        ops.asarray(x0), ops.key(3), warmup=0, draws=steps, thin=steps,
                        step_sizes=[a["step"] for _, a in CYCLES[cycle]],
                        target_accepts=[k.target_accept(a) for k, a in kernels], adapt=False)
    x = result.state
    assert result.samples.shape == (1, chains, 3) and np.array_equal(result.samples[0], x)
    assert all(0.3 < a < 0.99 for a in result.acceptance), result.acceptance
    assert np.mean(np.any(x != x0, axis=1)) > 0.95

    mean_z = (x.mean(0) - MEAN) / np.sqrt(np.diag(COV) / chains)
    cov = np.cov(x, rowvar=False)
    cov_se = np.sqrt((np.outer(np.diag(COV), np.diag(COV)) + COV ** 2) / chains)
    assert np.max(np.abs(mean_z)) < 5, mean_z
    assert np.max(np.abs((cov - COV) / cov_se)) < 5, (cov, COV)

    per_step = {"rwm": (1, 0), "mala": (1, 1), "hmc": (5, 5), "rwm+hmc": (4, 4)}[cycle]
    assert result.energy_evals == chains * (1 + steps * per_step[0])
    assert result.grad_evals == chains * (int(cycle != "rwm") + steps * per_step[1])


SCALES = np.linspace(0.5, 1.5, 10)


def _quartic(x, xp, scales=SCALES):
    """U(x) = sum_i x_i^2 / (2 s_i^2) + x_i^4 / 4 in 10-D: on a Gaussian, HMC's acceptance is
    not monotone in its step size (the leapfrog resonates with the oscillations at a fixed
    number of steps); the quartic term detunes them."""
    return xp.sum(0.5 * x * x / scales ** 2 + 0.25 * x ** 4, axis=-1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dual_averaging_reaches_each_kernels_target_acceptance(backend):
    """A cycle of the three kernels, each from a step size of 0.02: 300 warm-up iterations of
    dual averaging bring each kernel's acceptance over the sampling phase within 0.05 of its
    own target; the kept samples are every thin-th state, with their energies."""
    ops = backend_ops_of(backend)
    kernels = [(KERNELS[name], dict(CYCLES[name][0][1], step=0.02)) for name in ("rwm", "mala", "hmc")]
    targets = [k.target_accept(a) for k, a in kernels]
    scales = ops.asarray(SCALES)

    def energy(x):
        return _quartic(x, ops.xp, scales)
    x0 = np.random.default_rng(2).standard_normal((256, 10)).astype(np.float32)
    result = run_chains(ops, _compiler(backend), kernels, potential(ops, energy),
                        ops.asarray(x0), ops.key(4), warmup=300, draws=150, thin=3,
                        step_sizes=[0.02] * 3, target_accepts=targets)
    assert np.all(np.abs(np.array(result.acceptance) - targets) < 0.05), (result.acceptance,
                                                                          result.step_sizes)
    assert min(result.step_sizes) > 0.2
    assert result.samples.shape == (50, 256, 10) and result.energies.shape == (50, 256)
    np.testing.assert_allclose(result.energies, _quartic(result.samples, np), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_array_equal(result.samples[-1], result.state)


def test_hmc_takes_its_target_acceptance_from_args():
    assert KERNELS["hmc"].target_accept({"step": 0.1, "leapfrog": 3}) == 0.8
    assert KERNELS["hmc"].target_accept({"step": 0.1, "leapfrog": 3, "accept": 0.65}) == 0.65
    assert KERNELS["mala"].target_accept({"step": 0.1}) == 0.574
    assert KERNELS["rwm"].target_accept({"step": 0.1}) == 0.234


@pytest.mark.parametrize("cycle", sorted(CYCLES))
def test_both_backends_give_the_same_chains_from_the_same_draws(cycle):
    """64 chains, 20 iterations of the cycle from the same initial states, every kernel step
    given the same draws (made once by the kernel's ``draws`` and kept as numpy arrays): the
    states and energies agree to float32 rounding."""
    both = backend_ops_of("jax"), backend_ops_of("torch")
    torch_ops = both[1]
    kernels = _cycle(cycle)
    n, steps = 64, 20
    x0 = _exact(n, seed=6)
    rng = torch_ops.random(torch_ops.key(5))
    draws = [[tuple(torch_ops.numpy(d) for d in kernel.draws(rng, n, (3,), args))
              for kernel, args in kernels] for _ in range(steps)]
    paths = []
    for name, ops in zip(("jax", "torch"), both):
        pot = potential(ops, _gaussian(ops), gradients=any(k.uses_grad for k, _ in kernels))
        compile_ = _compiler(name)
        programs = [compile_(None, lambda state, eps, d, k=k, a=a: k.step(ops, pot, state, eps, d, a))
                    for k, a in kernels]
        state = init_state(ops, kernels, pot, ops.asarray(x0))
        path = []
        for iteration in draws:
            for (kernel, args), program, given in zip(kernels, programs, iteration):
                state, _ = program(state, ops.asarray(args["step"]),
                                   tuple(ops.asarray(d) for d in given))
            path.append((ops.numpy(state[0]), ops.numpy(state[1])))
        paths.append(path)
    for (xj, uj), (xt, ut) in zip(*paths):
        np.testing.assert_allclose(xj, xt, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(uj, ut, atol=1e-4, rtol=1e-4)
    assert np.mean(np.any(paths[0][-1][0] != x0, axis=1)) > 0.9


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_non_finite_energy_at_an_initial_state_names_the_chain(backend):
    ops = backend_ops_of(backend)
    xp = ops.xp

    def energy(x):
        return xp.where(x[:, 0] > 5, math.nan, 0.5 * xp.sum(x * x, axis=1))
    x0 = np.zeros((8, 3), np.float32)
    x0[3, 0] = x0[6, 0] = 10.0
    k = KERNELS["rwm"]
    with pytest.raises(TfmRuntimeError) as error:
        run_chains(ops, _compiler(backend), [(k, {"step": 0.5})], potential(ops, energy),
                   ops.asarray(x0), ops.key(0), 10, 10, 1, [0.5], [0.234])
    message = str(error.value)
    assert "initial state of chain 3 (U = nan)" in message and "2 of 8" in message
    assert error.value.diagnostics[0].suggestion


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_non_finite_gradient_at_an_initial_state_names_the_chain(backend):
    """sqrt(|x|) has an infinite slope at 0: MALA cannot start there."""
    ops = backend_ops_of(backend)
    xp = ops.xp

    def energy(x):
        return xp.sum(xp.sqrt(xp.abs(x)), axis=1)
    x0 = np.ones((4, 2), np.float32)
    x0[2, 1] = 0.0
    k = KERNELS["mala"]
    with pytest.raises(TfmRuntimeError, match="gradient of the energy is not finite at the "
                       "initial state of chain 2"):
        run_chains(ops, _compiler(backend), [(k, {"step": 0.5})], potential(ops, energy),
                   ops.asarray(x0), ops.key(0), 0, 10, 1, [0.5], [0.574])


@pytest.mark.parametrize("backend", BACKENDS)
def test_proposals_where_the_energy_is_nan_are_rejected(backend):
    """The energy is NaN for x_1 > 1 (a standard normal elsewhere): a cycle of the three
    kernels with steps that often propose there rejects those proposals, and no chain ever
    enters the region or carries a NaN (nor, for MALA and HMC, a NaN gradient)."""
    ops = backend_ops_of(backend)
    xp = ops.xp

    def energy(x):
        return xp.where(x[:, 0] > 1, math.nan, 0.5 * xp.sum(x * x, axis=1))
    kernels = [(KERNELS["rwm"], {"step": 1.5}), (KERNELS["mala"], {"step": 1.2}),
               (KERNELS["hmc"], {"step": 0.6, "leapfrog": 3})]
    x0 = np.minimum(np.random.default_rng(7).standard_normal((256, 3)), 0.5).astype(np.float32)
    result = run_chains(ops, _compiler(backend), kernels, potential(ops, energy),
                        ops.asarray(x0), ops.key(8), warmup=0, draws=30, thin=1,
                        step_sizes=[a["step"] for _, a in kernels], target_accepts=[0.5] * 3,
                        adapt=False)
    assert np.all(np.isfinite(result.samples)) and np.all(np.isfinite(result.energies))
    assert np.all(result.samples[..., 0] <= 1)
    assert all(0.05 < a < 0.9 for a in result.acceptance), result.acceptance
