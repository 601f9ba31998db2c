"""Run folders that a model file names, relative to its own folder: the first round of a reflow
coupling (driver/reflow.py) and a flow map's teacher read from a run (docs/fewstep.md).

With ``X ~ lagrangian(teacher = b, run = "../runs/moons")`` the network b of this model takes
the trained weights (the EMA, where the run kept one) of the network of the same name in that
run, when training starts from step 0, and keeps them: b is not trained, and the map is
distilled from a velocity that does not move. Either backend may have trained the run (the
weights are shared). Before training starts, the velocity of this model at those weights is
compared with the run's own at a few points: a network of another kind or size, or another
velocity formula (another interpolant or target), is an error that says which. A trained run
of the map holds b in its checkpoint, so sampling or resuming it does not read the teacher's
run again."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import Diagnostic, TfmDataError, TfmSemanticError
from ..backends.runtime import densities

CHECK_TIMES = (0.1, 0.5, 0.9)  # where the two velocities are compared, on 64 base points


def run_folder(root: Path, name: str, what: str) -> Path:
    """The run folder ``name`` (relative to ``root``, the model file's folder), which ``what``
    names; an error where it holds no run."""
    folder = (Path(root) / name).resolve()
    if not (folder / "config.json").is_file():
        raise TfmDataError(Diagnostic(
            "Data", f"{what} names the run folder '{folder}', which holds no run (no "
            "config.json).", suggestion="Train that model there first (tfmc run FILE --out "
            "FOLDER); the folder is named relative to the model file."))
    return folder


def _semantic(message: str, suggestion: str) -> TfmSemanticError:
    return TfmSemanticError(Diagnostic("Semantic", message, suggestion=suggestion))


def load_teacher(model, root: Path) -> None:
    """Fixes ``model``'s teacher network to the weights of the run folder its flow map names
    (``Model.freeze``), checked to give this model the run's velocity."""
    from .run import open_run

    args = model.spec.objective_args
    name = args["teacher"]
    folder = run_folder(root, args["teacher_run"],
                        f"The teacher of the flow map '{args['network']}'")
    run = open_run(folder, model.backend)
    where = f"The run in '{folder}' ({run.spec.model})"
    names = [n.name for n in run.spec.networks]
    if name not in names:
        raise _semantic(f"{where} has no network '{name}' to be the teacher (it has "
                        f"{', '.join(names) or 'none'}).",
                        "Name the run of a model whose velocity network has the teacher's name.")
    ours, theirs = model.spec.network(name), run.spec.network(name)
    if (ours.kind, ours.args) != (theirs.kind, theirs.args):
        raise _semantic(f"{where} trained '{name}' as {_shown(theirs)}; this model declares "
                        f"{_shown(ours)}.", f"Declare network {name} = {_shown(theirs)}, as "
                        "the run did, so that its weights fit.")
    weights = {k: np.asarray(run.ops.numpy(v), np.float32) for k, v in run.weights.items()
               if k.split(".", 1)[0] == name}
    model.freeze(weights)
    _check_velocity(model, run, where, name)


def _shown(network) -> str:
    args = ", ".join(f"{k} = {v}" for k, v in network.args.items())
    return f"{network.kind}({args})"


def _check_velocity(model, run, where: str, name: str) -> None:
    """The velocity of ``model`` at the teacher's weights is the run's, at a few points."""
    if "velocity" not in run.spec.fields or run.shape != model.shape:
        raise _semantic(f"{where} has no learned velocity of shape {list(model.shape)} to "
                        "distil.", "Name the run of a model trained on velocity (or a target "
                        "it converts to), on points of this model's shape.")
    ops = model.ops
    draw = densities.sampler(ops, model.spec.base, model.shape)
    x = np.asarray(ops.numpy(draw(ops.random(ops.key(0)), 64)), np.float32)
    for t in CHECK_TIMES:
        ours, theirs = model.evaluate("velocity", t, x), run.evaluate("velocity", t, x)
        scale = float(np.max(np.abs(theirs))) or 1.0
        if not np.allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale):
            raise _semantic(
                f"{where} trained '{name}' to another velocity than this model gives it: at "
                f"t = {t} the two differ by up to {float(np.max(np.abs(ours - theirs))):.3g}.",
                f"Give {name} the target, interpolant and base the run gave it, so that its "
                "weights mean the same velocity here.")
