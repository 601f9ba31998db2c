"""Data parallelism in JAX over a ``jax.sharding.Mesh`` of devices (runtime/parallel.py holds
the rule both backends follow).

A mesh has one axis, ``batch``. The training state (weights, optimiser state, EMA, step) is
replicated on every device; each step draws its global batch as one device would and constrains
it to be sharded along its rows, and XLA's partitioner splits the step's work by rows and turns
the mean over the batch, and so the gradient, into an all-reduce. The fused ``lax.scan`` chunk
stays one compiled program. The draw, and with it a coupling's assignment or Sinkhorn plan,
runs replicated on every device over the whole global batch before the split, and random draws
do not depend on the layout (``jax_threefry_partitionable``, JAX's default), so a run on N
devices equals the 1-device run. MCMC chains and SMC particles are sharded by rows the same way
(``rows``).

On several machines (``jax.distributed.initialize``, called by ``initialize`` here) the mesh
holds every process's devices; each process runs the same program, and results sharded over
processes are gathered with ``multihost_utils.process_allgather``.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ....errors import Diagnostic, TfmSemanticError
from ...runtime import parallel

AXIS = "batch"


def initialize(coordinator: str | None, processes: int | None, process_id: int | None,
               devices: int | None = None) -> tuple[int, bool]:
    """Joins a run over several machines (``jax.distributed.initialize``): the coordinator's
    address, the number of processes and this one's id, or where they are None, what JAX reads
    from the environment (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID, or a
    cluster's own variables such as SLURM's). Returns (devices: ``devices`` or all of every
    process's, whether this is process 0)."""
    if not jax.distributed.is_initialized():
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=processes,
                                   process_id=process_id)
    return devices or jax.device_count(), jax.process_index() == 0


class MeshLayout(parallel.Layout):
    """The first ``devices`` devices of the run (all processes' devices: ``jax.devices()``)
    in a one-axis mesh."""

    sharded = True

    def __init__(self, devices: int):
        available = jax.devices()
        if devices > len(available):
            raise TfmSemanticError(Diagnostic(
                "Semantic", f"{devices} devices asked for; JAX sees {len(available)} "
                f"({available[0].platform}).", suggestion=_more_devices(available[0].platform)))
        self.devices = int(devices)
        self.processes = jax.process_count()
        self.rank = jax.process_index()
        self.platform = available[0].platform
        self.mesh = Mesh(np.asarray(available[:devices]), (AXIS,))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.rows_sharding = NamedSharding(self.mesh, PartitionSpec(AXIS))

    def describe(self) -> dict:
        return super().describe() | {"platform": self.platform,
                                     "device_kind": self.mesh.devices.flat[0].device_kind}

    def state(self, state):
        return jax.device_put(state, self.replicated)

    def batch(self, arrays: tuple, n: int) -> tuple:
        # drawn whole on every device (replicated: the draw, and a coupling's assignment or
        # plan, see the global batch as on one device), then each device keeps its rows
        return tuple(jax.lax.with_sharding_constraint(
            jax.lax.with_sharding_constraint(a, self.replicated), self.rows_sharding)
            if getattr(a, "ndim", 0) and a.shape[0] == n else a for a in arrays)

    def points(self, x):
        return self._by_rows(parallel.pad_rows(jax.numpy, x,
                                               parallel.padded(x.shape[0], self.devices)))

    def rows(self, x, sampler: str | None = None):
        return self._by_rows(super().rows(x, sampler))

    def _by_rows(self, x):
        if isinstance(x, jax.core.Tracer):  # inside a compiled program
            return jax.lax.with_sharding_constraint(x, self.rows_sharding)
        return jax.device_put(x, self.rows_sharding)

    def gather(self, values, n: int, axis: int = 0):
        if self.processes > 1 and not getattr(values, "is_fully_addressable", True):
            from jax.experimental import multihost_utils

            values = multihost_utils.process_allgather(values, tiled=True)
        values = np.asarray(values)
        return values[(slice(None),) * axis + (slice(0, n),)]

    def agree(self, length: int) -> int:
        from jax.experimental import multihost_utils

        return int(multihost_utils.broadcast_one_to_all(np.int32(length)))

    def out_sharding(self):
        """How a training chunk's outputs (state, losses) are laid out: replicated."""
        return self.replicated


def _more_devices(platform: str) -> str:
    if platform == "cpu":
        flags = os.environ.get("XLA_FLAGS", "")
        return ("On a CPU, JAX makes N devices with XLA_FLAGS=--xla_force_host_platform_device_"
                "count=N set before it starts (`tfmc run --devices N` sets it)"
                + (f"; XLA_FLAGS is now '{flags}'." if flags else "."))
    return "Ask for at most as many devices as the machine has (CUDA_VISIBLE_DEVICES limits them)."
