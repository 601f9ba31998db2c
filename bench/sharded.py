"""The data-parallel code path against the plain one on the same device (issue 13): what the
sharding costs where there is nothing to share. On one GPU the mesh (JAX) and the process group
(torch, NCCL; gloo on a CPU) have one device, so every constraint, all-reduce and gather is of one
part; the difference between the two paths is their fixed cost.

The model is bench/normal_to_moons.tfm (N(0, I) -> moons, mlp(width W, depth 3, SELU), Adam,
the velocity objective) at (W=64, batch 256) and (W=512, batch 4096), loaded through ``tfm.load``
twice: plain, and with ``devices=1``. Each row: ``m.fit`` from fresh weights (``m.reset``),
chunks of CHUNK steps (the train block's log_every; time-sized chunks off), timed over STEPS
steps after a warm-up fit of the same length, median of ROUNDS; and ``m.sample(N)`` with 20
Euler steps, after a warm-up call. The ratio is sharded / plain (1: no cost).

    .venv/bin/python bench/sharded.py               # on a GPU: STEPS=2000 ROUNDS=3 N=100000
    QUICK=1 .venv/bin/python bench/sharded.py       # smoke run on a CPU
    BACKENDS=jax OUT=/tmp .venv/bin/python bench/sharded.py   # JSON to $OUT/bench_sharded.json

Not a test. Results: docs/benchmarks.md ("Data parallel").
"""

from __future__ import annotations

import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

QUICK = os.environ.get("QUICK") == "1"
STEPS = int(os.environ.get("STEPS", 40 if QUICK else 2000))
CHUNK = int(os.environ.get("CHUNK", 20 if QUICK else 200))
ROUNDS = int(os.environ.get("ROUNDS", 1 if QUICK else 3))
N = int(os.environ.get("N", 2000 if QUICK else 100_000))
BACKENDS = os.environ.get("BACKENDS", "jax,torch").split(",")
CASES = ((64, 256), (512, 4096)) if not QUICK else ((64, 256),)
ROOT = Path(__file__).resolve().parent.parent


def model_file(folder: Path, width: int, batch: int) -> Path:
    text = (ROOT / "bench" / "normal_to_moons.tfm").read_text()
    text = re.sub(r"width = \d+", f"width = {width}", text)
    text = re.sub(r"batch \d+", f"batch {batch}", text)
    text = re.sub(r"log_every \d+", f"log_every {CHUNK}\n        checkpoint_every {CHUNK}", text)
    text = text.replace("midpoint(steps = 20)", "euler(steps = 20)")
    path = folder / f"moons_{width}_{batch}.tfm"
    path.write_text(text)
    return path


def sync(backend: str) -> None:
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def fit_rate(model, backend: str) -> tuple[float, list[float]]:
    rates = []
    for k in range(ROUNDS + 1):
        model.reset(0)
        sync(backend)
        start = time.perf_counter()
        model.fit(steps=STEPS, progress=False)
        sync(backend)
        if k:  # the first: compilation
            rates.append(STEPS / (time.perf_counter() - start))
    return statistics.median(rates), rates


def sample_rate(model, backend: str) -> tuple[float, list[float]]:
    model.sample(N, sampler="ode")
    rates = []
    for _ in range(ROUNDS):
        sync(backend)
        start = time.perf_counter()
        model.sample(N, sampler="ode")
        rates.append(N / (time.perf_counter() - start))
    return statistics.median(rates), rates


def main() -> None:
    import tfm
    from tfm.backends.runtime import loop

    loop.CHUNK_SECONDS = 1e9  # chunks of exactly CHUNK steps in both paths
    folder = Path(tempfile.mkdtemp(prefix="tfm_sharded_"))
    rows = []
    for backend in BACKENDS:
        for width, batch in CASES:
            path = model_file(folder, width, batch)
            result = {"backend": backend, "width": width, "batch": batch}
            for name, options in (("plain", {}), ("sharded", {"devices": 1})):
                model = tfm.load(path, backend=backend, **options)
                fit, fits = fit_rate(model, backend)
                sample, samples = sample_rate(model, backend)
                result[name] = {"steps_per_s": fit, "fit_rounds": fits,
                                "samples_per_s": sample, "sample_rounds": samples,
                                "layout": model.layout.describe()}
            result["fit_ratio"] = result["sharded"]["steps_per_s"] / result["plain"]["steps_per_s"]
            result["sample_ratio"] = (result["sharded"]["samples_per_s"]
                                      / result["plain"]["samples_per_s"])
            rows.append(result)
            print(f"{backend:<6} w={width:<4} b={batch:<5} fit: plain "
                  f"{result['plain']['steps_per_s']:9.1f} steps/s, sharded "
                  f"{result['sharded']['steps_per_s']:9.1f} ({result['fit_ratio']:.2f}x)   "
                  f"sample {N}: plain {result['plain']['samples_per_s']:10.4g}/s, "
                  f"sharded {result['sharded']['samples_per_s']:10.4g}/s "
                  f"({result['sample_ratio']:.2f}x)", flush=True)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "bench_sharded.json").write_text(json.dumps(
            {"steps": STEPS, "chunk": CHUNK, "rounds": ROUNDS, "n": N, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
