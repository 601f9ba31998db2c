"""The model object of the PyTorch backend (runtime/model.py holds what both backends share): the
emitted ``nn.Module`` (weights float32, names from runtime/init.py), the ``torch.optim``
optimiser, the EMA of the weights and the loss history, on one device (CUDA when there is one).

On CUDA, float32 matrix products use TF32 (as JAX's default precision does); ``precision
bfloat16`` runs the networks in bfloat16 with float32 weights, as in the JAX backend.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...runtime import model as shared, parallel
from ...runtime import networks as runtime_networks
from ...runtime.init import init_params
from ...runtime.model import error
from .energy_model import TorchEnergyModel
from . import distributed, optim, train
from .ops import Ops, device as _device, default_device

BACKEND = "torch"


class TorchModel(shared.Model):
    energy_model_class = TorchEnergyModel
    backend = BACKEND
    pipelined = False  # chunks update the weights in place; the GPU still runs ahead within one
    free_chunk_lengths = True  # a chunk is a Python loop of steps: any length, nothing compiled

    def __init__(self, module, root: str | Path = ".", device=None, compile: bool | None = None,
                 networks: dict | None = None, devices: int | None = None):
        super().__init__(module, root)
        given = shared.user_networks(self.spec, networks)
        self.device = _device(device) if device is not None else default_device()
        if devices is not None or distributed.launched() > 1:  # one process of several
            parallel.check_batch(self.spec.train.batch, devices or distributed.launched())
            self.device = distributed.device_of_rank(_device(device) if device else None)
            self.layout = distributed.ProcessLayout(devices, self.device)
        self.ops = Ops(self.device)
        # training's loss through torch.compile (default: on CUDA, where it also captures CUDA
        # graphs; on a CPU compiling costs more than it saves on small models)
        self.compile = self.device.type == "cuda" if compile is None else compile
        tr = self.spec.train
        if self.device.type == "cuda" and tr.precision != "bfloat16":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        with torch.device("meta"):
            net = module.Networks()
        self.net = net.to_empty(device=self.device)
        self.nets = self.net.nets
        self.dtype = next((n.dtype for n in self.nets.values() if hasattr(n, "dtype")),
                          torch.float32)
        self.user = self._install(given)
        self.params = dict(self.nets.named_parameters())
        self.reset(tr.seed)

    def _install(self, given: dict) -> dict[str, dict]:
        """User networks (torch ``nn.Module``s of (t, x)) in place of the file's, on the
        model's device, their outputs' shapes checked; returns each one's initial weights (what
        ``reset`` restores: a user network keeps its own initialisation)."""
        initial = {}
        for name, module in given.items():
            if not isinstance(module, nn.Module):
                raise error(f"The network given for '{name}' is a {type(module).__name__}; the "
                            "torch backend takes a torch.nn.Module of (t, x).")
            module = module.to(self.device)
            self.nets[name] = _Batched(module)
            x = torch.zeros((2,) + self.shape, device=self.device)
            with torch.no_grad():
                got = self.nets[name](torch.full((2,), 0.5, device=self.device), x)
            shared.check_output(self.spec, name, self.shape, tuple(got.shape))
            initial[name] = {k: v.detach().clone() for k, v in
                             self.nets[name].named_parameters()}
        return initial

    # --- state ------------------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        """Fresh weights from ``seed``; step 0."""
        self.seed = seed
        own = [n for n in self.spec.networks if n.name not in self.user]
        with torch.no_grad():
            for k, v in init_params(own, self.shape, seed).items():
                self.params[k].copy_(torch.from_numpy(v))
            for name, initial in self.user.items():
                for k, v in initial.items():
                    self.params[f"{name}.{k}"].copy_(v)
            for k in self.frozen_keys():  # fixed: no gradient, no optimiser state
                self.params[k].requires_grad_(False)
                if k in self.frozen_weights:
                    self.params[k].copy_(torch.from_numpy(self.frozen_weights[k]))
        self.optimizer = optim.optimizer(self.spec.train, self._trained())
        self.ema = ({k: p.detach().clone() for k, p in self.params.items()}
                    if self.spec.train.ema > 0 else {})
        self.generator = self.ops.key(seed)  # training's draws, saved with checkpoints
        self.step = 0
        self.history: list[float] = []

    @property
    def weights(self) -> dict:
        """The weights used for sampling: the EMA when the train block keeps one."""
        return self.ema if self.ema else {k: p.detach() for k, p in self.params.items()}

    def _state(self) -> int:
        return self.step

    def _set_state(self, state: int) -> None:
        self.step = int(state)

    def _param_shapes(self) -> dict[str, tuple]:
        return {k: tuple(v.shape) for k, v in self.params.items()}

    def _numpy_state(self):
        leaves = []
        state = self.optimizer.state
        for p in self._trained():
            for k in sorted(state.get(p, {})):
                leaves.append(state[p][k].detach().cpu().numpy())
        return ({k: p.detach().cpu().numpy() for k, p in self.params.items()},
                {k: v.cpu().numpy() for k, v in self.ema.items()}, leaves)

    def _rng_state(self) -> dict[str, np.ndarray]:
        return {"train": self.generator.get_state().numpy()}

    def _restore_rng(self, state: dict[str, np.ndarray]) -> bool:
        if "train" not in state:
            return False
        saved = torch.from_numpy(np.asarray(state["train"], np.uint8))
        if saved.shape != self.generator.get_state().shape:  # written on another device type
            warnings.warn(f"The checkpoint's random-generator state is from another device type "
                          f"than {self.device.type}; training resumes with a generator seeded "
                          f"from the seed and step {self.step}, so its batches differ from an "
                          "uninterrupted run's.", RuntimeWarning, stacklevel=3)
            self.generator.manual_seed((self.seed * 1_000_003 + self.step) % 2**32)
            return True
        self.generator.set_state(saved)
        return True

    def _restore(self, params: dict, ema: dict) -> None:
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(torch.from_numpy(np.asarray(params[k])))
        if self.spec.train.ema > 0:
            self.ema = {k: torch.as_tensor(np.asarray(ema[k]) if ema else params[k],
                                           device=self.device).clone() for k in self.params}
        else:
            self.ema = {}

    def _trained(self) -> list[torch.Tensor]:
        """The weights the optimiser updates: all but the fixed ones (``freeze``)."""
        frozen = self.frozen_keys()
        return [p for k, p in self.params.items() if k not in frozen]

    def _restore_optimizer(self, leaves: list) -> bool:
        keys = optim.state_keys(self.spec.train)
        params = self._trained()
        self.optimizer = optim.optimizer(self.spec.train, params)
        if not leaves:  # a fresh optimiser (a checkpoint written before the first step)
            return True
        if len(leaves) != len(keys) * len(params):
            return False
        it = iter(leaves)
        for p in params:
            entry = {}
            for k in sorted(keys):
                leaf = next(it)
                if k != "step" and leaf.shape != tuple(p.shape):
                    return False
                entry[k] = torch.as_tensor(leaf, device=p.device).clone()  # fused: all on p's device
            self.optimizer.state[p] = entry
        return True

    # --- training ---------------------------------------------------------------------------
    def _update(self, total: int):
        # the learning-rate schedule spans the steps of this fit (a resumed run must ask for
        # the same total to repeat an uninterrupted one)
        rate = optim.schedule(self.spec.train, total)
        ema = [self.ema[k] for k in self.params] if self.ema else []
        average = self.layout.average_gradients if self.layout.sharded else None
        return train.make_update(self.spec, self._loss(), self.net, self.optimizer, rate, ema,
                                 average)

    def _loss(self):
        """The objective's loss on the live weights, compiled once per model when ``compile``
        is set."""
        key = ("loss", self.compile)
        if key not in self._compiled:
            loss = self.objective.loss(self, self.net)
            self._compiled[key] = train.compiled(loss, self.device) if self.compile else loss
        return self._compiled[key]

    def _chunk_runner(self, total: int, data):
        update = self._update(total)
        step = train.make_step(self.spec, self.objective.draw(self, data), update,
                               self.ops.random(self.generator), self.layout)
        run = train.chunk_runner(step, self.layout)

        def guarded(first: int, length: int):
            """A chunk whose losses are not all finite, or that is interrupted (Ctrl-C), leaves
            the model as it was before it."""
            saved = self._snapshot()
            try:
                nxt, losses = run(first, length)
            except BaseException:
                self._restore_snapshot(saved)
                raise
            if not np.isfinite(losses).all():
                self._restore_snapshot(saved)
            return nxt, losses
        return guarded

    def _snapshot(self):
        return ({k: p.detach().clone() for k, p in self.params.items()},
                {k: v.clone() for k, v in self.ema.items()},
                copy.deepcopy(self.optimizer.state_dict()), self.generator.get_state())

    def _restore_snapshot(self, saved) -> None:
        params, ema, opt, rng = saved
        self.generator.set_state(rng)
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(params[k])
            for k, v in self.ema.items():
                v.copy_(ema[k])
        self.optimizer.load_state_dict(opt)

    def loss(self, t, x0, x1, z=0.0, *more) -> float:
        """The training loss at the current weights on a given batch (numpy arrays; ``more``:
        what else the objective draws: dropout seeds, a flow map's second time)."""
        fn = self.objective.loss(self, self.net)
        with torch.no_grad():  # torch.func.grad (potentials) works inside
            return float(fn(*map(self.ops.asarray, (t, x0, x1, z) + more)).detach())

    def step_on(self, t, x0, x1, z=0.0, *more, total: int | None = None) -> float:
        """One optimiser step on a given batch (numpy arrays; ``more`` as in ``loss``);
        returns its loss. The schedule spans ``total`` steps (default: the train block's)."""
        total = int(total if total is not None else self.spec.train.steps)
        value = float(self._update(total)(self.step, *map(self.ops.asarray, (t, x0, x1, z) + more)))
        self.step += 1
        self.history.append(value)
        return value

    # --- networks and programs ---------------------------------------------------------------
    def _energy_options(self) -> dict:
        return {"device": self.device}

    def network(self, weights: dict):
        """(t, x) -> every network's output with ``weights`` (the EMA or the parameters)."""
        return _Functional(self.net, weights, self.guidance)

    def flow_map(self, network, name: str):
        """(s, t, x) -> X_{s,t}(x) of the flow map ``name`` on ``network``: the live module
        (training) or what ``network(weights)`` returned."""
        module = self.nets[name]
        if isinstance(network, _Functional):
            own = {k[len(name) + 1:]: v for k, v in network.weights.items()
                   if k.startswith(name + ".")}
            return lambda s, t, x: torch.func.functional_call(module, own, (t, x), {"s": s})
        return lambda s, t, x: module(t, x, s=s)

    def program(self, key: tuple, fn):
        """``fn`` under no_grad (torch.func.grad of a potential works inside)."""
        def run(*args):
            with torch.no_grad():
                return fn(*args)
        return run


class _Functional:
    """The networks on other weights than the live ones (the EMA for sampling), called as
    (t, x) for every network's output; ``weights`` for a flow map's (``flow_map``)."""

    def __init__(self, net: nn.Module, weights: dict, guidance: float = 0.0):
        self.net, self.weights, self.guidance = net, weights, guidance
        self.labels = weights.get(runtime_networks.LABELS)  # a sampling pass's labels
        self.named = {f"nets.{k}": v for k, v in weights.items()
                      if k != runtime_networks.LABELS}

    def __call__(self, t, x, seeds=None, labels=None):
        """The outputs at (t, x); with labels given here or with the weights, for those
        classes, guided by ``guidance`` (docs/conditional.md)."""
        return runtime_networks.conditioned_outputs(
            lambda y: self._call(t, x, seeds, y), self.labels if labels is None else labels,
            self.guidance)

    def _call(self, t, x, seeds, labels):
        options = {} if seeds is None else {"seeds": seeds}
        if labels is not None:
            options["labels"] = labels
        return torch.func.functional_call(self.net, self.named, (t, x), options)


class _Batched(nn.Module):
    """A user network called as the built-in ones are: t as a tensor of shape (B,), whatever
    the caller passed (a number or (B,))."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, t, x):
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        return self.module(t.expand(x.shape[0]) if t.ndim == 0 else t, x)
