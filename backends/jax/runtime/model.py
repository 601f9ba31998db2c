"""The user-facing model object of the JAX backend: ``fit``, ``sample``, ``log_prob``, ``save``,
``load`` (the same API as the torch backend's).

It holds an emitted module (the model's maths and SPEC), the weights (float32, names from
shared/init.py), the optimiser state, the EMA of the weights and the loss history.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ....dsl.diagnostics import Diagnostic, TfmRuntimeError, TfmSemanticError
from ...shared import checkpoint, data as data_files
from ...shared.init import init_params
from ...shared.spec import DEFAULT_SAMPLER
from . import couplings, distributions, likelihood, networks, optim, solvers, train

BACKEND = "jax"
END_STEP = 1e-3  # how far a sampler's interval moves inside from an end where its field is not finite


def _error(message: str, suggestion: str | None = None):
    return TfmSemanticError(Diagnostic("Semantic", message, suggestion=suggestion))


class JaxModel:
    backend = BACKEND

    def __init__(self, module, root: str | Path = "."):
        self.module = module
        self.spec = module.SPEC
        self.root = Path(root)
        self.shape = tuple(self.spec["shape"])
        tr = self.spec["train"]
        self.dtype = jnp.bfloat16 if tr["precision"] == "bfloat16" else jnp.float32
        self.optimizer = optim.optimizer(tr, int(tr["steps"]))
        self._arrays: dict[str, np.ndarray] = {}  # loaded data files
        self._compiled: dict[tuple, object] = {}  # jitted samplers, likelihoods, training chunks
        self._intervals: dict[tuple, tuple[float, float]] = {}
        self.reset(int(tr["seed"]))

    # --- state ------------------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        """Fresh weights from ``seed``; step 0."""
        self.seed = seed
        self.params = {k: jnp.asarray(v) for k, v in
                       init_params(self.spec["networks"], self.shape, seed).items()}
        self.opt_state = self.optimizer.init(self.params)
        self.ema = dict(self.params) if self.spec["train"]["ema"] > 0 else {}
        self.step = 0
        self.history: list[float] = []

    @property
    def weights(self) -> dict:
        """The weights used for sampling: the EMA when the train block keeps one."""
        return self.ema if self.ema else self.params

    def _state(self) -> dict:
        return {"params": self.params, "opt": self.opt_state, "ema": self.ema,
                "step": jnp.asarray(self.step, jnp.int32)}

    def _set_state(self, state: dict) -> None:
        self.params, self.opt_state, self.ema = state["params"], state["opt"], state["ema"]
        self.step = int(state["step"])

    # --- data -------------------------------------------------------------------------------
    def _density_array(self, role: str, override=None):
        entry = self.spec[role]
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
        if entry["name"] != "data":
            return None
        if role not in self._arrays:
            args = entry["args"]
            self._arrays[role] = data_files.load(args["path"], self.root, self.shape, args["key"])
        return self._arrays[role]

    def _drawer(self, data=None):
        """(key, n) -> (x0, x1) coupled, for training."""
        base_data = self._density_array("base")
        target_data = self._density_array("target", data)
        base = distributions.sampler(self.spec["base"], self.shape, base_data)
        target = distributions.sampler(self.spec["target"] if data is None else
                                       {"name": "data", "args": {}}, self.shape, target_data)
        couple = couplings.make(self.spec["coupling"])
        if self.spec["coupling"]["name"] == "paired":
            if self.spec["base"] == self.spec["target"] and data is None:
                def draw(key, n):
                    x1 = target(key, n)
                    return x1, x1
                return draw
            if base_data is None or target_data is None or len(base_data) != len(target_data):
                raise _error("The paired coupling reads x0 and x1 together: base and target must "
                             "be data files with the same number of samples, or the same density.")
            b, tg = jnp.asarray(base_data), jnp.asarray(target_data)

            def draw(key, n):
                i = jax.random.randint(key, (n,), 0, b.shape[0])
                return b[i], tg[i]
            return draw

        def draw(key, n):
            k0, k1, kc = jax.random.split(key, 3)
            return couple(kc, base(k0, n), target(k1, n))
        return draw

    def reference(self, n: int, seed: int = 1) -> np.ndarray:
        """n draws from the target (data: a random subset) for metrics and plots."""
        data = self._density_array("target")
        sample = distributions.sampler(self.spec["target"], self.shape, data)
        return np.asarray(sample(jax.random.PRNGKey(seed), n))

    # --- training ---------------------------------------------------------------------------
    def fit(self, steps: int | None = None, data=None, out: str | Path | None = None,
            resume: bool = False, progress: bool = True, log=print):
        """Train to ``steps`` (default: the train block's). With ``out`` a checkpoint is written
        there every ``checkpoint_every`` steps and at the end; ``resume`` continues from it."""
        tr = self.spec["train"]
        total = int(steps if steps is not None else tr["steps"])
        if resume:
            if out is None:
                raise _error("resume needs the run folder (out).")
            self.load(Path(out) / checkpoint.NAME, optimizer=True)
            if self.step > total:
                raise _error(f"The checkpoint is at step {self.step}, past the {total} steps "
                             "asked for.", "Ask for at least as many steps (--steps).")
            log(f"resuming {self.spec['model']} at step {self.step} of {total}")
        first = self.step
        # the learning-rate schedule spans the steps of this fit (a resumed run must ask for
        # the same total to repeat an uninterrupted one)
        self.optimizer = optim.optimizer(tr, total)
        key = ("fit", total, self.seed)
        run_chunk = self._compiled.get(key) if data is None else None  # arrays are not cached
        if run_chunk is None:
            step_fn = train.make_step(self.spec, self.module, self._drawer(data), self.optimizer,
                                      jax.random.PRNGKey(self.seed), self.dtype)
            run_chunk = train.chunk_runner(step_fn)
            if data is None:
                self._compiled[key] = run_chunk
        bar = _progress(total, self.step, progress)

        def on_chunk(state, losses):
            self.history.extend(float(v) for v in losses)
            self._set_state(state)
            bar.update(len(losses))
            bar.set_postfix(loss=f"{np.mean(losses):.4g}")

        def on_checkpoint(state):
            if out is not None:
                self.save(Path(out) / checkpoint.NAME)

        try:
            train.train(run_chunk, self._state(), self.step, total, int(tr["log_every"]),
                        int(tr["checkpoint_every"]), on_chunk, on_checkpoint)
        except train.NonFiniteLoss as err:
            where = (f"; the last good checkpoint (step {self._checkpoint_step(out)}) is kept "
                     f"in {out}" if out is not None and (Path(out) / checkpoint.NAME).exists()
                     else "")
            raise TfmRuntimeError(Diagnostic(
                "Runtime", f"The loss became non-finite (NaN or inf) at step {err.step}{where}.",
                suggestion="Lower the learning rate, add `clip 1.0` to the train block, or "
                "check the data and the time law (singular fields near t = 0 or 1).")) from None
        finally:
            bar.close()
            self.last_fit_steps = self.step - first
        return self

    def _checkpoint_step(self, out) -> int:
        tensors, _ = checkpoint.load(Path(out) / checkpoint.NAME)
        return int(tensors["step"][0])

    # --- fields and sampling ----------------------------------------------------------------
    def field(self, name: str, weights=None):
        """(t, x) -> the field ``name`` (velocity, score, noise, data, base) of the model."""
        if name not in self.spec["fields"]:
            raise _error(f"The model does not determine the {name}.")
        w = self.weights if weights is None else weights

        def f(t, x):
            out = networks.outputs(self.spec, w, t, x, self.dtype)
            value = self.module.fields(t, x, out)[name]
            return jnp.broadcast_to(value, x.shape).astype(x.dtype)
        return f

    def interval(self, sampler: str | dict | None = None) -> tuple[float, float]:
        """The time interval a sampler covers: a uniform time law's [low, high], else [0, 1];
        an end where the sampler's field (ODE: velocity; SDE: its drift and eps) is not a
        finite number in float32 (0/0 at t = 0 or 1, say, though its limit is finite) moves
        inside by END_STEP, as the compiler moves the time law."""
        law = self.spec["time_law"]
        if law["name"] == "uniform":
            lo, hi = float(law["args"]["low"]), float(law["args"]["high"])
        else:
            lo, hi = 0.0, 1.0
        if sampler is None:
            return lo, hi
        entry = self.sampler_entry(sampler)
        key = (entry["name"], entry["kind"], lo, hi)
        if key not in self._intervals:
            self._intervals[key] = (self._inside(entry, lo, +1), self._inside(entry, hi, -1))
        return self._intervals[key]

    def _inside(self, entry: dict, end: float, direction: int) -> float:
        """``end``, or the first point inside from it where the sampler's field is finite."""
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal((8,) + self.shape), jnp.float32)
        out = {n["key"]: jnp.asarray(rng.standard_normal((8,) + self.shape), jnp.float32)
               for n in self.spec["networks"]}
        for k in range(3):
            t = jnp.float32(end + direction * k * END_STEP)
            if entry["kind"] == "sde":
                values = [self.module.drifts(t, x, out)[entry["name"]],
                          getattr(self.module, f"eps_{entry['name']}")(t)]
            else:
                values = [self.module.fields(t, x, out)["velocity"]]
            if all(bool(jnp.all(jnp.isfinite(jnp.asarray(v)))) for v in values):
                return float(t)
        raise _error(f"The sampler '{entry['name']}' needs a field that is not finite near "
                     f"t = {end:g}.", "Restrict the time law, e.g. time ~ uniform(0.001, 0.999).")

    def sampler_entry(self, name: str | dict | None, kind: str | None = None) -> dict:
        """The sampler called ``name`` (or given as a SPEC entry), or the first of ``kind``."""
        if isinstance(name, dict):
            return name
        samplers = self.spec["samplers"]
        if name is None:  # ODE samplers first, then forward SDEs (a backward SDE ends at the base)
            rank = {"ode": 0, "forward": 1, "backward": 2}
            pool = sorted((s for s in samplers if kind is None or s["kind"] == kind),
                          key=lambda s: rank[s["args"].get("direction", s["kind"])])
            if pool:
                return pool[0]
            if "velocity" in self.spec["fields"]:
                return DEFAULT_SAMPLER
            raise _error("The model declares no sampler, and its velocity is not determined.",
                         "Add e.g. sampler ode = heun(steps = 20).")
        for s in samplers:
            if s["name"] == name:
                return s
        names = ", ".join(s["name"] for s in samplers) or "none"
        raise _error(f"The model has no sampler '{name}' (it has {names}).")

    def sample(self, n: int, sampler: str | None = None, seed: int = 0, trajectory: bool = False,
               x0=None):
        """n samples (numpy, float32, shape (n, *shape)); with ``trajectory`` also the states
        at every step, shape (steps + 1, n, *shape) (fixed-step and SDE samplers)."""
        entry = self.sampler_entry(sampler)
        key = jax.random.PRNGKey(seed)
        k_start, k_noise = jax.random.split(key)
        t0, t1 = self.interval(entry)
        backward = entry["kind"] == "sde" and entry["args"].get("direction") == "backward"
        if x0 is None:
            role = "target" if backward else "base"
            start = distributions.sampler(self.spec[role], self.shape,
                                          self._density_array(role))(k_start, n)
        else:
            start = jnp.asarray(x0, jnp.float32)
        fn = self._sample_fn(entry, trajectory, t0, t1)
        result = fn(self.weights, start, k_noise)
        samples = np.asarray(result[0] if trajectory else result)
        _finite(samples, f"The samples of '{entry['name']}'")
        return (samples, np.asarray(result[1])) if trajectory else samples

    def _sample_fn(self, entry: dict, trajectory: bool, t0: float, t1: float):
        key = ("sample", entry["name"], entry["method"], repr(entry["args"]), trajectory, t0, t1)
        if key in self._compiled:
            return self._compiled[key]
        method, args = entry["method"], entry["args"]

        def run(weights, x, noise_key):
            if entry["kind"] == "sde":
                name = entry["name"]
                eps = getattr(self.module, f"eps_{name}")

                def drift(t, y):
                    out = networks.outputs(self.spec, weights, t, y, self.dtype)
                    return jnp.broadcast_to(self.module.drifts(t, y, out)[name], y.shape)
                a, b = (t1, t0) if args.get("direction") == "backward" else (t0, t1)
                return solvers.euler_maruyama(drift, eps, noise_key, x, a, b, int(args["steps"]),
                                              trajectory)
            velocity = self.field("velocity", weights)
            if method == "dopri5":
                if trajectory:
                    raise _error("dopri5 keeps no fixed-step trajectory.",
                                 "Use a fixed-step sampler for trajectories.")
                return solvers.dopri5(velocity, x, t0, t1, float(args["rtol"]),
                                      float(args["atol"]))[0]
            return solvers.fixed_step(velocity, x, t0, t1, int(args["steps"]), method, trajectory)

        self._compiled[key] = jax.jit(run)
        return self._compiled[key]

    def log_prob(self, x, sampler: str | None = None, exact: bool | None = None, seed: int = 0,
                 batch: int = 16384) -> np.ndarray:
        """log rho1(x) under the model, by the probability-flow ODE of ``sampler`` (an ODE sampler;
        default the model's first). Exact divergence up to 32 dimensions, else Hutchinson."""
        base = distributions.log_prob(self.spec["base"], self.shape)
        if base is None:
            raise _error("Log-densities need a base with a density (normal); this model's base "
                         f"is {self.spec['base']['name']}.")
        entry = self.sampler_entry(sampler, kind="ode")
        if entry["kind"] != "ode":
            raise _error(f"The sampler '{entry['name']}' is an SDE; log-densities need an ODE "
                         "sampler.")
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.shape:
            raise TfmRuntimeError(Diagnostic("Runtime", f"Points of shape {x.shape[1:]} given; "
                                             f"the model's samples have shape {self.shape}."))
        exact = math.prod(self.shape) <= likelihood.EXACT_MAX_DIM if exact is None else exact
        one = self._log_prob_fn(entry, exact, base)
        key = jax.random.PRNGKey(seed)
        # equal batches (the last padded by at most one point per batch): one compiled shape
        batch = -(-len(x) // max(1, -(-len(x) // batch))) if len(x) else 1
        parts = []
        for i in range(0, len(x), batch):
            chunk = x[i:i + batch]
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), 0)])
            values = one(self.weights, jnp.asarray(padded), jax.random.fold_in(key, i))
            parts.append(np.asarray(values)[:len(chunk)])  # one compiled shape for all batches
        values = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        _finite(values, "The log-densities")
        return values

    def _log_prob_fn(self, entry: dict, exact: bool, base):
        t0, t1 = self.interval(entry)
        key = ("log_prob", entry["name"], entry["method"], repr(entry["args"]), exact, t0, t1)
        if key not in self._compiled:
            args = entry["args"]

            def one(weights, xb, noise_key):
                return likelihood.log_prob(self.field("velocity", weights), base, xb, t0, t1,
                                           entry["method"], int(args.get("steps", 20)), exact,
                                           noise_key, float(args.get("rtol", 1e-5)),
                                           float(args.get("atol", 1e-5)))
            self._compiled[key] = jax.jit(one)
        return self._compiled[key]

    def evaluate(self, name: str, t: float, x) -> np.ndarray:
        """The field ``name`` at time t and points x (numpy in, numpy out)."""
        key = ("field", name)
        if key not in self._compiled:
            self._compiled[key] = jax.jit(lambda w, t, y: self.field(name, w)(t, y))
        return np.asarray(self._compiled[key](self.weights, jnp.float32(t),
                                              jnp.asarray(x, jnp.float32)))

    # --- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """A safetensors checkpoint: weights, EMA, optimiser state, step and loss history."""
        tensors = {f"params/{k}": np.asarray(v) for k, v in self.params.items()}
        tensors |= {f"ema/{k}": np.asarray(v) for k, v in self.ema.items()}
        for i, leaf in enumerate(jax.tree_util.tree_leaves(self.opt_state)):
            tensors[f"opt/{i}"] = np.asarray(leaf)
        tensors["step"] = np.asarray([self.step], np.int64)
        tensors["loss"] = np.asarray(self.history, np.float32)
        checkpoint.save(path, tensors, {"model": self.spec["model"], "backend": BACKEND,
                                        "seed": str(self.seed), "optimizer": self._optimizer_id()})

    def _optimizer_id(self) -> str:
        return checkpoint.optimizer_id(self.spec["train"])

    def load(self, path: str | Path, optimizer: bool = False) -> "JaxModel":
        """Weights (and EMA) from a checkpoint of either backend; with ``optimizer`` also the
        optimiser state, step and loss history, to resume training (same backend only)."""
        tensors, meta = checkpoint.load(path)
        if meta.get("model") != self.spec["model"]:
            raise _error(f"'{path}' holds model '{meta.get('model')}', not '{self.spec['model']}'.")
        params = {k[7:]: v for k, v in tensors.items() if k.startswith("params/")}
        if set(params) != set(self.params):
            raise _error(f"'{path}' does not hold this model's weights (its networks differ).")
        for k, v in params.items():
            if v.shape != self.params[k].shape:
                raise _error(f"'{path}': weight {k} has shape {v.shape}, the model needs "
                             f"{tuple(self.params[k].shape)}.")
        self.params = {k: jnp.asarray(params[k]) for k in self.params}
        ema = {k[4:]: jnp.asarray(v) for k, v in tensors.items() if k.startswith("ema/")}
        self.ema = (ema or dict(self.params)) if self.spec["train"]["ema"] > 0 else {}
        if optimizer:
            if meta.get("optimizer", self._optimizer_id()) != self._optimizer_id():
                raise _error(f"'{path}' was trained with other optimiser settings "
                             f"({meta.get('optimizer')}); training resumes with the same "
                             "optimizer, lr_schedule, clip and ema.")
            if meta.get("backend") != BACKEND:
                raise _error(f"'{path}' was written by the {meta.get('backend')} backend; "
                             "training resumes with the backend that started it.")
            leaves, tree = jax.tree_util.tree_flatten(self.optimizer.init(self.params))
            saved = [tensors.get(f"opt/{i}") for i in range(len(leaves))]
            if any(s is None or s.shape != np.shape(f) or s.dtype != f.dtype
                   for s, f in zip(saved, leaves)):
                raise _error(f"'{path}' has no complete optimiser state for this model's "
                             "optimizer to resume from.")
            self.opt_state = jax.tree_util.tree_unflatten(tree, [jnp.asarray(s) for s in saved])
            self.step = int(tensors["step"][0])
            self.history = [float(v) for v in tensors["loss"]]
            self.seed = int(meta.get("seed", self.seed))
        return self


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
