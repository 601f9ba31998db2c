"""The model object of the JAX backend (runtime/model.py holds what both backends share): the
weights (float32, names from runtime/init.py), the optax optimiser state, the EMA of the weights
and the loss history as JAX arrays, and programs compiled with ``jax.jit``.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ...runtime import model as shared
from ...runtime.init import init_params
from .energy_model import JaxEnergyModel
from ...runtime import parallel
from . import networks, optim, sharding, train, user_networks
from .ops import OPS

BACKEND = "jax"


class JaxModel(shared.Model):
    energy_model_class = JaxEnergyModel
    backend = BACKEND
    ops = OPS
    free_chunk_lengths = True  # one compiled loop runs chunks of any length (train.chunk_runner)

    def __init__(self, module, root: str | Path = ".", networks: dict | None = None,
                 devices: int | None = None):
        super().__init__(module, root)
        tr = self.spec.train
        if devices is not None:  # data parallel over a mesh of devices (sharding.py)
            parallel.check_batch(tr.batch, devices)
            self.layout = sharding.MeshLayout(devices)
        self.dtype = jnp.bfloat16 if tr.precision == "bfloat16" else jnp.float32
        self.optimizer = optim.optimizer(tr, tr.steps)
        self.user = user_networks.install(self.spec, self.shape,
                                          shared.user_networks(self.spec, networks))
        self.reset(tr.seed)

    # --- state ------------------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        """Fresh weights from ``seed``; step 0."""
        self.seed = seed
        own = [n for n in self.spec.networks if n.name not in self.user]
        self.params = {k: jnp.asarray(v) for k, v in init_params(own, self.shape, seed).items()}
        for net in self.user.values():  # a user network keeps its own initial weights
            self.params |= net.weights()
        self.params |= {k: jnp.asarray(v) for k, v in self.frozen_weights.items()}
        self.opt_state = self.optimizer.init(self.params)
        self.ema = dict(self.params) if self.spec.train.ema > 0 else {}
        self.step = 0
        self.history: list[float] = []

    @property
    def weights(self) -> dict:
        """The weights used for sampling: the EMA when the train block keeps one."""
        return self.ema if self.ema else self.params

    def _state(self) -> dict:
        return self.layout.state({"params": self.params, "opt": self.opt_state, "ema": self.ema,
                                  "step": jnp.asarray(self.step, jnp.int32)})

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
        self.ema = (ema or dict(self.params)) if self.spec.train.ema > 0 else {}

    def _restore_optimizer(self, leaves: list) -> bool:
        fresh, tree = jax.tree_util.tree_flatten(self.optimizer.init(self.params))
        if len(leaves) != len(fresh) or any(s.shape != np.shape(f) or s.dtype != f.dtype
                                            for s, f in zip(leaves, fresh)):
            return False
        self.opt_state = jax.tree_util.tree_unflatten(tree, [jnp.asarray(s) for s in leaves])
        return True

    # --- training ---------------------------------------------------------------------------
    def _chunk_runner(self, total: int, data):
        # the learning-rate schedule spans the steps of this fit (a resumed run must ask for
        # the same total to repeat an uninterrupted one)
        self.optimizer = optim.optimizer(self.spec.train, total)
        key = ("fit", optim.span(self.spec.train, total), self.seed)
        run_chunk = self._compiled.get(key) if data is None else None  # arrays are not cached
        if run_chunk is None:
            step_fn = train.make_step(self.spec, self.objective.draw(self, data),
                                      self._update(), jax.random.PRNGKey(self.seed),
                                      self.layout)
            tr = self.spec.train
            run_chunk = train.chunk_runner(step_fn, self.layout.out_sharding()
                                           if self.layout.sharded else None,
                                           capacity=min(tr.log_every, tr.checkpoint_every))
            if data is None:
                self._compiled[key] = run_chunk
        return run_chunk

    def _loss(self):
        """loss(params, *batch), the objective's loss as a function of the weights."""
        return lambda params, *batch: self.objective.loss(self, self.network(params))(*batch)

    def _update(self):
        return train.make_update(self.spec, self._loss(), self.optimizer, self.frozen_keys())

    def loss(self, t, x0, x1, z=0.0, *more) -> float:
        """The training loss at the current weights on a given batch (numpy arrays; ``more``:
        what else the objective draws: dropout seeds, a flow map's second time). Compiled once
        per model: evaluated op by op, a U-Net's loss compiled each of its few hundred
        operations on its own, slower than the whole program at once."""
        program = self.program(("loss",), self._loss())
        return float(program(self.params, *map(self.ops.asarray, (t, x0, x1, z) + more)))

    def step_on(self, t, x0, x1, z=0.0, *more, total: int | None = None) -> float:
        """One optimiser step on a given batch (numpy arrays; ``more`` as in ``loss``);
        returns its loss. The schedule spans ``total`` steps (default: the train block's)."""
        total = int(total if total is not None else self.spec.train.steps)
        key = ("step_on", optim.span(self.spec.train, total))
        if key not in self._compiled:
            self.optimizer = optim.optimizer(self.spec.train, total)
            self._compiled[key] = jax.jit(self._update())
        state, value = self._compiled[key](self._state(), *map(self.ops.asarray, (t, x0, x1, z) + more))
        self._set_state(state)
        self.history.append(float(value))
        return float(value)

    # --- networks and programs ---------------------------------------------------------------
    def network(self, weights):
        return networks.Outputs(self.spec, weights, self.dtype, self.user, self.guidance)

    def flow_map(self, network, name: str):
        """(s, t, x) -> X_{s,t}(x) of the flow map ``name`` on the weights of ``network``
        (what ``network(weights)`` returned)."""
        net, shape, dtype = self.spec.network(name), self.shape, self.dtype
        return lambda s, t, x: networks.flow_map(net, network.weights, s, t, x, shape, dtype)

    def program(self, key: tuple, fn):
        if key not in self._compiled:
            self._compiled[key] = jax.jit(fn)
        return self._compiled[key]
