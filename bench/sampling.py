"""MCMC throughput: tfm's MALA and HMC kernels against BlackJAX's on the same chains, in one run.

For each target (GMM-40 in 2-D, Neal's funnel in 10-D, many-well in 32-D) and each kernel, the
same initial states (draws of a normal) and the same step size run ``--steps`` iterations of
``--chains`` chains:

- tfm, JAX backend: ``run_chains`` (the runtime's compiled scan over iterations, every state
  kept), warm-up off, the step size fixed;
- BlackJAX 1.x: ``blackjax.mala`` / ``blackjax.hmc`` (identity mass matrix, the same number of
  leapfrog steps), one step vmapped over the chains inside ``jax.lax.scan``, jitted, every state
  kept. BlackJAX's MALA step size tau is tfm's eps^2 / 2 (its proposal is x + tau grad log p +
  sqrt(2 tau) z);
- tfm, torch backend: ``run_chains`` on the CPU (a Python loop over iterations).

Each program runs once to compile, then ``--repeats`` timed runs; the table gives chain-steps per
second (best of the repeats), the ratio tfm JAX / BlackJAX, and each side's acceptance rate (they
should agree: same kernel, same step size). Needs ``pip install blackjax`` (not a dependency of
tfm). Run:

    python bench/sampling.py [--chains 1000] [--steps 1000] [--repeats 3] [--no-torch]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

TARGETS = {"gmm40": (2,), "funnel": (10,), "many_well": (32,)}
STEP = {("gmm40", "mala"): 1.0, ("gmm40", "hmc"): 0.5, ("funnel", "mala"): 0.3,
        ("funnel", "hmc"): 0.2, ("many_well", "mala"): 0.15, ("many_well", "hmc"): 0.1}
LEAPFROG = 10


def _tfm(ops, program, name, kernel, x0, steps, step):
    from tfm.backends.runtime import densities
    from tfm.backends.runtime.mcmc import KERNELS, potential
    from tfm.backends.runtime.mcmc.chains import run_chains
    from tfm.backends.runtime.spec import Call

    energy = densities.energy(ops, Call(name, {}), TARGETS[name])
    args = {"step": step, "leapfrog": LEAPFROG}
    pot = potential(ops, energy)

    def run(seed):
        return run_chains(ops, program, [(KERNELS[kernel], args)], pot, ops.asarray(x0),
                          ops.key(seed), 0, steps, 1, [step], [0.6], adapt=False)
    return run


def _blackjax(name, kernel, x0, steps, step):
    import blackjax
    import jax
    import jax.numpy as jnp

    from tfm.backends.jax.runtime.ops import OPS
    from tfm.backends.runtime import densities
    from tfm.backends.runtime.spec import Call

    energy = densities.energy(OPS, Call(name, {}), TARGETS[name])

    def logdensity(x):
        return -energy(x[None])[0]

    if kernel == "mala":
        algorithm = blackjax.mala(logdensity, 0.5 * step * step)
    else:
        algorithm = blackjax.hmc(logdensity, step, jnp.ones(x0.shape[1]), LEAPFROG)
    step_fn = jax.vmap(algorithm.step)

    @jax.jit
    def chains(x, key):
        states = jax.vmap(algorithm.init)(x)

        def body(states, key):
            states, info = step_fn(jax.random.split(key, x.shape[0]), states)
            return states, (states.position, info.acceptance_rate)
        _, (xs, acc) = jax.lax.scan(body, states, jax.random.split(key, steps))
        return xs, jnp.mean(acc)

    x = jnp.asarray(x0)

    def run(seed):
        xs, acc = chains(x, jax.random.PRNGKey(seed))
        xs.block_until_ready()
        return float(acc)
    return run


def _time(run, repeats):
    first = run(0)  # compiles
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        out = run(r + 1)
        best = min(best, time.perf_counter() - start)
    return best, out if out is not None else first


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=1000)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args()

    import jax

    from tfm.backends.jax.runtime.ops import OPS as JAX_OPS

    jitted: dict = {}

    def jax_program(key, fn):
        if key not in jitted:
            jitted[key] = jax.jit(fn)
        return jitted[key]

    torch_ops = None
    if not args.no_torch:
        from tfm.backends.torch.runtime.ops import Ops
        torch_ops = Ops("cpu")

    rows = []
    print(f"{args.chains} chains x {args.steps} steps; chain-steps per second (best of "
          f"{args.repeats}); HMC with {LEAPFROG} leapfrog steps; device {jax.devices()[0]}")
    print(f"{'target':<10} {'kernel':<5} {'tfm jax':>11} {'blackjax':>11} {'ratio':>6} "
          f"{'tfm torch':>11} {'acc tfm':>8} {'acc bjx':>8}")
    for name, shape in TARGETS.items():
        x0 = np.random.default_rng(0).normal(size=(args.chains,) + shape).astype(np.float32)
        for kernel in ("mala", "hmc"):
            step = STEP[(name, kernel)]
            work = args.chains * args.steps
            t_tfm, res = _time(_tfm(JAX_OPS, jax_program, name, kernel, x0, args.steps, step),
                               args.repeats)
            t_bjx, acc_bjx = _time(_blackjax(name, kernel, x0, args.steps, step), args.repeats)
            row = {"target": name, "kernel": kernel, "chains": args.chains, "steps": args.steps,
                   "tfm_jax": work / t_tfm, "blackjax": work / t_bjx,
                   "ratio": t_bjx / t_tfm, "acceptance_tfm": res.acceptance[0],
                   "acceptance_blackjax": acc_bjx}
            if torch_ops is not None:
                t_torch, _ = _time(_tfm(torch_ops, lambda key, fn: fn, name, kernel, x0,
                                        args.steps, step), 1)
                row["tfm_torch"] = work / t_torch
            rows.append(row)
            print(f"{name:<10} {kernel:<5} {row['tfm_jax']:>11.4g} {row['blackjax']:>11.4g} "
                  f"{row['ratio']:>6.2f} {row.get('tfm_torch', float('nan')):>11.4g} "
                  f"{row['acceptance_tfm']:>8.3f} {row['acceptance_blackjax']:>8.3f}",
                  flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
