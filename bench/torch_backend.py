"""Throughput of the PyTorch backend's emitted programs against the peers, side by side in one run.

The counterpart of bench/jax_backend.py for ``backend="torch"``; it imports that script's task,
peers' loops (copied from the reference peer loops, docs/benchmarks.md) and timing helpers, so
both measure the same way.

1. training steps/s on the peers' task (8 Gaussians -> moons, MLP 3 x width SELU with t
   concatenated, Adam 1e-3, independent coupling, linear interpolant, velocity objective) at
   (w=64, b=256) and (w=512, b=4096): the emitted model through ``m.fit`` (the user's path: host
   loop, loss checks, no progress bar) and through its chunk runner directly
   (``m._chunk_runner``: the steps of one call, with the model's non-finite guard), against
   torchcfm I-CFM and flow_matching CondOT;
2. sampling 100,000 points with 20 Euler steps: ``m.sample`` against flow_matching's ODESolver;
3. log-densities (exact divergence, 20 midpoint steps, width 64, 20,000 points): ``m.log_prob``
   against flow_matching's ``compute_likelihood``.

One row locates the emitted step's costs: the emitted update (``m._update``: loss, backward, the
optimiser) fed the peers' pooled batches in place of the densities it draws on the device from
the model's training generator.

Steady state, as the peers measure: warm-up is excluded. Each row is timed in several windows and
reports the median window's rate (the best is kept too); before each row the script waits (up to
IDLE_WAIT seconds, default 30; QUICK: 0) for the CPU to be idle. ``m.fit`` is timed inside one
call, from the end of its first chunk to the end of its last (jax_backend.emitted_fit); the rest
of the call is reported as its fixed cost. PROFILE=1 adds a cProfile of the chunk runner's
``run(first, 500)`` at w=64 (printed, not timed).

Not a test; run it by hand (about 3 minutes on a 2-core CPU, plus any wait for an idle CPU;
QUICK=1 for a smoke run of under a minute). It needs torch, torchcfm, flow_matching (with
torchdiffeq) and scikit-learn. On a machine with a GPU the emitted model and the peers run there
(the model picks CUDA itself, the peers through jax_backend.torch_device()), and each window
ends with a synchronisation. Results: docs/benchmarks.md.

    .venv/bin/python bench/torch_backend.py                    # full
    QUICK=1 OUT=/tmp .venv/bin/python bench/torch_backend.py   # JSON to $OUT/bench_torch.json
"""

from __future__ import annotations

import cProfile
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jax_backend as jb  # noqa: E402  (the task, the peers' loops, the timing helpers)

QUICK, CHUNK = jb.QUICK, jb.CHUNK  # CHUNK: the model's log_every, the length of m.fit's chunks
PROFILE = os.environ.get("PROFILE") == "1"
CONFIGS = jb.CONFIGS
# per (w, b): (warm-up steps, windows, steps per window) for the peers and the pooled row (the
# chunk runner: one run(first, steps per window) call per window, after one such call to warm up);
# the length of the timed m.fit call
BUDGET = {
    (64, 256): dict(steps=(20, 3, 100), fit=200) if QUICK else
    dict(steps=(100, 10, 200), fit=5000),
    (512, 4096): dict(steps=(2, 2, 3), fit=3 * CHUNK) if QUICK else
    dict(steps=(3, 4, 15), fit=400),
}
if jb.GPU:  # longer windows on a GPU (bench/jax_backend.py)
    BUDGET = {(64, 256): dict(steps=(100, 5, 500), fit=5000),
              (512, 4096): dict(steps=(20, 5, 200), fit=2000)}
SAMPLE_N, SAMPLE_WINDOWS = jb.SAMPLE_N, jb.SAMPLE_WINDOWS
LOGPROB_N, LOGPROB_WINDOWS = jb.LOGPROB_N, jb.LOGPROB_WINDOWS
RESULTS = jb.RESULTS  # jb.record appends here

TORCHCFM, FMLIB = "torchcfm I-CFM", "flow_matching CondOT"
RUNNER, POOLED, FIT = ("emitted torch, chunk runner", "emitted torch update, peers' pooled batches",
                       "emitted torch, m.fit")
FM_SAMPLE, SAMPLE = "flow_matching ODESolver euler20", "emitted torch m.sample euler20"
FM_LOGPROB = "flow_matching compute_likelihood"
LOGPROB, LOGPROB_N_BATCH = ("emitted torch m.log_prob (default batch)",
                            f"emitted torch m.log_prob(batch={LOGPROB_N})")


def load(path, folder):
    import tfm

    return tfm.load(path, backend="torch", folder=Path(folder) / f"{Path(path).stem}_torch")


def emitted_runner(m, steps):
    """The chunk runner m.fit drives (``m._chunk_runner``), called directly: one call runs
    ``steps`` optimiser steps and returns their losses as numpy (one host synchronisation). The
    model's weights move on; its ``step`` does not (m.fit sets it from the runner's result)."""
    run = m._chunk_runner(10**9, None)  # the total only sets the schedule's horizon
    state = [m.step]

    def call():
        state[0], _ = run(state[0], steps)

    return call


def emitted_pooled(m, b):
    """The emitted update (loss, backward, Adam) on batches gathered from the peers' pools with
    torch's global generator, as torchcfm's loop draws them."""
    import torch

    update = m._update(10**9)
    zero = torch.zeros((), device=m.device)
    count = [m.step]

    def call():
        x0, x1 = jb.batch_t(b)
        t = torch.rand(b, device=m.device)
        update(count[0], t, x0, x1, zero)
        count[0] += 1

    return call


def profile_runner(m, steps=500):
    """cProfile of run(first, steps) on the w=64 model: where a step's time goes."""
    run = m._chunk_runner(10**9, None)
    first, _ = run(m.step, 20)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    run(first, steps)
    prof.disable()
    elapsed = time.perf_counter() - t0
    print(f"\ncProfile of run(first, {steps}) at w=64 b=256: {elapsed:.2f} s under the profiler "
          f"({steps / elapsed:.0f} steps/s)", flush=True)
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def versions() -> dict:
    import importlib.metadata as md

    import torch

    out = {"python": platform.python_version(), "cpus": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "torch_device": jb.torch_device()}
    if torch.cuda.is_available():
        out["cuda_device"] = torch.cuda.get_device_name()
    for name in ("torch", "torchcfm", "flow_matching", "torchdiffeq", "scikit-learn", "numpy",
                 "tfmc"):
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
        warm, count, per = bud["steps"]
        idle = jb.wait_idle()
        if r := jb.safe(lambda: jb.windows(jb.torchcfm_step(w, b), count, per, warm, jb.torch_sync),
                        "torchcfm"):
            jb.record("train", TORCHCFM, cfg, r, "steps/s", **idle)
        idle = jb.wait_idle()
        if r := jb.safe(lambda: jb.windows(jb.fmlib_step(w, b), count, per, warm, jb.torch_sync),
                        "flow_matching"):
            jb.record("train", FMLIB, cfg, r, "steps/s", **idle)
        m = load(jb.task_file(w, b, folder), folder)
        print(f"{'':8s} emitted model on {m.device}", flush=True)
        idle = jb.wait_idle()
        if r := jb.safe(lambda: jb.windows(emitted_runner(m, per), count, warm=1),
                        "chunk runner"):
            jb.record("train", RUNNER, cfg, r, "steps/s", scale=per, steps_per_call=per, **idle)
        idle = jb.wait_idle()
        if r := jb.safe(lambda: jb.windows(emitted_pooled(m, b), count, per, warm, jb.torch_sync),
                        "pooled update"):
            jb.record("train", POOLED, cfg, r, "steps/s", **idle)
        idle = jb.wait_idle()
        if r := jb.safe(lambda: jb.emitted_fit(m, bud["fit"]), "emitted fit"):
            jb.record("train", FIT, cfg, r[0], "steps/s", scale=CHUNK, call_s=r[1], fixed_s=r[2],
                      steps=bud["fit"], **idle)
            print(f"{'':8s} one m.fit({bud['fit']}) took {r[1]:.2f} s, of which {r[2]:.2f} s "
                  "fixed (its first chunk's excess and the call's own work)", flush=True)
        if PROFILE and w == 64:
            jb.safe(lambda: profile_runner(m), "profile")
        trained[w] = m
    return trained


def main() -> dict:
    import torch

    started = time.perf_counter()
    info = versions()
    info["loadavg_start"] = os.getloadavg()
    print(json.dumps(info), flush=True)
    print(f"QUICK={QUICK} chunk={CHUNK} IDLE_WAIT={jb.IDLE_WAIT}", flush=True)
    if info["loadavg_start"][0] > 0.5:
        print(f"WARNING: load average {info['loadavg_start']}: other processes share the CPU",
              flush=True)
    print(f"{'':8s} {'':44s} {'':14s} {'median':>12s} {'best':>12s}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="tfm_bench_torch_"))
    trained = train_rows(folder)

    for w in (64, 512):
        cfg, count = f"w={w} n={SAMPLE_N}", SAMPLE_WINDOWS[w]
        idle = jb.wait_idle()
        if r := jb.safe(lambda: jb.windows(jb.fm_sampler(w, SAMPLE_N), count, sync=jb.torch_sync),
                        "fm sampling"):
            jb.record("sample", FM_SAMPLE, cfg, r, "samples/s", scale=SAMPLE_N, **idle)
        idle = jb.wait_idle()
        if r := jb.safe(lambda: jb.emitted_sampler(trained[w], SAMPLE_N), "m.sample"):
            jb.record("sample", SAMPLE, cfg, jb.windows(r[0], count), "samples/s",
                      scale=SAMPLE_N, first_call_s=r[1], **idle)

    cfg, count = f"w=64 n={LOGPROB_N}", LOGPROB_WINDOWS
    idle = jb.wait_idle()
    if r := jb.safe(lambda: jb.windows(jb.fm_logprob(LOGPROB_N), count, sync=jb.torch_sync),
                    "fm logprob"):
        jb.record("logprob", FM_LOGPROB, cfg, r, "points/s", scale=LOGPROB_N, **idle)
    lik = load(jb.LIKELIHOOD, folder)
    x = np.random.default_rng(1).standard_normal((LOGPROB_N, 2)).astype(np.float32)
    idle = jb.wait_idle()
    if r := jb.safe(lambda: jb.emitted_logprob(lik, x), "m.log_prob"):
        jb.record("logprob", LOGPROB, cfg, jb.windows(r[0], count), "points/s",
                  scale=LOGPROB_N, first_call_s=r[1], **idle)
    idle = jb.wait_idle()
    if r := jb.safe(lambda: jb.emitted_logprob(lik, x, batch=LOGPROB_N), "m.log_prob batch=n"):
        jb.record("logprob", LOGPROB_N_BATCH, cfg, jb.windows(r[0], count), "points/s",
                  scale=LOGPROB_N, first_call_s=r[1], **idle)

    ratios = {}

    def ratio(label, a, b):
        ratios[label] = {k: jb.value(*a, key=k) / jb.value(*b, key=k) for k in ("value", "best")}

    for w, b in CONFIGS:
        cfg = f"w={w} b={b}"
        for label, name in [("chunk runner", RUNNER), ("m.fit", FIT), ("pooled update", POOLED)]:
            ratio(f"train {cfg}: {label} / torchcfm", ("train", name, cfg),
                  ("train", TORCHCFM, cfg))
            ratio(f"train {cfg}: {label} / flow_matching", ("train", name, cfg),
                  ("train", FMLIB, cfg))
    for w in (64, 512):
        cfg = f"w={w} n={SAMPLE_N}"
        ratio(f"sample {cfg}: m.sample / flow_matching", ("sample", SAMPLE, cfg),
              ("sample", FM_SAMPLE, cfg))
    cfg = f"w=64 n={LOGPROB_N}"
    for label, name in [("m.log_prob default batch", LOGPROB),
                        (f"m.log_prob batch {LOGPROB_N}", LOGPROB_N_BATCH)]:
        ratio(f"logprob {cfg}: {label} / flow_matching", ("logprob", name, cfg),
              ("logprob", FM_LOGPROB, cfg))

    print(f"\nratios {'':55s} {'median':>8s} {'best':>8s}", flush=True)
    for k, v in ratios.items():
        print(f"  {k:60s} {v['value']:7.2f}x {v['best']:7.2f}x", flush=True)
    print("\n| task | loop | config | median window | best window | unit |\n|---|---|---|---|---|---|")
    for r in RESULTS:
        print(f"| {r['group']} | {r['name']} | {r['cfg']} | {r['value']:,.1f} | "
              f"{r['best']:,.1f} | {r['unit']} |")
    elapsed = time.perf_counter() - started
    info["loadavg_end"] = os.getloadavg()
    info["torch_threads_end"] = torch.get_num_threads()
    print(f"\ntotal {elapsed:.0f} s; load average at the end {info['loadavg_end']}", flush=True)
    report = {"quick": QUICK, "chunk": CHUNK, "idle_wait": jb.IDLE_WAIT, "machine": info,
              "seconds": round(elapsed, 1), "results": RESULTS, "ratios": ratios}
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        with open(Path(out) / "bench_torch.json", "w") as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    main()
