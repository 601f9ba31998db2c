"""Evaluating a model of normalizing flows into its run folder, after training: the flow's own
draws against exact draws of the target where they exist (W2, MMD, and the negative
log-likelihood of those draws under the flow, exact by the change of variables), and the
model's samplers on the target's energy as a model without networks runs them
(driver/sampling.py): importance sampling's log Z, flow-assisted chains, SMC from the flow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..backends.runtime import metrics as metric_fns
from .run import _reference, eval_points, nll_points


def evaluate_flow(model, out: Path, progress: bool = True, log=print, n: int | None = None,
                  seed: int = 0) -> dict:
    from ..backends.runtime import plots

    n = eval_points() if n is None else int(n)
    name = model.spec.model
    result: dict = {}
    if model.spec.samplers:
        from .sampling import run_samplers

        result |= run_samplers(model, out, log, progress=progress)
    flow = model.sample(n, seed=seed)
    reference = _reference(model, n)
    own: dict = {"eval_points": n}
    if reference is not None:
        own["w2"] = metric_fns.w2(flow, reference)
        own["mmd"] = metric_fns.mmd(flow, reference)
        own["nll"] = float(-np.mean(model.log_prob(reference[:nll_points(n)])))
    if model.spec.samplers:
        result["flow"] = own
        np.save(out / "flow_samples.npy", flow.astype(np.float32))
    else:
        result |= {"sampler": None} | own
        np.save(out / "samples.npy", flow.astype(np.float32))
        plots.samples(out / "samples.png", flow, reference, f"{name}: the flow's draws")
    return result

