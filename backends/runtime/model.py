"""The model object, the same for both backends: ``fit``'s driver (resume, progress bar,
non-finite guard, checkpoints), the fields and drifts of the emitted module on the networks, the
choice of sampler and of its time interval, sampling and log-densities through the sampler kinds
(``samplers/``), data checks, and checkpoint reading and writing in the one weight format.

A backend subclasses ``Model`` and supplies what its libraries make different: ``ops``
(``runtime/ops.py``), the weights and the optimiser state, the networks' outputs, a compiled
chunk of training steps, how a program is compiled (``program``), and conversion of weights and
optimiser state to and from numpy.
"""

from __future__ import annotations

import math
import sys
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ...errors import Diagnostic, TfmRuntimeError, TfmSemanticError
from . import (checkpoint, data as data_files, densities, inpainting, likelihood, loop, networks,
               parallel, time_laws)
from .energy_sampling import TRANSPORTS, EnergySampling
from .objectives import OBJECTIVES
from .ops import all_finite
from .samplers import kind_of
from .spec import DEFAULT_SAMPLER, Sampler, Spec

END_STEP = 1e-3  # how far a sampler's interval moves inside from an end where its field is not finite
EXACT_MAX_DIM = 32  # log_prob's exact divergence up to this many dimensions, else Hutchinson


def error(message: str, suggestion: str | None = None):
    return TfmSemanticError(Diagnostic("Semantic", message, suggestion=suggestion))


def user_networks(spec: Spec, given: dict | None) -> dict:
    """The networks passed through the Python API (``tfm.load(..., networks={name: ...})``),
    checked by name: each replaces a network of the model file that is a field of (t, x), not
    a normalizing flow. Their shapes are checked by the backend (``check_output``)."""
    given = dict(given or {})
    names = [n.name for n in spec.networks]
    for name in given:
        if name not in names:
            raise error(f"networks= names '{name}', which is not a network of model "
                        f"{spec.model} (it has {', '.join(names) or 'none'}).",
                        "Pass a network under the name the model file gives it.")
        if spec.network(name).output == "flow":
            raise error(f"'{name}' is a normalizing flow; networks= replaces networks of (t, x) "
                        "only.", "Declare it as a network of (t, x), e.g. mlp(), in the file.")
        if spec.network(name).map:
            raise error(f"'{name}' is a flow map, a network of two times (s, t, x); networks= "
                        "replaces networks of (t, x) only.",
                        "Pass the teacher's network, or use a built-in network for the map.")
    return given


def check_user_network(spec: Spec, name: str) -> None:
    """A user network can stand in for ``name``: one of the file's networks, and not of a model
    conditioned on labels (a user network takes (t, x) only)."""
    if spec.conditioned:
        raise error(f"The network given for '{name}' takes (t, x), and this model conditions "
                    "its networks on the target's labels, which it would not see.",
                    "Use the file's networks for a model with labels.")


def check_output(spec: Spec, name: str, shape: tuple, got: tuple) -> None:
    """A user network's output at a batch of 2 has the shape its field needs."""
    check_user_network(spec, name)
    want = (2,) if spec.network(name).scalar else (2,) + tuple(shape)
    if tuple(got) != want:
        raise error(f"The network given for '{name}' returns shape {list(got)} at a batch of 2 "
                    f"points of shape {list(shape)}; the model needs {list(want)}.",
                    "Its forward takes (t, x), t of shape (B,) and x of shape (B, *shape), and "
                    "returns the field at each point" + (" (a potential: one number per point)."
                                                         if want == (2,) else "."))


class Model(EnergySampling, ABC):
    """A compiled model of one backend: ``fit``, ``sample``, ``log_prob``, ``evaluate``,
    ``reference``, ``save`` and ``load``; where the target has an energy, its samplers on it
    (``run``, runtime/energy_sampling.py), whose flows are the model's ODE samplers
    (runtime/ode_flow.py). The abstract methods are what a backend supplies."""

    backend = ""
    pipelined = True  # see runtime/loop.py: False where chunks update the weights in place
    free_chunk_lengths = False  # runtime/loop.py: True where a chunk's length compiles nothing
    ops = None  # the backend's runtime/ops.py adapter

    def __init__(self, module, root: str | Path = "."):
        self.module = module
        self.spec: Spec = module.SPEC
        self.root = Path(root)
        self.shape = tuple(self.spec.shape)
        self.objective = OBJECTIVES[self.spec.objective]
        self._arrays: dict[str, np.ndarray] = {}  # loaded data files
        self._compiled: dict[tuple, object] = {}  # compiled samplers, likelihoods, training chunks
        self._intervals: dict[tuple, tuple[float, float]] = {}
        self.last_fit_steps = 0
        self.layout = parallel.Layout()  # the devices each batch is split over (one by default)
        self.reflow_pairs = None  # a reflow coupling's (x0, x1), or what draws them (driver/reflow.py)
        self.frozen_weights: dict[str, np.ndarray] = {}  # fixed weights (``freeze``)
        self.frozen_source = None  # what sets them when training starts (driver/teacher.py)
        self.guidance = 0.0  # classifier-free guidance of a sampling pass (docs/conditional.md)

    # --- backend hooks ----------------------------------------------------------------------
    @abstractmethod
    def reset(self, seed: int) -> None:
        """Fresh weights (runtime/init.py) from ``seed``, then ``frozen_weights``; step 0."""

    def frozen_keys(self) -> frozenset[str]:
        """The weights of the networks that are not trained (``Spec.frozen``)."""
        return frozenset(k for k in self._param_shapes()
                         if k.split(".", 1)[0] in self.spec.frozen)

    def _load_frozen(self) -> None:
        if self.frozen_source is None:
            raise error(f"The weights of {', '.join(self.spec.frozen)} come from a run folder, "
                        "which this model was built without.", "Load the model with tfm.load "
                        "or train it with tfmc run, which read the run folder the file names.")
        self.frozen_source()  # calls freeze

    def freeze(self, weights: dict[str, np.ndarray]) -> None:
        """Sets the weights of the networks of ``Spec.frozen`` (a flow map's teacher read from
        a run folder, driver/teacher.py) to ``weights``, keyed as checkpoints name them: now, on
        a fresh state, and again by every ``reset``. Training never changes them (the backends
        leave ``frozen_keys`` out of the optimiser's updates), so a resumed run keeps those its
        checkpoint holds."""
        shapes, keys = self._param_shapes(), self.frozen_keys()
        wrong = sorted(k for k in keys if k not in weights or
                       tuple(np.shape(weights[k])) != shapes[k])
        if wrong or set(weights) - keys:
            raise error(f"The fixed weights of {', '.join(self.spec.frozen)} do not fit the "
                        f"network: {', '.join(wrong or sorted(set(weights) - keys))} "
                        f"{'missing or of another shape' if wrong else 'unknown'}.",
                        "Give the weights of the same network (kind and size) as the file's.")
        self.frozen_weights = {k: np.asarray(weights[k], np.float32) for k in sorted(keys)}
        self._compiled.clear()
        self.reset(self.seed)

    @abstractmethod
    def _state(self):
        """The training state handed to the chunks."""

    @abstractmethod
    def _set_state(self, state) -> None:
        """Takes the state a chunk returned (the step it reached)."""

    @abstractmethod
    def _chunk_runner(self, total: int, data):
        """(state, length) -> (state, losses) running ``length`` optimiser steps."""

    @abstractmethod
    def network(self, weights):
        """(t, x) -> every network's output with ``weights`` (a mapping keyed as the emitted
        functions read them: ``grad_<name>`` for a potential network)."""

    @abstractmethod
    def program(self, key: tuple, fn):
        """``fn`` ready to run many times (JAX: compiled with jit, cached under ``key``; torch:
        under no_grad). Its arguments are weights, arrays and keys of ``ops.key``."""

    @property
    @abstractmethod
    def weights(self):
        """The weights used for sampling: the EMA when the train block keeps one."""

    @abstractmethod
    def _numpy_state(self) -> tuple[dict, dict, list]:
        """(params, ema, optimiser leaves) as numpy arrays."""

    @abstractmethod
    def _restore(self, params: dict, ema: dict) -> None:
        """Sets the weights and the EMA (empty: the weights) from numpy arrays."""

    @abstractmethod
    def _restore_optimizer(self, leaves: list) -> bool:
        """Sets the optimiser state from checkpoint leaves; False when they do not fit."""

    @abstractmethod
    def _param_shapes(self) -> dict[str, tuple]:
        """Each weight's shape, by its shared name."""

    def _rng_state(self) -> dict[str, np.ndarray]:
        """Random-generator state that training carries from step to step (none in JAX, whose
        keys derive from the seed and the step)."""
        return {}

    def _restore_rng(self, state: dict[str, np.ndarray]) -> bool:
        """Sets the generators from a checkpoint's ``rng/`` tensors; False when they do not fit."""
        return True

    # --- data -------------------------------------------------------------------------------
    def _density_array(self, role: str, override=None):
        entry = self.spec.role(role)
        if override is not None:
            array = np.asarray(override, dtype=np.float32)
            if array.shape[1:] != self.shape:
                raise TfmRuntimeError(Diagnostic(
                    "Runtime", f"The {role} data given have shape {array.shape}; the model "
                    f"needs (samples, {', '.join(map(str, self.shape))})."))
            if not np.isfinite(array).all():
                row = int(np.argmin(np.isfinite(array.reshape(len(array), -1)).all(1)))
                raise TfmRuntimeError(Diagnostic("Runtime", f"The {role} data given hold "
                                                 f"non-finite values (sample {row})."))
            return array
        if not densities.reads_file(entry):
            return None
        if role not in self._arrays:
            args = entry.args
            self._arrays[role] = data_files.load(args["path"], self.root, self.shape, args["key"],
                                                 args.get("labels", ""))
        return self._arrays[role]

    def labels(self):
        """The class of each sample of the target's data file (int32), or its condition vector
        (float32, (samples, k)); None for a model without either."""
        if not self.spec.conditioned:
            return None
        if "labels" not in self._arrays:
            args, samples = self.spec.target.args, len(self._density_array("target"))
            if self.spec.classes:
                self._arrays["labels"] = data_files.load_labels(
                    args["path"], self.root, args["labels"], samples, args["classes"])
            else:
                self._arrays["labels"] = data_files.load_conditions(
                    args["path"], self.root, args["condition"], samples)
        return self._arrays["labels"]

    def check_labels(self, cond, n: int | None, what: str = "The classes given") -> np.ndarray:
        """``cond`` (one class, or one per point) as int32 labels of n points; a label of
        ``classes`` means none (the model's unconditional field, where it trained one). For a
        model of condition vectors: one vector (k,) or one per point (n, k), as the networks'
        rows (n, k + 1) (``networks.encode_conditions``)."""
        if self.spec.condition_size:
            return self._check_vectors(cond, n)
        classes = self.spec.classes
        if not classes:
            raise error(f"{what}: this model is not conditioned on labels (its target reads "
                        "none).", "Leave out cond=, or train a model on labelled data "
                        "(data(\"file.npz\", key = \"x\", labels = \"y\")).")
        values = np.asarray(cond)
        if values.ndim == 0 and n is not None:
            values = np.full(n, values)
        if values.ndim != 1 or (n is not None and len(values) != n):
            want = f"({n},)" if n is not None else "(samples,)"
            raise error(f"{what} has shape {values.shape}; it gives one class per point: a "
                        f"number, or an array of shape {want}.")
        if values.dtype.kind == "f" and not np.all(np.round(values) == values):
            raise error(f"{what} holds {values.dtype} values that are not whole numbers; "
                        "classes are whole numbers.")
        if values.dtype.kind not in "iuf":
            raise error(f"{what} holds {values.dtype} values; classes are whole numbers.")
        values = values.astype(np.int64)
        top = classes if self.spec.label_drop > 0 else classes - 1
        bad = np.flatnonzero((values < 0) | (values > top))
        if bad.size:
            none = (f", or {classes} for none (the unconditional field)"
                    if self.spec.label_drop > 0 else "")
            raise error(f"The class {values[bad[0]]} (point {bad[0]}) is not among the trained "
                        f"classes 0 to {classes - 1}{none}.")
        return values.astype(np.int32)

    def _check_vectors(self, cond, n: int | None) -> np.ndarray:
        k = self.spec.condition_size
        values = np.asarray(cond)
        if values.dtype.kind not in "biuf":
            raise error(f"The conditions given hold {values.dtype} values; conditions are "
                        "numbers.")
        values = values.astype(np.float32)
        if values.ndim == 1 and n is not None and values.shape == (k,):
            values = np.broadcast_to(values, (n, k))
        if values.ndim != 2 or values.shape[1] != k or (n is not None and len(values) != n):
            want = f"({k},) or ({n}, {k})" if n is not None else f"(points, {k})"
            raise error(f"The conditions given have shape {values.shape}; the model's are "
                        f"vectors of {k}: an array of shape {want}.")
        bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
        if bad.size:
            raise error(f"The condition of point {bad[0]} is not finite.")
        return np.concatenate([values, np.ones((len(values), 1), np.float32)], axis=1)

    @contextmanager
    def _guided(self, guidance: float):
        """The networks called inside guided by ``guidance`` (programs are compiled, or run,
        inside; their cache keys hold the guidance)."""
        before, self.guidance = self.guidance, guidance
        try:
            yield
        finally:
            self.guidance = before

    def _conditioned(self, weights, labels):
        """The weights of a sampling pass with the points' labels among them (the networks
        read them there, ``networks.LABELS``); the weights themselves without labels."""
        if labels is None:
            return weights
        return {**weights, networks.LABELS: self.ops.asarray(labels)}

    def _condition(self, cond, n: int | None, guidance):
        """(labels or None, guidance) of a sampling or scoring call, checked."""
        if cond is None:
            if guidance:
                raise error("guidance mixes the field of a class with the unconditional one; "
                            "it needs the classes (cond=).")
            if self.spec.conditioned and self.spec.label_drop == 0:
                raise error("This model was trained on labels and never without one, so it has "
                            "no unconditional field: give the classes (cond=).",
                            "Or train with label ~ dropped(0.1) in the objective.")
            return None, 0.0
        labels = self.check_labels(cond, n)
        guidance = float(guidance or 0.0)
        if guidance and self.spec.label_drop == 0:
            raise error("Guidance needs the unconditional field, which this model did not "
                        "train (no label was ever dropped).",
                        "Train with label ~ dropped(0.1) in the objective, or leave out "
                        "guidance.")
        return labels, guidance

    # --- training ---------------------------------------------------------------------------
    def fit(self, steps: int | None = None, data=None, out: str | Path | None = None,
            resume: bool = False, progress: bool = True, log=print):
        """Train to ``steps`` (default: the train block's). With ``out`` a checkpoint is written
        there every ``checkpoint_every`` steps and at the end; ``resume`` continues from it."""
        tr = self.spec.train
        total = int(steps if steps is not None else tr.steps)
        if self.energy_samplers:
            self.check_split()
        if resume:
            if out is None:
                raise error("resume needs the run folder (out).")
            self.load(Path(out) / checkpoint.NAME, optimizer=True)
            if self.step > total:
                raise error(f"The checkpoint is at step {self.step}, past the {total} steps "
                            "asked for.", "Ask for at least as many steps (--steps).")
            log(f"resuming {self.spec.model} at step {self.step} of {total}")
        if self.spec.frozen and self.step == 0 and not self.frozen_weights:
            self._load_frozen()
        first = self.step
        run_chunk = self._chunk_runner(total, data)
        bar = _progress(total, self.step, progress and self.layout.main)

        def on_chunk(state, losses):
            self.history.extend(float(v) for v in losses)
            self._set_state(state)
            bar.update(len(losses))
            bar.set_postfix(loss=f"{np.mean(losses):.4g}")

        def on_checkpoint(state):
            if out is not None and self.layout.main:  # one process writes the run folder
                self.save(Path(out) / checkpoint.NAME)

        try:
            loop.train(run_chunk, self._state(), self.step, total, tr.log_every,
                       tr.checkpoint_every, on_chunk, on_checkpoint, self.pipelined,
                       self.free_chunk_lengths,
                       self.layout.agree if self.layout.processes > 1 else None)
        except parallel.WorkerLost as err:
            raise TfmRuntimeError(Diagnostic(
                "Runtime", f"{err.diagnostics[0].message} Training stopped at step {self.step}"
                + _kept(out) + ".", suggestion="Continue with --resume, on any number of "
                "devices.")) from None
        except loop.NonFiniteLoss as err:
            where = _kept(out, "good ")
            raise TfmRuntimeError(Diagnostic(
                "Runtime", f"The loss became non-finite (NaN or inf) at step {err.step}{where}.",
                suggestion="Lower the learning rate, add `clip 1.0` to the train block, or "
                "check the data and the time law (singular fields near t = 0 or 1).")) from None
        finally:
            bar.close()
            self.last_fit_steps = self.step - first
        return self

    # --- fields and sampling ----------------------------------------------------------------
    def _check_field(self, name: str) -> None:
        if name not in self.spec.fields:
            raise error(f"The model does not determine the {name}.")

    def field(self, name: str, weights=None):
        """(t, x) -> the field ``name`` (velocity, score, noise, data, base) of the model, with
        ``weights`` (default: the sampling weights)."""
        self._check_field(name)
        weights = self.weights if weights is None else weights
        if inpainting.OBSERVED in weights:  # a sampling pass given observed coordinates
            return inpainting.field(self, name, weights)
        network = self.network(weights)
        field, ops = self.module.FIELDS[name], self.ops

        def f(t, x, labels=None):
            t = ops.time(t, x)
            out = network(t, x) if labels is None else network(t, x, None, labels)
            return ops.full(field(t, x, out), x)
        # the points' classes (a conditioned model's sampling pass): what a per-point
        # derivative passes with each point (ops.velocity_and_divergence)
        f.labels = weights.get(networks.LABELS)
        return f

    def drift(self, name: str, weights):
        """(t, x) -> the drift of the SDE sampler ``name``."""
        if inpainting.OBSERVED in weights:  # a sampling pass given observed coordinates
            return inpainting.drift(self, self.sampler_entry(name), weights)
        network, drifts, ops = self.network(weights), self.module.drifts, self.ops
        return lambda t, x: ops.full(drifts(t, x, network(t, x))[name], x)

    def eps(self, name: str):
        """eps(t) of the SDE sampler ``name``: an array, or a number when constant."""
        return self.module.EPS[name]

    def evaluate(self, name: str, t: float, x, cond=None, guidance=None) -> np.ndarray:
        """The field ``name`` at time t and points x (numpy in, numpy out); for the classes
        ``cond`` of a model conditioned on labels, guided by ``guidance``."""
        self._check_field(name)
        labels, guidance = self._condition(cond, len(x), guidance)
        program = self.program(("field", name, labels is not None, guidance),
                               lambda w, t, y: self.field(name, w)(t, y))
        weights = self._conditioned(self.weights, labels)
        with self._guided(guidance):
            return self.ops.numpy(program(weights, self.ops.asarray(t), self.ops.asarray(x)))

    # --- the probability-flow ODE as a flow, for the samplers on the energy -----------------
    @property
    def flow_names(self) -> list[str]:
        """The ODE samplers that an energy sampler names as its flow."""
        return sorted({v["name"] for s in self.energy_samplers for k, v in s.args.items()
                       if k == "flow" and isinstance(v, dict) and v.get("ref") == "sampler"})

    def bound(self, weights):
        return weights

    def _ready_flows(self) -> None:
        """Each flow's time interval, found on the host (``interval``) before a compiled
        program integrates its ODE."""
        for entry in self.spec.samplers:
            if entry.kind == "ode" and entry.name in self.flow_names:
                self.interval(entry)

    def flow_density(self, weights, name: str):
        """The FlowDensity of the ODE sampler ``name`` with ``weights``."""
        from .ode_flow import ode_flow_density

        return ode_flow_density(self, self.sampler_entry(name), weights)

    def reference(self, n: int, seed: int = 1) -> np.ndarray:
        """n draws from the target (data: a random subset) for metrics and plots."""
        draw = densities.sampler(self.ops, self.spec.target, self.shape,
                                 self._density_array("target"))
        return self.ops.numpy(draw(self.ops.random(self.ops.key(seed)), n))

    def labelled_reference(self, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """n draws from a labelled target's data (rows drawn with replacement) and their
        labels, for the metrics of a conditioned model."""
        pool, labels = self._density_array("target"), self.labels()
        rows = np.random.default_rng(seed).integers(0, len(pool), n)
        return pool[rows], labels[rows]

    def interval(self, sampler: str | Sampler | None = None) -> tuple[float, float]:
        """The time interval a sampler covers: the time law's support (a uniform law's [low,
        high], else [0, 1]);
        an end where a value the sampler needs (its kind's ``finite``: an ODE's velocity, an
        SDE's drift and eps) is not a finite number in float32 (0/0 at t = 0 or 1, say, though
        its limit is finite) moves inside by END_STEP, as the compiler moves the time law."""
        lo, hi = time_laws.support(self.spec.time_law)
        if sampler is None:
            return lo, hi
        entry = self.sampler_entry(sampler)
        key = (entry.name, entry.method, lo, hi)
        if key not in self._intervals:
            self._intervals[key] = (self._inside(entry, lo, +1), self._inside(entry, hi, -1))
        return self._intervals[key]

    def _guided_interval(self, entry: Sampler, t0: float, t1: float) -> tuple[float, float]:
        """A sampler's interval for inpainting: it ends where the fields given the data
        prediction are finite too."""
        given = self.module.given_data
        end = self._first_finite(lambda t, x: list(given(t, x, x).values()), t1, -1)
        if end is None:
            raise error(f"The fields given the data prediction are not finite near t = {t1:g}.",
                        "Restrict the time law, e.g. time ~ uniform(0, 0.999).")
        return t0, end

    def _inside(self, entry: Sampler, end: float, direction: int) -> float:
        """``end``, or the first point inside from it where the sampler's values are finite."""
        rng = np.random.default_rng(1)
        out = {n.key: self.ops.asarray(rng.standard_normal((8,) + self.shape))
               for n in self.spec.networks}
        kind = kind_of(entry)
        t = self._first_finite(lambda t, x: kind.finite(self, entry, t, x, out), end, direction)
        if t is None:
            raise error(f"The sampler '{entry.name}' needs a field that is not finite near "
                        f"t = {end:g}.", "Restrict the time law, e.g. time ~ uniform(0.001, "
                        "0.999).")
        return t

    def _first_finite(self, values, end: float, direction: int) -> float | None:
        """``end``, or the first of the next two points inside from it (END_STEP apart) where
        every array of ``values(t, x)`` is finite on 8 random points x; None if none is."""
        ops = self.ops
        x = ops.asarray(np.random.default_rng(0).standard_normal((8,) + self.shape))
        for k in range(3):
            t = ops.time(float(np.float32(end + direction * k * END_STEP)), x)
            if all_finite(ops.xp, values(t, x)):
                return float(t)
        return None

    def sampler_entry(self, name: str | Sampler | None, density: bool = False) -> Sampler:
        """The sampler called ``name`` (or given as a spec Sampler), or the default: the first
        by its kind's rank (deterministic samplers, then forward SDEs, then those that end at
        the base), among those that give log-densities with ``density``."""
        if isinstance(name, Sampler):
            return name
        samplers = self.spec.samplers
        if name is None:
            pool = sorted((s for s in samplers if s.kind in TRANSPORTS
                           and (not density or kind_of(s).density)),
                          key=lambda s: kind_of(s).rank(s))
            if pool:
                return pool[0]
            if "velocity" in self.spec.fields:
                return DEFAULT_SAMPLER
            raise error("The model declares no sampler, and its velocity is not determined.",
                        "Add e.g. sampler ode = heun(steps = 20).")
        for s in samplers:
            if s.name == name:
                return s
        names = ", ".join(s.name for s in samplers) or "none"
        raise error(f"The model has no sampler '{name}' (it has {names}).")

    def sample(self, n: int, sampler: str | Sampler | None = None, seed: int = 0,
               trajectory: bool = False, x0=None, cond=None, guidance=None, observed=None):
        """n samples (numpy, float32, shape (n, *shape)); with ``trajectory`` also the states
        at every step, shape (steps + 1, n, *shape) (samplers whose kind keeps one). ``x0``
        gives the starting points instead of draws from the density the sampler starts from
        (the base; the target for a backward SDE). A model conditioned on labels samples the
        classes ``cond`` (one, or one per point), with classifier-free guidance of scale
        ``guidance``. ``observed`` (one point, or one per point, of the samples' shape, NaN
        where a coordinate is not observed) samples the target given the other coordinates,
        which the samples then hold exactly (inpainting, docs/conditional.md)."""
        entry = self.sampler_entry(sampler)
        if entry.kind not in TRANSPORTS:  # a sampler of the target's energy
            if observed is not None:
                raise error(f"The sampler '{entry.name}' ({entry.method}) samples the target's "
                            "energy; it takes no observed coordinates.")
            if cond is not None or guidance:
                raise error(f"The sampler '{entry.name}' ({entry.method}) samples the target's "
                            "energy; it takes no classes.")
            if trajectory or x0 is not None:
                raise error(f"The sampler '{entry.name}' ({entry.method}) samples the target's "
                            "energy; it keeps no trajectory and takes no starting points.")
            return self.energy_sample(n, entry, seed)
        kind = kind_of(entry)
        if trajectory and not kind.trajectory:
            raise error(f"{entry.method} keeps no fixed-step trajectory.",
                        "Use a fixed-step sampler for trajectories.")
        t0, t1 = self.interval(entry)
        ops = self.ops
        n_points = n if x0 is None else len(x0)
        labels, guidance = self._condition(cond, n_points, guidance)
        if observed is not None:
            if not kind.inpaints(entry):
                raise error(f"The sampler '{entry.name}' ({entry.method}) cannot be guided by "
                            "observed coordinates.", "Inpainting guides an ODE sampler (euler, "
                            "heun, rk4, dopri5, ...) or a forward SDE.")
            observed = inpainting.observations(self.module, self.spec, observed, n_points)
            t0, t1 = self._guided_interval(entry, t0, t1)
        key = ("sample", entry.name, entry.method, repr(entry.args), trajectory, t0, t1,
               labels is not None, guidance, observed is not None)

        def run(w, x, k):
            return kind.run(self, entry, w, x, k, t0, t1, trajectory)

        role = kind.start(entry)
        data = self._density_array(role) if x0 is None else None
        layout = self.layout  # the points split over the devices, gathered back in order
        if x0 is None and data is None:
            # the start points drawn inside the compiled program: on a GPU the draw and the key
            # splits, run eagerly, took as long as the solve (docs/benchmarks.md)
            draw = densities.sampler(ops, self.spec.role(role), self.shape)

            def drawn(w, k):
                k_start, k_noise = ops.random(k).split(2)
                return run(w, layout.points(draw(k_start, n)), layout.stream(k_noise.key()))
            program, args = self.program(key + ("drawn", n), drawn), (ops.key(seed),)
        else:
            k_start, k_noise = ops.random(ops.key(seed)).split(2)
            if x0 is None:
                start = densities.sampler(ops, self.spec.role(role), self.shape, data)(k_start, n)
            else:
                start = ops.asarray(np.asarray(x0, dtype=np.float32))
                n = start.shape[0]
            program = self.program(key, run)
            args = (layout.points(start), layout.stream(k_noise.key()))
        weights = self._conditioned(self.weights, None if labels is None
                                    else layout.points(ops.asarray(labels)))
        if observed is not None:
            weights = {**weights, inpainting.OBSERVED: tuple(
                layout.points(ops.asarray(a)) for a in observed)}
        with step_limit(entry), self._guided(guidance):  # the conversion waits for the device
            result = program(weights, *args)
            if trajectory:
                result = (ops.numpy(layout.gather(result[0], n)),
                          ops.numpy(layout.gather(result[1], n, axis=1)))
            else:
                result = ops.numpy(layout.gather(result, n))
        samples = result[0] if trajectory else result
        _finite(samples, f"The samples of '{entry.name}'")
        if observed is not None:  # the observed coordinates as given
            values, mask = observed
            samples = np.where(mask.astype(bool), values, samples)
            result = (samples, result[1]) if trajectory else samples
        return result

    @property
    def has_density(self) -> bool:
        """Whether the base has a closed-form density, so that the model gives log-densities."""
        return densities.has_log_prob(self.spec.base)

    def log_prob(self, x, sampler: str | None = None, exact: bool | None = None, seed: int = 0,
                 batch: int = 16384, cond=None) -> np.ndarray:
        """log rho1(x) under the model, by the probability-flow ODE of ``sampler`` (one whose
        kind gives log-densities; default the model's first). Exact divergence up to 32
        dimensions, else Hutchinson. A model conditioned on labels gives log rho1(x | c) for
        the classes ``cond`` (one, or one per point), or the unconditional density where it
        trained one (docs/conditional.md)."""
        base = densities.log_prob(self.ops, self.spec.base, self.shape)
        if base is None:
            raise error("Log-densities need a base with a density (normal); this model's base "
                        f"is {self.spec.base.name}.")
        entry = self.sampler_entry(sampler, density=True)
        if entry.kind not in TRANSPORTS:
            raise error(f"The sampler '{entry.name}' ({entry.method}) samples the target's "
                        "energy; it gives no log-densities.",
                        "Log-densities come from an ODE sampler: log_prob(x, sampler = ...).")
        kind = kind_of(entry)
        if not kind.density:
            raise kind.no_density(entry)
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.shape:
            raise TfmRuntimeError(Diagnostic("Runtime", f"Points of shape {x.shape[1:]} given; "
                                             f"the model's samples have shape {self.shape}."))
        exact = math.prod(self.shape) <= EXACT_MAX_DIM if exact is None else exact
        t0, t1 = self.interval(entry)
        ops = self.ops
        labels, _ = self._condition(cond, len(x), None)

        def one(weights, points, key):
            def integrate(f, y0):
                return kind.integrate(self, entry, f, y0, t0, t1)
            return likelihood.log_prob(ops, self.field("velocity", weights), base, points,
                                       integrate, exact, key)
        program = self.program(("log_prob", entry.name, entry.method, repr(entry.args), exact,
                                t0, t1, labels is not None), one)
        # equal batches (the last padded by at most one point per batch): one compiled shape,
        # split evenly over the devices
        layout = self.layout
        batch = -(-len(x) // max(1, -(-len(x) // batch))) if len(x) else 1
        batch = parallel.padded(batch, layout.devices)
        parts = []
        for i in range(0, len(x), batch):
            chunk = x[i:i + batch]
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), 0)])
            weights = self.weights
            if labels is not None:
                part = labels[i:i + batch]
                part = np.concatenate([part, np.repeat(part[-1:], batch - len(part), 0)])
                weights = self._conditioned(weights, layout.points(ops.asarray(part)))
            with step_limit(entry):  # converted inside: a GPU raises when it is waited for
                values = program(weights, layout.points(ops.asarray(padded)),
                                 layout.stream(ops.key(seed, i)))
                parts.append(ops.numpy(layout.gather(values, len(chunk))))
        values = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        _finite(values, "The log-densities")
        return values

    # --- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """A safetensors checkpoint: weights, EMA, optimiser state, step and loss history."""
        params, ema, leaves = self._numpy_state()
        tensors = {f"params/{k}": v for k, v in params.items()}
        tensors |= {f"ema/{k}": v for k, v in ema.items()}
        tensors |= {f"opt/{i}": leaf for i, leaf in enumerate(leaves)}
        tensors |= {f"rng/{k}": v for k, v in self._rng_state().items()}
        tensors["step"] = np.asarray([self.step], np.int64)
        tensors["loss"] = np.asarray(self.history, np.float32)
        checkpoint.save(path, tensors, {"model": self.spec.model, "backend": self.backend,
                                        "seed": str(self.seed), "optimizer": self._optimizer_id()})

    def _optimizer_id(self) -> str:
        return checkpoint.optimizer_id(self.spec.train)

    def load(self, path: str | Path, optimizer: bool = False) -> "Model":
        """Weights (and EMA) from a checkpoint of either backend; with ``optimizer`` also the
        optimiser state, step and loss history, to resume training (same backend only)."""
        tensors, meta = checkpoint.load(path)
        if meta.get("model") != self.spec.model:
            raise error(f"'{path}' holds model '{meta.get('model')}', not '{self.spec.model}'.")
        params = {k[7:]: v for k, v in tensors.items() if k.startswith("params/")}
        shapes = self._param_shapes()
        if set(params) != set(shapes):
            raise error(f"'{path}' does not hold this model's weights (its networks differ).")
        for k, v in params.items():
            if v.shape != shapes[k]:
                raise error(f"'{path}': weight {k} has shape {v.shape}, the model needs "
                            f"{shapes[k]}.")
        ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema/")}
        if ema and ({k: v.shape for k, v in ema.items()} != {k: v.shape for k, v in params.items()}):
            raise error(f"'{path}': its EMA does not match its weights (names or shapes).")
        if optimizer:
            if meta.get("optimizer", self._optimizer_id()) != self._optimizer_id():
                raise error(f"'{path}' was trained with other optimiser settings "
                            f"({meta.get('optimizer')}); training resumes with the same "
                            "optimizer, lr_schedule, clip and ema.")
            if meta.get("backend", self.backend) != self.backend:
                raise error(f"'{path}' was written by the {meta.get('backend')} backend; "
                            "training resumes with the backend that started it.")
        self._restore(params, ema)
        if optimizer:
            leaves = []
            while f"opt/{len(leaves)}" in tensors:
                leaves.append(tensors[f"opt/{len(leaves)}"])
            self.step = int(tensors["step"][0])
            self.history = [float(v) for v in tensors["loss"]]
            self.seed = int(meta.get("seed", self.seed))
            rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng/")}
            if not self._restore_optimizer(leaves) or not self._restore_rng(rng):
                raise error(f"'{path}' has no complete optimiser state for this model's "
                            "optimizer to resume from.")
        return self


# how diffrax (through equinox) and torchdiffeq say that an adaptive solver ran out of steps
STEP_LIMIT_MESSAGES = ("maximum number of solver steps", "max_num_steps exceeded")


@contextmanager
def step_limit(entry: Sampler):
    """Turns an adaptive solver's step-limit failure into a user error naming the sampler."""
    try:
        yield
    except (RuntimeError, AssertionError) as err:
        if not any(m in str(err) for m in STEP_LIMIT_MESSAGES):
            raise
        raise TfmRuntimeError(Diagnostic(
            "Runtime", f"The sampler '{entry.name}' ({entry.method}) took more than its "
            "4096 steps.", suggestion="Loosen rtol and atol, use a fixed-step sampler, or "
            "restrict the time law away from singular ends.")) from None


def _kept(out, what: str = "") -> str:
    """Where the last checkpoint of a stopped fit is kept (empty without one)."""
    if out is None or not (Path(out) / checkpoint.NAME).exists():
        return ""
    step = checkpoint.step_of(Path(out) / checkpoint.NAME)
    return f"; the last {what}checkpoint (step {step}) is kept in {out}"


def _finite(values: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(1) if len(values) else []
    if np.any(bad):
        raise TfmRuntimeError(Diagnostic(
            "Runtime", f"{what} are not finite for {int(np.sum(bad))} of {len(values)} points "
            f"(the first is point {int(np.argmax(bad))}).",
            suggestion="The fields may be singular where the sampler starts or ends: restrict the "
            "time law, e.g. time ~ uniform(0.001, 0.999), or train longer."))


def _progress(total: int, start: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, unit="step", file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5, disable=not enabled)
