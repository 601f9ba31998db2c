"""Data parallelism, the same rule in both backends (docs/distributed.md): every step draws its
whole global batch as on one device (the same keys, the same generator, the same coupling over
the whole batch), and a layout then decides which rows each device computes. So an N-device run
takes the same steps as a 1-device run with the same seed and global batch, up to the order of
float additions in the mean over the batch and in the gradient's all-reduce.

A ``Layout`` is where the backends differ: one device (this class, which changes nothing); a
JAX mesh (``backends/jax/runtime/sharding.py``: the batch sharded along its rows, the weights
and optimiser state replicated, XLA partitioning each compiled program); torch processes
(``backends/torch/runtime/distributed.py``: one process per device, each computing its slice
of the rows, the gradients averaged by an all-reduce). Sampling and log-densities use the same
layout: the points are split over the devices and gathered back in order.
"""

from __future__ import annotations

import math
import socket

from ...errors import Diagnostic, TfmRuntimeError, TfmSemanticError


class WorkerLost(TfmRuntimeError):
    """A collective operation failed: another process of the run stopped."""


class Layout:
    """One device: every method leaves its arguments as they are."""

    devices = 1  # devices sharing each batch (all processes together)
    processes = 1  # processes running the program (JAX: machines; torch: one per device)
    rank = 0  # this process's index
    sharded = False  # whether the program runs through the data-parallel code path

    @property
    def main(self) -> bool:
        """Whether this process writes the run folder (checkpoints, metrics, plots, logs)."""
        return self.rank == 0

    def describe(self) -> dict:
        """How a run is laid out, for config.json and ``tfmc info``."""
        return {"devices": self.devices, "processes": self.processes,
                "sharded": self.sharded}

    def state(self, state):
        """The training state placed for the chunks (JAX: replicated over the mesh)."""
        return state

    def batch(self, arrays: tuple, n: int) -> tuple:
        """A step's global batch of ``n`` rows, laid out: each array whose leading axis has
        the ``n`` rows is split over the devices (JAX: a sharding; torch: this process's
        slice); the others (a scalar, a shared constant) stay whole."""
        return arrays

    def points(self, x):
        """Points to sample from or score, padded to a multiple of the devices (by repeating
        the last point) and laid out by rows; ``gather`` undoes it."""
        return x

    def rows(self, x, sampler: str | None = None):
        """MCMC chains or SMC particles (n, ...) laid out by rows without padding (their
        number must split over the devices, or an error names ``sampler``): JAX shards them
        over the mesh; each torch process keeps its slice."""
        check_rows(x.shape[0], self.devices, sampler)
        return x

    def whole(self, n: int) -> int:
        """The chains or particles of all processes together, from this process's ``n`` (a JAX
        array holds them all; torch: ``n`` times the processes)."""
        return n

    def own(self, arrays: tuple, n: int) -> tuple:
        """This process's rows of random numbers drawn for all ``n`` chains (each array's
        leading axis has the ``n`` rows), so that a chain's draws do not depend on the number
        of devices (torch: its slice of each; a JAX array keeps them all)."""
        return arrays

    def assemble(self, values, axis: int = 0):
        """All processes' rows (along ``axis``) of ``values`` (chains or particles), on the
        device, in order (torch: an all-gather; a JAX array holds them all)."""
        return values

    def gather(self, values, n: int, axis: int = 0):
        """Every device's rows of ``values`` back in order on the host's side, cut to ``n``
        along ``axis`` (the points' axis)."""
        return values

    def stream(self, key):
        """The key of the noise for this process's rows (SDE noise, Hutchinson probes): the
        key itself where draws are laid out like the points (JAX), else one per process."""
        return key

    def agree(self, length: int) -> int:
        """The chunk length every process takes: each times its own steps, but all must run
        the same chunks (process 0's choice, or the shortest)."""
        return length

    def average(self, losses):
        """A step's loss (or a chunk's losses) averaged over the processes' slices (torch: an
        all-reduce; a JAX program computes the mean over the global batch itself)."""
        return losses


def check_devices(devices) -> None:
    """``devices=`` of ``tfm.load``: a whole number."""
    if not isinstance(devices, int) or isinstance(devices, bool) or devices < 1:
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"devices= takes a whole number of devices (1 or more), not {devices!r}."))


def check_rows(n: int, devices: int, sampler: str | None = None) -> None:
    """``n`` chains or particles (of the sampler named ``sampler``) split evenly over
    ``devices``."""
    if n % devices:
        owner = f" of the sampler '{sampler}'" if sampler else ""
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"{n} chains or particles{owner} do not split over {devices} devices.",
            suggestion=f"Use a multiple of {devices} (chains, or particles times replicas), or "
            "another number of devices."))


def check_batch(batch: int, devices: int) -> None:
    """The global batch splits into equal parts, one per device."""
    if devices > 1 and batch % devices:
        lower = batch - batch % devices
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"The batch of {batch} does not split over {devices} devices.",
            suggestion=f"Use a batch that is a multiple of {devices} (e.g. {lower or devices} "
            f"or {lower + devices}), or another number of devices."))


def padded(n: int, devices: int) -> int:
    """The multiple of ``devices`` at or above ``n`` (at least ``devices``)."""
    return max(1, math.ceil(n / devices)) * devices


def pad_rows(xp, x, rows: int):
    """``x`` with its last row repeated until it has ``rows`` rows."""
    extra = rows - x.shape[0]
    if extra <= 0:
        return x
    last = xp.broadcast_to(x[-1:], (extra,) + tuple(x.shape[1:]))
    return xp.concat([x, last], axis=0)


def rows_of(n: int, rank: int, world: int) -> slice:
    """The rows of a global batch of ``n`` that process ``rank`` of ``world`` computes."""
    size = n // world
    return slice(rank * size, (rank + 1) * size)


def split_rows(arrays: tuple, n: int, part: slice) -> tuple:
    """The ``part`` rows of each array whose leading axis has ``n`` rows; the others whole."""
    return tuple(a[part] if getattr(a, "ndim", 0) and a.shape[0] == n else a for a in arrays)


def free_port() -> int:
    """A TCP port free on this machine now (a process group's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
