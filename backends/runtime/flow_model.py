"""The model object of a model whose networks are normalizing flows, the same for both backends:
a backend's ``Model`` (training, checkpoints, resume, the non-finite guard) with the flow's
exact density and draws, and the samplers that use a flow on the target's energy.

- ``sample(n)``: the flow's own draws x = T(z); ``sample(n, sampler)``: a sampler's draws
  (importance sampling resampled, flow-assisted chains, SMC started from the flow);
- ``log_prob(x)``: the exact log-density by the change of variables (runtime/flow_density.py);
- ``run(sampler)``: one sampler on the target's energy (runtime/energy_sampling.py); the
  adaptive loop of ``flow_mcmc`` (runtime/flow_mcmc.py) trains the flow on its chains
  (``train_on``).

A backend mixes ``FlowModel`` into its Model and supplies ``flow_passes`` (the flow's push and
pull on a network object: the weights being trained, or bound weights), ``bound`` (the network
object of given weights) and ``train_on`` (optimiser steps on given batches).
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from ...errors import Diagnostic, TfmRuntimeError
from . import densities
from .energy_sampling import EnergySampling
from .flow_density import FlowDensity
from .flows import AFFINE_CLAMP
from .model import error
from .networks import NETWORKS


class FlowModel(EnergySampling):
    # --- backend hooks ----------------------------------------------------------------------
    @abstractmethod
    def flow_passes(self, network, name: str):
        """(push, pull) of flow ``name`` on ``network`` (what the objective's loss is given, or
        ``bound(weights)``)."""

    @abstractmethod
    def flow_matching(self, network, name: str):
        """(t, z, x) -> (prediction, target) of flow matching for the cnf flow ``name`` on
        ``network`` (``flows/cnf.py``, ``matching``)."""

    @abstractmethod
    def bound(self, weights):
        """The network object of ``weights`` (a mapping of weights by their shared names)."""

    @abstractmethod
    def train_on(self, *batches) -> np.ndarray:
        """One optimiser step per leading index of the stacked batches (the objective's batch
        arrays, each (steps, batch, ...)); returns the losses. A non-finite loss raises and
        leaves the weights as they were."""

    # --- the flow ---------------------------------------------------------------------------
    @property
    def flow_name(self) -> str:
        return self.spec.flows[0].name

    @property
    def flow_names(self) -> list[str]:
        return [f.name for f in self.spec.flows]

    def flow_density(self, network, name: str | None = None) -> FlowDensity:
        name = name or self.flow_name
        push, pull = self.flow_passes(network, name)
        symmetric = self.spec.network(name).args.get("symmetry", "none") == "sign"
        return FlowDensity(self.ops.xp, push, pull, symmetric)

    # --- training ---------------------------------------------------------------------------
    def standardise(self, x) -> None:
        """Sets the flow's final affine layer so that the flow, still the identity in its
        coupling layers, maps N(0, I) to a normal with the mean and standard deviation of each
        coordinate of the points x (n, *shape): training then starts at the right location
        and scale, however wide the target (runtime/flows: the layer's bias is the location
        and the clamped log-scale). A flow with ``symmetry = sign`` starts on one of the two
        mirror halves: the points are first folded, x -> sign(sum of x) x (its mirror image
        covers the other half)."""
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        if len(x) < 2 or not np.isfinite(x).all():
            return
        net = self.spec.flows[0]
        if net.args.get("symmetry", "none") == "sign":
            x = np.where(x.sum(1, keepdims=True) < 0, -x, x)
        last = len(NETWORKS[net.kind].sizes(net.args, self.shape, False)) - 1
        params, _, _ = self._numpy_state()
        log_scale = np.clip(np.log(np.maximum(x.std(0), 1e-6)), -0.9 * AFFINE_CLAMP,
                            0.9 * AFFINE_CLAMP)
        params[f"{net.name}.{last}.weight"] = np.zeros_like(params[f"{net.name}.{last}.weight"])
        params[f"{net.name}.{last}.bias"] = np.concatenate(
            [x.mean(0), AFFINE_CLAMP * np.arctanh(log_scale / AFFINE_CLAMP)]).astype(np.float32)
        self._restore(params, {})

    def fit(self, steps=None, data=None, out=None, resume: bool = False, progress: bool = True,
            log=print):
        """Training as any model's (``Model.fit``); from fresh weights the flow first starts at
        the location and scale of the target's samples (likelihood) or of the base (reverse
        KL), see ``standardise``."""
        if self.step == 0 and not resume:
            ops = self.ops
            role = "target" if self.spec.objective in ("likelihood", "flow_matching") \
                else "base"
            draw = densities.sampler(ops, self.spec.role(role), self.shape,
                                     self._density_array(role, data if role == "target"
                                                         else None))
            self.standardise(ops.numpy(draw(ops.random(ops.key(self.seed, 9)), 4096)))
        return super().fit(steps=steps, data=data, out=out, resume=resume, progress=progress,
                           log=log)

    # --- draws and densities ----------------------------------------------------------------
    def flow_sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """n draws of the flow and their log-densities (numpy)."""
        ops, layout = self.ops, self.layout  # the latents split over the devices
        z = ops.random(ops.key(seed, 7)).normal((n,) + self.shape)
        program = self.program(("flow", "sample"),
                               lambda w, z: self.flow_density(self.bound(w)).sample(z))
        x, log_q = program(self.weights, layout.points(z))
        return ops.numpy(layout.gather(x, n)), ops.numpy(layout.gather(log_q, n))

    def sample(self, n: int, sampler=None, seed: int = 0, trajectory: bool = False, x0=None,
               cond=None, guidance=None, observed=None):
        """n draws (n, *shape): the flow's own (no sampler), or the sampler's. ``cond``,
        ``guidance`` and ``observed`` are refused (docs/conditional.md: not for flows)."""
        if cond is not None or guidance or observed is not None:
            raise error("A normalizing flow is not conditioned on classes and cannot be guided "
                        "by observed coordinates (its map is not a field of (t, x)).",
                        "Use a model with networks of (t, x) along an interpolant.")
        if trajectory:
            raise error("A flow draws in one step; it keeps no trajectory.")
        if x0 is not None:
            raise error("A flow draws from its own latent; starting points do not apply.")
        if sampler is None:
            x, _ = self.flow_sample(n, seed)
            _finite(x)
            return x
        return self.energy_sample(n, sampler, seed)

    @property
    def has_density(self) -> bool:
        return True

    def log_prob(self, x, sampler=None, exact=None, seed: int = 0,
                 batch: int = 16384, cond=None) -> np.ndarray:
        """log q(x), the flow's exact log-density (by the change of variables)."""
        if cond is not None:
            raise error("A normalizing flow is not conditioned on classes.")
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.shape:
            raise TfmRuntimeError(Diagnostic("Runtime", f"Points of shape {x.shape[1:]} given; "
                                             f"the model's samples have shape {self.shape}."))
        ops, layout = self.ops, self.layout  # the points split over the devices
        program = self.program(("flow", "log_prob"),
                               lambda w, y: self.flow_density(self.bound(w)).log_prob(y))
        parts = []
        for i in range(0, len(x), batch):
            chunk = ops.asarray(x[i:i + batch])
            parts.append(ops.numpy(layout.gather(program(self.weights, layout.points(chunk)),
                                                 chunk.shape[0])))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _finite(x: np.ndarray) -> None:
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(1)
    if bad.any():
        raise TfmRuntimeError(Diagnostic(
            "Runtime", f"The flow's draws are not finite for {int(bad.sum())} of {len(x)} "
            "points.", suggestion="Train with a smaller learning rate or clip 1.0."))


def non_finite_loss(step: int) -> TfmRuntimeError:
    """The error of ``train_on`` when a loss is not finite at optimiser step ``step``."""
    return TfmRuntimeError(Diagnostic(
        "Runtime", f"The flow's loss became non-finite at step {step}; the weights before these "
        "steps are kept.", suggestion="Lower the learning rate or add clip 1.0."))
