"""The JAX backend: ``printer`` (sympy -> jnp), ``emit`` (one module per model) and ``runtime``
(what emitted modules use). The torch backend has the same files and the same API."""

from __future__ import annotations

import tempfile
from pathlib import Path

BACKEND = "jax"
OPTIONS: tuple[str, ...] = ("networks", "devices")  # keyword options of build beyond folder and root


def build(model, folder: str | Path | None = None, root: str | Path | None = None,
          networks: dict | None = None, devices: int | None = None):
    """Emit ``model`` (checked IR) into ``folder`` (default: a temporary folder), import it and
    return a ``JaxModel`` whose data files resolve in ``root`` (default: the model file's
    folder); ``networks``: Equinox modules of (t, x) in place of networks of the file, by name
    (a model with networks of (t, x) only); ``devices``: train, sample and score data parallel
    over a mesh of that many devices (runtime/sharding.py)."""
    from . import emit
    from .runtime import JaxEnergyModel, JaxFlowModel, JaxModel

    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="tfm_jax_"))
    module = emit.load(emit.write(model, folder))
    cls = JaxEnergyModel if module.SPEC.sampling else \
        JaxFlowModel if module.SPEC.flows else JaxModel
    extra = {"networks": networks} if networks else {}
    if extra and cls is not JaxModel:
        from ..runtime.model import error
        raise error("networks= replaces networks of (t, x); this model has none.")
    if devices is not None:
        from ..runtime.parallel import check_devices

        check_devices(devices)
        extra["devices"] = int(devices)
    return cls(module, root=Path(root) if root is not None else Path(model.file).resolve().parent,
               **extra)


def process_rank() -> int:
    """This process's index among the run's processes (several machines: jax.distributed)."""
    import jax

    return jax.process_index()


__all__ = ["BACKEND", "OPTIONS", "build", "process_rank"]
