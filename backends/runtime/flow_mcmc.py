"""Flow-assisted MCMC, the adaptive loop of Gabrié, Rotskoff and Vanden-Eijnden (2022), as the
``flow_mcmc`` sampler runs it on many chains:

1. ``rounds`` rounds, each: ``local`` iterations of the local kernel (the first round adapts its
   step size in as many warm-up iterations first), then ``global`` iterations of the flow's
   independence Metropolis-Hastings kernel (``mcmc/kernels/flow_mh.py``); then the flow is
   trained by maximum likelihood on the chains' states of the round and the rounds before it
   (the forward KL from the chains' law to the flow), the train block's ``steps`` shared
   evenly between the rounds, batches of ``batch`` states;
2. then ``draws`` iterations of the local kernel followed by a flow move, every ``thin``-th
   kept: the draws. The flow no longer changes, so these chains are an exact MCMC of the target.

Local moves find and explore modes; global moves carry chains between the modes the flow has
learnt, which equalises their occupation with the target's weights; training on those chains
teaches the flow the weights in turn. The energy evaluations count the whole run.
"""

from __future__ import annotations

import sys

import attrs
import numpy as np

from .energy_model import Run
from .mcmc import KERNELS, potential
from .mcmc.chains import run_chains

GLOBAL = "flow_mh"  # the name of the flow move among the kernels


def adaptive(model, entry, seed: int, progress: bool = False, log=print) -> Run:
    """Runs the flow_mcmc sampler ``entry`` of a FlowModel (its flow trained on the way)."""
    from tqdm.auto import tqdm

    ops, em, args = model.ops, model.energy_model, entry.args
    local_entry = em._referenced(args["kernel"])
    local, names = em.kernels(local_entry)
    flow_move = (KERNELS["flow_mh"], {"flow": args["flow"],
                                      "proposal": em.flow(args["flow"]["name"])})
    chains, rounds = int(args["chains"]), int(args["rounds"])
    n_local, n_global = int(args["local_steps"]), int(args["global_steps"])
    draws, thin = int(args["draws"]), int(args["thin"])
    batch = int(model.spec.train.batch)
    per_round = max(1, int(model.spec.train.steps) // rounds)
    pot = potential(ops, em.energy)
    targets = [k.target_accept(a) for k, a in local]
    steps = [k.initial_step(a) for k, a in local]
    x = em.base_draws(chains, seed)
    def rows(x):  # each device's chains (the results come back whole)
        return em.layout.rows(x, entry.name)

    rng = np.random.default_rng([seed, 17])
    buffer: list[np.ndarray] = []
    history = {"local_acceptance": [], "global_acceptance": [], "loss": []}
    energy_evals = grad_evals = 0
    bar = tqdm(total=rounds, unit="round", file=sys.stderr, disable=not progress,
               desc=f"{entry.name}")
    try:
        for r in range(rounds):
            res = run_chains(ops, em.program, local, pot, rows(x), ops.key(seed, 1000 + 2 * r),
                             n_local if r == 0 else 0, n_local, 1, steps, targets,
                             adapt=r == 0, layout=em.layout)
            steps = res.step_sizes
            glob = run_chains(ops, em.program, [flow_move], pot, rows(ops.asarray(res.state)),
                              ops.key(seed, 1001 + 2 * r), 0, n_global, 1, [1.0], [0.5],
                              adapt=False, context=model.weights, layout=em.layout)
            x = ops.asarray(glob.state)
            energy_evals += res.energy_evals + glob.energy_evals
            grad_evals += res.grad_evals + glob.grad_evals
            buffer.append(res.samples.reshape((-1,) + model.shape))
            buffer.append(glob.samples.reshape((-1,) + model.shape))
            data = np.concatenate(buffer)
            if r == 0 and model.step == 0:  # fresh weights: start at the chains' location and scale
                model.standardise(data)
            index = rng.integers(0, len(data), (per_round, batch))
            losses = model.train_on(ops.asarray(data[index]))
            history["local_acceptance"].append([float(a) for a in res.acceptance])
            history["global_acceptance"].append(float(glob.acceptance[0]))
            history["loss"].append(float(np.mean(losses)))
            bar.update(1)
            bar.set_postfix(global_accept=f"{glob.acceptance[0]:.3f}",
                            loss=f"{np.mean(losses):.4g}")
    finally:
        bar.close()
    cycle = local + [flow_move]
    final = run_chains(ops, em.program, cycle, pot, rows(x), ops.key(seed, 3000), 0, draws,
                       thin, list(steps) + [1.0], targets + [0.5], adapt=False,
                       context=model.weights, layout=em.layout)
    em.states[entry.name] = (final.state, list(final.step_sizes))
    history["non_finite_proposals"] = _non_finite(model, args["flow"]["name"], seed)
    result = attrs.evolve(final, energy_evals=final.energy_evals + energy_evals,
                          grad_evals=final.grad_evals + grad_evals,
                          warmup=n_local + rounds * (n_local + n_global))
    return Run(entry.name, entry.method, names + (GLOBAL,), result, seed,
               extra={"rounds": rounds, "train_steps": per_round * rounds, **history})



CHECK_DRAWS = 4096  # fresh flow draws whose non-finite share is reported


def _non_finite(model, name: str, seed: int) -> float:
    """The share of the trained flow's proposals that Metropolis-Hastings rejects for not being
    finite (point, energy or density), on CHECK_DRAWS fresh draws."""
    ops = model.ops
    _, lw = model.log_weights(ops.random(ops.key(seed, 11)).normal((CHECK_DRAWS,) + model.shape),
                              name)
    return float(np.mean(~np.isfinite(ops.numpy(lw))))
