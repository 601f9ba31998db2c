"""Flow-assisted MCMC on GMM-40: flowMC against plain MALA and tfm's own flow MCMC, one target,
one start, one budget of energy evaluations, in one run.

The target is FAB's 40-component Gaussian mixture in 2-D (equal weights, the means of
``targets.gmm40_means()`` in [-40, 40]^2, standard deviation softplus(1) = 1.313 in every
coordinate, as tfm's ``gmm40``); its exact draws pick a mean uniformly and add that normal.
Every method starts ``--chains`` chains (500) uniformly in [-40, 40]^2 (the same points for
all, from ``--seed``) and may spend at most ``--budget`` energy evaluations
(600,000) in all, an energy-and-gradient evaluation counting as one:

- flowMC (Wong, Gabrié, Foreman-Mackey 2023; the loop of Gabrié, Rotskoff and Vanden-Eijnden
  2022): its ``RQSpline_MALA_Bundle``, i.e. per loop each chain takes ``local`` MALA steps and
  ``global`` independence Metropolis-Hastings steps proposed by a masked-coupling rational-
  quadratic spline flow; in the training loops the flow is fitted (maximum likelihood) to the
  chains' recent states and the MALA step adapted, then the production loops keep every chain
  state. Budget per chain: (training + production loops) x (local + global + 2) evaluations,
  the 2 being the energy at the chain's state that each of its two steppers evaluates once per
  call; flowMC's MALA also re-evaluates energy and gradient at the current point every step
  (it does not keep them), which the protocol does not count (``flowmc_raw_calls`` in the JSON
  does). The samples are the production states of all chains.
- MALA: tfm's kernel (``tfm.backends.runtime.mcmc``, JAX backend) through ``run_chains``,
  budget / chains - 1 iterations (the start is one more evaluation), the first half warm-up
  with the step size adapted towards acceptance 0.574, every later state kept.
- tfm flow MCMC: ``tfmc run examples/gmm40_flow_mcmc.tfm --backend jax --out DIR``, timed as a
  subprocess; its ``samples.npy`` are the samples and its ``metrics.json`` gives the energy
  evaluations (and the run's own seconds, used for the ratio when present). Missing file or
  keys: the row says so (``n/a``).

For each: the modes visited (a mode counts when one of the samples it is nearest to lies within
3 of its mean), the total variation between the modes' shares of all the samples and 1/40, W2
between 1,000 of the samples (a seeded random subset) and 1,000 exact draws (POT's exact
transport, squared Euclidean cost) next to the W2 between two exact sets of 1,000 (the
reference: what sampling noise alone gives), the energy evaluations, the wall time (of the
sampling call, compilation included) and its ratio to flowMC's. The project's done-criteria are
checked in the last column: all 40 modes, total variation at most 0.02, W2 at most 0.1 above the
reference (``--w2-repeats R`` averages both over R exact sets: with one, as the protocol has it,
W2 of two exact sets alone varies by about +-1 from seed to seed).

Needs POT (tfm's ``run`` extra) and flowMC, installed without letting pip move jax (flowMC
0.6.4 works with jax 0.10; its other requirements, diffrax, equinox, jaxtyping, optax and tqdm,
come with tfm's ``jax`` extra, or install each the same way with ``--no-deps``):

    pip install --no-deps flowMC==0.6.4

Run (2 CPU cores: about 3 minutes without tfm's row, 5 with it):

    python bench/flow_sampling.py [--chains 500] [--budget 600000] [--seed 0]
                                  [--tfm-run DIR [--tfm-reuse] | --no-tfm] [--no-mala]
                                  [--no-flowmc] [--w2-repeats 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gmm40_flow_mcmc.tfm"
BOX = 40.0
N_W2 = 1000
RADIUS = 3.0
# the done-criteria
TV_MAX, W2_EXCESS_MAX = 0.02, 0.1


# --- target, exact draws and metrics --------------------------------------------------------------

def _means() -> np.ndarray:
    from tfm.backends.runtime.targets import gmm40_means

    return gmm40_means().astype(np.float64)


def _std() -> float:
    from tfm.backends.runtime.targets import GMM40_STD

    return float(GMM40_STD)


def exact_draws(rng: np.random.Generator, n: int) -> np.ndarray:
    means = _means()
    return means[rng.integers(len(means), size=n)] + _std() * rng.standard_normal(
        (n, means.shape[1]))


def w2(x: np.ndarray, y: np.ndarray) -> float:
    """The 2-Wasserstein distance between two empirical laws of equal weights (exact transport,
    POT's network simplex on the squared Euclidean cost)."""
    import ot

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    cost = ot.dist(x, y, metric="sqeuclidean")
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    return math.sqrt(max(float(ot.emd2(a, b, cost, numItermax=10_000_000)), 0.0))


def metrics(samples, exacts: list[np.ndarray], w2_ref: float, rng: np.random.Generator) -> dict:
    """Modes visited, total variation of the mode shares against 1/40 (all the samples), and W2
    of a random subset of ``N_W2`` samples against each exact set of ``exacts`` (a fresh subset
    each), averaged, with its excess over ``w2_ref``."""
    from tfm.backends.runtime import diagnostics as dg

    means = _means()
    x = np.asarray(samples, np.float64).reshape(-1, means.shape[1])
    x = x[np.all(np.isfinite(x), axis=1)]
    shares = dg.mode_shares(x, means)
    d = float(np.mean([w2(x[rng.choice(len(x), size=min(N_W2, len(x)), replace=False)], e)
                       for e in exacts]))
    out = {"n_samples": int(len(x)), "modes": dg.modes_visited(x, means, radius=RADIUS),
           "tv": dg.mode_total_variation(shares, np.full(len(means), 1 / len(means))),
           "w2": d, "w2_excess": d - w2_ref}
    out["pass"] = bool(out["modes"] == len(means) and out["tv"] <= TV_MAX
                       and out["w2_excess"] <= W2_EXCESS_MAX)
    return out


# --- flowMC ---------------------------------------------------------------------------------------

def flowmc_config(chains: int, budget: int, local: int, training: int, production: int) -> dict:
    """Steps per loop from the budget: each chain spends (local + global + 2) per loop."""
    per_chain = budget // chains
    loops = training + production
    steps = per_chain // loops - 2
    glob = steps - local
    if glob < 1:
        raise SystemExit(f"budget {budget} too small for {loops} flowMC loops of {local} local "
                         f"steps on {chains} chains")
    return {"n_local_steps": local, "n_global_steps": glob, "n_training_loops": training,
            "n_production_loops": production,
            # the flow and its training (a 2-D target with 40 separated modes: more bins than
            # flowMC's default 8 let each coupling layer place more modes; 20 epochs of 10 Adam
            # steps on 5,000 states per loop keep the training within about 5 s a loop on 2 cores)
            "rq_spline_n_layers": 4, "rq_spline_hidden_units": (32, 32), "rq_spline_n_bins": 16,
            "n_epochs": 20, "learning_rate": 3e-3, "batch_size": 500, "n_max_examples": 5000,
            "history_window": 100, "mala_step_size": 1.0}


def run_flowmc(x0: np.ndarray, seed: int, cfg: dict) -> tuple[np.ndarray, dict]:
    import flowMC
    import jax
    import jax.numpy as jnp
    from flowMC.resource_strategy_bundle.RQSpline_MALA import RQSpline_MALA_Bundle
    from flowMC.Sampler import Sampler

    means = jnp.asarray(_means(), jnp.float32)
    std = _std()
    log_norm = math.log(len(means)) + math.log(2 * math.pi) + 2 * math.log(std)

    def logpdf(x, data):
        # log (1/40) sum_k N(x; m_k, std^2 I) in 2-D: tfm's gmm40 (std = softplus(1))
        return jax.nn.logsumexp(-0.5 * jnp.sum((x - means) ** 2, axis=-1) / std**2) - log_norm

    chains, dim = x0.shape
    bundle = RQSpline_MALA_Bundle(jax.random.PRNGKey(seed), chains, dim, logpdf, **cfg)
    sampler = Sampler(n_dim=dim, n_chains=chains, rng_key=jax.random.PRNGKey(seed + 1),
                      resource_strategy_bundles=bundle, checkpoint_interval=0)
    start = time.perf_counter()
    sampler.sample(jnp.asarray(x0, jnp.float32), {})
    res = sampler.resources
    xs = np.asarray(jax.block_until_ready(res["positions_production"].data))
    seconds = time.perf_counter() - start

    def mean_finite(name):
        a = np.asarray(res[name].data)
        return float(a[np.isfinite(a)].mean())

    L, G = cfg["n_local_steps"], cfg["n_global_steps"]
    loops = cfg["n_training_loops"] + cfg["n_production_loops"]
    info = {"seconds": seconds, "energy_evals": chains * loops * (L + G + 2),
            "flowmc_raw_calls": chains * loops * (2 * L + G + 2),
            "local_acceptance": mean_finite("local_accs_production"),
            "global_acceptance": mean_finite("global_accs_production"),
            "global_acceptance_training_last": float(
                np.asarray(res["global_accs_training"].data)[:, -G:].mean()),
            "mala_step": [float(s) for s in np.asarray(res["local_sampler"].step_size)],
            "version": flowMC.__version__}
    return xs.reshape(-1, dim), info


# --- MALA (tfm) -----------------------------------------------------------------------------------

def run_mala(x0: np.ndarray, seed: int, budget: int) -> tuple[np.ndarray, dict]:
    import jax

    from tfm.backends.jax.runtime.ops import OPS
    from tfm.backends.runtime import densities
    from tfm.backends.runtime.mcmc import KERNELS, potential
    from tfm.backends.runtime.mcmc.chains import run_chains
    from tfm.backends.runtime.spec import Call

    chains = x0.shape[0]
    iterations = budget // chains - 1          # + the energy at the start
    warmup = iterations // 2
    draws = iterations - warmup
    jitted: dict = {}

    def program(key, fn):
        if key not in jitted:
            jitted[key] = jax.jit(fn)
        return jitted[key]

    pot = potential(OPS, densities.energy(OPS, Call("gmm40", {}), (x0.shape[1],)))
    kernel = KERNELS["mala"]
    start = time.perf_counter()
    res = run_chains(OPS, program, [(kernel, {"step": 1.0})], pot, OPS.asarray(x0),
                     OPS.key(seed), warmup, draws, 1, [1.0], [kernel.accept], adapt=True)
    seconds = time.perf_counter() - start
    info = {"seconds": seconds, "energy_evals": int(res.energy_evals),
            "grad_evals": int(res.grad_evals), "warmup": warmup, "draws": draws,
            "local_acceptance": float(res.acceptance[0]), "mala_step": float(res.step_sizes[0])}
    return np.asarray(res.samples).reshape(-1, x0.shape[1]), info


# --- tfm flow MCMC --------------------------------------------------------------------------------

def _tfmc() -> list[str]:
    exe = Path(sys.executable).parent / "tfmc"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("tfmc")
    return [found] if found else [sys.executable, "-m", "tfm.driver.cli"]


def _first(d: dict, *keys):
    for k in keys:
        if isinstance(d.get(k), (int, float)) and not isinstance(d.get(k), bool):
            return d[k]
    return None


def run_tfm(out: Path, reuse: bool, timeout: float) -> tuple[np.ndarray | None, dict]:
    """tfm's run of the example into ``out`` (or its outputs there when ``reuse``), given up
    after ``timeout`` seconds."""
    info: dict = {}
    if not reuse:
        if not EXAMPLE.exists():
            return None, {"missing": f"{EXAMPLE.relative_to(ROOT)} does not exist yet"}
        cmd = _tfmc() + ["run", str(EXAMPLE), "--backend", "jax", "--out", str(out)]
        print("running:", " ".join(cmd), flush=True)
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, {"missing": f"tfmc still running after {timeout:.0f} s (--tfm-timeout)"}
        info["process_seconds"] = time.perf_counter() - start
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            return None, info | {"missing": f"tfmc exited with {proc.returncode}",
                                 "log_tail": tail}
    samples = out / "samples.npy"
    if not samples.exists():
        return None, info | {"missing": f"no {samples}"}
    try:
        m = json.loads((out / "metrics.json").read_text())
    except (OSError, ValueError):
        m = {}
    # metrics.json nests the sampler's figures (``samplers[<name>]``): a key is taken where it
    # first appears, breadth first, the run's sampler before the others
    flat: dict = {}
    queue = [m]
    samplers = m.get("samplers") if isinstance(m.get("samplers"), dict) else {}
    if m.get("sampler") in samplers:
        queue.insert(0, samplers[m["sampler"]])
    while queue:
        d = queue.pop(0)
        for k, v in d.items():
            flat.setdefault(k, v)
            if isinstance(v, dict):
                queue.append(v)
    info["energy_evals"] = _first(flat, "energy_evals", "energy_evaluations")
    info["run_seconds"] = _first(flat, "seconds", "wall_seconds", "time", "elapsed")
    info["seconds"] = info["run_seconds"] if info["run_seconds"] is not None \
        else info.get("process_seconds")
    if isinstance(flat.get("acceptance"), dict):
        info["acceptance"] = flat["acceptance"]
    x = np.load(samples)
    return x, info


# --- table ----------------------------------------------------------------------------------------

def _f(x, spec, width):
    return format("n/a" if x is None else format(x, spec), f">{width}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=500)
    p.add_argument("--budget", type=int, default=600_000,
                   help="energy evaluations in all, chains together")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tfm-run", metavar="DIR",
                   help="run folder for tfm's flow MCMC (default: a temporary folder)")
    p.add_argument("--tfm-reuse", action="store_true",
                   help="read tfm's outputs already in --tfm-run DIR instead of running it")
    p.add_argument("--no-tfm", action="store_true", help="leave tfm's flow MCMC out")
    p.add_argument("--tfm-timeout", type=float, default=1800, help="seconds")
    p.add_argument("--no-mala", action="store_true")
    p.add_argument("--no-flowmc", action="store_true", help="(then no time ratios)")
    p.add_argument("--flowmc-local", type=int, default=10, help="MALA steps per flowMC loop")
    p.add_argument("--flowmc-training-loops", type=int, default=20)
    p.add_argument("--flowmc-production-loops", type=int, default=5)
    p.add_argument("--w2-repeats", type=int, default=1,
                   help="average W2 (and its reference) over this many exact sets; 1, the "
                        "protocol, leaves W2 - reference within about +-1 of noise")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    if args.tfm_reuse and not args.tfm_run:
        p.error("--tfm-reuse needs --tfm-run DIR")

    import jax

    x0 = np.random.default_rng(args.seed).uniform(-BOX, BOX, (args.chains, 2)).astype(np.float32)
    ref_rng = np.random.default_rng([args.seed, 1])
    exacts = [exact_draws(ref_rng, N_W2) for _ in range(args.w2_repeats)]
    refs = [w2(exact_draws(ref_rng, N_W2), e) for e in exacts]
    w2_ref = float(np.mean(refs))
    spread = [w2(exact_draws(ref_rng, N_W2), exact_draws(ref_rng, N_W2)) for _ in range(4)]
    print(f"GMM-40, {args.chains} chains from U[-40, 40]^2, budget {args.budget:,} energy "
          f"evaluations; device {jax.devices()[0]}")
    print(f"W2 of two exact sets of {N_W2}: {w2_ref:.3f}"
          + (f" (mean of {len(refs)} pairs)" if len(refs) > 1 else "") + "; its spread, 4 more pairs: "
          f"{', '.join(f'{s:.3f}' for s in spread)}", flush=True)

    rows: dict[str, dict] = {}
    cfg = flowmc_config(args.chains, args.budget, args.flowmc_local,
                        args.flowmc_training_loops, args.flowmc_production_loops)

    def attempt(name, fn):
        print(f"{name} ...", flush=True)
        try:
            xs, info = fn()
        except Exception as err:  # one method failing leaves the others' rows
            traceback.print_exc()
            rows[name] = {"missing": f"{type(err).__name__}: {err}"}
            return
        if xs is None:
            rows[name] = info
            return
        rows[name] = info | metrics(xs, exacts, w2_ref, np.random.default_rng([args.seed, 2]))

    if not args.no_flowmc:
        attempt("flowMC", lambda: run_flowmc(x0, args.seed, cfg))
    if not args.no_mala:
        attempt("MALA", lambda: run_mala(x0, args.seed, args.budget))
    if not args.no_tfm:
        out = Path(args.tfm_run) if args.tfm_run else Path(tempfile.mkdtemp(prefix="tfm_flow_"))
        attempt("tfm flow MCMC", lambda: run_tfm(out, args.tfm_reuse, args.tfm_timeout))

    f = rows.get("flowMC", {})
    if "flowMC" in rows and "seconds" in f:
        print(f"flowMC {f.get('version')}: {cfg['n_training_loops']} training + "
              f"{cfg['n_production_loops']} production loops of {cfg['n_local_steps']} MALA + "
              f"{cfg['n_global_steps']} flow steps; acceptance local "
              f"{f['local_acceptance']:.3f}, global {f['global_acceptance']:.3f} (last "
              f"training loop {f['global_acceptance_training_last']:.3f}); MALA step "
              f"{f['mala_step'][0]:.3g}")
    if "MALA" in rows and "seconds" in rows["MALA"]:
        m = rows["MALA"]
        print(f"MALA: {m['warmup']} warm-up + {m['draws']} iterations; acceptance "
              f"{m['local_acceptance']:.3f}, step {m['mala_step']:.3g}")
    t = rows.get("tfm flow MCMC", {})
    if "seconds" in t:
        acc = t.get("acceptance")
        acc = ", ".join(f"{k} {v:.3f}" for k, v in acc.items()) if isinstance(acc, dict) else "n/a"
        print(f"tfm flow MCMC: acceptance {acc}; run's own seconds "
              f"{_f(t.get('run_seconds'), '.1f', 0)}, process "
              f"{_f(t.get('process_seconds'), '.1f', 0)}")
    print()
    print(f"{'method':<14} {'modes':>5} {'TV':>7} {'W2':>7} {'W2-ref':>7} {'energy evals':>13} "
          f"{'wall s':>8} {'/flowMC':>8}  done")
    for name, r in rows.items():
        if "missing" in r:
            print(f"{name:<14} missing: {r['missing']}")
            for line in r.get("log_tail", []):
                print("    " + line)
            continue
        ratio = (r["seconds"] / f["seconds"] if r.get("seconds") is not None
                 and f.get("seconds") else None)
        r["time_ratio_to_flowmc"] = ratio
        evals = r.get("energy_evals")
        over = evals is not None and evals > args.budget
        r["pass"] = r["pass"] and not over
        print(f"{name:<14} {r['modes']:>5} {r['tv']:>7.4f} {r['w2']:>7.3f} "
              f"{r['w2_excess']:>+7.3f} {_f(evals, ',', 13)} {_f(r.get('seconds'), '.1f', 8)} "
              f"{_f(ratio, '.2f', 8)}  {'yes' if r['pass'] else 'no'}"
              + ("  (over budget)" if over else "") + ("  (evals n/a)" if evals is None else ""))
    print(f"(done: 40 modes, TV <= {TV_MAX}, W2 - W2(exact, exact) <= {W2_EXCESS_MAX}; "
          f"W2 of {N_W2} samples against {N_W2} exact draws"
          + (f", mean of {args.w2_repeats}" if args.w2_repeats > 1 else "")
          + f"; reference {w2_ref:.3f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"chains": args.chains, "budget": args.budget, "seed": args.seed,
                       "w2_repeats": args.w2_repeats, "w2_exact_exact": w2_ref,
                       "w2_exact_exact_spread": spread,
                       "flowmc_config": cfg, "rows": rows}, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
