"""Couplings of a batch (x0, x1), written once for both backends and registered under their
prelude names (docs/maths.md §2.3):

- ``independent``: x0 from the base and x1 from the target, drawn apart;
- ``paired``: x0 and x1 from the same rows of the base's and the target's data files (or
  x0 = x1 when base and target are the same density);
- ``reflow``: rows of the pairs (x0, X_1(x0)) a trained model drew (rectified flow);
- ``minibatch_ot``: the assignment minimising sum |x0_i - x1_pi(i)|^2 (OT-CFM). By default
  (``solver = device``) a near-optimal one computed where the batch lives, inside the compiled
  step (``assignment.py``: annealed Sinkhorn, greedy rounding, pairwise exchanges); with
  ``solver = exact`` the exact one, on the host (``exact_assignment``: POT's network simplex;
  ``ops.assignment``, a callback inside JAX's compiled loop);
- ``sinkhorn(reg)``: the entropic plan with regularisation ``reg`` relative to the mean cost,
  computed on the device in the log domain; iterations stop when every row marginal is within
  0.1% of 1/n (checked every ``SINKHORN_CHECK_EVERY`` iterations, so that torch synchronises
  with the host once per check), or after ``SINKHORN_MAX_ITERATIONS``. Each x0_i is paired with
  x1_j, j drawn from row i of the plan.

A coupling kind (``Coupling``) draws the training pairs: ``pairs(model, data)`` returns
``(rng, n) -> (x0, x1)``. By default it draws the base and the target apart and re-pairs the
batch with ``couple(ops, args)``, ``(rng, x0, x1) -> (x0, x1)``. No gradient flows through a
plan or an assignment; gradients still reach x1 through the indexing.

A model whose target carries class labels (docs/conditional.md) draws (x0, x1, y): the rows of
x1 with their labels y. ``couple`` then gets the labels too (``labels=y``) and returns them in
x1's new order; the OT couplings pair within each class only, by adding to the cost of every
pair whose classes differ more than any pairing within the classes costs (the classes of the
x0 rows are those of the rows as drawn, so that each class keeps its count).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

from ...errors import Diagnostic, TfmSemanticError
from . import densities
from .assignment import assignment
from .kinds import Registry
from .spec import Call

SINKHORN_MAX_ITERATIONS = 2000
SINKHORN_TOLERANCE = 1e-3  # largest relative error of a row marginal when iterations stop
SINKHORN_CHECK_EVERY = 10  # iterations between two checks of the row error


class Coupling:
    """Independent draws of the base and the target, re-paired by ``couple``."""

    def couple(self, ops, args):
        def couple(rng, x0, x1, labels=None):
            return (x0, x1) if labels is None else (x0, x1, labels)
        return couple

    def pairs(self, model, data=None):
        """(rng, n) -> (x0, x1) for training, or (x0, x1, y) for a model with labels;
        ``data`` replaces the target's samples."""
        ops, spec, shape = model.ops, model.spec, model.shape
        base = densities.sampler(ops, spec.base, shape, model._density_array("base"))
        if spec.conditioned:
            return self._labelled(model, base, data)
        target = densities.sampler(ops, spec.target if data is None else Call("data"), shape,
                                   model._density_array("target", data))
        couple = self.couple(ops, spec.coupling.args)

        def coupled(rng, n):
            k_base, k_target, k_couple = rng.split(3)
            return couple(k_couple, base(k_base, n), target(k_target, n))
        return coupled

    def _labelled(self, model, base, data):
        if data is not None:
            raise TfmSemanticError(Diagnostic(
                "Semantic", "This model is conditioned on the labels of its data file; data "
                "given to fit(data=...) carry none.", suggestion="Train on the model's own "
                "data file, or leave labels = ... out of the target."))
        ops = model.ops
        pool, classes = ops.asarray(model._density_array("target")), ops.asarray(model.labels())
        couple = self.couple(ops, model.spec.coupling.args)

        def coupled(rng, n):
            k_base, k_target, k_couple = rng.split(3)
            rows = k_target.randint(pool.shape[0], (n,))
            return couple(k_couple, base(k_base, n), pool[rows], labels=classes[rows])
        return coupled


COUPLINGS: Registry[Coupling] = Registry("coupling")


def exact_assignment(cost: np.ndarray) -> np.ndarray:
    """The permutation pi minimising sum_i cost[i, pi(i)] (int64 column of each row): POT's
    network simplex with unit weights, whose optimal plan is a 0/1 matrix (3-4x faster than
    scipy's ``linear_sum_assignment`` at 512 x 512, bench/ot_coupling.py), or scipy where that
    plan is not a permutation. A NaN or infinite cost counts as the dearest finite one."""
    cost = np.asarray(cost, dtype=np.float64)
    finite = np.isfinite(cost)
    if not finite.all():
        cost = np.where(finite, cost, cost[finite].max(initial=0.0) + 1.0)
    n = cost.shape[0]
    if n == cost.shape[1]:
        import ot
        plan = ot.emd(np.ones(n), np.ones(n), cost)
        cols = plan.argmax(axis=1)
        if np.array_equal(np.sort(cols), np.arange(n)) and plan[np.arange(n), cols].min() == 1:
            return cols.astype(np.int64)
    _, cols = linear_sum_assignment(cost)
    return cols.astype(np.int64)


def costs(xp, x0, x1):
    """Squared distances |x0_i - x1_j|^2 (n, m) between flattened points."""
    a, b = xp.reshape(x0, (x0.shape[0], -1)), xp.reshape(x1, (x1.shape[0], -1))
    return (xp.sum(a * a, axis=1)[:, None] + xp.sum(b * b, axis=1)[None, :]
            - 2 * (a @ xp.permute_dims(b, (1, 0))))


def within(xp, cost, labels):
    """The cost with every pair of different labels made dearer than any pairing within the
    labels (n times the largest cost, plus 1), so that an exact solver pairs within them."""
    apart = labels[:, None] != labels[None, :]
    return cost + xp.astype(apart, cost.dtype) * (cost.shape[0] * xp.max(cost) + 1)


COUPLINGS.register("independent")(Coupling)


@COUPLINGS.register("paired")
class Paired(Coupling):
    """x0 and x1 from the same rows of the base's and the target's data files, or x0 = x1 when
    base and target are the same density."""

    def pairs(self, model, data=None):
        ops, spec = model.ops, model.spec
        base_data = model._density_array("base")
        target_data = model._density_array("target", data)
        if spec.base == spec.target and data is None:
            target = densities.sampler(ops, spec.target, model.shape, target_data)

            def same(rng, n):
                x1 = target(rng, n)
                return x1, x1
            return same
        if base_data is None or target_data is None or len(base_data) != len(target_data):
            raise TfmSemanticError(Diagnostic(
                "Semantic", "The paired coupling reads x0 and x1 together: base and target must "
                "be data files with the same number of samples, or the same density."))
        b, tg = ops.asarray(base_data), ops.asarray(target_data)

        def rows(rng, n):
            i = rng.randint(b.shape[0], (n,))
            return b[i], tg[i]
        return rows


@COUPLINGS.register("reflow")
class Reflow(Coupling):
    """Rows of the pairs (x0, X_1(x0)) that a trained model drew (``Model.reflow_pairs``: the
    arrays, or a function that draws them, set by the driver from the run folder the coupling
    names)."""

    def pairs(self, model, data=None):
        if model.reflow_pairs is None:
            raise TfmSemanticError(Diagnostic(
                "Semantic", "The reflow coupling trains on the pairs of a trained model, which "
                "were not drawn.", suggestion="Build the model with tfm.load or tfmc run, which "
                "draw them from the run folder the coupling names."))
        if callable(model.reflow_pairs):  # drawn on first use (driver/reflow.py)
            model.reflow_pairs = model.reflow_pairs()
        ops = model.ops
        b, tg = (ops.asarray(a) for a in model.reflow_pairs)

        def rows(rng, n):
            i = rng.randint(b.shape[0], (n,))
            return b[i], tg[i]
        return rows


@COUPLINGS.register("minibatch_ot")
class MinibatchOT(Coupling):
    def couple(self, ops, args):
        exact = args.get("solver") == "exact"

        def couple(rng, x0, x1, labels=None):
            cost = costs(ops.xp, ops.stop_gradient(x0), ops.stop_gradient(x1))
            if labels is None:
                return x0, x1[ops.assignment(cost) if exact else assignment(ops, cost)]
            if exact:
                perm = ops.assignment(within(ops.xp, cost, labels))
            else:
                perm = assignment(ops, cost, labels[:, None] == labels[None, :])
            return x0, x1[perm], labels[perm]
        return couple


def sinkhorn_plan(ops, cost, reg: float):
    """log of the entropic OT plan between uniform weights (log-domain Sinkhorn)."""
    xp = ops.xp
    if cost.dtype != xp.float64:
        cost = xp.astype(cost, xp.float32)  # half precision cannot reach the tolerance
    n, m = cost.shape
    eps = reg * xp.mean(cost)
    log_a, log_b = -math.log(n), -math.log(m)

    def lse(v, axis):
        return _logsumexp(xp, v, axis)

    def iterate(f, g):
        f = eps * log_a - eps * lse((g[None, :] - cost) / eps, 1)
        g = eps * log_b - eps * lse((f[:, None] - cost) / eps, 0)
        return f, g

    def body(state):
        i, f, g, _ = state
        for _ in range(SINKHORN_CHECK_EVERY):
            f, g = iterate(f, g)
        rows = lse((f[:, None] + g[None, :] - cost) / eps, 1)
        error = xp.max(xp.abs(xp.expm1(rows - log_a)))
        return i + SINKHORN_CHECK_EVERY, f, g, error

    def running(state):  # a NaN error stops too
        i, _, _, error = state
        return (i < SINKHORN_MAX_ITERATIONS) & (error > SINKHORN_TOLERANCE)

    zeros_n, zeros_m = xp.zeros_like(cost[:, 0]), xp.zeros_like(cost[0, :])
    start = (0, zeros_n, zeros_m, xp.full_like(cost[0, 0], math.inf))
    _, f, g, _ = ops.while_loop(running, body, start)
    return (f[:, None] + g[None, :] - cost) / eps


def _logsumexp(xp, v, axis: int):
    top = xp.max(v, axis=axis, keepdims=True)
    top = xp.where(xp.isfinite(top), top, xp.zeros_like(top))
    return xp.squeeze(top, axis=axis) + xp.log(xp.sum(xp.exp(v - top), axis=axis))


@COUPLINGS.register("sinkhorn")
class Sinkhorn(Coupling):
    def couple(self, ops, args):
        reg = float(args["reg"])

        def couple(rng, x0, x1, labels=None):
            plan = sinkhorn_plan(ops, costs(ops.xp, ops.stop_gradient(x0),
                                            ops.stop_gradient(x1)), reg)
            if labels is not None:  # the plan within the classes: other pairs drawn never
                apart = labels[:, None] != labels[None, :]
                plan = ops.xp.where(apart, -ops.xp.inf, plan)
            rows = rng.categorical(plan)
            return (x0, x1[rows]) if labels is None else (x0, x1[rows], labels[rows])
        return couple


def make(ops, entry):
    """(rng, x0, x1) -> (x0, x1): the re-pairing of the coupling ``entry`` (a spec Call)."""
    return COUPLINGS[entry.name].couple(ops, entry.args)


def pairs(model, data=None):
    """(rng, n) -> (x0, x1): the model's training pairs, drawn by its coupling."""
    return COUPLINGS[model.spec.coupling.name].pairs(model, data)
