"""Training throughput of tfm's ``unet`` (torch and JAX backends) against torchcfm's U-Net
(``torchcfm.models.unet.unet.UNetModelWrapper``, the network of torchcfm's CIFAR-10 example), on
the same image shape, batch and widths, side by side in one run.

The task: random images uniform in [-1, 1] (NDATA of them, written to a temporary .npz, key
"images") as the target, ``dim [C, H, W]``, a standard normal base, the linear interpolant, the
velocity objective, Adam lr 1e-4 (no EMA, no clipping), batch BATCH. The three contestants:

1. tfm, torch backend: the .tfm text below through ``tfm.load(path, backend="torch")``, timed
   through the user's API, ``m.fit(steps=STEPS)`` from fresh weights (``m.reset(0)``): the whole
   call (host loop, loss checks, no progress bar), with tfm's defaults (torch.compile of the
   loss, with CUDA graphs, on CUDA; eager on a CPU; fused Adam). COMPILE=0/1 overrides the
   compile default;
2. tfm, JAX backend: the same file and calls (``backend="jax"``; compiled with jit in the
   warm-up call). On by default on a GPU, off on a CPU, where compiling the U-Net takes minutes
   (JAX=1 to run it anyway);
3. torchcfm: ``UNetModelWrapper`` eager (no torch.compile), its ``ConditionalFlowMatcher(
   sigma=0)``, ``torch.optim.Adam`` (torch's default implementation), in a hand loop of STEPS
   steps from the initial weights and a fresh optimiser each call (as tfm's): x1 indexed
   at random from the same images held on the device, x0 = randn, (t, xt, ut) from
   ``sample_location_and_conditional_flow``, loss = mean((model(t, xt) - ut)^2), backward, step.

In both networks ``multipliers``/``channel_mult`` = MULT, ``blocks``/``num_res_blocks`` =
BLOCKS, attention at the resolution ATTN (one head: ``num_heads=1``, as tfm's; torchcfm's
CIFAR-10 example uses heads of 64 channels), group norm of 32 groups (torchcfm's GroupNorm32;
``groups = 32`` in the .tfm, so CHANNELS must divide by 32), no dropout. The networks still differ
in detail, so their parameter counts differ (both are printed): torchcfm goes down with a strided
3 x 3 convolution where tfm pools 2 x 2, keeps a skip connection after every block (and every
downsampling) and so runs BLOCKS + 1 residual blocks per level on the way up where tfm runs
BLOCKS, and embeds t in CHANNELS sinusoidal features where tfm uses t and 16 (runtime/unet.py).

Each contestant runs one warm-up call of STEPS steps (reported as the first call: it includes
JAX's and torch.compile's compilation), then ROUNDS timed calls of STEPS steps, the order of the
contestants rotating round by round; before each call the script waits (up to IDLE_WAIT seconds,
default 10; QUICK: 0) for an idle CPU. CUDA is synchronised before the clocks are read. Rows
report the median round (and the best) in steps/s and images/s; the ratios are tfm / torchcfm
rates (> 1: tfm faster). tfm's chunks are the train block's ``log_every`` (LOG_EVERY, default
STEPS: one chunk a call; the time-based chunk cut of runtime/loop.py is switched off, so that
the timed calls compile nothing new). Loading tfm on CUDA turns on TF32 for the whole process,
so torchcfm runs with TF32 too.

Settings (environment; defaults GPU / CPU): SHAPE "3,32,32" (QUICK on a CPU: "3,16,16"), BATCH
128 / 16 (QUICK: 8), CHANNELS 128 / 32, MULT "1,2,2,2" / "1,2", BLOCKS 2 / 1, ATTN H // 2 (16 for
32 x 32; H with one level), STEPS 50 / 8 (QUICK: 2), ROUNDS 3 / 3 (QUICK: 1), NDATA 2048, JAX 1 / 0,
COMPILE (tfm torch; default tfm's), LOG_EVERY STEPS.

Not a test; run it by hand (QUICK=1: a smoke run of well under a minute on a 2-core CPU). It
needs torch and torchcfm besides tfm (and JAX for the JAX row). With OUT set the rows are written
to $OUT/bench_unet.json. On a CPU that other processes keep busy, torch's OpenMP threads slow
down many times over (on 2 loaded cores a QUICK step took 6 s instead of 0.1 s):
OMP_NUM_THREADS=1 makes the torch rows usable there.

    .venv/bin/python bench/unet.py                          # GPU: 3x32x32, 128 ch, batch 128
    QUICK=1 .venv/bin/python bench/unet.py                  # CPU smoke run
    JAX=1 STEPS=4 ROUNDS=1 .venv/bin/python bench/unet.py   # with the JAX row on a CPU
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jax_backend as jb  # noqa: E402  (the idle-CPU wait)

CUDA = torch.cuda.is_available()
QUICK = os.environ.get("QUICK") == "1"


def env(name: str, gpu, cpu, quick=None):
    value = os.environ.get(name)
    if value is not None:
        return value
    if CUDA:
        return gpu
    return quick if QUICK and quick is not None else cpu


def counts(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in str(text).split(",") if s.strip())


IDLE_WAIT = float(os.environ.get("IDLE_WAIT", 0 if QUICK else 10))
SHAPE = counts(env("SHAPE", "3,32,32", "3,32,32", "3,16,16"))
BATCH = int(env("BATCH", 128, 16, 8))
CHANNELS = int(env("CHANNELS", 128, 32))
MULT = counts(env("MULT", "1,2,2,2", "1,2"))
BLOCKS = int(env("BLOCKS", 2, 1))
ATTN = int(os.environ.get("ATTN", SHAPE[1] // 2 if len(MULT) > 1 else SHAPE[1]))
STEPS = int(env("STEPS", 50, 8, 2))
ROUNDS = int(env("ROUNDS", 3, 3, 1))
NDATA = int(os.environ.get("NDATA", 2048))
JAX = env("JAX", "1", "0") == "1"
COMPILE = os.environ.get("COMPILE")  # tfm torch: None = tfm's default (on CUDA)
LOG_EVERY = int(os.environ.get("LOG_EVERY", STEPS))
GROUPS = 32  # torchcfm's GroupNorm32
HEADS = 1  # tfm's attention has one head

MODEL = """import stdlib.interpolants
model BenchUnet {{
    dim [{shape}]
    base x0 ~ normal(0, 1)
    target x1 ~ data("images.npz", key = "images")
    interpolant x_t = linear
    network b = unet(channels = {channels}, multipliers = [{mult}], blocks = {blocks}, \
attention = [{attn}], groups = {groups})
    objective {{ b ~ velocity }}
    sampler ode = euler(steps = 20)
    train {{ batch {batch} optimizer adam(lr = 1e-4) log_every {log_every} seed 0 }}
}}
"""


def check_settings() -> None:
    c, h, w = SHAPE
    levels = len(MULT)
    if h % 2 ** (levels - 1) or w % 2 ** (levels - 1):
        sys.exit(f"SHAPE {SHAPE}: H and W must divide by 2^(levels - 1) = {2 ** (levels - 1)}")
    legal = [h // 2 ** i for i in range(levels)]
    if ATTN not in legal:
        sys.exit(f"ATTN {ATTN} is not a level's resolution; pick one of {legal}")
    if CHANNELS % GROUPS:
        sys.exit(f"CHANNELS {CHANNELS} must divide by {GROUPS} (torchcfm's group norm)")


def write_task(folder: Path) -> tuple[Path, np.ndarray]:
    images = np.random.default_rng(0).uniform(-1, 1, (NDATA,) + SHAPE).astype(np.float32)
    np.savez(folder / "images.npz", images=images)
    path = folder / "bench_unet.tfm"
    path.write_text(MODEL.format(shape=", ".join(map(str, SHAPE)), channels=CHANNELS,
                                 mult=", ".join(map(str, MULT)), blocks=BLOCKS, attn=ATTN,
                                 groups=GROUPS, batch=BATCH, log_every=LOG_EVERY))
    return path, images


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def idle() -> None:
    if IDLE_WAIT > 0:
        jb.IDLE_WAIT = IDLE_WAIT
        jb.wait_idle()


class Tfm:
    """tfm through the user's API: m.reset(0), m.fit(steps=STEPS)."""

    def __init__(self, path: Path, backend: str, folder: Path):
        import tfm

        options = {} if backend == "jax" or COMPILE is None else {"compile": COMPILE == "1"}
        self.backend = backend
        self.m = tfm.load(path, backend=backend, folder=folder, **options)
        self.params = int(sum(np.prod(s) for s in self.m._param_shapes().values()))

    def __call__(self) -> float:
        self.m.reset(0)
        sync()
        t0 = time.perf_counter()
        self.m.fit(steps=STEPS, progress=False)
        if self.backend == "jax":
            import jax

            jax.block_until_ready(self.m.params)
        sync()
        return time.perf_counter() - t0

    def loss(self) -> float:
        return float(np.mean(self.m.history[-max(1, STEPS // 4):]))


class TorchCFM:
    """torchcfm's UNetModelWrapper and ConditionalFlowMatcher in a hand loop (eager)."""

    def __init__(self, images: np.ndarray):
        from torchcfm.conditional_flow_matching import ConditionalFlowMatcher
        from torchcfm.models.unet.unet import UNetModelWrapper

        self.device = torch.device("cuda" if CUDA else "cpu")
        torch.manual_seed(0)
        self.net = UNetModelWrapper(dim=SHAPE, num_channels=CHANNELS, num_res_blocks=BLOCKS,
                                    channel_mult=MULT, attention_resolutions=str(ATTN),
                                    num_heads=HEADS, dropout=0.0).to(self.device)
        self.params = sum(p.numel() for p in self.net.parameters())
        self.fm = ConditionalFlowMatcher(sigma=0.0)
        self.images = torch.as_tensor(images, device=self.device)
        self.initial = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.losses: list[torch.Tensor] = []

    def __call__(self) -> float:
        """Seconds of STEPS steps from the initial weights and a fresh optimiser (as tfm's
        m.reset)."""
        self.net.load_state_dict(self.initial)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-4)
        sync()
        t0 = time.perf_counter()
        losses = []
        for _ in range(STEPS):
            x1 = self.images[torch.randint(len(self.images), (BATCH,), device=self.device)]
            x0 = torch.randn_like(x1)
            t, xt, ut = self.fm.sample_location_and_conditional_flow(x0, x1)
            loss = torch.mean((self.net(t, xt) - ut) ** 2)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            losses.append(loss.detach())
        sync()
        dt = time.perf_counter() - t0
        self.losses = losses
        return dt

    def loss(self) -> float:
        return float(torch.stack(self.losses[-max(1, STEPS // 4):]).mean())


def device_name() -> str:
    if CUDA:
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def main() -> None:
    check_settings()
    names = ["torchcfm", "tfm torch"] + (["tfm jax"] if JAX else [])
    versions = {p: version(p) for p in ("torch", "torchcfm") + (("jax",) if JAX else ())}
    print(f"U-Net training on {device_name()}; " + ", ".join(f"{k} {v}" for k, v in
                                                               versions.items()), flush=True)
    print(f"shape {list(SHAPE)}, batch {BATCH}, channels {CHANNELS}, multipliers {list(MULT)}, "
          f"blocks {BLOCKS}, attention at {ATTN} (1 head), {GROUPS} groups; "
          f"{STEPS} steps x {ROUNDS} rounds", flush=True)
    rows, first = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, images = write_task(folder)
        from tfm.backends.runtime import loop

        loop.CHUNK_SECONDS = 1e9  # chunks of log_every steps: no new JAX length when timed
        runners = {"torchcfm": TorchCFM(images)}
        runners["tfm torch"] = Tfm(path, "torch", folder / "torch")
        if JAX:
            runners["tfm jax"] = Tfm(path, "jax", folder / "jax")
        m = runners["tfm torch"].m
        print(f"tfm torch on {m.device}, torch.compile {'on' if m.compile else 'off'}; "
              "torchcfm eager", flush=True)
        for name in names:
            print(f"  parameters {name:10s}: {runners[name].params:,}", flush=True)
        for name in names:
            idle()
            first[name] = runners[name]()
            print(f"  first call (with compilation) {name:10s}: {first[name]:7.1f} s",
                  flush=True)
        times = {name: [] for name in names}
        for r in range(ROUNDS):
            for name in names[r % len(names):] + names[:r % len(names)]:
                idle()
                times[name].append(runners[name]())
        losses = {name: runners[name].loss() for name in names}

    print(f"\n{'row':14s} {'steps/s':>10s} {'best':>10s} {'images/s':>10s} {'params':>12s}")
    rates = {}
    for name in names:
        rs = [STEPS / t for t in times[name]]
        rates[name] = statistics.median(rs)
        print(f"{name:14s} {rates[name]:10.3f} {max(rs):10.3f} {rates[name] * BATCH:10.1f} "
              f"{runners[name].params:12,d}")
        rows.append({"contestant": name, "steps_per_s": rates[name], "best": max(rs),
                     "images_per_s": rates[name] * BATCH, "rounds": rs,
                     "first_call_s": first[name], "params": runners[name].params,
                     "final_loss": losses[name]})
    for name in names[1:]:
        ratio = rates[name] / rates["torchcfm"]
        print(f"{name + ' / torchcfm':24s} {ratio:6.2f}")
        rows.append({"ratio": f"{name} / torchcfm", "value": ratio})
    print(f"final loss (mean of the last {max(1, STEPS // 4)} steps): "
          + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
    print("the networks differ in detail (torchcfm: strided-conv downsampling, BLOCKS + 1 "
          "blocks a level on the way up, CHANNELS sinusoidal time features), hence the "
          "parameter counts")
    out = os.environ.get("OUT")
    if out:
        meta = {"device": device_name(), "cpus": os.cpu_count(), "versions": versions,
                "shape": list(SHAPE), "batch": BATCH, "channels": CHANNELS, "mult": list(MULT),
                "blocks": BLOCKS, "attention": ATTN, "groups": GROUPS, "heads": HEADS,
                "steps": STEPS, "rounds": ROUNDS, "log_every": LOG_EVERY, "ndata": NDATA,
                "tfm_torch_compile": runners["tfm torch"].m.compile}
        Path(out, "bench_unet.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                           indent=1))


if __name__ == "__main__":
    main()
