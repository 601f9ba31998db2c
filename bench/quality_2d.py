"""The 2-D quality benchmark: tfm's own model files for I-CFM, OT-CFM and SB-CFM against
torchcfm's classes, on the same generators, network, optimiser, batch and budget.

Protocol (each number is one training run; SEEDS seeds per row, mean and spread):

- pairs: N(0, I) -> moons and 8 Gaussians -> moons, with torchcfm's generators: moons are
  scikit-learn's ``make_moons(noise = 0.2)`` times 3 minus 1; the 8 Gaussians sit at radius 5
  and each has covariance sqrt(0.1) I, as torchcfm's ``sample_8gaussians`` draws them (its
  ``var = 0.1`` goes in as the covariance's square root; standard deviation 0.1^(1/4) = 0.562).
  Training draws come from a pool of POOL points of each law, the same pool for both libraries
  (tfm reads the moons as a data file, and draws N(0, I) and the 8 Gaussians itself);
- methods: I-CFM (torchcfm ``ConditionalFlowMatcher(sigma = 0)``; tfm ``coupling independent``,
  ``interpolant linear``), OT-CFM (``ExactOptimalTransportConditionalFlowMatcher(sigma = 0)``,
  POT's exact plan on the CPU; tfm ``coupling minibatch_ot``, the device solver), SB-CFM
  (``SchrodingerBridgeConditionalFlowMatcher(sigma = 1, ot_method = "sinkhorn")``, POT's
  Sinkhorn with regularisation 2 sigma^2 = 2; tfm ``interpolant schrodinger_bridge(sigma = 1)``
  with ``coupling sinkhorn(reg)``, reg = 2 / the pair's mean squared distance, since tfm's reg is
  relative to the batch's mean cost);
- the network: an MLP of 3 hidden SELU layers of 64 on (x, t); AdamW, learning rate 1e-3,
  weight decay 1e-5; batch 512; STEPS steps (20,000); no EMA; t ~ U(0, 1);
- evaluation, the same code for both libraries: 10,000 base draws carried by 20 Euler steps of
  the trained velocity; W2 = the square root of POT's exact ``emd2`` of those samples against
  10,000 fresh target draws; the normalised path energy |E int |v|^2 dt - W2(base, target)^2| /
  W2(base, target)^2 along the same Euler path (trapezoid rule over its 21 states); the wall time
  of training alone;
- ``best``: tfm's best configuration found at <= 20 network evaluations per sample (below),
  trained and evaluated the same way (its sampler's own steps).

Runs are single-threaded (XLA and torch on one thread): the script is meant to be pinned to one
core (``taskset -c 1``), so that a second worker, or other work, can use another. Each run writes
one JSON file to $OUT/quality_2d/ (default bench/results/quality_2d/); a run already there is
skipped, and a worker claims a run before starting it, so several workers can share the list.
``REPORT=1`` prints the table from the files.

    taskset -c 1 .venv/bin/python bench/quality_2d.py         # a worker (about 4 hours alone)
    REPORT=1 .venv/bin/python bench/quality_2d.py             # the table
    QUICK=1 OUT=/tmp/q .venv/bin/python bench/quality_2d.py   # smoke run: 200 steps, 1 seed

Not a test. Results: docs/benchmarks.md ("2-D quality against torchcfm").
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")

import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

QUICK = os.environ.get("QUICK") == "1"
STEPS = int(os.environ.get("STEPS", 200 if QUICK else 20_000))
SEEDS = [0] if QUICK else [0, 1, 2]
POOL = 100_000 if QUICK else 1_000_000
EVAL = 2_000 if QUICK else 10_000
BATCH = 512
SIGMA_SB = 1.0
ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("OUT", ROOT / "bench" / "results")) / "quality_2d"
PAIRS = ("normal_to_moons", "8gaussians_to_moons")
METHODS = ("I-CFM", "OT-CFM", "SB-CFM")
EIGHT_STD = 0.1 ** 0.25  # torchcfm's covariance sqrt(var) I with var = 0.1


# --- the laws -------------------------------------------------------------------------------

def moons(n: int, seed: int) -> np.ndarray:
    from sklearn.datasets import make_moons
    x, _ = make_moons(n, noise=0.2, random_state=seed)
    return (x * 3 - 1).astype(np.float32)


def eight_gaussians(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    angles = np.arange(8) * math.pi / 4
    centres = 5 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return (centres[rng.integers(0, 8, n)] + EIGHT_STD * rng.standard_normal((n, 2))).astype(
        np.float32)


def normal(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 2)).astype(np.float32)


def base_law(pair: str):
    return normal if pair == "normal_to_moons" else eight_gaussians


# --- tfm --------------------------------------------------------------------------------------

MODEL = """import stdlib.toy2d
import stdlib.interpolants

model Quality {{
    dim 2
    base x0 ~ {base}
    target x1 ~ data("{moons}")
    coupling {coupling}

    interpolant x_t = {interpolant}

    network b = {network}
    objective {{
        b ~ velocity
        time ~ {time}
    }}

    sampler ode = {sampler}

    train {{
        steps {steps}
        batch {batch}
        optimizer adamw(lr = 1e-3, weight_decay = 1e-5)
        {extra}
        ema {ema}
        seed {seed}
        log_every 1000
    }}
}}
"""

# the best tfm configuration at <= 20 network evaluations per sample: OT-CFM (device solver), a
# wider network, an EMA of the weights and Heun's method with 10 steps (2 evaluations each)
BEST = {"coupling": "minibatch_ot", "interpolant": "linear",
        "network": "mlp(width = 256, depth = 3, activation = silu)", "time": "uniform(0, 1)",
        "sampler": "heun(steps = 10)", "ema": "0.999",
        "extra": "lr_schedule cosine_decay(warmup = 200)"}


def tfm_model(folder: Path, pair: str, method: str, seed: int) -> Path:
    base = "normal(0, 1)" if pair == "normal_to_moons" else \
        f"eight_gaussians(radius = 5, scale = {EIGHT_STD:.6f})"
    fields = {"coupling": "independent", "interpolant": "linear",
              "network": "mlp(width = 64, depth = 3, activation = selu)", "time": "uniform(0, 1)",
              "sampler": "euler(steps = 20)", "ema": "0", "extra": ""}
    if method == "OT-CFM":
        fields["coupling"] = "minibatch_ot"
    if method == "SB-CFM":
        fields["interpolant"] = f"schrodinger_bridge(sigma = {SIGMA_SB:g})"
        fields["coupling"] = f"sinkhorn(reg = {2 * SIGMA_SB ** 2 / mean_cost(pair):.6f})"
    if method == "best":
        fields.update(BEST)
    path = folder / f"{pair}_{method}_{seed}.tfm"
    path.write_text(MODEL.format(base=base, moons=pool_file(folder), steps=STEPS, batch=BATCH,
                                 seed=seed, **fields))
    return path


def pool_file(folder: Path) -> str:
    path = folder / "moons_pool.npy"
    if not path.exists():
        np.save(path, moons(POOL, 10_000))
    return path.name


def mean_cost(pair: str) -> float:
    """E |x0 - x1|^2 of the pair's independent coupling (100,000 draws)."""
    x0, x1 = base_law(pair)(100_000, 20_000), moons(100_000, 20_001)
    return float(np.mean(np.sum((x0 - x1) ** 2, axis=1)))


def train_tfm(folder: Path, pair: str, method: str, seed: int):
    import tfm
    m = tfm.load(tfm_model(folder, pair, method, seed), backend="jax")
    start = time.perf_counter()
    m.fit(progress=False, log=lambda *a, **k: None)
    seconds = time.perf_counter() - start
    sampler = m.spec.samplers[0]
    method_name, steps = sampler.method, int(sampler.args["steps"])
    return (lambda t, x: m.evaluate("velocity", t, x)), seconds, method_name, steps


# --- torchcfm ---------------------------------------------------------------------------------

def train_torchcfm(pair: str, method: str, seed: int):
    import torch
    from torchcfm.conditional_flow_matching import (
        ConditionalFlowMatcher, ExactOptimalTransportConditionalFlowMatcher,
        SchrodingerBridgeConditionalFlowMatcher)
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    fm = {"I-CFM": lambda: ConditionalFlowMatcher(sigma=0.0),
          "OT-CFM": lambda: ExactOptimalTransportConditionalFlowMatcher(sigma=0.0),
          "SB-CFM": lambda: SchrodingerBridgeConditionalFlowMatcher(sigma=SIGMA_SB,
                                                                      ot_method="sinkhorn")}[method]()
    act = torch.nn.SELU
    net = torch.nn.Sequential(torch.nn.Linear(3, 64), act(), torch.nn.Linear(64, 64), act(),
                              torch.nn.Linear(64, 64), act(), torch.nn.Linear(64, 2))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-5)
    pool0 = torch.from_numpy(base_law(pair)(POOL, 30_000 + seed))
    pool1 = torch.from_numpy(np.load(POOL_DIR / "moons_pool.npy"))
    start = time.perf_counter()
    for _ in range(STEPS):
        x0 = pool0[torch.randint(0, POOL, (BATCH,))]
        x1 = pool1[torch.randint(0, POOL, (BATCH,))]
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        loss = ((net(torch.cat([xt, t[:, None]], 1)) - ut) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start

    def velocity(t, x):
        with torch.no_grad():
            x = torch.from_numpy(np.asarray(x, np.float32))
            return net(torch.cat([x, torch.full((len(x), 1), float(t))], 1)).numpy()
    return velocity, seconds, "euler", 20


# --- evaluation -------------------------------------------------------------------------------

def evaluate(velocity, pair: str, method: str, steps: int, seed: int) -> dict:
    """W2 of the samples and the normalised path energy of their path (the same for both)."""
    from tfm.backends.runtime.metrics import w2
    x = base_law(pair)(EVAL, 40_000 + seed)
    start_points = x.copy()
    times = np.linspace(0.0, 1.0, steps + 1)
    speeds = []
    for k in range(steps):
        t, h = times[k], times[k + 1] - times[k]
        v = velocity(t, x)
        speeds.append(np.mean(np.sum(v ** 2, axis=1)))
        if method == "heun":
            x_end = x + h * v
            x = x + h / 2 * (v + velocity(times[k + 1], x_end))
        else:
            x = x + h * v
    speeds.append(np.mean(np.sum(velocity(1.0, x) ** 2, axis=1)))
    target = moons(EVAL, 50_000 + seed)
    cached = OUT / f"w2_base_target_{pair}_{seed}.txt"  # the same for every run of a pair
    if not cached.exists():
        cached.write_text(repr(w2(start_points, target)))
    ends = float(cached.read_text())
    energy = float(np.trapezoid(speeds, times))
    return {"w2": w2(x, target), "npe": abs(energy - ends ** 2) / ends ** 2,
            "path_energy": energy, "w2_base_target": ends}


# --- the runs ---------------------------------------------------------------------------------

POOL_DIR = OUT


def runs():
    def pairs_of(method, libraries=("tfm", "torchcfm")):
        return [(method, p, s, lib) for p in PAIRS for s in SEEDS for lib in libraries]
    return [*pairs_of("I-CFM"), *pairs_of("OT-CFM"), *pairs_of("best", ("tfm",)),
            *pairs_of("SB-CFM")]


def worker():
    OUT.mkdir(parents=True, exist_ok=True)
    pool_file(OUT)
    for method, pair, seed, lib in runs():
        name = f"{lib}_{method}_{pair}_{seed}"
        done, claim = OUT / f"{name}.json", OUT / f"{name}.claim"
        if done.exists():
            continue
        try:
            claim.touch(exist_ok=False)
        except FileExistsError:
            continue
        print(f"{time.strftime('%H:%M:%S')} {name} ...", flush=True)
        if lib == "tfm":
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                (folder / "moons_pool.npy").symlink_to(OUT / "moons_pool.npy")
                velocity, seconds, ode, steps = train_tfm(folder, pair, method, seed)
                result = evaluate(velocity, pair, method, steps, seed)
        else:
            velocity, seconds, ode, steps = train_torchcfm(pair, method, seed)
            result = evaluate(velocity, pair, method, steps, seed)
        result.update({"library": lib, "method": method, "pair": pair, "seed": seed,
                       "train_seconds": seconds, "sampler": f"{ode}({steps})",
                       "evaluations": steps * (2 if ode == "heun" else 1), "steps": STEPS})
        done.write_text(json.dumps(result, indent=1))
        claim.unlink()
        print(f"{time.strftime('%H:%M:%S')} {name}: W2 {result['w2']:.4f} NPE "
              f"{result['npe']:.4f} train {seconds:.0f} s", flush=True)


def report():
    rows: dict = {}
    for path in sorted(OUT.glob("*.json")):
        r = json.loads(path.read_text())
        rows.setdefault((r["pair"], r["method"], r["library"]), []).append(r)
    print("| pair | method | library | seeds | W2 | normalised path energy | train s | NFE |")
    print("|---|---|---|---|---|---|---|---|")

    def cell(values, digits=3):
        mean = statistics.fmean(values)
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{mean:.{digits}f} ± {spread:.{digits}f}"
    for pair in PAIRS:
        for method in (*METHODS, "best"):
            for lib in ("tfm", "torchcfm"):
                rs = rows.get((pair, method, lib))
                if not rs:
                    continue
                print(f"| {pair} | {method} | {lib} | {len(rs)} | {cell([r['w2'] for r in rs])} | "
                      f"{cell([r['npe'] for r in rs])} | "
                      f"{cell([r['train_seconds'] for r in rs], 0)} | {rs[0]['evaluations']} |")


if __name__ == "__main__":
    report() if os.environ.get("REPORT") == "1" else worker()
