"""The PyTorch backend: ``printer`` (sympy -> torch), ``emit`` (one module per model) and
``runtime`` (what emitted modules use). The JAX backend has the same files and the same API."""

from __future__ import annotations

import tempfile
from pathlib import Path

BACKEND = "torch"
OPTIONS = ("device", "compile", "networks", "devices")  # keyword options of build beyond folder and root


def build(model, folder: str | Path | None = None, root: str | Path | None = None, device=None,
          compile: bool | None = None, networks: dict | None = None,
          devices: int | None = None):
    """Emit ``model`` (checked IR) into ``folder`` (default: a temporary folder), import it and
    return a ``TorchModel`` on ``device`` (default: CUDA when there is one) whose data files
    resolve in ``root`` (default: the model file's folder); ``compile``: train through
    torch.compile (default: on CUDA); ``networks``: torch modules of (t, x) in place of
    networks of the file, by name (a model with networks of (t, x) only); ``devices``: the
    number of processes of a data-parallel run this process is one of (started by torchrun
    or ``tfmc run --devices``; runtime/distributed.py)."""
    from . import emit
    from .runtime import TorchEnergyModel, TorchFlowModel, TorchModel

    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="tfm_torch_"))
    module = emit.load(emit.write(model, folder))
    cls = TorchEnergyModel if module.SPEC.sampling else \
        TorchFlowModel if module.SPEC.flows else TorchModel
    extra = {"networks": networks} if networks else {}
    if extra and cls is not TorchModel:
        from ..runtime.model import error
        raise error("networks= replaces networks of (t, x); this model has none.")
    if devices is not None:
        from ..runtime.parallel import check_devices

        check_devices(devices)
        extra["devices"] = int(devices)
    return cls(module, root=Path(root) if root is not None else Path(model.file).resolve().parent,
               device=device, compile=compile, **extra)


def process_rank() -> int:
    """This process's index among a data-parallel run's processes (torchrun's RANK)."""
    import os

    return int(os.environ.get("RANK", "0"))


__all__ = ["BACKEND", "OPTIONS", "build", "process_rank"]
