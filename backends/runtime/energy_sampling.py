"""The samplers of a trained model on its target's energy, the same for both backends and for
both sorts of networks: a model of normalizing flows (runtime/flow_model.py), and a model whose
velocity is trained along an interpolant, whose probability-flow ODE is then a flow
(runtime/ode_flow.py).

MCMC and SMC run through an ``EnergyModel`` on the model's module (``energy_model``): its flow
kernels and flow starts get each flow as a ``FlowProposal`` and the current weights as their
context; importance sampling runs here; ``flow_mcmc`` by the adaptive loop (runtime/flow_mcmc.py),
which trains a flow on its chains.

A class mixing this in supplies ``flow_density(network, name)`` (the FlowDensity of the flow or
ODE sampler ``name`` on a network object), ``bound(weights)`` (that network object),
``flow_names`` (what its samplers may name as their flow), ``weights``, ``seed``, ``ops``,
``module``, ``root``, ``program`` and ``shape``; the backend sets ``energy_model_class``.
"""

from __future__ import annotations

import math

import numpy as np

from . import importance, parallel
from .energy_model import Run, top_level
from .flow_density import FlowProposal

TRANSPORTS = ("ode", "sde", "map")  # the sampler families that transport by what was learned


class EnergySampling:
    energy_model_class: type = object

    @property
    def flow_names(self) -> list[str]:
        """The names a sampler's ``flow`` argument may take in this model."""
        return []

    def _energy_options(self) -> dict:
        return {}

    def _ready_flows(self) -> None:
        """Work on the host that the flows need before a compiled program binds them (none
        by default)."""

    @property
    def energy_model(self):
        """The sampler of the target's energy on this model's module (created when first
        used: a target known by samples only has no energy)."""
        self._ready_flows()
        if getattr(self, "_energy_model", None) is None:
            em = self.energy_model_class(self.module, self.root, **self._energy_options())
            em.proposals = {name: FlowProposal(self, name) for name in self.flow_names}
            em.layout = self.layout  # the model's devices (chains split over them)
            self._energy_model = em
        self._energy_model.seed = self.seed
        self._energy_model.context = self.weights
        return self._energy_model

    @property
    def target_energy(self):
        return self.energy_model.energy

    @property
    def log_Z_true(self):
        return self.energy_model.log_Z_true

    def energy_of(self, x) -> np.ndarray:
        return self.energy_model.energy_of(x)

    def check_split(self) -> None:
        """On several devices: every sampler of the energy that ``tfmc run`` runs splits its
        chains or particles evenly over them, checked before training rather than after
        (importance sampling's draws split as sampled points do, padded)."""
        devices = self.layout.devices
        if devices == 1:
            return
        for entry in top_level(self.energy_samplers):
            args = entry.args
            if entry.method == "importance" or ("particles" not in args and "chains" not in args):
                continue  # (importance draws are points: padded to split, cut when gathered)
            rows = int(args["particles"]) * int(args.get("replicas", 1)) \
                if "particles" in args else int(args["chains"])
            parallel.check_rows(rows, devices, entry.name)

    @property
    def energy_samplers(self) -> list:
        """The samplers of the target's energy (every sampler that does not integrate a learned
        field)."""
        return [s for s in self.spec.samplers if s.kind not in TRANSPORTS]

    def top_level(self) -> list:
        """The energy samplers that no other sampler uses: what ``tfmc run`` runs."""
        return self.energy_model.top_level()

    def energy_sample(self, n: int, sampler, seed: int = 0) -> np.ndarray:
        """n draws (n, *shape) of the energy sampler ``sampler`` (a name or a spec Sampler)."""
        entry = self.energy_model.sampler_entry(getattr(sampler, "name", sampler))
        if entry.method == "importance":
            replicas = int(entry.args["replicas"])
            return self._importance(entry, seed, math.ceil(n / replicas)).draws[:n]
        if entry.method == "flow_mcmc" and entry.name not in self.energy_model.states:
            self.run(entry.name, seed=seed)
        return self.energy_model.sample(n, entry.name, seed)

    def run(self, name: str | None = None, seed: int | None = None, progress: bool = False,
            log=print) -> Run:
        """Runs the energy sampler ``name`` (default: the first that no other uses)."""
        em = self.energy_model
        entry = em.sampler_entry(name)
        seed = self.seed if seed is None else int(seed)
        if entry.method == "importance":
            return self._importance(entry, seed)
        if entry.method == "flow_mcmc":
            from .flow_mcmc import adaptive

            return adaptive(self, entry, seed, progress=progress, log=log)
        return em.run(entry.name, seed=seed)

    def run_fixed(self, entry, temperatures: int, seed: int) -> Run:
        return self.energy_model.run_fixed(entry, temperatures, seed)

    def log_weights(self, z, name: str):
        """The draws of the flow ``name`` from latents z and their importance log-weights
        -U(x) - log q(x) (-inf where not finite), with the current weights (one compiled
        program)."""
        ops, energy = self.ops, self.energy_model.energy  # (flows readied)

        def weigh(w, z):
            return importance.log_weights(ops, self.flow_density(self.bound(w), name), energy, z)
        return self.program(("importance", name), weigh)(self.weights, z)

    def _importance(self, entry, seed: int, particles: int | None = None) -> Run:
        ops = self.ops
        replicas = int(entry.args["replicas"])
        n = int(particles if particles is not None else entry.args["particles"])
        name = entry.args["flow"]["name"]
        rng = ops.random(ops.key(seed, 5))
        keys = rng.split(replicas)
        layout = self.layout  # each replica's draws split over the devices, gathered in order
        xs, lws = [], []
        for r in range(replicas):  # one replica at a time: memory stays at N draws
            x, lw = self.log_weights(layout.points(keys[r].normal((n,) + self.shape)), name)
            xs.append(ops.numpy(layout.gather(x, n)))
            lws.append(ops.numpy(layout.gather(lw, n)))
        result = importance.estimate(np.concatenate(xs), np.concatenate(lws), replicas, seed)
        return Run(entry.name, entry.method, (), result, seed)

    # --- state ------------------------------------------------------------------------------
    def save_chains(self, path) -> None:
        if getattr(self, "_energy_model", None) is not None and self._energy_model.states:
            self._energy_model.save(path)

    def load_chains(self, path) -> None:
        self.energy_model.load(path)
