"""The JAX backend: ``printer`` (sympy -> jnp), ``emit`` (one module per model) and ``runtime``
(what emitted modules use). The torch backend has the same files and the same API."""

from __future__ import annotations

import tempfile
from pathlib import Path

BACKEND = "jax"
OPTIONS: tuple[str, ...] = ()  # keyword options of build beyond folder and root


def build(model, folder: str | Path | None = None, root: str | Path | None = None):
    """Emit ``model`` (checked IR) into ``folder`` (default: a temporary folder), import it and
    return a ``JaxModel`` whose data files resolve in ``root`` (default: the model file's
    folder)."""
    from . import emit
    from .runtime import JaxEnergyModel, JaxFlowModel, JaxModel

    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="tfm_jax_"))
    module = emit.load(emit.write(model, folder))
    cls = JaxEnergyModel if module.SPEC.sampling else \
        JaxFlowModel if module.SPEC.flows else JaxModel
    return cls(module, root=Path(root) if root is not None else Path(model.file).resolve().parent)


__all__ = ["BACKEND", "OPTIONS", "build"]
