"""Importance sampling with a normalizing flow q as the proposal, for a target known up to a
constant, p ∝ exp(-U): draws x_i = T(z_i) with log-weights log w_i = -U(x_i) - log q(x_i), then

- log Z = log mean_i w_i (unbiased in Z for each replica; the replicas' spread gives the
  standard error, ``diagnostics.log_Z_from_replicas``);
- self-normalised estimates E_p[f] ≈ sum_i w_i f(x_i) / sum_i w_i, and equally weighted draws by
  resampling the points with probabilities w_i / sum w (systematic resampling);
- Kish's effective sample size (sum w)^2 / sum w^2, as a fraction of the draws.

A draw whose point, energy or density is not finite gets weight 0 (and is counted).
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from ...errors import Diagnostic, TfmRuntimeError
from . import diagnostics
from .mcmc.tempering import systematic


@attrs.frozen
class ImportanceResult:
    """``particles``: equally weighted draws (resampled), (R N, *shape); ``log_Z`` with its
    standard error and each replica's estimate; the ESS fraction of each replica's weights and
    of all of them; the log-weights; the draws whose weight was not finite; the energy
    evaluations (one per draw)."""

    particles: np.ndarray
    log_Z: float
    log_Z_stderr: float | None
    log_Z_replicas: list[float]
    ess: float
    ess_replicas: list[float]
    log_weights: np.ndarray
    non_finite: int
    energy_evals: int


def log_weights(ops, density, energy, z):
    """(x, log w) of the flow's draws from latents z: log w = -U(x) - log q(x), -inf where any
    of them is not finite."""
    xp = ops.xp
    x, log_q = density.sample(z)
    lw = -energy(x) - log_q
    finite = xp.isfinite(lw) & xp.all(xp.isfinite(xp.reshape(x, (x.shape[0], -1))), axis=1)
    return x, xp.where(finite, lw, -math.inf)


def estimate(x: np.ndarray, lw: np.ndarray, replicas: int, seed: int) -> ImportanceResult:
    """The estimates from draws x (R N, *shape) and their log-weights (R N,) in replicas of N
    consecutive draws."""
    total = len(lw)
    if replicas < 1 or total % replicas:
        raise TfmRuntimeError(Diagnostic(
            "Runtime", f"{total} draws do not split into {replicas} replicas of equal size."))
    n = total // replicas
    lw = lw.astype(np.float64)
    bad = int(np.sum(~np.isfinite(lw)))
    if bad == total:
        raise TfmRuntimeError(Diagnostic(
            "Runtime", "Every importance weight is zero: the energy or the flow's density is "
            "not finite at any of the flow's draws.",
            suggestion="Check the energy's domain; train the flow longer or with a smaller "
            "learning rate."))
    per = lw.reshape(replicas, n)
    log_Z_r = [diagnostics.log_mean_exp(row) for row in per]
    if not all(np.isfinite(log_Z_r)):
        raise TfmRuntimeError(Diagnostic(
            "Runtime", "A replica of importance sampling has no draw of non-zero weight.",
            suggestion="Use more particles per replica."))
    log_Z, stderr = diagnostics.log_Z_from_replicas(log_Z_r)
    chosen = (np.arange(replicas)[:, None] * n
              + systematic(np.random.default_rng(seed), per)).reshape(-1)
    return ImportanceResult(
        x[chosen], float(log_Z), stderr, [float(v) for v in log_Z_r],
        diagnostics.importance_ess(lw) / total,
        [diagnostics.importance_ess(row) / n for row in per], lw.astype(np.float32), bad, total)
