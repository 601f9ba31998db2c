"""Data parallelism in torch: one process per device, in a ``torch.distributed`` process group
(NCCL on GPUs, gloo on CPUs), started by ``torchrun`` or by ``tfmc run --devices N``
(driver/launch.py), which set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT.
runtime/parallel.py holds the rule both backends follow.

Every process draws each step's whole global batch from the same generator (a draw costs little
next to the network) and computes the loss on its slice of the rows; after the backward pass the
gradients are averaged over the processes by one all-reduce of a flat buffer, so every process
takes the same optimiser step and the weights stay equal without being sent. The all-reduce is
explicit rather than the DistributedDataParallel wrapper's hooks: it works whatever the loss
does with the network (``torch.func`` transforms, Jacobian-vector products, several calls per
step), which the wrapper's hooks do not see, and the loss stays compiled. The mean of equal
slices' means is the global mean, so the result equals a 1-process run's up to float rounding.

A process that dies makes the others' next collective fail; they stop with ``WorkerLost``, and
only process 0 has written checkpoints
(runtime/model.py says which one is kept).
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

from ....errors import Diagnostic, TfmSemanticError
from ...runtime import parallel

TIMEOUT = datetime.timedelta(seconds=int(os.environ.get("TFM_COLLECTIVE_TIMEOUT", 600)))


def launched() -> int:
    """The processes of the run this process was started in (WORLD_SIZE), 1 when alone."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def device_of_rank(device: torch.device | None) -> torch.device:
    """This process's device: cuda:LOCAL_RANK where there are GPUs (unless a device is named)."""
    if device is not None:
        return device
    if torch.cuda.is_available():
        local, count = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local >= count:
            raise TfmSemanticError(Diagnostic(
                "Semantic", f"Process {local} of this machine has no GPU of its own: the machine "
                f"has {count}.", suggestion=f"Start at most {count} processes per machine "
                "(--devices, --nproc-per-node), or set CUDA_VISIBLE_DEVICES= to use the CPU."))
        return torch.device("cuda", local)
    return torch.device("cpu")


class ProcessLayout(parallel.Layout):
    """This process's place in the process group (joined here if not yet)."""

    sharded = True

    def __init__(self, devices: int | None, device: torch.device):
        world = launched()
        if devices is not None and devices != world:
            raise TfmSemanticError(Diagnostic(
                "Semantic", f"{devices} devices asked for, but this process is one of {world}.",
                suggestion="In torch each device is a process: start them with `tfmc run FILE "
                f"--backend torch --devices {devices}` or `torchrun --nproc-per-node "
                f"{devices} -m tfm run FILE --backend torch`."))
        if not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            alone = {} if "MASTER_ADDR" in os.environ else {  # a group of one (devices=1)
                "init_method": f"tcp://127.0.0.1:{parallel.free_port()}", "rank": 0, "world_size": 1}
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                    timeout=TIMEOUT, **alone)
        self.devices = self.processes = dist.get_world_size()
        self.rank = dist.get_rank()
        self.device = device

    def describe(self) -> dict:
        return super().describe() | {"platform": self.device.type,
                                     "collectives": dist.get_backend()}

    def batch(self, arrays: tuple, n: int) -> tuple:
        return parallel.split_rows(arrays, n, parallel.rows_of(n, self.rank, self.devices))

    def points(self, x):
        rows = parallel.padded(x.shape[0], self.devices)
        x = parallel.pad_rows(torch, x, rows)
        return x[parallel.rows_of(rows, self.rank, self.devices)]

    def rows(self, x, sampler: str | None = None):
        x = super().rows(x, sampler)
        return x[parallel.rows_of(x.shape[0], self.rank, self.devices)]

    def whole(self, n: int) -> int:
        return n * self.devices

    def own(self, arrays: tuple, n: int) -> tuple:
        if any(a.shape[0] != n for a in arrays):  # a draw not made per chain: a kernel's error
            raise ValueError(f"draws for {n} chains have leading sizes "
                             f"{[a.shape[0] for a in arrays]}")
        return self.batch(arrays, n)

    def assemble(self, values, axis: int = 0):
        parts = [torch.empty_like(values) for _ in range(self.devices)]
        _collective(dist.all_gather, parts, values.contiguous())
        return torch.cat(parts, dim=axis)

    def gather(self, values, n: int, axis: int = 0):
        return self.assemble(values, axis).narrow(axis, 0, n)

    def agree(self, length: int) -> int:
        shortest = torch.tensor([length], dtype=torch.int64, device=self.device)
        _collective(dist.all_reduce, shortest, dist.ReduceOp.MIN)
        return int(shortest.item())

    def average(self, losses):
        losses = losses.clone()
        _collective(dist.all_reduce, losses)
        return losses / self.devices

    def average_gradients(self, grads: list[torch.Tensor]) -> None:
        """Each gradient replaced by its mean over the processes: one all-reduce of a flat
        buffer."""
        flat = torch.cat([g.reshape(-1) for g in grads])
        _collective(dist.all_reduce, flat)
        flat /= self.devices
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def stream(self, gen: torch.Generator) -> torch.Generator:
        """A generator of this process's own noise (SDE noise, Hutchinson probes) for the
        rows it computes, seeded from ``gen``'s seed and the rank."""
        own = torch.Generator(gen.device)
        own.manual_seed((gen.initial_seed() * 1_000_003 + 7919 * (self.rank + 1)) % 2**63)
        return own

    def barrier(self) -> None:
        _collective(dist.barrier)


def _collective(op, *args):
    try:
        op(*args)
    except (RuntimeError, dist.DistBackendError) as err:
        raise parallel.WorkerLost(Diagnostic(
            "Runtime", "Another process of this run stopped (a collective failed: "
            f"{(str(err).splitlines() or [''])[0][:200]}).",
            suggestion="See the other processes' messages.")) from None


def leave() -> None:
    """Leaves the process group (at the end of a run)."""
    if dist.is_initialized():
        dist.destroy_process_group()
