"""The minibatch OT coupling (OT-CFM) at batch 512: the solver on the device against the exact
solvers on the host, and what the coupling costs a training step, in one run.

1. ``solver``: on the 2-D benchmark's pairs (N(0, I) -> moons and 8 Gaussians -> moons, the
   generators of bench/quality_2d.py), BATCHES batches of 512: the time of one call of tfm's
   device solver (``backends/runtime/assignment.py``; JAX compiled, torch eager), of scipy's
   ``linear_sum_assignment`` and of POT's ``emd`` (both exact, on the host, float64), and the
   optimality gap of the device solver's pairing: its cost over the exact optimum, minus 1.
2. ``step``: bench/eight_gaussians_to_moons.tfm (3 x 64 SELU MLP, Adam) at batch 512 trained
   through ``m.fit`` with ``coupling independent``, ``minibatch_ot`` (the device solver) and
   ``minibatch_ot(solver = exact)`` (scipy through a host callback), for both backends:
   milliseconds per step after a warm-up fit, and each coupling's step over the independent
   step. Where torchcfm is installed, its I-CFM and OT-CFM (POT's exact plan) loops on the same
   task, network and batch are timed beside them.

    .venv/bin/python bench/ot_coupling.py                  # both sections, both backends
    QUICK=1 .venv/bin/python bench/ot_coupling.py          # smoke run (seconds)
    SECTIONS=solver OUT=/tmp .venv/bin/python bench/ot_coupling.py   # JSON to $OUT

Not a test. Results: docs/benchmarks.md ("Minibatch OT on the device").
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

QUICK = os.environ.get("QUICK") == "1"
SECTIONS = os.environ.get("SECTIONS", "solver,step").split(",")
BACKENDS = os.environ.get("BACKENDS", "jax,torch").split(",")
BATCH = 512
BATCHES = 3 if QUICK else 20
STEPS = 100 if QUICK else 1000  # timed steps per coupling (the exact solver: a tenth)
ROOT = Path(__file__).resolve().parent.parent
TASK = ROOT / "bench" / "eight_gaussians_to_moons.tfm"
RESULTS: dict = {"solver": [], "step": []}


def moons(rng, n):
    from sklearn.datasets import make_moons
    x, _ = make_moons(n, noise=0.2, random_state=int(rng.integers(1 << 30)))
    return x * 3 - 1


def eight_gaussians(rng, n):
    angles = np.arange(8) * math.pi / 4
    centres = 5 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return centres[rng.integers(0, 8, n)] + math.sqrt(0.1) * rng.standard_normal((n, 2))


TASKS = {
    "N(0, I) -> moons": lambda rng: (rng.standard_normal((BATCH, 2)), moons(rng, BATCH)),
    "8 Gaussians -> moons": lambda rng: (eight_gaussians(rng, BATCH), moons(rng, BATCH)),
}


def device_solvers():
    """backend -> (x0, x1 as float32 numpy) -> permutation, each compiled or warm."""
    from tfm.backends.runtime.assignment import assignment
    from tfm.backends.runtime.couplings import costs
    solvers = {}
    if "jax" in BACKENDS:
        import jax
        from tfm.backends.jax.runtime.ops import Ops as JaxOps
        jax_ops = JaxOps()
        program = jax.jit(lambda a, b: assignment(jax_ops, costs(jax_ops.xp, a, b)))
        solvers["jax"] = lambda a, b: np.asarray(program(a, b).block_until_ready())
    if "torch" in BACKENDS:
        import torch
        from tfm.backends.torch.runtime.ops import Ops as TorchOps
        torch_ops = TorchOps()
        solvers["torch"] = lambda a, b: assignment(
            torch_ops, costs(torch_ops.xp, torch.from_numpy(a), torch.from_numpy(b))).numpy()
    return solvers


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def solver_section():
    import ot
    from scipy.optimize import linear_sum_assignment
    solvers = device_solvers()
    print(f"\n## 1. One assignment at batch {BATCH} ({BATCHES} batches per task; ms: median)")
    print("| task | solver | ms per call | gap mean | gap max |\n|---|---|---|---|---|")
    for task, draw in TASKS.items():
        rng = np.random.default_rng(0)
        times: dict = {name: [] for name in [*solvers, "scipy", "POT emd"]}
        gaps: dict = {name: [] for name in solvers}
        for i in range(BATCHES + 1):  # the first batch warms the solvers up
            x0, x1 = draw(rng)
            cost = ((x0[:, None, :] - x1[None, :, :]) ** 2).sum(-1)
            (rows, cols), t_scipy = timed(linear_sum_assignment, cost)
            optimum = cost[rows, cols].sum()
            _, t_pot = timed(ot.emd, np.full(BATCH, 1 / BATCH), np.full(BATCH, 1 / BATCH), cost)
            for name, solve in solvers.items():
                perm, t = timed(solve, x0.astype(np.float32), x1.astype(np.float32))
                assert sorted(perm.tolist()) == list(range(BATCH))
                if i:
                    times[name].append(t)
                    gaps[name].append(cost[np.arange(BATCH), perm].sum() / optimum - 1)
            if i:
                times["scipy"].append(t_scipy)
                times["POT emd"].append(t_pot)
        for name, ts in times.items():
            ms = statistics.median(ts) * 1e3
            gap = (f"{100 * np.mean(gaps[name]):.3f}% | {100 * np.max(gaps[name]):.3f}%"
                   if name in gaps else "0 (exact) | 0")
            label = f"tfm device ({name})" if name in solvers else name
            print(f"| {task} | {label} | {ms:.2f} | {gap} |", flush=True)
            RESULTS["solver"].append({"task": task, "solver": label, "ms": ms,
                                      "gap_mean": float(np.mean(gaps[name])) if name in gaps else 0.0,
                                      "gap_max": float(np.max(gaps[name])) if name in gaps else 0.0})


def model_file(folder: Path, coupling: str) -> Path:
    text = TASK.read_text().replace("coupling independent", f"coupling {coupling}")
    text = text.replace("batch 256", f"batch {BATCH}")
    path = folder / f"{coupling.split('(')[0]}_{len(coupling)}.tfm"
    path.write_text(text)
    return path


def fit_ms(path: Path, backend: str, steps: int) -> float:
    """Milliseconds per step of ``m.fit`` over ``steps`` steps after a 100-step warm-up fit."""
    import tfm
    m = tfm.load(path, backend=backend)
    quiet = lambda *a, **k: None  # noqa: E731
    m.fit(steps=100, progress=False, log=quiet)
    start = time.perf_counter()
    m.fit(steps=100 + steps, progress=False, log=quiet)
    return (time.perf_counter() - start) / steps * 1e3


def torchcfm_ms(ot: bool, steps: int) -> float | None:
    """Milliseconds per step of torchcfm's I-CFM or OT-CFM loop on the same task (None when
    torchcfm is not installed)."""
    try:
        from torchcfm.conditional_flow_matching import (
            ConditionalFlowMatcher, ExactOptimalTransportConditionalFlowMatcher)
    except ImportError:
        return None
    import torch
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    fm = ExactOptimalTransportConditionalFlowMatcher(0.0) if ot else ConditionalFlowMatcher(0.0)
    act = torch.nn.SELU
    net = torch.nn.Sequential(torch.nn.Linear(3, 64), act(), torch.nn.Linear(64, 64), act(),
                              torch.nn.Linear(64, 64), act(), torch.nn.Linear(64, 2))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    pool0 = torch.as_tensor(eight_gaussians(rng, 200_000), dtype=torch.float32)
    pool1 = torch.as_tensor(moons(rng, 200_000), dtype=torch.float32)

    def step():
        x0 = pool0[torch.randint(0, len(pool0), (BATCH,))]
        x1 = pool1[torch.randint(0, len(pool1), (BATCH,))]
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        loss = ((net(torch.cat([xt, t[:, None]], 1)) - ut) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for _ in range(20):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps * 1e3


def step_section():
    print(f"\n## 2. A training step at batch {BATCH} (8 Gaussians -> moons, 3 x 64 SELU, Adam)")
    print("| backend | coupling | ms per step | / independent |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in BACKENDS:
            base = None
            for coupling in ("independent", "minibatch_ot", "minibatch_ot(solver = exact)"):
                steps = STEPS // 10 if "exact" in coupling else STEPS
                ms = fit_ms(model_file(Path(tmp), coupling), backend, steps)
                base = base or ms
                print(f"| tfm {backend} | {coupling} | {ms:.3f} | {ms / base:.2f} |", flush=True)
                RESULTS["step"].append({"backend": backend, "coupling": coupling, "ms": ms,
                                        "ratio": ms / base})
    icfm = torchcfm_ms(False, STEPS // 2)
    if icfm is not None:
        otcfm = torchcfm_ms(True, STEPS // 20)
        for name, ms in (("I-CFM", icfm), ("OT-CFM (POT exact)", otcfm)):
            print(f"| torchcfm | {name} | {ms:.3f} | {ms / icfm:.2f} |", flush=True)
            RESULTS["step"].append({"backend": "torchcfm", "coupling": name, "ms": ms,
                                    "ratio": ms / icfm})


def main():
    import platform
    print(f"# Minibatch OT at batch {BATCH}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    if "solver" in SECTIONS:
        solver_section()
    if "step" in SECTIONS:
        step_section()
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "bench_ot_coupling.json").write_text(json.dumps(RESULTS, indent=1))


if __name__ == "__main__":
    main()
