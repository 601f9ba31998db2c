"""Throughput of the JAX backend's emitted programs against the peers, side by side in one run.

What it measures (the peers' loops are copied from shared/bench/peers_2d.py and likelihood.py):

1. training steps/s on the peers' task (8 Gaussians -> moons, MLP 3 x width SELU with t
   concatenated, Adam 1e-3, independent coupling, linear interpolant, velocity objective) at
   (w=64, b=256) and (w=512, b=4096): the emitted model through ``m.fit`` (the user's path: host
   loop, loss checks, no progress bar) and through its compiled chunk directly, against torchcfm
   I-CFM, flow_matching CondOT and hand-written JAX (lax.scan over a chunk of steps);
2. sampling 100,000 points with 20 Euler steps: ``m.sample`` against flow_matching's ODESolver
   (and a hand-written fused JAX Euler loop, shared/bench/limits.py);
3. log-densities (exact divergence, 20 midpoint steps, width 64): ``m.log_prob`` against
   flow_matching's ``compute_likelihood`` (and the hand-written JAX of likelihood.py).

Steady state: warm-up and compilation are excluded, as the peers measure. ``m.fit`` builds and
compiles its training step on every call, so its steady rate is taken from two calls of different
lengths (the difference cancels the per-call cost, which is reported on its own).

Not a test; run it by hand (about 8 minutes on a 2-core CPU; QUICK=1 for a smoke run of about
a minute). It needs torch, torchcfm, flow_matching and scikit-learn besides the JAX backend:

    .venv/bin/python bench/jax_backend.py            # full
    QUICK=1 OUT=/tmp .venv/bin/python bench/jax_backend.py   # JSON to $OUT/bench_jax.json
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

QUICK = os.environ.get("QUICK") == "1"
ROOT = Path(__file__).resolve().parent.parent
TASK = ROOT / "bench" / "eight_gaussians_to_moons.tfm"
LIKELIHOOD = ROOT / "bench" / "normal_to_moons.tfm"
CONFIGS = [(64, 256), (512, 4096)]
CHUNK = 20 if QUICK else 100  # steps fused per compiled chunk (the model's log_every)
# per (w, b): torch steps timed, JAX chunks timed, m.fit lengths of the two calls
BUDGET = {
    (64, 256): dict(torch=200, chunks=5, fit=(200, 1000)) if QUICK else
    dict(torch=1000, chunks=20, fit=(1000, 10000)),
    (512, 4096): dict(torch=6, chunks=1, fit=(20, 60)) if QUICK else
    dict(torch=60, chunks=3, fit=(100, 400)),
}
SAMPLE_N = 20_000 if QUICK else 100_000
SAMPLE_STEPS = 20
SAMPLE_REPEATS = {64: 2 if QUICK else 5, 512: 1}
LOGPROB_N = 4096 if QUICK else 20_000
POOL = 200_000 if QUICK else 1_000_000
RESULTS: list[dict] = []


def record(group, name, cfg, value, unit, **extra):
    RESULTS.append({"group": group, "name": name, "cfg": cfg, "value": value, "unit": unit} | extra)
    print(f"{group:9s} {name:40s} {cfg:16s} {value:14.1f} {unit}", flush=True)


def value(group, name, cfg):
    for r in RESULTS:
        if (r["group"], r["name"], r["cfg"]) == (group, name, cfg):
            return r["value"]
    return float("nan")


# --- the peers' task and loops (shared/bench/peers_2d.py) ----------------------------------------
def moons_np(n, rng):
    from sklearn.datasets import make_moons

    x, _ = make_moons(n, noise=0.2, random_state=int(rng.integers(1 << 30)))
    return (x * 3 - 1).astype(np.float32)


def eight_gaussians_np(n, rng):
    c = np.array([(1, 0), (-1, 0), (0, 1), (0, -1)] +
                 [(a / math.sqrt(2), b / math.sqrt(2)) for a in (1, -1) for b in (1, -1)])
    idx = rng.integers(0, 8, n)
    return (c[idx] * 5 + math.sqrt(0.1) * rng.standard_normal((n, 2))).astype(np.float32)


RNG = np.random.default_rng(0)
X0_NP, X1_NP = eight_gaussians_np(POOL, RNG), moons_np(POOL, RNG)


def torch_mlp(w):
    import torch

    act = torch.nn.SELU
    return torch.nn.Sequential(torch.nn.Linear(3, w), act(), torch.nn.Linear(w, w), act(),
                               torch.nn.Linear(w, w), act(), torch.nn.Linear(w, 2))


def time_loop(step, steps, warm):
    for _ in range(warm):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t0)


def batch_t(b):
    import torch

    i = torch.randint(0, POOL, (b,))
    j = torch.randint(0, POOL, (b,))
    return torch.from_numpy(X0_NP)[i], torch.from_numpy(X1_NP)[j]


def bench_torchcfm(w, b, steps):
    import torch
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

    fm = ConditionalFlowMatcher(sigma=0.0)
    model = torch_mlp(w)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step():
        x0, x1 = batch_t(b)
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        vt = model(torch.cat([xt, t[:, None]], -1))
        loss = torch.mean((vt - ut) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return time_loop(step, steps, warm=10 if steps >= 100 else 2)


def bench_fmlib(w, b, steps):
    import torch
    from flow_matching.path import AffineProbPath
    from flow_matching.path.scheduler import CondOTScheduler

    path = AffineProbPath(scheduler=CondOTScheduler())
    model = torch_mlp(w)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step():
        x0, x1 = batch_t(b)
        t = torch.rand(b)
        ps = path.sample(t=t, x_0=x0, x_1=x1)
        vt = model(torch.cat([ps.x_t, ps.t[:, None]], -1))
        loss = torch.mean((vt - ps.dx_t) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return time_loop(step, steps, warm=10 if steps >= 100 else 2)


def bench_jax_hand(w, b, chunks):
    """peers_2d.bench_jax(fused=True): CHUNK steps in one lax.scan; returns (steps/s, compile s)."""
    import jax
    import jax.numpy as jnp
    import optax

    x0p, x1p = jnp.asarray(X0_NP), jnp.asarray(X1_NP)
    sizes = [3, w, w, w, 2]
    key = jax.random.PRNGKey(0)
    params = []
    for i in range(4):
        key, k = jax.random.split(key)
        lim = 1 / math.sqrt(sizes[i])
        params.append((jax.random.uniform(k, (sizes[i], sizes[i + 1]), minval=-lim, maxval=lim),
                       jnp.zeros(sizes[i + 1])))

    def mlp(p, x):
        for W, c in p[:-1]:
            x = jax.nn.selu(x @ W + c)
        W, c = p[-1]
        return x @ W + c

    opt = optax.adam(1e-3)
    state = (params, opt.init(params), key)

    def one(state, _):
        p, o, k = state
        k, k1, k2, k3 = jax.random.split(k, 4)
        x0 = x0p[jax.random.randint(k1, (b,), 0, POOL)]
        x1 = x1p[jax.random.randint(k2, (b,), 0, POOL)]
        t = jax.random.uniform(k3, (b, 1))

        def loss_fn(p):
            xt = (1 - t) * x0 + t * x1
            return jnp.mean((mlp(p, jnp.concatenate([xt, t], -1)) - (x1 - x0)) ** 2)

        loss, g = jax.value_and_grad(loss_fn)(p)
        upd, o = opt.update(g, o, p)
        return (optax.apply_updates(p, upd), o, k), loss

    run = jax.jit(lambda s: jax.lax.scan(one, s, None, length=CHUNK))
    t0 = time.perf_counter()
    state, _ = run(state)
    jax.block_until_ready(state)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(chunks):
        state, _ = run(state)
    jax.block_until_ready(state)
    rate = chunks * CHUNK / (time.perf_counter() - t0)
    return rate, first - CHUNK / rate


# --- the emitted model ---------------------------------------------------------------------------
def task_file(w, b, folder):
    """The peers' task at width w and batch b (the .tfm in bench/ is w=64, b=256)."""
    text = TASK.read_text()
    text = text.replace("width = 64", f"width = {w}").replace("batch 256", f"batch {b}")
    text = text.replace("log_every 100", f"log_every {CHUNK}")
    text = text.replace("model EightGaussiansToMoons", f"model EightGaussiansToMoonsW{w}B{b}")
    path = Path(folder) / f"task_w{w}_b{b}.tfm"
    path.write_text(text)
    return path


def load(path, folder):
    import tfm

    return tfm.load(path, backend="jax", folder=Path(folder) / Path(path).stem)


def bench_emitted_chunk(m, chunks):
    """The compiled chunk of m.fit without the host loop: (steps/s, compile s)."""
    import jax

    from tfm.backends.jax.runtime import train

    step = train.make_step(m.spec, m.module, m._drawer(), m.optimizer,
                           jax.random.PRNGKey(m.seed), m.dtype)
    run = train.chunk_runner(step)
    state = m._state()
    t0 = time.perf_counter()
    state, _ = run(state, CHUNK)
    jax.block_until_ready(state)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(chunks):
        state, _ = run(state, CHUNK)
    jax.block_until_ready(state)
    rate = chunks * CHUNK / (time.perf_counter() - t0)
    return rate, first - CHUNK / rate


def bench_emitted_fit(m, n1, n2):
    """m.fit of n1 then n2 more steps: steady steps/s from the difference, the per-call fixed
    cost (building and compiling the step), and n2 / (time of the n2 call)."""
    def fit(n):
        t0 = time.perf_counter()
        m.fit(steps=m.step + n, progress=False)
        return time.perf_counter() - t0

    t1 = fit(n1)
    t2 = fit(n2)
    rate = (n2 - n1) / (t2 - t1)
    return rate, t1 - n1 / rate, n2 / t2


# --- sampling ------------------------------------------------------------------------------------
def bench_fm_sampling(w, n, repeats):
    import torch
    from flow_matching.solver import ODESolver

    model = torch_mlp(w).eval()

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x, t, **kw):
            return self.m(torch.cat([x, t.expand(x.shape[0])[:, None]], -1))

    solver = ODESolver(velocity_model=Wrap(model))
    x = torch.from_numpy(X0_NP[:n])

    def fm_euler(x=x):
        with torch.no_grad():
            solver.sample(x_init=x, step_size=1.0 / SAMPLE_STEPS, method="euler")

    fm_euler(x[:1000])  # warm-up on a small batch (a full one costs seconds at w=512)
    return n * time_loop(fm_euler, repeats, warm=0)


def bench_jax_hand_sampling(w, n, repeats):
    """limits.py jax_sampling: a jitted fori_loop of Euler steps over a random MLP."""
    import jax
    import jax.numpy as jnp

    sizes = [3, w, w, w, 2]
    key = jax.random.PRNGKey(0)
    ps = []
    for i in range(4):
        key, k = jax.random.split(key)
        ps.append((jax.random.normal(k, (sizes[i], sizes[i + 1])) / math.sqrt(sizes[i]),
                   jnp.zeros(sizes[i + 1])))

    def v(t, x):
        h = jnp.concatenate([x, jnp.full((x.shape[0], 1), t)], -1)
        for W, c in ps[:-1]:
            h = jax.nn.selu(h @ W + c)
        W, c = ps[-1]
        return h @ W + c

    steps = SAMPLE_STEPS
    euler = jax.jit(lambda x: jax.lax.fori_loop(0, steps, lambda k, x: x + v(k / steps, x) / steps, x))
    x = jax.random.normal(key, (n, 2))
    euler.lower(x).compile()  # compile without running (a run costs seconds at w=512)
    euler(x[:8]).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(repeats):
        y = euler(x)
    y.block_until_ready()
    return n * repeats / (time.perf_counter() - t0)


def bench_emitted_sampling(m, n, repeats):
    """m.sample(n): the first call compiles; the later ones are timed. (samples/s, first call s)"""
    t0 = time.perf_counter()
    m.sample(n, seed=0)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(repeats):
        m.sample(n, seed=i + 1)
    return n * repeats / (time.perf_counter() - t0), first


# --- log-densities -------------------------------------------------------------------------------
def bench_fm_logprob(n, repeats=2):
    import torch
    from flow_matching.solver import ODESolver

    torch.manual_seed(0)
    m = torch_mlp(64)

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x, t, **kw):
            return self.m(torch.cat([x, t.expand(x.shape[0])[:, None]], -1))

    solver = ODESolver(velocity_model=Wrap(m))
    x1 = torch.randn(n, 2)

    def log_p0(x):
        return -0.5 * (x**2).sum(1) - math.log(2 * math.pi)

    def lik():
        solver.compute_likelihood(x_1=x1, log_p0=log_p0, step_size=0.05, method="midpoint",
                                  exact_divergence=True)

    return n * time_loop(lik, repeats, warm=1)


def bench_jax_hand_logprob(n, repeats=3):
    """likelihood.py jax_side: jacfwd trace under vmap, a fori_loop of 20 midpoint steps."""
    import jax
    import jax.numpy as jnp

    sizes = [3, 64, 64, 64, 2]
    key = jax.random.PRNGKey(0)
    ps = []
    for i in range(4):
        key, k = jax.random.split(key)
        ps.append((jax.random.normal(k, (sizes[i], sizes[i + 1])) / math.sqrt(sizes[i]),
                   jnp.zeros(sizes[i + 1])))

    def v1(t, x):
        h = jnp.concatenate([x, jnp.array([t])])
        for Wt, c in ps[:-1]:
            h = jax.nn.selu(h @ Wt + c)
        Wt, c = ps[-1]
        return h @ Wt + c

    def f(t, x):
        return v1(t, x), jnp.trace(jax.jacfwd(lambda y: v1(t, y))(x))

    @jax.jit
    def loglik(x1):
        def one(x):
            dt = -1.0 / 20

            def step(k, s):
                x, acc = s
                t = 1.0 + k * dt
                v, d = f(t, x)
                vm, dm = f(t + 0.5 * dt, x + 0.5 * dt * v)
                return x + dt * vm, acc + dt * dm

            x0, acc = jax.lax.fori_loop(0, 20, step, (x, 0.0))
            # acc = -integral of the divergence (dt < 0), so + acc; likelihood.py has - acc
            return -0.5 * jnp.sum(x0**2) - jnp.log(2 * jnp.pi) + acc

        return jax.vmap(one)(x1)

    x1 = jax.random.normal(key, (n, 2))
    loglik(x1).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(repeats):
        r = loglik(x1)
    r.block_until_ready()
    return n * repeats / (time.perf_counter() - t0)


def bench_emitted_logprob(m, x, batch=None, repeats=2):
    """m.log_prob(x): first call, then ``repeats`` timed calls. (points/s, first call s)"""
    kw = {} if batch is None else {"batch": batch}
    t0 = time.perf_counter()
    m.log_prob(x, **kw)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(repeats):
        m.log_prob(x, **kw)
    return len(x) * repeats / (time.perf_counter() - t0), first


# --- the run -------------------------------------------------------------------------------------
def versions() -> dict:
    import importlib.metadata as md

    import jax
    import torch

    out = {"python": platform.python_version(), "cpus": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "jax_devices": str(jax.devices())}
    for name in ("jax", "jaxlib", "optax", "diffrax", "torch", "torchcfm", "flow_matching",
                 "numpy", "tfmc"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    try:
        out["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                          if line.startswith("model name"))
    except (OSError, StopIteration):
        out["cpu"] = platform.processor()
    return out


def safe(fn, label):
    try:
        return fn()
    except Exception as err:  # report and go on
        print(f"{label}: FAILED {type(err).__name__}: {str(err)[:300]}", flush=True)
        return None


def main() -> dict:
    started = time.perf_counter()
    info = versions()
    info["loadavg_start"] = os.getloadavg()
    if info["loadavg_start"][0] > 0.5:
        print(f"WARNING: load average {info['loadavg_start']}: other processes share the CPU "
              "and the timings (torch's OpenMP threads most of all) will suffer", flush=True)
    print(json.dumps(info), flush=True)
    print(f"QUICK={QUICK} chunk={CHUNK}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="tfm_bench_jax_"))
    trained = {}

    for w, b in CONFIGS:
        cfg, bud = f"w={w} b={b}", BUDGET[(w, b)]
        if r := safe(lambda: bench_torchcfm(w, b, bud["torch"]), "torchcfm"):
            record("train", "torchcfm I-CFM", cfg, r, "steps/s")
        if r := safe(lambda: bench_fmlib(w, b, bud["torch"]), "flow_matching"):
            record("train", "flow_matching CondOT", cfg, r, "steps/s")
        if r := safe(lambda: bench_jax_hand(w, b, bud["chunks"]), "jax hand"):
            record("train", f"hand-written JAX scan{CHUNK}", cfg, r[0], "steps/s", compile_s=r[1])
        m = load(task_file(w, b, folder), folder)
        if r := safe(lambda: bench_emitted_chunk(m, bud["chunks"]), "emitted chunk"):
            record("train", f"emitted JAX, compiled chunk ({CHUNK})", cfg, r[0], "steps/s",
                   compile_s=r[1])
        if r := safe(lambda: bench_emitted_fit(m, *bud["fit"]), "emitted fit"):
            record("train", "emitted JAX, m.fit steady", cfg, r[0], "steps/s", per_call_s=r[1])
            record("train", "m.fit per-call cost (build+compile)", cfg, r[1], "s")
            record("train", f"emitted JAX, one m.fit({bud['fit'][1]}) incl. compile", cfg, r[2],
                   "steps/s")
        trained[w] = m

    for w in (64, 512):
        cfg, reps = f"w={w} n={SAMPLE_N}", SAMPLE_REPEATS[w]
        if r := safe(lambda: bench_fm_sampling(w, SAMPLE_N, reps), "fm sampling"):
            record("sample", "flow_matching ODESolver euler20", cfg, r, "samples/s")
        if r := safe(lambda: bench_jax_hand_sampling(w, SAMPLE_N, reps), "jax hand sampling"):
            record("sample", "hand-written JAX euler20 (fori_loop)", cfg, r, "samples/s")
        if r := safe(lambda: bench_emitted_sampling(trained[w], SAMPLE_N, reps), "m.sample"):
            record("sample", "emitted JAX m.sample euler20", cfg, r[0], "samples/s",
                   first_call_s=r[1])

    cfg = f"w=64 n={LOGPROB_N}"
    if r := safe(lambda: bench_fm_logprob(LOGPROB_N), "fm logprob"):
        record("logprob", "flow_matching compute_likelihood", cfg, r, "points/s")
    if r := safe(lambda: bench_jax_hand_logprob(LOGPROB_N), "jax hand logprob"):
        record("logprob", "hand-written JAX (jacfwd, vmap)", cfg, r, "points/s")
    lik = load(LIKELIHOOD, folder)
    x = np.random.default_rng(1).standard_normal((LOGPROB_N, 2)).astype(np.float32)
    if r := safe(lambda: bench_emitted_logprob(lik, x), "m.log_prob"):
        record("logprob", "emitted JAX m.log_prob (batch 4096)", cfg, r[0], "points/s",
               first_call_s=r[1])
    if r := safe(lambda: bench_emitted_logprob(lik, x, batch=LOGPROB_N), "m.log_prob batch=n"):
        record("logprob", f"emitted JAX m.log_prob(batch={LOGPROB_N})", cfg, r[0], "points/s",
               first_call_s=r[1])

    ratios = {}
    for w, b in CONFIGS:
        cfg = f"w={w} b={b}"
        for label, name in [("chunk", f"emitted JAX, compiled chunk ({CHUNK})"),
                            ("fit", "emitted JAX, m.fit steady")]:
            ours = value("train", name, cfg)
            ratios[f"train {cfg} {label} / torchcfm"] = ours / value("train", "torchcfm I-CFM", cfg)
            ratios[f"train {cfg} {label} / flow_matching"] = ours / value(
                "train", "flow_matching CondOT", cfg)
            ratios[f"train {cfg} {label} / hand JAX scan"] = ours / value(
                "train", f"hand-written JAX scan{CHUNK}", cfg)
    for w in (64, 512):
        cfg = f"w={w} n={SAMPLE_N}"
        ours = value("sample", "emitted JAX m.sample euler20", cfg)
        ratios[f"sample {cfg} / flow_matching"] = ours / value(
            "sample", "flow_matching ODESolver euler20", cfg)
        ratios[f"sample {cfg} / hand JAX"] = ours / value(
            "sample", "hand-written JAX euler20 (fori_loop)", cfg)
    cfg = f"w=64 n={LOGPROB_N}"
    for label, name in [("batch 4096", "emitted JAX m.log_prob (batch 4096)"),
                        ("batch n", f"emitted JAX m.log_prob(batch={LOGPROB_N})")]:
        ours = value("logprob", name, cfg)
        ratios[f"logprob {cfg} {label} / flow_matching"] = ours / value(
            "logprob", "flow_matching compute_likelihood", cfg)
        ratios[f"logprob {cfg} {label} / hand JAX"] = ours / value(
            "logprob", "hand-written JAX (jacfwd, vmap)", cfg)

    print("\nratios", flush=True)
    for k, v in ratios.items():
        print(f"  {k:60s} {v:8.2f}x", flush=True)
    print("\n| group | loop | config | value | unit |\n|---|---|---|---|---|")
    for r in RESULTS:
        print(f"| {r['group']} | {r['name']} | {r['cfg']} | {r['value']:,.1f} | {r['unit']} |")
    elapsed = time.perf_counter() - started
    info["loadavg_end"] = os.getloadavg()
    print(f"\ntotal {elapsed:.0f} s; load average at the end {info['loadavg_end']}", flush=True)
    report = {"quick": QUICK, "chunk": CHUNK, "machine": info, "seconds": round(elapsed, 1),
              "results": RESULTS, "ratios": ratios}
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        with open(Path(out) / "bench_jax.json", "w") as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    main()
