"""Throughput of a convolutional model in the JAX and PyTorch backends, side by side in one run
(issue 17: ``convnet`` trained 52x slower in JAX than in torch on a CPU).

The task: 8 x 8 digit images (scikit-learn's ``load_digits``, scaled from [0, 16] to [-1, 1]) as
the target, ``dim [1, 8, 8]``, a standard normal base, the linear interpolant, ``network b =
convnet(channels = 64)`` (3 convolutions of 64 channels and one back to 1, 3 x 3, SiLU), the
velocity objective, batch 128, Adam; sampling with 20 Euler steps. Both backends load the same
.tfm file through ``tfm.load`` and are timed through the user's API:

1. training: ``m.fit(steps=STEPS)`` from fresh weights (``m.reset``), the whole call (host
   loop, loss checks, no progress bar); the train block's ``log_every 8`` makes the chunks 8
   steps long (or what runs in a second, runtime/loop.py), compiled (JAX) in two warm-up calls;
2. sampling: ``m.sample(N)`` (returns numpy), after a warm-up call of the same N.

The first warm-up call of each is reported too: it includes JAX's compilation. The timed calls
alternate between the backends, round by round, the backend that goes first alternating too,
and before each call the script waits (up to IDLE_WAIT seconds, default 10; QUICK: 0) for an
idle CPU; each row reports the median round (and the best). The ratios are JAX / torch rates
(> 1: JAX faster). CONV=lax makes the JAX backend convolve with ``lax.conv_general_dilated``,
as it did before issue 17 (backends/jax/runtime/conv.py), for comparison (1-4 s a step: use
STEPS=8 N=100). CONV=nhwc tries another formulation (``conv_nhwc`` below): lax's convolution
written in the NHWC and HWIO layouts, which XLA:CPU runs fast inside a loop too, for the
forward pass and the input gradient, and a product for the weight gradient.

Not a test; run it by hand (about a minute on a 2-core CPU with the defaults; QUICK=1 for a
smoke run). It needs torch and scikit-learn besides the JAX backend. With OUT set the rows are
written to $OUT/bench_conv.json.

    .venv/bin/python bench/conv.py                    # STEPS=64 ROUNDS=3 N=500
    STEPS=128 ROUNDS=5 .venv/bin/python bench/conv.py
    CONV=lax STEPS=8 N=100 ROUNDS=1 .venv/bin/python bench/conv.py
    CONV=nhwc .venv/bin/python bench/conv.py
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jax_backend as jb  # noqa: E402  (the idle-CPU wait)

QUICK = os.environ.get("QUICK") == "1"
IDLE_WAIT = float(os.environ.get("IDLE_WAIT", 0 if QUICK else 10))
STEPS = int(os.environ.get("STEPS", 16 if QUICK else 64))
ROUNDS = int(os.environ.get("ROUNDS", 1 if QUICK else 3))
N = int(os.environ.get("N", 100 if QUICK else 500))
CHANNELS = int(os.environ.get("CHANNELS", 64))
CONV = os.environ.get("CONV", "matmul")  # "lax": the convolution before issue 17; "nhwc"
BACKENDS = ("jax", "torch")

MODEL = """import stdlib.interpolants
model Digits {{
    dim [1, 8, 8]
    base x0 ~ normal(0, 1)
    target x1 ~ data("digits.npz", key = "images")
    interpolant x_t = linear
    network b = convnet(channels = {channels})
    objective {{ b ~ velocity }}
    sampler ode = euler(steps = 20)
    train {{ batch 128 log_every 8 seed 0 }}
}}
"""


def write_task(folder: Path) -> Path:
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32)[:, None] / 8.0 - 1.0  # (1797, 1, 8, 8)
    np.savez(folder / "digits.npz", images=images)
    path = folder / "digits.tfm"
    path.write_text(MODEL.format(channels=CHANNELS))
    return path


def idle() -> None:
    if IDLE_WAIT > 0:
        jb.IDLE_WAIT = IDLE_WAIT
        jb.wait_idle()


def fit(m) -> float:
    """Seconds of one m.fit(steps=STEPS) from fresh weights."""
    m.reset(0)
    t0 = time.perf_counter()
    m.fit(steps=STEPS, progress=False)
    return time.perf_counter() - t0


def sample(m, seed: int) -> float:
    t0 = time.perf_counter()
    x = m.sample(N, seed=seed)
    dt = time.perf_counter() - t0
    assert x.shape == (N, 1, 8, 8) and np.isfinite(x).all()
    return dt


def conv_nhwc():
    """The stride-1 "SAME" convolution of h (B, I, H, W) by w (O, I, k, k), k odd, computed in
    NHWC: the forward pass and the input gradient (the output gradient convolved with the
    kernel turned by 180 degrees, its channels swapped) by ``lax.conv_general_dilated`` in the
    NHWC/HWIO layouts; the weight gradient, for which no layout makes XLA:CPU's convolution
    fast, as the product of the im2col copies (transposed) with the output gradient."""
    import jax
    import jax.numpy as jnp

    layout = ("NHWC", "HWIO", "NHWC")

    def forward(x, k):  # x (B, H, W, I), k (kh, kw, I, O)
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=layout)

    @jax.custom_vjp
    def conv(x, k):
        return forward(x, k)

    def conv_fwd(x, k):
        return forward(x, k), (x, k)

    def conv_bwd(saved, dy):
        x, k = saved
        kh, kw, cin, cout = k.shape
        dx = forward(dy, jnp.transpose(jnp.flip(k, (0, 1)), (0, 1, 3, 2)))
        batch, height, width, _ = x.shape
        xp = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
        cols = jnp.concatenate([xp[:, i:i + height, j:j + width, :] for i in range(kh)
                                for j in range(kw)], axis=-1).reshape(-1, kh * kw * cin)
        dk = (cols.T @ dy.reshape(-1, cout)).reshape(kh, kw, cin, cout)
        return dx, dk

    conv.defvjp(conv_fwd, conv_bwd)
    return lambda h, w: jnp.transpose(conv(jnp.transpose(h, (0, 2, 3, 1)),
                                           jnp.transpose(w, (2, 3, 1, 0))), (0, 3, 1, 2))


def main() -> None:
    import tfm

    if CONV in ("lax", "nhwc"):
        from tfm.backends.jax.runtime import conv

        conv.conv2d = conv.conv_lax if CONV == "lax" else conv_nhwc()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = write_task(folder)
        models = {b: tfm.load(path, backend=b, folder=folder / b) for b in BACKENDS}
        print(f"convnet(channels = {CHANNELS}) on 8x8 digits, batch 128: m.fit({STEPS} steps) "
              f"x {ROUNDS} rounds, m.sample({N}) with 20 Euler steps x {ROUNDS} rounds; JAX "
              f"convolution: {CONV}", flush=True)
        first = {}
        for b, m in models.items():
            idle()
            first[b] = (fit(m), sample(m, 0))
            fit(m)  # the chunk lengths of a fit whose first chunk was not a compilation
            print(f"  first calls (with compilation) {b:5s}: fit {first[b][0]:6.1f} s, "
                  f"sample {first[b][1]:6.1f} s", flush=True)
        times = {(b, what): [] for b in BACKENDS for what in ("fit", "sample")}
        for r in range(ROUNDS):
            order = BACKENDS if r % 2 == 0 else BACKENDS[::-1]
            for b in order:
                idle()
                times[b, "fit"].append(fit(models[b]))
            for b in order:
                idle()
                times[b, "sample"].append(sample(models[b], r + 1))
        losses = {b: float(np.mean(m.history[-STEPS // 4:])) for b, m in models.items()}

    print(f"\n{'row':28s} {'median':>10s} {'best':>10s}  unit")
    rates = {}
    for (b, what), ts in times.items():
        scale = STEPS if what == "fit" else N
        rs = [scale / t for t in ts]
        rates[b, what] = statistics.median(rs)
        unit = "steps/s" if what == "fit" else "samples/s"
        print(f"{b + ' ' + what:28s} {rates[b, what]:10.2f} {max(rs):10.2f}  {unit}")
        rows.append({"backend": b, "what": what, "median": rates[b, what], "best": max(rs),
                     "unit": unit, "rounds": rs, "first_call_s": first[b][what == "sample"]})
    for what in ("fit", "sample"):
        ratio = rates["jax", what] / rates["torch", what]
        print(f"{'jax / torch ' + what:28s} {ratio:10.2f}")
        rows.append({"ratio": what, "value": ratio})
    print(f"final loss (mean of the last {max(1, STEPS // 4)} steps): "
          + ", ".join(f"{b} {v:.4f}" for b, v in losses.items()))
    out = os.environ.get("OUT")
    if out:
        meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                "steps": STEPS, "rounds": ROUNDS, "n": N, "channels": CHANNELS, "conv": CONV}
        Path(out, "bench_conv.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                           indent=1))


if __name__ == "__main__":
    main()
