"""Checkpoints: one safetensors file per run, written atomically (a temporary file in the same
folder, flushed to disk, then renamed over the old one), so a killed run always leaves the last
good checkpoint whole.

Tensor names: ``params/<network>.<layer>.weight`` (runtime/init.py), ``ema/...`` (the same names),
``opt/<index>`` (the optimiser state's leaves, backend-specific), ``rng/<name>`` (torch: the
training generator's state, uint8), ``step`` and ``loss`` (the loss
of every step so far). Metadata: format, model, backend, seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ...errors import Diagnostic, TfmDataError

FORMAT = "tfm-checkpoint-1"
NAME = "checkpoint.safetensors"


def save(path: str | Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    arrays = {k: np.asarray(v, order="C") for k, v in tensors.items()}  # keeps 0-d arrays 0-d
    save_file(arrays, str(tmp), metadata={"format": FORMAT, **metadata})
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # like the run's other files
    os.replace(tmp, path)


def load(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise TfmDataError(Diagnostic("Data", f"No checkpoint at '{path}'.",
                                      suggestion="Train first with `tfmc run`, or check the run "
                                      "folder."))
    try:
        from safetensors import safe_open

        with safe_open(str(path), "numpy") as fh:
            metadata = dict(fh.metadata() or {})
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise TfmDataError(Diagnostic("Data", f"'{path}' is not a readable checkpoint: {err}"))
    if metadata.get("format") != FORMAT:
        raise TfmDataError(Diagnostic("Data", f"'{path}' is not a tfm checkpoint "
                                      f"(format {metadata.get('format')!r})."))
    return tensors, metadata


def step_of(path: str | Path) -> int:
    """The training step a checkpoint holds (0 for one written before any step)."""
    tensors, _ = load(path)
    return int(tensors["step"][0]) if "step" in tensors else 0


def optimizer_id(train) -> str:
    """The optimiser settings of a train block (a spec Train) that a resumed run must share, as
    JSON."""
    data = train.to_json()
    return json.dumps({k: data[k] for k in ("optimizer", "lr_schedule", "clip", "ema")},
                      sort_keys=True)


def _finite(value):
    """JSON has no NaN or inf: they are written as null."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: str | Path, value) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_finite(value), indent=1, sort_keys=False, allow_nan=False) + "\n")
    os.replace(tmp, path)
