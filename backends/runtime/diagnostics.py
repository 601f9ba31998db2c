"""Diagnostics of a sampling run, on numpy arrays (docs/sampling.md).

Chains are stored as (draws, chains, *shape). Convergence diagnostics follow ArviZ's definitions
(Vehtari, Gelman, Simpson, Carpenter and Bürkner 2021), computed by ``arviz-stats`` and not
reimplemented here:

- ``rhat``: the rank-normalised split R-hat of each coordinate (the larger of the split R-hat of
  the rank-normalised draws and of their folded ranks); values near 1 say the chains agree,
  above 1.01 (strict) or 1.1 (lenient) that they have not mixed;
- ``ess_bulk``: the bulk effective sample size of each coordinate (the ESS of the rank-normalised
  split chains), the number of independent draws the chains are worth for the centre of the law.

Normalising constants and importance sampling:

- ``log_Z_from_replicas``: from R independent unbiased estimates Z_r (AIS or SMC runs, given as
  log Z_r), log Z = log mean_r Z_r and the delta-method standard error of log Z,
  sd(Z_r) / (sqrt(R) mean_r Z_r), both computed from Z_r / max_r Z_r so that no exp overflows;
- ``importance_ess``: Kish's effective sample size (sum w)^2 / sum w^2 of importance weights
  given as log-weights.

``chain_summary`` gathers what ``metrics.json`` reports of a run of MCMC chains (plain JSON
values; a diagnostic that is undefined, such as the R-hat of a constant coordinate, is None), and
``format_summary`` the lines printed after a run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

# our chains are (draws, chains, *shape): arviz-stats takes the two axes by name
_DRAW_AXIS, _CHAIN_AXIS = 0, 1


def _chains(samples) -> np.ndarray:
    a = np.asarray(samples, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"chains must be (draws, chains, *shape); got shape {a.shape}")
    return a


def rhat(samples) -> np.ndarray:
    """Rank-normalised split R-hat of each coordinate of chains (draws, chains, *shape); an
    array of shape ``shape`` (NaN where a coordinate is constant)."""
    from arviz_stats.base import array_stats

    a = _chains(samples)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(array_stats.rhat(a, chain_axis=_CHAIN_AXIS, draw_axis=_DRAW_AXIS,
                                           method="rank"), dtype=np.float64)


def ess_bulk(samples) -> np.ndarray:
    """Bulk effective sample size of each coordinate of chains (draws, chains, *shape); an array
    of shape ``shape``, in draws (not relative to draws x chains)."""
    from arviz_stats.base import array_stats

    a = _chains(samples)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(array_stats.ess(a, chain_axis=_CHAIN_AXIS, draw_axis=_DRAW_AXIS,
                                          method="bulk"), dtype=np.float64)


def _number(x) -> float | None:
    """A plain float for JSON, None for NaN, infinities or no value."""
    if x is None:
        return None
    x = float(np.mean(np.asarray(x, dtype=np.float64)))
    return x if math.isfinite(x) else None


def _per_kernel(values, kernel_names: Sequence[str]) -> dict:
    if values is None:
        return {name: None for name in kernel_names}
    if isinstance(values, Mapping):
        return {str(k): _number(v) for k, v in values.items()}
    if not isinstance(values, (list, tuple)):
        # one kernel: its value (a number, or per-chain values); several: an array by kernel
        values = [values] if len(kernel_names) == 1 else list(np.asarray(values))
    if len(values) != len(kernel_names):
        raise ValueError(f"{len(values)} values for {len(kernel_names)} kernels {list(kernel_names)}")
    return {str(name): _number(v) for name, v in zip(kernel_names, values)}


def chain_summary(samples, energy_evals: int, grad_evals: int, acceptance, step_sizes,
                  kernel_names: Sequence[str]) -> dict:
    """What ``metrics.json`` reports of MCMC chains ``samples`` (draws, chains, *shape) kept
    after warm-up (and thinning):

    ``rhat_max`` (the largest rank-normalised split R-hat over coordinates), ``ess_bulk_min`` and
    ``ess_bulk_mean`` (bulk ESS over coordinates), ``ess_per_energy_eval`` (``ess_bulk_min``
    over the energy evaluations of the whole run, warm-up included), ``energy_evals``,
    ``grad_evals``, ``acceptance`` and ``step_size`` by kernel name (each kernel's mean
    acceptance rate, and its step size after adaptation; per-chain values are averaged over the
    chains), ``chains`` and ``draws``. ``acceptance`` and ``step_sizes`` are mappings by kernel
    name, or lists in the order of ``kernel_names`` (with one kernel, its value alone). Undefined
    values are None.
    """
    a = _chains(samples)
    r, e = rhat(a), ess_bulk(a)
    finite_r, finite_e = r[np.isfinite(r)], e[np.isfinite(e)]
    ess_min = _number(finite_e.min()) if finite_e.size else None
    energy_evals, grad_evals = int(energy_evals), int(grad_evals)
    return {
        "rhat_max": _number(finite_r.max()) if finite_r.size else None,
        "ess_bulk_min": ess_min,
        "ess_bulk_mean": _number(finite_e.mean()) if finite_e.size else None,
        "ess_per_energy_eval": (ess_min / energy_evals
                                if ess_min is not None and energy_evals > 0 else None),
        "energy_evals": energy_evals,
        "grad_evals": grad_evals,
        "acceptance": _per_kernel(acceptance, kernel_names),
        "step_size": _per_kernel(step_sizes, kernel_names),
        "chains": int(a.shape[_CHAIN_AXIS]),
        "draws": int(a.shape[_DRAW_AXIS]),
    }


def log_mean_exp(a, axis=None) -> np.ndarray | float:
    """log(mean(exp(a))) along ``axis`` (all axes by default), without overflow."""
    a = np.asarray(a, dtype=np.float64)
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    n = a.size if axis is None else a.shape[axis]
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True) / n) + m
    out = np.squeeze(out, axis=axis) if axis is not None else out.reshape(())
    return float(out) if out.ndim == 0 else out


def log_Z_from_replicas(log_Z_r) -> tuple[float, float | None]:
    """From R independent unbiased estimates of Z, given as log Z_r (AIS or SMC replicas):
    (log Z, its standard error), where log Z = log mean_r Z_r and the standard error is the
    delta-method sd(Z_r) / (sqrt(R) mean_r Z_r) (sample sd, R - 1 in the denominator), a
    ratio computed from Z_r / max_r Z_r. With R = 1 the standard error is None."""
    lz = np.asarray(log_Z_r, dtype=np.float64).reshape(-1)
    if lz.size == 0:
        raise ValueError("no replicas of log Z")
    if not np.all(np.isfinite(lz)):
        raise ValueError(f"non-finite log Z replicas: {lz[~np.isfinite(lz)].tolist()}")
    log_Z = log_mean_exp(lz)
    if lz.size < 2:
        return log_Z, None
    w = np.exp(lz - lz.max())  # Z_r / max Z_r, in (0, 1]
    return log_Z, float(np.std(w, ddof=1) / (math.sqrt(lz.size) * np.mean(w)))


def importance_ess(log_weights) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 of unnormalised importance weights given
    as log w (invariant to their scale; between 1 and n; 0 when every weight is zero)."""
    lw = np.asarray(log_weights, dtype=np.float64).reshape(-1)
    if np.any(np.isnan(lw)) or np.any(lw == np.inf):
        raise ValueError("log-weights must be finite or -inf")
    if lw.size == 0 or not np.any(np.isfinite(lw)):
        return 0.0
    w = np.exp(lw - lw.max())
    return float(np.sum(w) ** 2 / np.sum(w**2))


def magnetisation(samples) -> np.ndarray:
    """The magnetisation of lattice fields (n, H, W) (or (n, ...) in general): the mean of phi
    over the sites of each sample, shape (n,)."""
    a = np.asarray(samples, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"fields must be (n, H, W); got shape {a.shape}")
    return a.reshape(a.shape[0], -1).mean(axis=1)


def sign_changes(m) -> np.ndarray:
    """How many times each chain's magnetisation changes sign over its draws, from the
    magnetisations m (draws, chains): (chains,). Chains that never change sign have explored
    one mirror half of a symmetric field only, whatever their pooled shares say."""
    signs = np.asarray(m, dtype=np.float64) > 0  # (a magnetisation of exactly 0 counts as negative)
    return np.sum(signs[1:] != signs[:-1], axis=0)


def _fmt(x, spec: str = ".3g") -> str:
    return "n/a" if x is None else format(x, spec)


def format_summary(d: Mapping) -> str:
    """The lines printed after a sampling run, from ``chain_summary``'s dictionary (and
    ``log_Z``, ``log_Z_stderr`` when the run estimated the normalising constant); keys that are
    absent are left out."""
    lines = []
    if "chains" in d and "draws" in d:
        lines.append(f"chains {d['chains']} x draws {d['draws']}")
    for name, acc in (d.get("acceptance") or {}).items():
        step = (d.get("step_size") or {}).get(name)
        lines.append(f"kernel {name}: acceptance {_fmt(acc, '.3f')}, step size {_fmt(step, '.4g')}")
    if "rhat_max" in d:
        lines.append(f"R-hat max {_fmt(d['rhat_max'], '.4f')}")
    if "ess_bulk_min" in d:
        lines.append(f"bulk ESS min {_fmt(d['ess_bulk_min'], '.1f')}, "
                     f"mean {_fmt(d.get('ess_bulk_mean'), '.1f')}, "
                     f"per energy evaluation {_fmt(d.get('ess_per_energy_eval'), '.3g')}")
    if "magnetisation" in d:
        m = d["magnetisation"]
        lines.append(f"magnetisation: positive share {_fmt(m['positive_share'], '.3f')}, sign "
                     f"changes per chain {_fmt(m['sign_changes_per_chain'], '.3g')}, chains "
                     f"changing sign {_fmt(m['chains_changing_sign'], '.3f')}")
    if d.get("log_Z") is not None:
        se = d.get("log_Z_stderr")
        lines.append(f"log Z {d['log_Z']:.4f}" + (f" ± {se:.4f}" if se is not None else ""))
    if "energy_evals" in d or "grad_evals" in d:
        lines.append(f"evaluations: energy {d.get('energy_evals', 'n/a')}, "
                     f"gradient {d.get('grad_evals', 'n/a')}")
    return "\n".join(lines)


# --- Mode coverage of a mixture target ----------------------------------------------------------
#
# For a target that is a mixture of well-separated components with known means (GMM-40 and the
# like), how a sampler spreads its draws among the modes: each draw is given to its nearest mean,
# the shares of the modes are compared with the mixture weights by total variation, and a mode
# counts as visited when some draw lies near its mean.

def _points_and_means(samples, means) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(samples, dtype=np.float64)
    m = np.asarray(means, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] == 0:
        raise ValueError(f"means must be (k, d) with k >= 1; got shape {m.shape}")
    x = x.reshape(-1, m.shape[1]) if x.size else np.zeros((0, m.shape[1]))
    if not np.all(np.isfinite(x)):
        raise ValueError("samples must be finite")
    return x, m


def _nearest(x: np.ndarray, m: np.ndarray, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest mean of each point, and the squared distance to it (in chunks of
    points, so that the (n, k) distance table stays small)."""
    idx = np.empty(len(x), dtype=np.int64)
    d2 = np.empty(len(x), dtype=np.float64)
    mm = np.sum(m * m, axis=1)
    for s in range(0, len(x), chunk):
        xs = x[s:s + chunk]
        d = np.maximum(np.sum(xs * xs, axis=1)[:, None] - 2.0 * xs @ m.T + mm[None, :], 0.0)
        idx[s:s + chunk] = np.argmin(d, axis=1)
        d2[s:s + chunk] = d[np.arange(len(xs)), idx[s:s + chunk]]
    return idx, d2


def mode_assignment(samples, means) -> np.ndarray:
    """The mode of each sample: the index of its nearest mean (Euclidean), shape (n,), int64.
    ``samples`` is (n, d) (or anything that reshapes to it, e.g. chains (draws, chains, d)),
    ``means`` is (k, d)."""
    x, m = _points_and_means(samples, means)
    return _nearest(x, m)[0]


def mode_shares(samples, means) -> np.ndarray:
    """The share of the samples given to each mode (nearest mean), shape (k,), summing to 1
    (all zeros when there are no samples). For an exact sampler of an equal-weight mixture of
    well-separated components the shares tend to 1/k; overlapping components make the
    nearest-mean shares differ a little from the weights even then (GMM-40, whose closest means
    are 1.2 apart: total variation about 0.002 in the limit)."""
    x, m = _points_and_means(samples, means)
    counts = np.bincount(_nearest(x, m)[0], minlength=len(m)).astype(np.float64)
    return counts / len(x) if len(x) else counts


def modes_visited(samples, means, radius: float = 3.0) -> int:
    """How many modes have at least one sample within ``radius`` of their mean among the samples
    assigned to them (whose nearest mean it is).

    The default of 3 is three standard deviations of a unit-variance component: a chain that
    reached a mode of GMM-40 almost surely has a state that close (in 2-D, 99% of a unit
    Gaussian's mass lies within 3.03 of its mean), while a chain only passing between modes
    10 apart rarely has. Requiring the nearest mean keeps draws of one mode from counting for a
    neighbour within ``radius`` (GMM-40 has pairs of means 1.2 and 1.6 apart; a draw of one of
    them nearer the other still counts for the other: such pairs are not told apart). Scale
    ``radius`` with the components' standard deviation."""
    if not radius > 0:
        raise ValueError(f"radius must be positive; got {radius}")
    x, m = _points_and_means(samples, means)
    idx, d2 = _nearest(x, m)
    near = idx[d2 <= float(radius) ** 2]
    return int(np.unique(near).size)


def mode_total_variation(shares, weights) -> float:
    """Total variation distance between the modes' sample shares and the mixture weights: half
    the L1 distance, between 0 and 1. Both are (k,) and are normalised to sum 1 here (so counts
    may be given); e.g. ``weights = np.full(k, 1 / k)`` for an equal-weight mixture."""
    p = np.asarray(shares, dtype=np.float64).reshape(-1)
    q = np.asarray(weights, dtype=np.float64).reshape(-1)
    if p.shape != q.shape:
        raise ValueError(f"shares and weights differ in length: {p.shape} vs {q.shape}")
    if np.any(p < 0) or np.any(q < 0) or not (p.sum() > 0 and q.sum() > 0):
        raise ValueError("shares and weights must be non-negative with a positive sum")
    return float(0.5 * np.sum(np.abs(p / p.sum() - q / q.sum())))
