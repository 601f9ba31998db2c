"""Running the samplers of a model without networks into a run folder: every sampler that no
other sampler uses (kernels of a cycle or an SMC sampler run inside it), in the order of the
file, its diagnostics in ``metrics.json`` and printed, the draws of the first one in
``samples.npy``, the chains' state in ``chains.safetensors`` (``tfmc sample`` continues them),
and plots: the draws over the energy's contours, trace plots, log Z against the number of
temperatures, and for lattice fields the magnetisation histogram.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..backends.runtime import diagnostics, energy_model, metrics as metric_fns, targets
from ..backends.runtime.importance import ImportanceResult
from ..backends.runtime.mcmc.chains import ChainResult
from ..errors import TfmSemanticError

REFERENCE_POINTS = 2000
GRID = 120
SWEEP = (0.125, 0.25, 0.5)  # fractions of a sampler's temperatures for the log Z curve


def run_samplers(model, out: Path, log=print, progress: bool | None = None) -> dict:
    """Runs every sampler of ``model`` (an EnergyModel, or a FlowModel); writes the run folder's
    samples, state and plots; returns the metrics."""
    from ..backends.runtime import plots

    name = model.spec.model
    result: dict = {"backend": model.backend, "seed": model.seed, "samplers": {}}
    truth = model.log_Z_true
    if truth is not None:
        result["log_Z_true"] = truth
    first = None
    for entry in model.top_level():
        log(f"running {entry.name} ({entry.method})")
        started = time.perf_counter()
        run = model.run(entry.name, **({"progress": progress} if progress is not None else {}))
        seconds = time.perf_counter() - started
        summary = _summary(model, run, seconds, truth) | run.extra
        if len(model.shape) == 2 and isinstance(run.result, ChainResult):
            summary["magnetisation"] = _sign_changes(run.result.samples)
        if isinstance(run.result, ChainResult):
            plots.traces(out / f"traces_{entry.name}.png", run.result.samples,
                         f"{name}: {entry.name} ({entry.method})")
        elif not isinstance(run.result, ImportanceResult):
            summary["log_Z_curve"] = _log_Z_curve(model, run, summary, out, truth)
        if "log_Z" in summary and "log_Z" not in result:  # the first estimate of log Z
            result["log_Z"], result["log_Z_stderr"] = summary["log_Z"], summary["log_Z_stderr"]
            if truth is not None:
                result["log_Z_error"] = summary["log_Z"] - truth
        result["samplers"][entry.name] = summary
        log(f"{entry.name} ({entry.method}), {seconds:.1f} s:\n"
            + diagnostics.format_summary(summary))
        if first is None:
            first = run
    draws = first.draws
    np.save(out / "samples.npy", draws.astype(np.float32))
    result["sampler"] = first.sampler
    getattr(model, "save_chains", model.save)(out / energy_model.STATE)
    reference = _reference(model)
    shown = draws[np.random.default_rng(0).permutation(len(draws))[:REFERENCE_POINTS]]
    if reference is not None:
        result["w2"] = metric_fns.w2(shown, reference)
        result["mmd"] = metric_fns.mmd(shown, reference)
    plots.samples_on_energy(out / "samples.png", shown.reshape(len(shown), -1),
                            _grid(model, shown), f"{name}: {first.sampler}")
    means = targets.MIXTURE_MEANS.get(model.spec.target.name)
    if means is not None:  # a mixture of equal weights: how the draws share its modes
        means = means()
        shares = diagnostics.mode_shares(draws, means)
        result["modes"] = {
            "visited": diagnostics.modes_visited(draws, means), "of": len(means),
            "total_variation": diagnostics.mode_total_variation(
                shares, np.full(len(means), 1 / len(means)))}
    if len(model.shape) == 2:  # a lattice field
        m = diagnostics.magnetisation(draws)
        result["magnetisation"] = {"mean": float(np.mean(m)), "abs_mean": float(np.mean(abs(m))),
                                   "std": float(np.std(m)),
                                   "positive_share": float(np.mean(m > 0))}
        # the first sampler's crossings, as its summary already has them
        result["magnetisation"] |= result["samplers"][first.sampler].get("magnetisation", {})
        plots.histogram(out / "magnetisation.png", m, f"{name}: magnetisation",
                        "mean field per configuration")
    return result


def _sign_changes(chains: np.ndarray) -> dict:
    """How the chains of a lattice field (draws, chains, H, W) cross between the signs of the
    magnetisation: each chain's share of positive draws pooled, the mean number of sign changes
    per chain, and the share of chains that change sign at least once."""
    m = diagnostics.magnetisation(chains.reshape((-1,) + chains.shape[2:]))
    changes = diagnostics.sign_changes(m.reshape(chains.shape[:2]))
    return {"positive_share": float(np.mean(m > 0)),
            "sign_changes_per_chain": float(np.mean(changes)),
            "chains_changing_sign": float(np.mean(changes > 0))}


def _summary(model, run, seconds: float, truth) -> dict:
    res = run.result
    if isinstance(res, ImportanceResult):
        summary = {"method": run.method, "log_Z": res.log_Z,
                   "log_Z_stderr": _finite(res.log_Z_stderr), "log_Z_replicas": res.log_Z_replicas,
                   "replicas": len(res.log_Z_replicas), "particles": int(len(res.particles)),
                   "ess_fraction": res.ess, "ess_fraction_replicas": res.ess_replicas,
                   "non_finite_rejected": res.non_finite / len(res.log_weights),
                   "energy_evals": res.energy_evals, "seconds": round(seconds, 3)}
        if truth is not None:
            summary["log_Z_error"] = res.log_Z - truth
        return summary
    if isinstance(res, ChainResult):
        summary = diagnostics.chain_summary(res.samples, res.energy_evals, res.grad_evals,
                                            res.acceptance, res.step_sizes, run.kernels)
        steps = res.samples.shape[1] * (res.warmup + res.draws)
        summary |= {"method": run.method, "warmup": res.warmup, "thin": res.thin,
                    "seconds": round(seconds, 3),
                    "chain_steps_per_second": round(steps / seconds, 1)}
        return summary
    summary = {"method": run.method, "log_Z": res.log_Z, "log_Z_stderr": _finite(res.log_Z_stderr),
               "log_Z_replicas": res.log_Z_replicas, "replicas": len(res.log_Z_replicas),
               "particles": int(len(res.particles)), "temperatures": res.temperatures_used,
               "acceptance": dict(zip(run.kernels, res.acceptance)),
               "step_size": dict(zip(run.kernels, res.step_sizes)),
               "ess_final": float(np.mean([h[-1] for h in res.ess_history if h])),
               "energy_evals": res.energy_evals, "grad_evals": res.grad_evals,
               "seconds": round(seconds, 3)}
    if truth is not None:
        summary["log_Z_error"] = res.log_Z - truth
    return summary


def _finite(value):
    return float(value) if value is not None and np.isfinite(value) else None


def _log_Z_curve(model, run, summary: dict, out: Path, truth) -> dict:
    """log Z against the number of temperatures: the sampler again with fixed schedules of a
    fraction of the temperatures it used (same particles and replicas), then the run itself."""
    from ..backends.runtime import plots

    entry = model.sampler_entry(run.sampler)
    used = int(summary["temperatures"])
    counts, values, errors = [], [], []
    for fraction in SWEEP:
        count = max(1, int(round(used * fraction)))
        if count in counts or count >= used:
            continue
        short = model.run_fixed(entry, count, seed=run.seed + 1)
        counts.append(count)
        values.append(short.result.log_Z)
        errors.append(_finite(short.result.log_Z_stderr))
    counts.append(used)
    values.append(summary["log_Z"])
    errors.append(summary["log_Z_stderr"])
    plots.log_Z_curve(out / f"log_Z_{entry.name}.png", counts, values, errors, truth,
                      f"{model.spec.model}: {entry.name} ({entry.method})")
    return {"temperatures": counts, "log_Z": values, "log_Z_stderr": errors}


def _reference(model):
    """Exact draws of the target, where its kind has an exact sampler."""
    from ..backends.runtime import densities

    try:
        draw = densities.sampler(model.ops, model.spec.target, model.shape)
    except TfmSemanticError:
        return None
    x = draw(model.ops.random(model.ops.key(12345)), REFERENCE_POINTS)
    return model.ops.numpy(x).reshape(REFERENCE_POINTS, -1)


def _grid(model, shown: np.ndarray):
    """The energy on a grid over the draws' range, for 2-D models (None otherwise)."""
    if shown.shape[1:] != (2,):
        return None
    lo, hi = shown.min(0), shown.max(0)
    pad = 0.1 * (hi - lo) + 1e-3
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], GRID)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], GRID)
    points = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)
    return xs, ys, model.energy_of(points).reshape(GRID, GRID)
