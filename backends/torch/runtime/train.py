"""Training steps in torch: the objective's loss, its gradient, the optimiser update and the
EMA, in chunks of steps whose losses stay on the device until the chunk ends (one host
synchronisation per chunk; runtime/loop.py drives the chunks).

Each step draws its batch (the objective's ``draw``) on the device from the
model's one training generator, seeded once with the train seed; its state is saved with every
checkpoint, so the result does not depend on how steps are split into chunks or fits, and a
resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import warnings

import torch

from ...runtime import ema as ema_rule
from . import optim


def compiled(loss, device: torch.device):
    """``loss`` through ``torch.compile``: forward and backward become fused kernels (on CUDA
    also captured as CUDA graphs and replayed, mode reduce-overhead); the first call compiles
    (tens of seconds on a CPU). Where compiling fails (a missing C++ compiler, say) training
    goes on with the eager ``loss``, after a warning."""
    cuda = device.type == "cuda"
    fast = torch.compile(loss, mode="reduce-overhead" if cuda else None, dynamic=False)
    state = {"failed": False}

    def run(*batch):
        if not state["failed"]:
            try:
                if cuda:  # each call is a new step for the CUDA graphs' memory pool
                    torch.compiler.cudagraph_mark_step_begin()
                return fast(*batch).clone()  # outlives the next replay
            except Exception as err:  # noqa: BLE001 - any compiler failure falls back
                state["failed"] = True
                warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); "
                              "training goes on uncompiled.", RuntimeWarning, stacklevel=2)
        return loss(*batch)
    return run


def make_update(spec: dict, loss, net: torch.nn.Module, opt: torch.optim.Optimizer, rate,
                ema: list[torch.Tensor], average_gradients=None):
    """One optimiser step on a given batch: (step, *batch) -> loss (a 0-d tensor on the
    device), updating the weights, the optimiser state and the EMA ``ema`` in place; ``loss``
    is ``loss_function``'s (or its compiled form). ``average_gradients(grads)``: the gradients
    averaged over the processes of a data-parallel run, in place, before clipping."""
    decay, limit = float(spec.train.ema), float(spec.train.clip)
    params = list(net.parameters())
    trained = [p for p in params if p.requires_grad]  # not the fixed weights (Model.freeze)
    for p in trained:  # gradients live in place; a weight the loss does not reach (the last bias
        p.grad = torch.zeros_like(p)  # of a potential) gets a zero gradient, as in JAX

    def update(step: int, *batch):
        value = loss(*batch)
        opt.zero_grad(set_to_none=False)
        value.backward()
        if average_gradients is not None:
            average_gradients([p.grad for p in trained])
        if limit > 0:
            optim.clip([p.grad for p in trained], limit)
        for group in opt.param_groups:
            group["lr"] = rate(step)
        opt.step()
        if decay > 0:
            with torch.no_grad():
                torch._foreach_lerp_(ema, params, float(ema_rule.rate(decay, step + 1)))
        return value.detach()

    return update


def make_step(spec, draw, update, rng, layout):
    """One training step: step -> loss, its global batch drawn by ``draw`` from ``rng`` (the
    model's training generator), of which this process computes its rows (``layout.batch``)."""
    batch = spec.train.batch

    def step(k: int):
        return update(k, *layout.batch(draw(rng, batch, k), batch))

    return step


def chunk_runner(step, layout):
    """(first step, length) -> (next step, losses): ``length`` steps, their losses gathered on
    the device (averaged over the processes) and handed to the host once."""
    def run(first: int, length: int):
        losses = [step(first + i) for i in range(length)]
        return first + length, layout.average(torch.stack(losses)).cpu().numpy()
    return run
