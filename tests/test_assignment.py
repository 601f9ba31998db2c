"""The minibatch OT coupling's solver on the device (backends/runtime/assignment.py), for both
backends: always a permutation, within 0.5% of the exact optimum (scipy) on the benchmark tasks
at batch 512, exact where the optimum is obvious, and no host work inside JAX's compiled step."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from backend_params import to_numpy  # tests/
from tfm.backends.runtime import assignment, couplings
from tfm.backends.runtime.spec import Call


def _solver(ops):
    solve = lambda x0, x1: assignment.assignment(ops, couplings.costs(ops.xp, x0, x1))  # noqa: E731
    if ops.name == "jax":
        import jax
        return jax.jit(solve)
    return solve


def _moons(rng, n):
    from sklearn.datasets import make_moons
    x, _ = make_moons(n, noise=0.2, random_state=int(rng.integers(1 << 30)))
    return x * 3 - 1


def _eight_gaussians(rng, n):
    angles = np.arange(8) * math.pi / 4
    centres = 5 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return centres[rng.integers(0, 8, n)] + math.sqrt(0.1) * rng.standard_normal((n, 2))


TASKS = {  # the 2-D benchmark's pairs (bench/quality_2d.py), at its batch of 512
    "normal_to_moons": lambda rng: (rng.standard_normal((512, 2)), _moons(rng, 512)),
    "8gaussians_to_moons": lambda rng: (_eight_gaussians(rng, 512), _moons(rng, 512)),
}


def _gap(x0, x1, perm) -> float:
    cost = ((x0[:, None, :] - x1[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return cost[np.arange(len(perm)), perm].sum() / cost[rows, cols].sum() - 1


def _is_permutation(perm, n):
    return sorted(np.asarray(perm).tolist()) == list(range(n))


@pytest.mark.parametrize("task", sorted(TASKS))
def test_the_pairing_is_within_half_a_percent_of_the_optimum(backend_ops, task):
    _, ops = backend_ops
    solve = _solver(ops)
    rng = np.random.default_rng(11)
    for _ in range(2):
        x0, x1 = (a.astype(np.float32) for a in TASKS[task](rng))
        perm = to_numpy(solve(ops.asarray(x0), ops.asarray(x1)))
        assert _is_permutation(perm, 512)
        assert 0 <= _gap(x0.astype(np.float64), x1.astype(np.float64), perm) < 5e-3


def test_a_shuffled_copy_is_paired_back_exactly(backend_ops):
    _, ops = backend_ops
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal((200, 3)).astype(np.float32)
    shuffle = rng.permutation(200)
    perm = to_numpy(_solver(ops)(ops.asarray(x0), ops.asarray(x0[shuffle])))
    assert np.array_equal(shuffle[perm], np.arange(200))  # x1[perm] is x0 again


@pytest.mark.parametrize("case", ["equal points", "duplicates", "one point", "a NaN"])
def test_degenerate_costs_still_give_a_permutation(backend_ops, case):
    _, ops = backend_ops
    rng = np.random.default_rng(5)
    n = 1 if case == "one point" else 40
    x0 = rng.standard_normal((n, 2)).astype(np.float32)
    x1 = rng.standard_normal((n, 2)).astype(np.float32)
    if case == "equal points":
        x0[:], x1[:] = 1.0, 1.0
    if case == "duplicates":
        x0[::2], x1[1::2] = x0[0], x1[1]
    if case == "a NaN":
        x1[7, 0] = np.nan
    perm = to_numpy(_solver(ops)(ops.asarray(x0), ops.asarray(x1)))
    assert _is_permutation(perm, n)


def test_a_cost_that_is_not_square_is_an_error(backend_ops):
    _, ops = backend_ops
    with pytest.raises(ValueError, match="square cost matrix, not 3 x 4"):
        assignment.assignment(ops, ops.asarray(np.zeros((3, 4), np.float32)))


def test_the_jax_step_pairs_without_a_host_callback():
    jax = pytest.importorskip("jax")
    from tfm.backends.jax.runtime.ops import Ops
    ops = Ops()
    x = ops.asarray(np.zeros((16, 2), np.float32))
    for solver, host in (("device", False), ("exact", True)):
        couple = couplings.make(ops, Call("minibatch_ot", {"solver": solver}))
        program = str(jax.make_jaxpr(lambda k, a, b: couple(ops.random(k), a, b))(ops.key(0), x, x))
        assert ("callback" in program) is host
