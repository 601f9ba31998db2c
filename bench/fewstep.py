"""Few-step samplers (issue 14, docs/fewstep.md): the flow map of examples/moons_flowmap.tfm
against its 20-step teacher in the same run, and two rounds of reflow.

1. ``maps``: examples/moons_flowmap.tfm (N(0, I) -> moons, a velocity b and a flow map X
   distilled from it, trained together) for STEPS steps with a cosine learning-rate decay; then,
   from the same 10,000 base points, the 20-step Heun ODE of b (40 network calls), the 1-step and
   the 2-step map. W2: POT's exact emd2 of 10,000 samples against 10,000 fresh target draws,
   square-rooted, averaged over REFERENCES such sets (on one set, the ratio of a map's W2 to the
   ODE's moved between 0.99 and 1.12 for the same samples); the floor is the W2 of two sets of
   fresh target draws. RMS to ODE: the root
   mean square distance of each sampler's points from the ODE's, point by point. Samples per
   second: N points, the program compiled by a first call, median of ROUNDS timed calls.
2. ``reflow``: examples/moons.tfm for STEPS steps (round 1), then examples/moons_reflow.tfm on
   20,000 of its pairs (round 2); each round's normalised path energy and W2 (its run folder's
   metrics), and the W2 of 2 Euler steps of each round's velocity.
3. ``teacher_run``: examples/moons.tfm for STEPS steps into a run folder, then the map of
   examples/moons_flowmap.tfm distilled from that run's b, fixed (``lagrangian(teacher = b, run =
   "runs/moons")``), for STEPS steps; the same table as ``maps`` (the ODE is the run's b).

    .venv/bin/python bench/fewstep.py                       # STEPS=20000, both sections, JAX
    QUICK=1 .venv/bin/python bench/fewstep.py               # smoke run
    BACKENDS=jax,torch SECTIONS=maps OUT=/tmp .venv/bin/python bench/fewstep.py
    SECTIONS=teacher_run .venv/bin/python bench/fewstep.py
    MAP_WIDTH=512 SECTIONS=maps .venv/bin/python bench/fewstep.py   # a map twice as wide

Not a test. Results: docs/fewstep.md and docs/benchmarks.md ("Few-step samplers").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

QUICK = os.environ.get("QUICK") == "1"
STEPS = int(os.environ.get("STEPS", 200 if QUICK else 20000))
ROUNDS = int(os.environ.get("ROUNDS", 1 if QUICK else 5))
N = int(os.environ.get("N", 2000 if QUICK else 10_000))
REFERENCES = int(os.environ.get("REFERENCES", 1 if QUICK else 5))  # target sets W2 is averaged over
BACKENDS = os.environ.get("BACKENDS", "jax").split(",")
SECTIONS = os.environ.get("SECTIONS", "maps,reflow").split(",")
ROOT = Path(__file__).resolve().parent.parent


def with_steps(text: str) -> str:
    """The example's text for STEPS steps with a cosine decay of the learning rate (and, with
    MAP_WIDTH, the flow map's resmlp that wide)."""
    text = re.sub(r"steps \d+\n", f"steps {STEPS}\n", text, count=1)
    if os.environ.get("MAP_WIDTH"):
        text = text.replace("network X = resmlp(width = 256",
                            f"network X = resmlp(width = {int(os.environ['MAP_WIDTH'])}")
    if "lr_schedule" not in text:
        text = text.replace("ema 0.999", "ema 0.999\n        lr_schedule cosine_decay(warmup = 100)")
    return text


def sync(backend: str) -> None:
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def timed(model, backend: str, sampler: str, x0) -> tuple[np.ndarray, float]:
    model.sample(len(x0), sampler=sampler, x0=x0)  # compiles
    times = []
    for _ in range(ROUNDS):
        sync(backend)
        started = time.perf_counter()
        samples = model.sample(len(x0), sampler=sampler, x0=x0)
        sync(backend)
        times.append(time.perf_counter() - started)
    return samples, len(x0) / statistics.median(times)


def maps(folder: Path, backend: str, teacher_run: bool = False) -> dict:
    import tfm
    from tfm.backends.runtime import metrics

    text = with_steps((ROOT / "examples" / "moons_flowmap.tfm").read_text())
    if teacher_run:  # the teacher trained first, alone, then read and kept fixed
        from tfm.driver.run import run

        (folder / "moons.tfm").write_text(with_steps((ROOT / "examples" / "moons.tfm").read_text()))
        run(folder / "moons.tfm", backend, out=folder / "runs" / "moons", progress=False,
            log=lambda message: None)
        text = text.replace("X ~ lagrangian(teacher = b)",
                            'X ~ lagrangian(teacher = b, run = "runs/moons")')
    path = folder / "moons_flowmap.tfm"
    path.write_text(text)
    model = tfm.load(path, backend=backend, folder=folder / f"build_{backend}")
    started = time.perf_counter()
    model.fit(progress=False)
    train_seconds = time.perf_counter() - started
    references = [model.reference(N, seed=5 + i) for i in range(REFERENCES)]
    floor = metrics.w2(model.reference(N, seed=1000), references[0])
    x0 = np.random.default_rng(0).standard_normal((N, 2)).astype(np.float32)
    rows, ode = {}, None
    for name, calls in (("ode", 40), ("one", 1), ("two", 2)):
        samples, rate = timed(model, backend, name, x0)
        ode = samples if name == "ode" else ode
        each = [metrics.w2(samples, reference) for reference in references]
        rows[name] = {"network_calls": calls, "w2": float(np.mean(each)), "w2_each": each,
                      "rms_to_ode": float(np.sqrt(np.mean((samples - ode) ** 2))),
                      "samples_per_second": rate}
    for name in ("one", "two"):
        ratios = np.array(rows[name]["w2_each"]) / np.array(rows["ode"]["w2_each"])
        rows[name]["w2_over_ode"] = rows[name]["w2"] / rows["ode"]["w2"]
        rows[name]["w2_over_ode_range"] = [float(ratios.min()), float(ratios.max())]
        rows[name]["speed_over_ode"] = rows[name]["samples_per_second"] / rows["ode"]["samples_per_second"]
    return {"steps": STEPS, "train_seconds": train_seconds, "w2_floor": floor,
            "references": REFERENCES, "samplers": rows}


def reflow(folder: Path, backend: str) -> dict:
    from tfm.driver.run import open_run, run
    from tfm.backends.runtime import metrics
    from tfm.backends.runtime.spec import Sampler

    examples = folder / "examples"
    examples.mkdir(exist_ok=True)
    for name in ("moons", "moons_reflow"):
        (examples / f"{name}.tfm").write_text(with_steps((ROOT / "examples" / f"{name}.tfm").read_text()))
    out = {}
    for name in ("moons", "moons_reflow"):
        result = run(examples / f"{name}.tfm", backend, out=folder / "runs" / name, progress=False,
                     log=lambda message: None)
        model = open_run(folder / "runs" / name)
        reference = model.reference(N, seed=5)
        two = model.sample(N, sampler=Sampler("euler2", "euler", {"steps": 2}, "ode"), seed=1)
        out[name] = {"normalized_path_energy": result["normalized_path_energy"],
                     "w2": result["w2"], "w2_euler_2_steps": metrics.w2(two, reference)}
    return out


def main() -> None:
    results = {}
    for backend in BACKENDS:
        results[backend] = {}
        for section in SECTIONS:
            folder = Path(tempfile.mkdtemp(prefix=f"tfm_fewstep_{section}_"))
            try:
                results[backend][section] = {
                    "maps": maps, "reflow": reflow,
                    "teacher_run": lambda f, b: maps(f, b, teacher_run=True)}[section](folder, backend)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            print(backend, section, json.dumps(results[backend][section], indent=1), flush=True)
    for backend, sections in results.items():
        for name in ("maps", "teacher_run"):
            if name not in sections:
                continue
            m = sections[name]
            print(f"\n{backend} {name}: {m['steps']} steps, trained in {m['train_seconds']:.0f} s; "
                  f"W2 floor (two target draws of {N}) {m['w2_floor']:.4f}")
            print(f"W2: the mean over {m['references']} sets of fresh target draws; / ODE: the "
                  "ratio of the means (in brackets: the least and largest ratio on one set)")
            print(f"{'sampler':<8}{'calls':>6}{'W2':>9}{'/ ODE':>8}{'(range)':>16}{'RMS to ODE':>12}"
                  f"{'samples/s':>12}{'x ODE':>8}")
            for sampler, row in m["samplers"].items():
                low, high = row.get("w2_over_ode_range", (1.0, 1.0))
                print(f"{sampler:<8}{row['network_calls']:>6}{row['w2']:>9.4f}"
                      f"{row.get('w2_over_ode', 1.0):>8.3f}{f'({low:.3f}-{high:.3f})':>16}"
                      f"{row['rms_to_ode']:>12.4f}"
                      f"{row['samples_per_second']:>12.0f}{row.get('speed_over_ode', 1.0):>8.1f}")
        if "reflow" in sections:
            for name, row in sections["reflow"].items():
                print(f"{backend} {name}: normalised path energy "
                      f"{row['normalized_path_energy']:.4f}, W2 {row['w2']:.4f}, "
                      f"W2 with 2 Euler steps {row['w2_euler_2_steps']:.4f}")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "bench_fewstep.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
