"""Where a GPU step's time goes (run on a GPU machine; bench/gpu.sh's section ``profile``).

1. torch: ``torch.profiler`` over 100 steps of the emitted chunk runner on the peers' task
   (bench/eight_gaussians_to_moons.tfm) at (w=64, b=256) and (w=512, b=4096): steps/s, the
   kernels launched per step, GPU busy time per step, and the operators by self CPU and CUDA time;
2. JAX ``m.sample(100000)`` with 20 Euler steps at w=64: the whole call against its compiled
   program alone (which draws the start points) and the copy to the host, so the call's fixed
   costs show.

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

    m = tfm.load(jb.task_file(64, 256, folder), backend="jax", folder=folder / "j64")
    m.fit(steps=100, progress=False)
    m.sample(n)
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        m.sample(n)
        times.append(time.perf_counter() - t0)
    print(f"\nJAX m.sample({n}): median {1e3 * np.median(times):.2f} ms", flush=True)
    # its pieces: the compiled program (the start draw inside it) and the copy to the host;
    # the rest of the call is the host's own work
    prog = next(v for k, v in m._compiled.items() if k and k[0] == "sample" and "drawn" in k)
    pieces = {"program": [], "to host": []}
    for _ in range(10):
        t0 = time.perf_counter()
        out = prog(m.weights, m.ops.key(0))
        jax.block_until_ready(out)
        t1 = time.perf_counter()
        np.asarray(out)
        for name, d in zip(pieces, (t1 - t0, time.perf_counter() - t1)):
            pieces[name].append(d)
    print("  " + ", ".join(f"{k} {1e3 * np.median(v):.2f} ms" for k, v in pieces.items()),
          flush=True)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="tfm_gpu_profile_"))
    import torch

    for w, b in jb.CONFIGS if torch.cuda.is_available() else ():
        jb.safe(lambda: torch_profile(w, b, folder), f"torch profile w={w}")
    jb.safe(lambda: jax_sample(folder), "jax m.sample")


if __name__ == "__main__":
    main()
