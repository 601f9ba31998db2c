"""Training steps: the emitted loss, its gradient, the optimiser update and the EMA, in chunks
of steps whose losses stay on the device until the chunk ends (one host synchronisation per
chunk, shared/loop.py drives the chunks).

Each step draws its batch (base, target, coupling, time, latent z) on the device from the
model's one training generator, seeded once with the train seed; its state is saved with every
checkpoint, so the result does not depend on how steps are split into chunks or fits, and a
resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from . import optim

def time_sampler(entry: dict):
    """(gen, n) -> t of shape (n,) for the time law ``entry``."""
    args = entry["args"]
    if entry["name"] == "logit_normal":
        mean, std = float(args["mean"]), float(args["std"])
        return lambda gen, n: torch.sigmoid(
            mean + std * torch.randn(n, generator=gen, device=gen.device))
    low, high = float(args["low"]), float(args["high"])
    if (low, high) == (0.0, 1.0):
        return lambda gen, n: torch.rand(n, generator=gen, device=gen.device)
    return lambda gen, n: low + (high - low) * torch.rand(n, generator=gen, device=gen.device)


def loss_function(spec: dict, module, net: torch.nn.Module):
    """loss(t, x0, x1, z): the mean over the batch and the elements of each trained network's
    integrand, summed over the networks (MATH.md section 2, the loss L[f])."""
    shape = tuple(spec["shape"])

    def loss(t, x0, x1, z):
        tb = t.reshape((-1,) + (1,) * len(shape))
        xt = module.interpolant(tb, x0, x1, z)
        terms = module.losses(tb, x0, x1, z, net(t, xt))
        return sum(torch.mean(_full(v, xt)) for v in terms.values())
    return loss


def _full(value, like: torch.Tensor) -> torch.Tensor:
    """``value`` (a tensor that broadcasts to ``like``, or a number) as a float32 tensor of
    ``like``'s shape: a term constant in x still counts once per element."""
    if isinstance(value, torch.Tensor) and value.shape == like.shape:
        return value.to(torch.float32)
    return torch.broadcast_to(torch.as_tensor(value, device=like.device), like.shape).to(torch.float32)


def ema_rate(decay: float, count: int) -> float:
    """The debiased EMA's rate at update ``count`` (1, 2, ...), in float32 like the JAX backend:
    the first rate is exactly 1, so the EMA starts as a copy."""
    d = np.float32(decay)
    return float((np.float32(1) - d) / (np.float32(1) - d ** np.float32(count)))


def compiled(loss, device: torch.device):
    """``loss`` through ``torch.compile``: forward and backward become fused kernels (on CUDA
    also captured as CUDA graphs and replayed, mode reduce-overhead); the first call compiles
    (tens of seconds on a CPU). Where compiling fails (a missing C++ compiler, say) training
    goes on with the eager ``loss``, after a warning."""
    cuda = device.type == "cuda"
    fast = torch.compile(loss, mode="reduce-overhead" if cuda else None, dynamic=False)
    state = {"failed": False}

    def run(t, x0, x1, z):
        if not state["failed"]:
            try:
                if cuda:  # each call is a new step for the CUDA graphs' memory pool
                    torch.compiler.cudagraph_mark_step_begin()
                return fast(t, x0, x1, z).clone()  # outlives the next replay
            except Exception as err:  # noqa: BLE001 - any compiler failure falls back
                state["failed"] = True
                warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); "
                              "training goes on uncompiled.", RuntimeWarning, stacklevel=2)
        return loss(t, x0, x1, z)
    return run


def make_update(spec: dict, loss, net: torch.nn.Module, opt: torch.optim.Optimizer, rate,
                ema: list[torch.Tensor]):
    """One optimiser step on a given batch: (step, t, x0, x1, z) -> loss (a 0-d tensor on the
    device), updating the weights, the optimiser state and the EMA ``ema`` in place; ``loss``
    is ``loss_function``'s (or its compiled form)."""
    tr = spec["train"]
    decay, limit = float(tr["ema"]), float(tr["clip"])
    params = list(net.parameters())
    for p in params:  # gradients live in place; a weight the loss does not reach (the last bias
        p.grad = torch.zeros_like(p)  # of a potential) gets a zero gradient, as in JAX

    def update(step: int, t, x0, x1, z):
        value = loss(t, x0, x1, z)
        opt.zero_grad(set_to_none=False)
        value.backward()
        if limit > 0:
            optim.clip([p.grad for p in params], limit)
        for group in opt.param_groups:
            group["lr"] = rate(step)
        opt.step()
        if decay > 0:
            with torch.no_grad():
                torch._foreach_lerp_(ema, params, ema_rate(decay, step + 1))
        return value.detach()

    return update


def make_step(spec: dict, draw, update, gen: torch.Generator, device):
    """One training step: step -> loss, its batch drawn from ``gen``."""
    shape = tuple(spec["shape"])
    batch = int(spec["train"]["batch"])
    draw_time = time_sampler(spec["time_law"])
    latent = spec["latent"]
    zero = torch.zeros((), device=device)

    def step(k: int):
        x0, x1 = draw(gen, batch)
        t = draw_time(gen, batch)
        z = torch.randn((batch,) + shape, generator=gen, device=device) if latent else zero
        return update(k, t, x0, x1, z)

    return step


def chunk_runner(step, device):
    """(first step, length) -> (next step, losses): ``length`` steps, their losses gathered on
    the device and handed to the host once."""
    def run(first: int, length: int):
        losses = [step(first + i) for i in range(length)]
        return first + length, torch.stack(losses).cpu().numpy()
    return run
