"""Reflow (rectified flow, docs/fewstep.md): the training pairs of a model whose coupling is
``reflow(run = ...)`` are drawn from the trained model of that run folder: ``pairs`` draws x0
of the base, each carried to X_1(x0) by the run's ODE sampler. The draws depend on the model's
seed only, so a resumed run trains on the same pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import Diagnostic, TfmSemanticError
from ..backends.runtime import densities
from .teacher import run_folder

REFLOW_SEED = 7919  # added to the model's seed for the pairs' draws


def teacher_folder(model, root: Path) -> Path:
    """The run folder a reflow coupling names, relative to the model file's folder."""
    return run_folder(root, model.spec.coupling.args["run"], "The reflow coupling")


def draw_pairs(model, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x0, x1): the pairs of the reflow coupling of ``model`` (float32 numpy arrays)."""
    from .run import open_run

    args = model.spec.coupling.args
    folder = teacher_folder(model, root)
    teacher = open_run(folder, model.backend)
    if teacher.spec.sampling or "velocity" not in teacher.spec.fields:
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"The run in '{folder}' ({teacher.spec.model}) has no learned velocity "
            "to draw reflow pairs with.", suggestion="Name the run of a model trained on "
            "velocity (or a target it converts to)."))
    if teacher.shape != model.shape or teacher.spec.base != model.spec.base:
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"The run in '{folder}' ({teacher.spec.model}) starts from "
            f"{teacher.spec.base.name} of shape {list(teacher.shape)}; this model from "
            f"{model.spec.base.name} of shape {list(model.shape)}.",
            suggestion="Reflow a run of the same base and shape."))
    sampler = args.get("sampler") or None
    entry = teacher.sampler_entry(sampler)
    if entry.kind != "ode":
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"The sampler '{entry.name}' ({entry.method}) of the run in '{folder}' "
            "is not an ODE solver; reflow pairs come from the probability-flow ODE.",
            suggestion="Name an ODE sampler of that run: reflow(run = ..., sampler = \"ode\")."))
    n, ops = int(args["pairs"]), teacher.ops
    draw = densities.sampler(ops, model.spec.base, model.shape)
    x0 = np.asarray(ops.numpy(draw(ops.random(ops.key(model.seed + REFLOW_SEED)), n)), np.float32)
    x1 = teacher.sample(n, sampler=entry, x0=x0)
    return x0, np.asarray(x1, np.float32)


def teacher_metrics(model, root: Path) -> dict:
    """What the reflow run's metrics say of the round before it: its folder and its normalised
    path energy (from its metrics.json, where there is one)."""
    folder = teacher_folder(model, root)
    out = {"run": str(folder)}
    path = folder / "metrics.json"
    if path.is_file():
        metrics = json.loads(path.read_text())
        for key in ("normalized_path_energy", "path_energy", "w2"):
            if key in metrics:
                out[f"teacher_{key}"] = metrics[key]
    return out
