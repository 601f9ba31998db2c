"""Driving a backend: build a model object from a .tfm file, train it into a run folder, reopen
a run folder. Backend-agnostic: both backends' model objects have the same API.

A run folder holds ``config.json`` (the resolved settings), ``model.tfm`` (the source text it was
built from), ``<model>_<backend>.py`` (the emitted module), ``checkpoint.safetensors``,
``metrics.json``, ``samples.npy``, ``samples.png``, ``loss.png`` and ``trajectories.png``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from .. import __version__
from ..compiler.pipeline import Compilation, compile_model, compile_text
from ..errors import Diagnostic, TfmDataError, TfmError, TfmSemanticError
from ..backends import BACKENDS
from ..backends.runtime import checkpoint, energy_model, metrics as metric_fns
from ..backends.codegen.spec import spec as spec_of
from ..backends.runtime.energy_sampling import TRANSPORTS
from ..backends.runtime.samplers import kind_of
from ..backends.runtime.spec import DEFAULT_SAMPLER

DEQUANTISATION = ("none: the NLL is the continuous density of the data as given; for integer "
                  "pixel values it bounds the discrete likelihood only after uniform noise is "
                  "added to the data (dequantisation) before training")
EVAL_POINTS = 2000  # the samples a trained model is evaluated with (TFM_EVAL_POINTS overrides)
NLL_POINTS = 1000  # of which at most this many (and at most half) are scored for the NLL


def eval_points() -> int:
    """The samples ``tfmc run`` evaluates a trained model with: EVAL_POINTS, or the environment
    variable TFM_EVAL_POINTS (fewer for a quicker, noisier evaluation; the test suite uses 500)."""
    text = os.environ.get("TFM_EVAL_POINTS")
    if text is None:
        return EVAL_POINTS
    if not text.strip().isdigit() or int(text) < 2:
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"TFM_EVAL_POINTS is '{text}'; it is the number of samples a trained "
            "model is evaluated with.", suggestion=f"Set it to a whole number of at least 2 "
            f"(the default is {EVAL_POINTS}), or unset it."))
    return int(text)


def nll_points(n: int) -> int:
    """The target draws scored for the NLL when evaluating with ``n`` samples."""
    return min(NLL_POINTS, max(1, n // 2))


def backend_module(name: str):
    if name not in BACKENDS:
        raise TfmSemanticError(Diagnostic("Semantic", f"Unknown backend '{name}'.",
                                          suggestion="Backends: " + ", ".join(BACKENDS) + "."))
    if importlib.util.find_spec(f"tfm.backends.{name}") is None:
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"The {name} backend is not part of this version of tfm.",
            suggestion="Use --backend jax."))
    try:
        return importlib.import_module(f"tfm.backends.{name}")
    except ImportError as err:
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"The {name} backend needs packages that are not installed ({err}).",
            suggestion=f"pip install 'tfmc[{name}]'")) from None


def backend_emit(name: str):
    """The emitter module (``emit``) of backend ``name``."""
    backend_module(name)
    return importlib.import_module(f"tfm.backends.{name}.emit")


def build(path: str | Path, backend: str = "jax", folder: str | Path | None = None,
          compilation: Compilation | None = None, **options):
    """The model object for the .tfm file ``path`` (``compilation``: its compiled form, when the
    caller has it already); the emitted module goes into ``folder``. ``options`` go to the
    backend's ``build`` (torch: ``device``, ``compile``)."""
    path = Path(path)
    compilation = compilation or compile_model(path)
    return _build(compilation, path.resolve(), path.read_text(), backend, folder, **options)


def _build(compilation: Compilation, source: Path, text: str, backend: str, folder, **options):
    """Data files and imports resolve in the source's folder."""
    module = backend_module(backend)
    unknown = sorted(set(options) - set(module.OPTIONS))
    if unknown:
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"The {backend} backend takes no option {', '.join(map(repr, unknown))}.",
            suggestion=f"Its options: {', '.join(module.OPTIONS) or 'none'}."))
    model = module.build(compilation.model, folder, root=source.parent, **options)
    model.source_path, model.source_text = source, text
    if model.spec.coupling.name == "reflow":  # drawn when training asks for them
        from .reflow import draw_pairs

        model.reflow_pairs = partial(draw_pairs, model, source.parent)
    if model.spec.frozen:  # read when training starts from step 0 (driver/teacher.py)
        from .teacher import load_teacher

        model.frozen_source = partial(load_teacher, model, source.parent)
    return model


def run(path: str | Path, backend: str = "jax", out: str | Path | None = None,
        steps: int | None = None, seed: int | None = None, resume: bool = False,
        progress: bool = True, log=print, compilation: Compilation | None = None,
        force: bool = False, devices: int | None = None) -> dict | None:
    """Train the model of ``path`` and write a complete run folder; returns the metrics. A
    folder that already holds a run is continued with ``resume``, replaced with ``force``, and
    otherwise left alone (an error). ``devices``: data parallel on that many devices
    (docs/distributed.md); of several processes, the first alone writes the run folder and
    returns the metrics (the others return None)."""
    path = Path(path)
    out = Path(out) if out is not None else default_out(path)
    compilation = compilation or compile_model(path)
    main = backend_module(backend).process_rank() == 0
    if not main:  # another process of the run: computes its share, writes nothing
        log, progress = (lambda message: None), False
    if not resume and main:
        _claim(out, force)
    own = out if main else Path(tempfile.mkdtemp(prefix="tfm_worker_"))  # what it writes
    try:
        if compilation.model.sampling and not compilation.model.flow:
            result = _run_samplers(path, backend, own, seed, resume, log, compilation, devices)
        else:
            result = _train(path, backend, out, own, compilation, steps, seed, resume, progress,
                            log, devices)
    finally:
        if not main:
            shutil.rmtree(own, ignore_errors=True)
    return result if main else None


def _train(path: Path, backend: str, out: Path, own: Path, compilation, steps, seed,
           resume: bool, progress: bool, log, devices) -> dict:
    """A model that trains: its checkpoint checked before anything is written, then trained and
    evaluated."""
    spec_name = compilation.model.name
    total = int(steps if steps is not None else compilation.model.train["steps"])
    train = spec_of(compilation.model).train
    meta = _resumable(out, spec_name, seed, total, checkpoint.optimizer_id(train), backend) \
        if resume else None
    _make_folder(own)
    return _train_and_evaluate(path, backend, out, own, compilation, total, seed, meta, resume,
                               progress, log, devices)


def _train_and_evaluate(path: Path, backend: str, out: Path, own: Path, compilation, total: int,
                        seed, meta, resume: bool, progress: bool, log, devices) -> dict:
    """``run``'s work once the run folder is claimed; ``own``: where this process writes
    (the run folder, or a scratch folder for processes other than the first)."""
    options = {} if devices is None else {"devices": devices}
    model = build(path, backend, own, compilation, **options)
    if model.energy_samplers:  # a target without an energy fails now, not after training
        model.target_energy  # noqa: B018
    if meta is not None:
        model.seed = int(meta.get("seed", model.seed))
    elif seed is not None:
        model.reset(seed)
    (own / "model.tfm").write_text(model.source_text)
    checkpoint.write_json(own / "config.json", {
        "model": model.spec.model, "source": str(model.source_path), "backend": backend,
        "tfm_version": __version__, "steps": total, "seed": model.seed,
        "layouts": _layouts(out, resume, model), "spec": model.spec.to_json()})
    started = time.perf_counter()
    if model.spec.objective != "forward_kl":  # (a flow_mcmc sampler trains such a flow)
        model.fit(steps=total, out=out, resume=resume, progress=progress, log=log)
    elapsed = time.perf_counter() - started
    trained = model.last_fit_steps
    result = {"backend": backend, "steps": model.step, "train_seconds": round(elapsed, 3),
              "steps_per_second_with_compile": round(trained / elapsed, 1) if trained else None,
              "final_loss": float(np.mean(model.history[-100:])) if model.history else None}
    from ..backends.runtime import plots  # matplotlib: only where plots are drawn

    try:
        if model.spec.flows:
            from .flows import evaluate_flow

            result = evaluate_flow(model, own, progress=progress, log=log) | result
            if model.spec.objective == "forward_kl":  # trained by its flow_mcmc sampler
                result |= {"steps": model.step, "train_seconds": None,
                           "final_loss": float(np.mean(model.history[-100:]))
                           if model.history else None}
            model.save(own / checkpoint.NAME)
        elif model.energy_samplers:  # after training, the samplers of the target's energy
            from .sampling import run_samplers

            transport = evaluate(model, own, prefix="transport_", log=log)
            result = run_samplers(model, own, log, progress=progress) | result
            result["transport"] = transport
        else:
            result = evaluate(model, own, log=log) | result
        plots.loss(own / "loss.png", np.asarray(model.history), f"{model.spec.model}: loss")
    except TfmError as err:  # e.g. non-finite samples: the checkpoint and the loss stay
        checkpoint.write_json(own / "metrics.json", result | {"error": str(err)})
        raise
    checkpoint.write_json(own / "metrics.json", result)
    written = sorted(p.name for p in own.iterdir() if p.is_file())
    log(f"wrote {own}/: {', '.join(written)}")
    return result


def _run_samplers(path: Path, backend: str, out: Path, seed, resume: bool, log,
                  compilation: Compilation, devices: int | None = None) -> dict:
    """A model without networks: its samplers run into the run folder (driver/sampling.py),
    their chains or particles split over ``devices``."""
    from .sampling import run_samplers

    if resume:
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"Model {compilation.model.name} trains nothing, so there is nothing to "
            "resume.", suggestion="Run it again without --resume; `tfmc sample RUN -n N` "
            "continues its chains."))
    _make_folder(out)
    model = build(path, backend, out, compilation,
                  **({} if devices is None else {"devices": devices}))
    if seed is not None:
        model.seed = int(seed)
    (out / "model.tfm").write_text(model.source_text)
    checkpoint.write_json(out / "config.json", {
        "model": model.spec.model, "source": str(model.source_path), "backend": backend,
        "tfm_version": __version__, "seed": model.seed,
        "layouts": [{"from_step": 0, **model.layout.describe()}], "spec": model.spec.to_json()})
    result = run_samplers(model, out, log)
    checkpoint.write_json(out / "metrics.json", result)
    written = sorted(p.name for p in out.iterdir() if p.is_file())
    log(f"wrote {out}/: {', '.join(written)}")
    return result


def _layouts(out: Path, resume: bool, model) -> list[dict]:
    """How the run was laid out on devices, one entry per start or resume (``tfmc info``)."""
    earlier = []
    if resume and (out / "config.json").is_file():
        try:
            earlier = json.loads((out / "config.json").read_text()).get("layouts", [])
        except (OSError, ValueError):
            earlier = []
    batch = int(model.spec.train.batch)
    start = checkpoint.step_of(out / checkpoint.NAME) if resume else int(model.step)
    return earlier + [{"from_step": start,
                       **model.layout.describe(),
                       "batch_per_device": batch // model.layout.devices}]


def default_out(path: Path) -> Path:
    """The run folder of ``tfmc run FILE`` without --out."""
    return Path("runs") / Path(path).stem


RUN_FILES = (checkpoint.NAME, energy_model.STATE, "metrics.json", "config.json")


def _claim(out: Path, force: bool) -> None:
    """A folder that holds a run is not overwritten by a new run unless ``force``; with
    ``force`` its checkpoint, chains and metrics go first, so none of them is left stale."""
    held = [name for name in RUN_FILES if (out / name).exists()]
    if not held:
        return
    if not force:
        what = ""
        if (out / "config.json").is_file():
            try:
                config = json.loads((out / "config.json").read_text())
                what = f" (model {config.get('model')}, {config.get('backend')} backend)"
            except (OSError, ValueError):
                pass
        raise TfmDataError(Diagnostic(
            "Data", f"The folder '{out}' already holds a run{what}; nothing was changed there.",
            suggestion="Continue it with --resume, replace it with --force, or choose another "
            "--out."))
    for name in held:
        (out / name).unlink()


def _make_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TfmDataError(Diagnostic("Data", f"Cannot create the run folder '{out}': "
                                      f"{err.strerror}.")) from None


def _resumable(out: Path, model_name: str, seed: int | None, total: int,
               optimizer: str, backend: str) -> dict:
    """The checkpoint's metadata, checked before anything in the run folder is written."""
    if not (out / checkpoint.NAME).exists():
        raise TfmDataError(Diagnostic("Data", f"Nothing to resume: no checkpoint in '{out}'.",
                                      suggestion="Run without --resume to start training."))
    tensors, meta = checkpoint.load(out / checkpoint.NAME)
    at = int(tensors["step"][0]) if "step" in tensors else 0
    if at > total:
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"The checkpoint in '{out}' is at step {at}, past the {total} steps asked "
            "for; nothing was changed there.", suggestion="Ask for at least as many steps."))
    if meta.get("model") != model_name:
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"The run in '{out}' holds model '{meta.get('model')}', not "
            f"'{model_name}'; nothing was changed there.", suggestion="Resume with the model "
            "file that started the run, or choose another --out."))
    if meta.get("optimizer", optimizer) != optimizer:
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"The run in '{out}' was trained with other optimiser settings "
            f"({meta.get('optimizer')}); nothing was changed there.", suggestion="Resume with "
            "the same optimizer, lr_schedule, clip and ema."))
    if meta.get("backend", backend) != backend:
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"The run in '{out}' was trained with the {meta.get('backend')} backend; "
            "training resumes with the backend that started it; nothing was changed there.",
            suggestion=f"Resume with --backend {meta.get('backend')} (sampling and log-densities "
            "work with either backend)."))
    if seed is not None and str(seed) != meta.get("seed"):
        raise TfmSemanticError(Diagnostic(
            "Semantic", f"The run in '{out}' was trained with seed {meta.get('seed')}; a "
            "resumed run keeps its seed.", suggestion="Leave out --seed with --resume."))
    return meta


def evaluate(model, out: Path | None = None, n: int | None = None, seed: int = 0,
             prefix: str = "", log=None) -> dict:
    """Metrics of a trained model against ``n`` fresh target draws (default: ``eval_points()``;
    docs/maths.md §6); with ``out`` also the samples and plots (their file names after
    ``prefix``). ``log`` gets a status line before each step that takes time."""
    log = log or (lambda message: None)
    n = eval_points() if n is None else int(n)
    from ..backends.runtime import plots

    name = model.spec.model
    entry = model.sampler_entry(None)
    if kind_of(entry).start(entry) != "base":  # it ends at the base, not the target
        entry = DEFAULT_SAMPLER if "velocity" in model.spec.fields else None
    if entry is None:
        return {"sampler": None}
    result: dict = {"sampler": entry.name, "eval_points": n,
                    "interval": list(model.interval(entry))}
    log(f"evaluating: {n} samples with '{entry.name}' ({entry.method})")
    cond = None  # a conditioned model samples the classes of its reference draws
    if model.spec.conditioned:
        reference, cond = model.labelled_reference(n)
    samples = model.sample(n, sampler=entry, seed=seed, cond=cond)
    if cond is None:
        reference = _reference(model, n)
    if reference is not None:
        log(f"evaluating: W2 and MMD against {n} target draws")
        result["w2"] = metric_fns.w2(samples, reference)
        result["mmd"] = metric_fns.mmd(samples, reference)
        if cond is not None and model.spec.classes:  # each class's against that class's draws
            log("evaluating: W2 per class")
            result["w2_per_class"] = {int(k): metric_fns.w2(samples[cond == k],
                                                            reference[cond == k])
                                      for k in np.unique(cond) if np.sum(cond == k) > 1}
    if out is not None:
        np.save(out / f"{prefix}samples.npy", samples.astype(np.float32))
        plots.samples(out / f"{prefix}samples.png", samples, reference, f"{name}: {entry.name}")
        if model.spec.classes and samples.ndim == 4:  # images: a grid of each class's samples
            for k in np.unique(cond):
                plots.samples(out / f"{prefix}samples_class_{k}.png", samples[cond == k],
                              reference[cond == k], f"{name}: {entry.name}, class {k}")
    ode = [s for s in model.spec.samplers if s.kind in TRANSPORTS and kind_of(s).density]
    if "velocity" in model.spec.fields:
        fixed = next((s for s in ode if kind_of(s).trajectory), None)
        log("evaluating: trajectories and their path energy")
        _, path = model.sample(n, sampler=fixed or DEFAULT_SAMPLER, seed=seed + 1,
                               trajectory=True, cond=cond)
        result["path_energy"] = path_energy(model, path, fixed or DEFAULT_SAMPLER, cond)
        if reference is not None:
            w2_ends = metric_fns.w2(path[0], reference)
            result["w2_base_target"] = w2_ends
            result["normalized_path_energy"] = abs(result["path_energy"] - w2_ends**2) / w2_ends**2
        if out is not None:
            plots.trajectories(out / f"{prefix}trajectories.png", path, f"{name}: trajectories")
    if model.spec.coupling.name == "reflow" and getattr(model, "source_path", None):
        from .reflow import teacher_metrics

        result["reflow"] = teacher_metrics(model, Path(model.source_path).parent)
    if any(s.kind == "map" for s in model.spec.samplers):
        log("evaluating: the ODE and flow-map samplers side by side")
        result["samplers"] = compare_samplers(model, n, reference, seed)
    if reference is not None and model.has_density and ode:
        scored = nll_points(n)
        log(f"evaluating: the negative log-likelihood of {scored} target draws (the "
            "probability-flow ODE with its divergence)")
        lp = model.log_prob(reference[:scored], seed=seed,
                            cond=None if cond is None else cond[:scored])
        result["nll"] = float(-np.mean(lp))
        if len(model.shape) == 3:  # images: also in bits per dimension, as image papers give it
            result["nll_bits_per_dim"] = result["nll"] / (math.prod(model.shape) * math.log(2))
            result["dequantisation"] = DEQUANTISATION
    return result


def compare_samplers(model, n: int, reference, seed: int = 0) -> dict:
    """Each deterministic transport sampler (ODE solvers and flow-map steps) on the same n
    points: network calls, samples per second (its program compiled by a first call, then
    timed) and W2 to ``reference`` (docs/fewstep.md)."""
    out = {}
    for entry in model.spec.samplers:
        if entry.kind not in ("ode", "map"):
            continue
        model.sample(n, sampler=entry.name, seed=seed)  # compiles
        started = time.perf_counter()
        samples = model.sample(n, sampler=entry.name, seed=seed)
        seconds = time.perf_counter() - started
        row = {"method": entry.method, "network_calls": _calls(entry),
               "samples_per_second": round(n / seconds, 1)}
        if reference is not None:
            row["w2"] = metric_fns.w2(samples, reference)
        out[entry.name] = row
    return out


def _calls(entry) -> int | None:
    """Network evaluations of a fixed-step sampler (None for an adaptive one)."""
    from ..backends.runtime.tableaus import TABLEAUS

    steps = entry.args.get("steps")
    if steps is None:
        return None
    return int(steps) * (1 if entry.kind == "map" else len(TABLEAUS[entry.method][1]))


def _reference(model, n: int):
    try:
        return model.reference(n)
    except TfmSemanticError:  # no exact sampler for this target
        return None


def path_energy(model, path: np.ndarray, sampler, cond=None) -> float:
    """E integral_t0^t1 |b(t, X_t)|^2 dt along the states of a fixed-step trajectory
    (trapezoid rule on its grid); ``cond``: the classes of its points (a conditioned model)."""
    t0, t1 = model.interval(sampler)
    times = np.linspace(t0, t1, len(path))
    speeds = np.array([np.mean(np.sum(model.evaluate("velocity", t, x, cond=cond)
                                      .reshape(len(x), -1) ** 2,
                                      -1)) for t, x in zip(times, path)])
    return float(np.trapezoid(speeds, times))


def run_record(run_dir: str | Path):
    """(the IR of a run folder's model, how it was trained: backend, seed, steps asked for,
    the checkpoint's step and the device layout of each start and resume)."""
    run_dir = Path(run_dir)
    config, compilation = _run_config(run_dir)
    step = checkpoint.step_of(run_dir / checkpoint.NAME) \
        if (run_dir / checkpoint.NAME).exists() else 0
    layouts = config.get("layouts") or [{"from_step": 0, "devices": 1, "processes": 1}]
    return compilation.model, {"backend": config.get("backend"), "seed": config.get("seed"),
                               "steps": config.get("steps"), "step": step,
                               "tfm_version": config.get("tfm_version"), "layouts": layouts}


def _run_config(run_dir: Path):
    """A run folder's config.json and its model compiled from the copy it keeps."""
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise TfmDataError(Diagnostic("Data", f"'{run_dir}' is not a run folder (no config.json).",
                                      suggestion="Give the folder `tfmc run` wrote (--out)."))
    config = json.loads(config_path.read_text())
    source = Path(config["source"])
    text = (run_dir / "model.tfm").read_text()
    compilation = compile_text(text, file=source.name, folder=source.parent)
    compilation.raise_errors()
    return config, compilation


def open_run(run_dir: str | Path, backend: str | None = None):
    """The model object of a run folder, with its trained weights; ``backend`` may differ from
    the one that trained it (weights are shared)."""
    run_dir = Path(run_dir)
    config, compilation = _run_config(run_dir)
    backend = backend or config["backend"]
    source = Path(config["source"])
    text = (run_dir / "model.tfm").read_text()
    model = _build(compilation, source, text, backend, run_dir / f"build_{backend}")
    if model.spec.sampling:
        model.seed = int(config.get("seed", model.seed))
        model.load(run_dir / energy_model.STATE)
        return model
    model.load(run_dir / checkpoint.NAME)
    if (run_dir / energy_model.STATE).exists():  # the chains of samplers on the energy
        model.load_chains(run_dir / energy_model.STATE)
    return model
