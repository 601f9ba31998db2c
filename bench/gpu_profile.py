"""Where a GPU step's time goes (run on a GPU machine; bench/gpu.sh's section ``profile``).

1. torch: ``torch.profiler`` over 100 steps of the emitted chunk runner on the peers' task
   (bench/eight_gaussians_to_moons.tfm) at (w=64, b=256) and (w=512, b=4096): steps/s, the
   kernels launched per step, GPU busy time per step, and the operators by self CPU and CUDA time;
2. JAX ``m.sample(100000)`` with 20 Euler steps at w=64: the whole call against its compiled
   program alone (the start points drawn beforehand), so the call's fixed costs show.

    OUT=DIR python bench/gpu_profile.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jax_backend as jb  # noqa: E402


def torch_profile(w: int, b: int, folder: Path, steps: int = 100) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import tfm

    m = tfm.load(jb.task_file(w, b, folder), backend="torch", folder=folder / f"t{w}")
    run = m._chunk_runner(10**9, None)
    state, _ = run(m.step, 50)  # compiles, captures the graphs
    state, _ = run(state, 50)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    state, _ = run(state, steps)
    torch.cuda.synchronize()
    rate = steps / (time.perf_counter() - t0)
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    with profile(activities=activities) as prof:
        state, _ = run(state, steps)
        torch.cuda.synchronize()
    events = prof.key_averages()
    kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
    busy = sum(getattr(e, "device_time", 0.0) for e in kernels) / 1e3  # ms
    print(f"\ntorch w={w} b={b}: {rate:.0f} steps/s unprofiled ({1e3 / rate:.3f} ms/step); "
          f"{len(kernels) / steps:.1f} kernels/step; GPU busy {busy / steps:.3f} ms/step", flush=True)
    print(events.table(sort_by="self_cpu_time_total", row_limit=22, max_name_column_width=60))
    print(events.table(sort_by="self_device_time_total", row_limit=12, max_name_column_width=60))


def jax_sample(folder: Path, n: int = 100_000) -> None:
    import jax
    import numpy as np

    import tfm
    from tfm.backends.runtime import densities

    m = tfm.load(jb.task_file(64, 256, folder), backend="jax", folder=folder / "j64")
    m.fit(steps=100, progress=False)
    m.sample(n)
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        m.sample(n)
        times.append(time.perf_counter() - t0)
    print(f"\nJAX m.sample({n}): median {1e3 * np.median(times):.2f} ms", flush=True)
    # its pieces: the start draw (eager), the compiled program, the copy to the host
    ops = m.ops
    key = ops.key(0)
    spec_role = m.spec.role("base")
    draw = densities.sampler(ops, spec_role, m.shape, m._density_array("base"))
    pieces = {"start draw": [], "program": [], "to host": []}
    prog = None
    for k, v in m._compiled.items():
        if k and k[0] == "sample":
            prog = v
    for _ in range(10):
        t0 = time.perf_counter()
        k_start, k_noise = ops.random(key).split(2)
        start = draw(k_start, n)
        jax.block_until_ready(start)
        t1 = time.perf_counter()
        out = prog(m.weights, start, k_noise.key()) if prog is not None else start
        jax.block_until_ready(out)
        t2 = time.perf_counter()
        np.asarray(out)
        t3 = time.perf_counter()
        for name, d in zip(pieces, (t1 - t0, t2 - t1, t3 - t2)):
            pieces[name].append(d)
    print("  " + ", ".join(f"{k} {1e3 * np.median(v):.2f} ms" for k, v in pieces.items())
          + ("" if prog is not None else " (no compiled program found)"), flush=True)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="tfm_gpu_profile_"))
    import torch

    for w, b in jb.CONFIGS if torch.cuda.is_available() else ():
        jb.safe(lambda: torch_profile(w, b, folder), f"torch profile w={w}")
    jb.safe(lambda: jax_sample(folder), "jax m.sample")


if __name__ == "__main__":
    main()
