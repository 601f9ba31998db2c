"""The model object of the JAX backend (shared/model.py holds what both backends share): the
weights (float32, names from shared/init.py), the optax optimiser state, the EMA of the weights
and the loss history as JAX arrays, and the compiled programs that train, sample and evaluate.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ...shared import model as shared
from ...shared.init import init_params
from . import couplings, distributions, likelihood, networks, optim, solvers, train

BACKEND = "jax"


class JaxModel(shared.Model):
    backend = BACKEND

    def __init__(self, module, root: str | Path = "."):
        super().__init__(module, root)
        tr = self.spec["train"]
        self.dtype = jnp.bfloat16 if tr["precision"] == "bfloat16" else jnp.float32
        self.optimizer = optim.optimizer(tr, int(tr["steps"]))
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

    def _param_shapes(self) -> dict[str, tuple]:
        return {k: tuple(v.shape) for k, v in self.params.items()}

    def _numpy_state(self):
        return ({k: np.asarray(v) for k, v in self.params.items()},
                {k: np.asarray(v) for k, v in self.ema.items()},
                [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(self.opt_state)])

    def _restore(self, params: dict, ema: dict) -> None:
        self.params = {k: jnp.asarray(params[k]) for k in self.params}
        ema = {k: jnp.asarray(v) for k, v in ema.items()}
        self.ema = (ema or dict(self.params)) if self.spec["train"]["ema"] > 0 else {}

    def _restore_optimizer(self, leaves: list) -> bool:
        fresh, tree = jax.tree_util.tree_flatten(self.optimizer.init(self.params))
        if len(leaves) != len(fresh) or any(s.shape != np.shape(f) or s.dtype != f.dtype
                                            for s, f in zip(leaves, fresh)):
            return False
        self.opt_state = jax.tree_util.tree_unflatten(tree, [jnp.asarray(s) for s in leaves])
        return True

    # --- data -------------------------------------------------------------------------------
    def _drawer(self, data=None):
        """(key, n) -> (x0, x1) coupled, for training."""
        base_data = self._density_array("base")
        target_data = self._density_array("target", data)
        if self.spec["coupling"]["name"] == "paired":
            pools = self._paired_data(data)
            if pools is None:
                target = distributions.sampler(self.spec["target"], self.shape, target_data)

                def draw(key, n):
                    x1 = target(key, n)
                    return x1, x1
                return draw
            b, tg = jnp.asarray(pools[0]), jnp.asarray(pools[1])

            def draw(key, n):
                i = jax.random.randint(key, (n,), 0, b.shape[0])
                return b[i], tg[i]
            return draw
        base = distributions.sampler(self.spec["base"], self.shape, base_data)
        target = distributions.sampler(self.spec["target"] if data is None else
                                       {"name": "data", "args": {}}, self.shape, target_data)
        couple = couplings.make(self.spec["coupling"])

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
    def _chunk_runner(self, total: int, data):
        # the learning-rate schedule spans the steps of this fit (a resumed run must ask for
        # the same total to repeat an uninterrupted one)
        self.optimizer = optim.optimizer(self.spec["train"], total)
        key = ("fit", total, self.seed)
        run_chunk = self._compiled.get(key) if data is None else None  # arrays are not cached
        if run_chunk is None:
            step_fn = train.make_step(self.spec, self.module, self._drawer(data), self.optimizer,
                                      jax.random.PRNGKey(self.seed), self.dtype)
            run_chunk = train.chunk_runner(step_fn)
            if data is None:
                self._compiled[key] = run_chunk
        return run_chunk

    def loss(self, t, x0, x1, z=0.0) -> float:
        """The training loss at the current weights on a given batch (numpy arrays)."""
        fn = train.loss_function(self.spec, self.module, self.dtype)
        return float(fn(self.params, *_arrays(t, x0, x1, z)))

    def step_on(self, t, x0, x1, z=0.0, total: int | None = None) -> float:
        """One optimiser step on a given batch (numpy arrays); returns its loss. The schedule
        spans ``total`` steps (default: the train block's)."""
        total = int(total if total is not None else self.spec["train"]["steps"])
        key = ("step_on", total)
        if key not in self._compiled:
            self.optimizer = optim.optimizer(self.spec["train"], total)
            self._compiled[key] = jax.jit(train.make_update(self.spec, self.module,
                                                            self.optimizer, self.dtype))
        state, value = self._compiled[key](self._state(), *_arrays(t, x0, x1, z))
        self._set_state(state)
        self.history.append(float(value))
        return float(value)

    # --- fields and sampling ----------------------------------------------------------------
    def field(self, name: str, weights=None):
        """(t, x) -> the field ``name`` (velocity, score, noise, data, base) of the model."""
        self._check_field(name)
        w = self.weights if weights is None else weights

        def f(t, x):
            out = networks.outputs(self.spec, w, t, x, self.dtype)
            value = getattr(self.module, f"field_{name}")(t, x, out)
            return jnp.broadcast_to(value, x.shape).astype(x.dtype)
        return f

    def _all_finite(self, entry: dict, t: float, x, out: dict) -> bool:
        t = jnp.float32(t)
        x = jnp.asarray(x)
        out = {k: jnp.asarray(v) for k, v in out.items()}
        if entry["kind"] == "sde":
            values = [self.module.drifts(t, x, out)[entry["name"]],
                      getattr(self.module, f"eps_{entry['name']}")(t)]
        else:
            values = [self.module.field_velocity(t, x, out)]
        return all(bool(jnp.all(jnp.isfinite(jnp.asarray(v)))) for v in values)

    def _sampled(self, entry, n, seed, trajectory, x0, t0, t1):
        k_start, k_noise = jax.random.split(jax.random.PRNGKey(seed))
        if x0 is None:
            role = "target" if self._starts_at_target(entry) else "base"
            start = distributions.sampler(self.spec[role], self.shape,
                                          self._density_array(role))(k_start, n)
        else:
            start = jnp.asarray(x0)
        result = self._sample_fn(entry, trajectory, t0, t1)(self.weights, start, k_noise)
        return (np.asarray(result[0]), np.asarray(result[1])) if trajectory else np.asarray(result)

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
                return solvers.dopri5(velocity, x, t0, t1, float(args["rtol"]),
                                      float(args["atol"]))[0]
            return solvers.fixed_step(velocity, x, t0, t1, int(args["steps"]), method, trajectory)

        self._compiled[key] = jax.jit(run)
        return self._compiled[key]

    def _log_prob_batch(self, entry, exact, x, seed, index):
        base = distributions.log_prob(self.spec["base"], self.shape)
        one = self._log_prob_fn(entry, exact, base)
        key = jax.random.fold_in(jax.random.PRNGKey(seed), index)
        return np.asarray(one(self.weights, jnp.asarray(x), key))

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


def _arrays(t, x0, x1, z):
    return (jnp.asarray(t, jnp.float32), jnp.asarray(x0, jnp.float32),
            jnp.asarray(x1, jnp.float32), jnp.asarray(z, jnp.float32))
