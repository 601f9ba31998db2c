"""Model FLOP utilisation of the emitted JAX training step on a large MLP (issue 4's GPU bar).

The model is bench/large_mlp.tfm: N(0, I) -> two moons, `mlp(width = W, depth = 4)`, Adam, with
`precision bfloat16` (bf16 matrix products, float32 weights and loss) or float32. FLOPs per step
are 6 * params * batch (forward 2, backward 4), as in the reference measurement; the peak is a bf16
(or f32) 8192^3 matrix product measured with JAX in the same run. The bar (H100): >= 60% of the
bf16 peak at W = 2048, batch 16384 (hand-written fused JAX: 62%).

    python bench/bf16_mlp.py                 # W = 2048, batch 16384 (a GPU job: minutes on a CPU)
    QUICK=1 python bench/bf16_mlp.py         # W = 256, batch 1024: a smoke run for a CPU
    OUT=DIR python bench/bf16_mlp.py         # also DIR/bf16_mlp.json
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
QUICK = os.environ.get("QUICK") == "1"
WIDTH, BATCH = (256, 1024) if QUICK else (2048, 16384)
CHUNK = 10


def matmul_peak(dtype, n: int) -> float:
    # random operands: constant ones or zeros run faster than real data on some GPUs
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    reps = 10
    t0 = time.perf_counter()
    for _ in range(reps):
        out = f(a)
    out.block_until_ready()
    return reps * 2 * n**3 / (time.perf_counter() - t0)


def step_rate(precision: str) -> tuple[float, int]:
    """Steady-state steps/s of the emitted training chunk, and the parameter count."""
    import tfm
    from tfm.backends.jax.runtime import train

    text = (ROOT / "bench" / "large_mlp.tfm").read_text()
    text = re.sub(r"width = \d+", f"width = {WIDTH}", text)
    text = re.sub(r"batch \d+", f"batch {BATCH}", text)
    text = re.sub(r"precision \w+", f"precision {precision}", text)
    folder = Path(tempfile.mkdtemp(prefix="tfm_bf16_"))
    (folder / "large_mlp.tfm").write_text(text)
    m = tfm.load(folder / "large_mlp.tfm", folder=folder)
    # the chunk JaxModel._chunk_runner assembles (the objective's draw, the model's update)
    step = train.make_step(m.spec, m.objective.draw(m, None), m._update(), jax.random.PRNGKey(0))
    run = train.chunk_runner(step)
    state, losses = run(m._state(), CHUNK)
    jax.block_until_ready(losses)
    chunks = 3 if QUICK else 10
    t0 = time.perf_counter()
    for _ in range(chunks):
        state, losses = run(state, CHUNK)
    jax.block_until_ready(losses)
    assert np.isfinite(np.asarray(losses)).all()
    params = sum(int(np.prod(v.shape)) for v in m.params.values())
    return chunks * CHUNK / (time.perf_counter() - t0), params


def main() -> None:
    device = jax.devices()[0]
    print(f"device {device.platform} {getattr(device, 'device_kind', '')}  width {WIDTH}  batch {BATCH}",
          flush=True)
    n = 2048 if QUICK or device.platform == "cpu" else 8192
    results = {"device": str(device), "width": WIDTH, "batch": BATCH, "rows": []}
    for precision, dtype in (("bfloat16", jnp.bfloat16), ("float32", jnp.float32)):
        peak = matmul_peak(dtype, n)
        rate, params = step_rate(precision)
        achieved = 6 * params * BATCH * rate
        row = {"precision": precision, "steps_per_s": rate, "params": params,
               "tflops": achieved / 1e12, "peak_tflops": peak / 1e12,
               "fraction_of_own_peak": achieved / peak}
        results["rows"].append(row)
        print(f"{precision:9s} {rate:10.2f} steps/s  {achieved / 1e12:8.2f} TFLOP/s  "
              f"peak ({n}^3 matmul) {peak / 1e12:8.2f} TFLOP/s  {100 * achieved / peak:5.1f}% of it",
              flush=True)
    bf16_peak = results["rows"][0]["peak_tflops"]
    f32 = results["rows"][1]
    print(f"float32 step against the bf16 peak: {100 * f32['tflops'] / bf16_peak:.1f}%")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "bf16_mlp.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
