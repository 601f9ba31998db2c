"""Throughput of the JAX backend's emitted programs against the peers, side by side in one run.

What it measures (the peers' loops are copied from the reference peer loops, docs/benchmarks.md):

1. training steps/s on the peers' task (8 Gaussians -> moons, MLP 3 x width SELU with t
   concatenated, Adam 1e-3, independent coupling, linear interpolant, velocity objective) at
   (w=64, b=256) and (w=512, b=4096): the emitted model through ``m.fit`` (the user's path: host
   loop, loss checks, no progress bar) and through its compiled chunk directly, against torchcfm
   I-CFM, flow_matching CondOT and hand-written JAX (lax.scan over a chunk of steps);
2. sampling 100,000 points with 20 Euler steps: ``m.sample`` against flow_matching's ODESolver
   (and the reference's hand-written fused JAX Euler loop);
3. log-densities (exact divergence, 20 midpoint steps, width 64): ``m.log_prob`` against
   flow_matching's ``compute_likelihood`` (and the reference's hand-written JAX likelihood).

Two rows locate the emitted programs' costs: the emitted training chunk with the peers' pooled
batches in place of its on-device densities (w=64), and the program ``m.log_prob`` builds,
compiled once for the whole of x (``m.log_prob`` caches its program per sampler and runs it on
equal batches of at most 16,384 points).

Steady state, as the peers measure: warm-up and compilation are excluded. Each row is timed in
several windows and reports the median window's rate (the best is kept too), and before
each row the script waits (up to IDLE_WAIT seconds, default 30; QUICK: 0) for the CPU to be idle:
on a shared 2-core machine another process's load halves a window, and torch's OpenMP threads
suffer far more than that. ``m.fit`` is timed inside one call, from the end of its first chunk
(which includes building and compiling the step) to the end of its last, by recording when the
model takes each chunk's state; the rest of the call is reported as its fixed cost.

Not a test; run it by hand (about 4 minutes on a 2-core CPU, plus any wait for an idle CPU;
QUICK=1 for a smoke run of under a minute). It needs torch, torchcfm, flow_matching (with
torchdiffeq) and scikit-learn besides the JAX backend. On a machine with a GPU both torch and
JAX run there (the budgets are the CPU's, so the windows are short); the bf16 large-MLP case of
the reference is not timed here (bench/bf16_mlp.py). Results: docs/benchmarks.md.

    .venv/bin/python bench/jax_backend.py                    # full
    QUICK=1 OUT=/tmp .venv/bin/python bench/jax_backend.py   # JSON to $OUT/bench_jax.json
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

QUICK = os.environ.get("QUICK") == "1"
IDLE_WAIT = float(os.environ.get("IDLE_WAIT", 0 if QUICK else 30))
ROOT = Path(__file__).resolve().parent.parent
TASK = ROOT / "bench" / "eight_gaussians_to_moons.tfm"
LIKELIHOOD = ROOT / "bench" / "normal_to_moons.tfm"
CONFIGS = [(64, 256), (512, 4096)]
CHUNK = 20 if QUICK else 100  # steps fused per compiled chunk (the model's log_every)
# per (w, b): torch (warm-up steps, windows, steps per window); JAX chunks timed (one a window);
# the length of the timed m.fit call
BUDGET = {
    (64, 256): dict(torch=(10, 3, 100), chunks=5, fit=200) if QUICK else
    dict(torch=(20, 10, 200), chunks=20, fit=5000),
    (512, 4096): dict(torch=(2, 2, 3), chunks=1, fit=60) if QUICK else
    dict(torch=(3, 4, 15), chunks=3, fit=400),
}
# GPU=1 (a GPU machine): its steps take well under a millisecond, so the windows are longer
GPU = os.environ.get("GPU") == "1"
if GPU:
    BUDGET = {(64, 256): dict(torch=(50, 5, 500), chunks=10, fit=5000),
              (512, 4096): dict(torch=(20, 5, 200), chunks=10, fit=2000)}
SAMPLE_N = 20_000 if QUICK else 100_000
SAMPLE_STEPS = 20
SAMPLE_WINDOWS = {64: 2 if QUICK else 5, 512: 1 if QUICK else 2}
LOGPROB_N = 6000 if QUICK else 20_000
LOGPROB_WINDOWS = 2 if QUICK else 3
POOL = 200_000 if QUICK else 1_000_000
RESULTS: list[dict] = []


# --- timing --------------------------------------------------------------------------------------
def cpu_idle(seconds=1.0) -> float:
    """Percentage of CPU time idle over the next ``seconds`` (all cores, from /proc/stat)."""
    def read():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        return sum(fields), fields[3] + fields[4]
    try:
        total0, idle0 = read()
        time.sleep(seconds)
        total1, idle1 = read()
    except OSError:
        return float("nan")
    return 100.0 * (idle1 - idle0) / max(1, total1 - total0)


def wait_idle() -> dict:
    """Wait up to IDLE_WAIT seconds for the CPU to be at least 90% idle over a second."""
    if IDLE_WAIT <= 0:
        return {}
    start = time.perf_counter()
    idle = cpu_idle()
    while idle < 90 and time.perf_counter() - start < IDLE_WAIT:
        idle = cpu_idle()
    return {"idle_pct_before": round(idle, 1), "waited_s": round(time.perf_counter() - start, 1)}


def windows(call, count, per_window=1, warm=0, sync=lambda: None):
    """``warm`` calls, then ``count`` windows of ``per_window`` calls: each window's calls/s
    (``sync`` waits for queued device work: torch on a GPU)."""
    for _ in range(warm):
        call()
    sync()
    rates = []
    for _ in range(count):
        t0 = time.perf_counter()
        for _ in range(per_window):
            call()
        sync()
        rates.append(per_window / (time.perf_counter() - t0))
    return rates


def torch_device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def record(group, name, cfg, rates, unit, scale=1.0, **extra):
    """A row: the median window's rate (times ``scale``: steps or points per call) and the best."""
    rates = [r * scale for r in rates]
    best, median = max(rates), statistics.median(rates)
    RESULTS.append({"group": group, "name": name, "cfg": cfg, "value": median, "best": best,
                    "unit": unit, "windows": rates} | extra)
    print(f"{group:8s} {name:44s} {cfg:14s} {median:12.1f} {best:12.1f} {unit}", flush=True)


def value(group, name, cfg, key="value"):
    for r in RESULTS:
        if (r["group"], r["name"], r["cfg"]) == (group, name, cfg):
            return r[key]
    return float("nan")


def safe(fn, label):
    try:
        return fn()
    except Exception as err:  # report and go on
        print(f"{label}: FAILED {type(err).__name__}: {str(err)[:300]}", flush=True)
        return None


# --- the peers' task and loops (the reference peer loops, docs/benchmarks.md) --------------------
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


def fm_solver(model):
    """flow_matching's ODESolver around an MLP that takes (x, t) concatenated."""
    import torch
    from flow_matching.solver import ODESolver

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x, t, **kw):
            return self.m(torch.cat([x, t.expand(x.shape[0])[:, None]], -1))

    return ODESolver(velocity_model=Wrap(model))


def torch_mlp(w):
    import torch

    act = torch.nn.SELU
    return torch.nn.Sequential(torch.nn.Linear(3, w), act(), torch.nn.Linear(w, w), act(),
                               torch.nn.Linear(w, w), act(), torch.nn.Linear(w, 2)).to(torch_device())


POOLS_T = []


def batch_t(b):
    import torch

    dev = torch_device()
    if not POOLS_T:
        POOLS_T.extend([torch.from_numpy(X0_NP).to(dev), torch.from_numpy(X1_NP).to(dev)])
    i = torch.randint(0, POOL, (b,), device=dev)
    j = torch.randint(0, POOL, (b,), device=dev)
    return POOLS_T[0][i], POOLS_T[1][j]


def torchcfm_step(w, b):
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

    return step


def fmlib_step(w, b):
    import torch
    from flow_matching.path import AffineProbPath
    from flow_matching.path.scheduler import CondOTScheduler

    path = AffineProbPath(scheduler=CondOTScheduler())
    model = torch_mlp(w)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step():
        x0, x1 = batch_t(b)
        t = torch.rand(b, device=torch_device())
        ps = path.sample(t=t, x_0=x0, x_1=x1)
        vt = model(torch.cat([ps.x_t, ps.t[:, None]], -1))
        loss = torch.mean((vt - ps.dx_t) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def jax_hand_chunk(w, b):
    """The reference's fused hand-written JAX loop: CHUNK steps in one lax.scan. (run one chunk,
    compile s)"""
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
    state = [(params, opt.init(params), key)]

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
    run.lower(state[0]).compile()
    compile_s = time.perf_counter() - t0

    def call():
        state[0], _ = run(state[0])
        jax.block_until_ready(state[0])

    return call, compile_s


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


def pool_draw(m):
    """(rng, n) -> (t, x0, x1, z): the batch of m's objective (runtime/objectives/regression.py:
    its time law, its latent z) with (x0, x1) gathered from the peers' pools, as the
    hand-written JAX loop does, in place of the base and target densities and the coupling."""
    from tfm.backends.runtime import time_laws

    ops = m.ops
    x0p, x1p = ops.asarray(X0_NP), ops.asarray(X1_NP)
    times = time_laws.make(ops, m.spec.time_law)
    latent, shape, zero = m.spec.latent, m.shape, ops.asarray(0.0)

    def draw(rng, n, step=None):
        k0, k1, k_time, k_latent = rng.split(4)
        x0 = x0p[k0.randint(POOL, (n,))]
        x1 = x1p[k1.randint(POOL, (n,))]
        t = times(k_time, n)
        z = k_latent.normal((n,) + shape) if latent else zero
        return t, x0, x1, z
    return draw


def emitted_chunk(m, draw=None):
    """The compiled chunk of m.fit (train.make_step + chunk_runner on the objective's draw and
    the model's update, as JaxModel._chunk_runner assembles them) without the host loop;
    ``draw`` replaces the objective's batch draw (the emitted program draws base and target on
    the device). (run one chunk, first chunk s)"""
    import jax

    from tfm.backends.jax.runtime import train

    step = train.make_step(m.spec, draw or m.objective.draw(m, None), m._update(),
                           jax.random.PRNGKey(m.seed))
    run = train.chunk_runner(step)
    state, length = [m._state()], CHUNK
    t0 = time.perf_counter()
    state[0], _ = run(state[0], length)
    jax.block_until_ready(state[0])
    first = time.perf_counter() - t0

    def call():
        state[0], _ = run(state[0], length)
        jax.block_until_ready(state[0])

    return call, first


def emitted_fit(m, n):
    """One m.fit call of n steps. The model takes each chunk's state (``_set_state``) when the
    chunk and its host work are done; the times between those are the windows. Returns (rates
    of the chunks after the first, call s, fixed cost s = call time - n / steady rate)."""
    stamps = []
    original = m._set_state

    def hooked(state):
        original(state)
        if m.ops.name == "jax":  # a GPU hands the state back before it has run the chunk
            import jax
            jax.block_until_ready(m.weights)
        stamps.append(time.perf_counter())

    m._set_state = hooked
    try:
        t0 = time.perf_counter()
        m.fit(steps=m.step + n, progress=False)
        total = time.perf_counter() - t0
    finally:
        del m._set_state
    rates = [1 / d for d in np.diff(stamps)]  # chunks per second
    steady = (len(stamps) - 1) * CHUNK / (stamps[-1] - stamps[0])
    return rates, total, total - n / steady


# --- sampling ------------------------------------------------------------------------------------
def fm_sampler(w, n):
    import torch

    model = torch_mlp(w).eval()

    solver = fm_solver(model)
    x = torch.from_numpy(X0_NP[:n]).to(torch_device())

    def call(x=x):
        with torch.no_grad():
            solver.sample(x_init=x, step_size=1.0 / SAMPLE_STEPS, method="euler")

    call(x[:1000])  # warm-up on a small batch (a full one costs seconds at w=512)
    torch_sync()
    return call


def random_mlp(w):
    """The peers' random (weight, bias) pairs of the 3 -> w -> w -> w -> 2 MLP (the reference's
    sampling loop), and the key left after drawing them."""
    import jax
    import jax.numpy as jnp

    sizes = [3, w, w, w, 2]
    key = jax.random.PRNGKey(0)
    ps = []
    for i in range(4):
        key, k = jax.random.split(key)
        ps.append((jax.random.normal(k, (sizes[i], sizes[i + 1])) / math.sqrt(sizes[i]),
                   jnp.zeros(sizes[i + 1])))
    return ps, key


def jax_hand_sampler(w, n):
    """The reference's hand-written JAX sampling: a jitted fori_loop of Euler steps over a random
    MLP."""
    import jax
    import jax.numpy as jnp

    ps, key = random_mlp(w)

    def v(t, x):
        h = jnp.concatenate([x, jnp.full((x.shape[0], 1), t)], -1)
        for W, c in ps[:-1]:
            h = jax.nn.selu(h @ W + c)
        W, c = ps[-1]
        return h @ W + c

    steps = SAMPLE_STEPS
    euler = jax.jit(lambda x: jax.lax.fori_loop(0, steps, lambda k, x: x + v(k / steps, x) / steps, x))
    x = jax.random.normal(key, (n, 2))
    compiled = euler.lower(x).compile()  # compile without running (a run costs seconds at w=512)
    return lambda: compiled(x).block_until_ready()


def emitted_sampler(m, n):
    """m.sample(n) (returns numpy); the first call compiles. (call, first call s)"""
    seed = [0]
    t0 = time.perf_counter()
    m.sample(n, seed=0)
    first = time.perf_counter() - t0

    def call():
        seed[0] += 1
        m.sample(n, seed=seed[0])

    return call, first


# --- log-densities -------------------------------------------------------------------------------
def fm_logprob(n):
    import torch

    torch.manual_seed(0)
    m = torch_mlp(64)

    solver = fm_solver(m)
    x1 = torch.randn(n, 2, device=torch_device())

    def log_p0(x):
        return -0.5 * (x**2).sum(1) - math.log(2 * math.pi)

    def call():
        solver.compute_likelihood(x_1=x1, log_p0=log_p0, step_size=0.05, method="midpoint",
                                  exact_divergence=True)

    call()
    torch_sync()
    return call


def jax_hand_logprob(n):
    """The reference's hand-written JAX likelihood: jacfwd trace under vmap, a fori_loop of 20
    midpoint steps."""
    import jax
    import jax.numpy as jnp

    ps, key = random_mlp(64)

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
            # acc = -integral of the divergence (dt < 0), so + acc; the reference has - acc
            return -0.5 * jnp.sum(x0**2) - jnp.log(2 * jnp.pi) + acc

        return jax.vmap(one)(x1)

    x1 = jax.random.normal(key, (n, 2))
    loglik(x1).block_until_ready()
    return lambda: loglik(x1).block_until_ready()


def emitted_logprob_program(m, x):
    """The jitted function m.log_prob builds (likelihood.log_prob of the model's velocity,
    integrated by the default density sampler's kind), compiled once for the whole of x: the
    program without m.log_prob's batching and host conversions. (call, compile s)"""
    import jax
    import jax.numpy as jnp

    from tfm.backends.runtime import densities, likelihood
    from tfm.backends.runtime.samplers import kind_of

    entry = m.sampler_entry(None, density=True)
    kind = kind_of(entry)
    t0, t1 = m.interval(entry)
    base = densities.log_prob(m.ops, m.spec.base, m.shape)

    def one(w, xb, key):
        def integrate(f, y0):
            return kind.integrate(m, entry, f, y0, t0, t1)
        return likelihood.log_prob(m.ops, m.field("velocity", w), base, xb, integrate, True, key)

    fn = jax.jit(one)
    xb, key = jnp.asarray(x), jax.random.PRNGKey(0)
    start = time.perf_counter()
    compiled = fn.lower(m.weights, xb, key).compile()
    compile_s = time.perf_counter() - start
    np.asarray(compiled(m.weights, xb, key))
    return (lambda: np.asarray(compiled(m.weights, xb, key))), compile_s


def emitted_logprob(m, x, batch=None):
    """m.log_prob(x) (numpy in and out). (call, first call s)"""
    kw = {} if batch is None else {"batch": batch}
    t0 = time.perf_counter()
    m.log_prob(x, **kw)
    first = time.perf_counter() - t0
    return (lambda: m.log_prob(x, **kw)), first


# --- the run -------------------------------------------------------------------------------------
def versions() -> dict:
    import importlib.metadata as md

    import jax
    import torch

    out = {"python": platform.python_version(), "cpus": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "torch_device": torch_device(),
           "jax_devices": str(jax.devices())}
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


def train_rows(folder) -> dict:
    trained = {}
    for w, b in CONFIGS:
        cfg, bud = f"w={w} b={b}", BUDGET[(w, b)]
        warm, count, per = bud["torch"]
        idle = wait_idle()
        if r := safe(lambda: windows(torchcfm_step(w, b), count, per, warm, torch_sync),
                     "torchcfm"):
            record("train", "torchcfm I-CFM", cfg, r, "steps/s", **idle)
        idle = wait_idle()
        if r := safe(lambda: windows(fmlib_step(w, b), count, per, warm, torch_sync),
                     "flow_matching"):
            record("train", "flow_matching CondOT", cfg, r, "steps/s", **idle)
        idle = wait_idle()
        if r := safe(lambda: jax_hand_chunk(w, b), "jax hand"):
            record("train", f"hand-written JAX scan{CHUNK}", cfg, windows(r[0], bud["chunks"]),
                   "steps/s", scale=CHUNK, compile_s=r[1], **idle)
        m = load(task_file(w, b, folder), folder)
        idle = wait_idle()
        if r := safe(lambda: emitted_chunk(m), "emitted chunk"):
            record("train", f"emitted JAX, compiled chunk ({CHUNK})", cfg,
                   windows(r[0], bud["chunks"]), "steps/s", scale=CHUNK, first_chunk_s=r[1],
                   **idle)
        if w == 64:
            idle = wait_idle()
            if r := safe(lambda: emitted_chunk(m, pool_draw(m)), "emitted chunk, pool"):
                record("train", f"emitted JAX chunk ({CHUNK}), peers' pooled batches", cfg,
                       windows(r[0], bud["chunks"]), "steps/s", scale=CHUNK, **idle)
        idle = wait_idle()
        if r := safe(lambda: emitted_fit(m, bud["fit"]), "emitted fit"):
            record("train", "emitted JAX, m.fit", cfg, r[0], "steps/s", scale=CHUNK,
                   call_s=r[1], fixed_s=r[2], steps=bud["fit"], **idle)
            print(f"{'':8s} one m.fit({bud['fit']}) took {r[1]:.2f} s, of which {r[2]:.2f} s "
                  "fixed (building and compiling the step)", flush=True)
        trained[w] = m
    return trained


def main() -> dict:
    started = time.perf_counter()
    info = versions()
    info["loadavg_start"] = os.getloadavg()
    print(json.dumps(info), flush=True)
    print(f"QUICK={QUICK} chunk={CHUNK} IDLE_WAIT={IDLE_WAIT}", flush=True)
    if info["loadavg_start"][0] > 0.5:
        print(f"WARNING: load average {info['loadavg_start']}: other processes share the CPU",
              flush=True)
    print(f"{'':8s} {'':44s} {'':14s} {'median':>12s} {'best':>12s}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="tfm_bench_jax_"))
    trained = train_rows(folder)

    for w in (64, 512):
        cfg, count = f"w={w} n={SAMPLE_N}", SAMPLE_WINDOWS[w]
        idle = wait_idle()
        if r := safe(lambda: windows(fm_sampler(w, SAMPLE_N), count, sync=torch_sync),
                     "fm sampling"):
            record("sample", "flow_matching ODESolver euler20", cfg, r, "samples/s",
                   scale=SAMPLE_N, **idle)
        idle = wait_idle()
        if r := safe(lambda: windows(jax_hand_sampler(w, SAMPLE_N), count), "jax hand sampling"):
            record("sample", "hand-written JAX euler20 (fori_loop)", cfg, r, "samples/s",
                   scale=SAMPLE_N, **idle)
        idle = wait_idle()
        if r := safe(lambda: emitted_sampler(trained[w], SAMPLE_N), "m.sample"):
            record("sample", "emitted JAX m.sample euler20", cfg, windows(r[0], count),
                   "samples/s", scale=SAMPLE_N, first_call_s=r[1], **idle)

    cfg, count = f"w=64 n={LOGPROB_N}", LOGPROB_WINDOWS
    idle = wait_idle()
    if r := safe(lambda: windows(fm_logprob(LOGPROB_N), count, sync=torch_sync), "fm logprob"):
        record("logprob", "flow_matching compute_likelihood", cfg, r, "points/s",
               scale=LOGPROB_N, **idle)
    idle = wait_idle()
    if r := safe(lambda: windows(jax_hand_logprob(LOGPROB_N), count), "jax hand logprob"):
        record("logprob", "hand-written JAX (jacfwd, vmap)", cfg, r, "points/s",
               scale=LOGPROB_N, **idle)
    lik = load(LIKELIHOOD, folder)
    x = np.random.default_rng(1).standard_normal((LOGPROB_N, 2)).astype(np.float32)
    idle = wait_idle()
    if r := safe(lambda: emitted_logprob(lik, x), "m.log_prob"):
        record("logprob", "emitted JAX m.log_prob (default batch)", cfg, windows(r[0], count),
               "points/s", scale=LOGPROB_N, first_call_s=r[1], **idle)
    idle = wait_idle()
    if r := safe(lambda: emitted_logprob(lik, x, batch=LOGPROB_N), "m.log_prob batch=n"):
        record("logprob", f"emitted JAX m.log_prob(batch={LOGPROB_N})", cfg,
               windows(r[0], count), "points/s", scale=LOGPROB_N, first_call_s=r[1], **idle)
    idle = wait_idle()
    if r := safe(lambda: emitted_logprob_program(lik, x), "log-prob program"):
        record("logprob", "emitted JAX log-prob program, compiled once", cfg,
               windows(r[0], count), "points/s", scale=LOGPROB_N, compile_s=r[1], **idle)

    ratios = {}

    def ratio(label, a, b):
        ratios[label] = {k: value(*a, key=k) / value(*b, key=k) for k in ("value", "best")}

    for w, b in CONFIGS:
        cfg = f"w={w} b={b}"
        for label, name in [("chunk", f"emitted JAX, compiled chunk ({CHUNK})"),
                            ("m.fit", "emitted JAX, m.fit")]:
            ours = ("train", name, cfg)
            ratio(f"train {cfg}: {label} / torchcfm", ours, ("train", "torchcfm I-CFM", cfg))
            ratio(f"train {cfg}: {label} / flow_matching", ours,
                  ("train", "flow_matching CondOT", cfg))
            ratio(f"train {cfg}: {label} / hand JAX scan", ours,
                  ("train", f"hand-written JAX scan{CHUNK}", cfg))
    for w in (64, 512):
        cfg = f"w={w} n={SAMPLE_N}"
        ours = ("sample", "emitted JAX m.sample euler20", cfg)
        ratio(f"sample {cfg}: m.sample / flow_matching", ours,
              ("sample", "flow_matching ODESolver euler20", cfg))
        ratio(f"sample {cfg}: m.sample / hand JAX", ours,
              ("sample", "hand-written JAX euler20 (fori_loop)", cfg))
    cfg = f"w=64 n={LOGPROB_N}"
    for label, name in [("m.log_prob default batch", "emitted JAX m.log_prob (default batch)"),
                        (f"m.log_prob batch {LOGPROB_N}",
                         f"emitted JAX m.log_prob(batch={LOGPROB_N})"),
                        ("program compiled once", "emitted JAX log-prob program, compiled once")]:
        ours = ("logprob", name, cfg)
        ratio(f"logprob {cfg}: {label} / flow_matching", ours,
              ("logprob", "flow_matching compute_likelihood", cfg))
        ratio(f"logprob {cfg}: {label} / hand JAX", ours,
              ("logprob", "hand-written JAX (jacfwd, vmap)", cfg))

    print(f"\nratios {'':55s} {'median':>8s} {'best':>8s}", flush=True)
    for k, v in ratios.items():
        print(f"  {k:60s} {v['value']:7.2f}x {v['best']:7.2f}x", flush=True)
    print("\n| task | loop | config | median window | best window | unit |\n|---|---|---|---|---|---|")
    for r in RESULTS:
        print(f"| {r['group']} | {r['name']} | {r['cfg']} | {r['value']:,.1f} | "
              f"{r['best']:,.1f} | {r['unit']} |")
    elapsed = time.perf_counter() - started
    info["loadavg_end"] = os.getloadavg()
    print(f"\ntotal {elapsed:.0f} s; load average at the end {info['loadavg_end']}", flush=True)
    report = {"quick": QUICK, "chunk": CHUNK, "idle_wait": IDLE_WAIT, "machine": info,
              "seconds": round(elapsed, 1), "results": RESULTS, "ratios": ratios}
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        with open(Path(out) / "bench_jax.json", "w") as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    main()
