"""The model object of a model without networks, the same for both backends: it samples the
target's energy with the model's MCMC and SMC samplers (``mcmc/``), keeps the chains' last states
and adapted step sizes so that more draws continue them, and writes its state in the one
checkpoint format.

A backend subclasses ``EnergyModel`` and supplies ``ops`` and ``program`` (JAX: jit, cached;
torch: the function itself, on the model's device).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path

import attrs
import numpy as np

from ...errors import Diagnostic, TfmRuntimeError, TfmSemanticError
from . import checkpoint, data as data_files, densities, parallel
from .mcmc import KERNELS, potential
from .mcmc.chains import ChainResult, run_chains
from .mcmc.tempering import SMCResult, smc
from .spec import Sampler, Spec

STATE = "chains.safetensors"  # the chains' last states and step sizes, in a run folder
FLOW_STARTS = ("flow_smc", "flow_ais")  # SMC and AIS that start from a flow's draws


def error(message: str, suggestion: str | None = None) -> TfmSemanticError:
    return TfmSemanticError(Diagnostic("Semantic", message, suggestion=suggestion))


@attrs.frozen
class Run:
    """What one sampler of the model gave: ``result`` (a ChainResult or an SMCResult), the
    kernel names of its cycle and its seed."""

    sampler: str
    method: str
    kernels: tuple[str, ...]
    result: ChainResult | SMCResult
    seed: int
    extra: dict = attrs.field(factory=dict)  # what a sampler reports beyond its result

    @property
    def draws(self) -> np.ndarray:
        """Its draws of the target, (n, *shape): the chains' kept states, draw by draw, or the
        particles."""
        if hasattr(self.result, "particles"):  # SMC, AIS, importance sampling
            return self.result.particles
        samples = self.result.samples
        return samples.reshape((-1,) + samples.shape[2:])


def top_level(samplers) -> list:
    """The samplers no other sampler uses (a kernel named by a cycle or an SMC sampler runs
    inside it): what ``tfmc run`` runs, in the order of the file."""
    used = {value["name"] for s in samplers for value in s.args.values()
            if isinstance(value, dict) and value.get("ref") == "sampler"}
    return [s for s in samplers if s.name not in used]


class EnergyModel(ABC):
    """A compiled model without networks: ``run`` a sampler, ``sample`` draws, ``energy`` of
    points, ``save`` and ``load`` of the chains' state."""

    backend = ""
    ops = None

    def __init__(self, module, root: str | Path = "."):
        self.module = module
        self.spec: Spec = module.SPEC
        self.root = Path(root)
        self.shape = tuple(self.spec.shape)
        self.seed = self.spec.train.seed
        self.step = 0
        self.history: list[float] = []
        self.constants = {name: self.ops.asarray(self._constant(name, c))
                          for name, c in self.spec.constants.items()}
        self.energy = self._target_energy()
        # built once, so that compiled programs keyed by it are found again
        self.base_log_prob = densities.log_prob(self.ops, self.spec.base, self.shape)
        self.states: dict[str, tuple[np.ndarray, list[float]]] = {}  # sampler -> (x, steps)
        # a model with flows: each flow's FlowProposal, and the weights runs pass them
        self.proposals: dict[str, object] = {}
        self.context = None
        self.layout = parallel.Layout()  # chains and particles split over devices

    # --- backend hooks ----------------------------------------------------------------------
    @abstractmethod
    def program(self, key: tuple, fn):
        """``fn`` ready to run many times (JAX: compiled with jit, cached under ``key``)."""

    # --- the target and the base ------------------------------------------------------------
    def _constant(self, name: str, entry: dict) -> np.ndarray:
        shape = tuple(entry["shape"])
        if "path" in entry:
            return data_files.load_constant(name, entry["path"], self.root, shape,
                                            entry.get("key", ""))
        return np.asarray(entry["values"], dtype=np.float32).reshape(shape)

    def _target_energy(self):
        """x (n, *shape) -> U(x) (n,): the energy the target names, or the energy of a stdlib
        target."""
        target = self.spec.target
        if target.name == "energy":
            name = target.args["U"]["name"]
            fn, xp, constants = self.module.ENERGIES[name], self.ops.exact_xp, self.constants
            return lambda x: fn(xp, x, constants)
        energy = densities.energy(self.ops, target, self.shape)
        if energy is None:
            raise error(f"The target '{target.name}' has no energy to sample.",
                        "Give it one: energy U(x) = ... and target x1 ~ energy(U), or a stdlib "
                        "target such as many_well() or funnel().")
        return energy

    @property
    def log_Z_true(self) -> float | None:
        """log of the integral of exp(-U), where the target's kind knows it."""
        return densities.log_Z(self.spec.target)

    def energy_of(self, x) -> np.ndarray:
        """U at points x (n, *shape), as numpy."""
        return self.ops.numpy(self.energy(self.ops.asarray(np.asarray(x, np.float32))))

    def base_draws(self, n: int, seed: int) -> object:
        """n draws of the base: the chains' or particles' starting points."""
        draw = densities.sampler(self.ops, self.spec.base, self.shape)
        return draw(self.ops.random(self.ops.key(seed, 1)), n)

    # --- samplers ---------------------------------------------------------------------------
    def top_level(self) -> list:
        """The samplers no other sampler uses: what ``tfmc run`` runs (``top_level``)."""
        return top_level(self.spec.samplers)

    def sampler_entry(self, name: str | None = None):
        samplers = self.spec.samplers
        if not samplers:
            raise error(f"Model {self.spec.model} has no sampler.",
                        "Add one, e.g. sampler s = mala().")
        if name is None:
            return self.top_level()[0]
        for s in samplers:
            if s.name == name:
                return s
        raise error(f"The model has no sampler '{name}'.",
                    "Its samplers: " + ", ".join(s.name for s in samplers) + ".")

    def cycle(self, entry) -> list:
        """The kernels (spec Samplers) the MCMC sampler ``entry`` runs in turn: a cycle's in
        order (cycles nested in cycles flattened), or the kernel itself."""
        if entry.method == "cycle":
            return [k for part in ("first", "second")
                    for k in self.cycle(self._referenced(entry.args[part]))]
        if entry.method == "flow_mcmc":  # after its rounds: its kernel, then a flow move
            return self.cycle(self._referenced(entry.args["kernel"])) + [
                Sampler("flow_mh", "flow_mh", {"flow": entry.args["flow"]}, "mcmc")]
        return [entry]

    def kernels(self, entry) -> tuple[list[tuple], tuple[str, ...]]:
        """The cycle of (kernel kind, args) of ``entry`` and the kernels' names (a kernel used
        twice is named twice, the second time with #2)."""
        entries = self.cycle(entry)
        names, seen = [], {}
        for e in entries:
            seen[e.name] = seen.get(e.name, 0) + 1
            names.append(e.name if seen[e.name] == 1 else f"{e.name}#{seen[e.name]}")
        return [(KERNELS[e.method], self._kernel_args(e)) for e in entries], tuple(names)

    def _kernel_args(self, entry) -> dict:
        """A kernel's arguments; a flow kernel's also its flow (``proposal``)."""
        args = dict(entry.args)
        if isinstance(args.get("flow"), dict):
            args["proposal"] = self.flow(args["flow"]["name"])
        return args

    def flow(self, name: str):
        """The FlowProposal of the flow ``name`` (a model with flows sets them)."""
        if name not in self.proposals:
            raise error(f"The flow '{name}' is not available to this sampler run.",
                        "Flow samplers run in a model that declares the flow.")
        return self.proposals[name]

    def _referenced(self, value):
        return self.spec.sampler(value["name"])

    def run(self, name: str | None = None, seed: int | None = None,
            continue_chains: bool = False, draws: int | None = None) -> Run:
        """Runs the sampler ``name`` (default: the first): MCMC chains from base draws (or,
        with ``continue_chains``, from the states a previous run left, without warm-up), or
        SMC/AIS from base draws. ``draws`` overrides an MCMC sampler's draws."""
        entry = self.sampler_entry(name)
        seed = self.seed if seed is None else int(seed)
        key = self.ops.key(seed, 3 if continue_chains else 2)  # a continuation's own stream
        if entry.kind == "smc" or entry.method in FLOW_STARTS:
            return self._smc(entry, seed, key)
        kernels, names = self.kernels(entry)
        args = entry.args
        chains, warmup, thin = int(args["chains"]), int(args.get("warmup", 0)), int(args["thin"])
        steps = [k.initial_step(a) for k, a in kernels]
        x0 = None
        if continue_chains:
            if entry.name not in self.states:
                raise error(f"The sampler '{entry.name}' has no chains to continue.",
                            "Run it first (tfmc run).")
            state, steps = self.states[entry.name]
            x0, warmup = self.ops.asarray(state), 0
        else:
            x0 = self.base_draws(chains, seed)
        x0 = self.layout.rows(x0, entry.name)
        result = run_chains(self.ops, self.program, kernels, potential(self.ops, self.energy),
                            x0, key, warmup, int(draws if draws is not None else args["draws"]),
                            thin, steps, [k.target_accept(a) for k, a in kernels],
                            adapt=not continue_chains, context=self.context, layout=self.layout)
        self.states[entry.name] = (result.state, list(result.step_sizes))
        return Run(entry.name, entry.method, names, result, seed)

    def run_fixed(self, entry, temperatures: int, seed: int) -> Run:
        """The SMC or AIS sampler ``entry`` with a fixed schedule of ``temperatures`` steps."""
        return self._smc(entry, seed, self.ops.key(seed, 2), temperatures=temperatures)

    def _smc(self, entry, seed: int, key, particles: int | None = None,
             temperatures: int | None = None) -> Run:
        kernels, names = self.kernels(self._referenced(entry.args["kernel"]))
        base_log_prob = self.base_log_prob
        if entry.method in FLOW_STARTS:  # the flow is the start: its draws and its density
            density = self.flow(entry.args["flow"]["name"]).bind(self.context)
            base_log_prob = density.log_prob
        elif base_log_prob is None:
            raise error(f"SMC and AIS weigh particles by the base's density, and the base "
                        f"'{self.spec.base.name}' has none in closed form.",
                        "Use base x0 ~ normal(...).")
        replicas = int(entry.args["replicas"])
        n = int(particles if particles is not None else entry.args["particles"])
        temperatures = temperatures or int(entry.args["temperatures"]) or None
        if entry.method in ("ais", "flow_ais") and temperatures is None:  # pragma: no cover
            raise error("AIS needs a fixed number of temperatures.")
        if entry.method in FLOW_STARTS:  # the flow's draws
            z = self.ops.random(self.ops.key(seed, 1)).normal((replicas * n,) + self.shape)
            x0 = self.program(("flow_smc", "start", entry.name),
                              lambda c, z: self.flow(entry.args["flow"]["name"]).bind(c)
                              .sample(z)[0])(self.context, z)
        else:
            x0 = self.base_draws(replicas * n, seed)
        x0 = self.layout.rows(x0, entry.name)
        result = smc(self.ops, self.program, kernels, base_log_prob, self.energy, x0, key,
                     replicas, temperatures, float(entry.args.get("ess", 0.5)),
                     int(entry.args["moves"]), entry.method in ("smc", "flow_smc"),
                     [k.initial_step(a) for k, a in kernels],
                     [k.target_accept(a) for k, a in kernels], layout=self.layout)
        return Run(entry.name, entry.method, names, result, seed)

    def sample(self, n: int, sampler: str | None = None, seed: int = 0, cond=None,
               guidance=None, observed=None) -> np.ndarray:
        """n draws of the target (n, *shape): an MCMC sampler continues its chains (those a run
        left, or fresh ones after a warm-up) for as many iterations as n draws need; an SMC or
        AIS sampler runs with n particles in all (rounded up to a multiple of its replicas).
        ``cond``, ``guidance`` and ``observed`` are refused: they guide networks of (t, x)."""
        if cond is not None or guidance or observed is not None:
            raise error("This model samples its target's energy; it has no networks of (t, x) "
                        "to condition on classes or to guide by observed coordinates.")
        entry = self.sampler_entry(sampler)
        if entry.kind == "smc" or entry.method in FLOW_STARTS:
            replicas = int(entry.args["replicas"])
            run = self._smc(entry, seed, self.ops.key(seed, 2), math.ceil(n / replicas))
            return run.draws[:n]
        chains, thin = int(entry.args["chains"]), int(entry.args["thin"])
        if entry.name not in self.states:
            self.run(entry.name, seed=seed, draws=thin)  # the warm-up adapts the step sizes
        run = self.run(entry.name, seed=seed, continue_chains=True,
                       draws=math.ceil(n / chains) * thin)
        return run.draws[:n]

    def log_prob(self, x, **_):
        raise error("A model without networks gives no normalised log-densities; its target is "
                    "known through its energy U only.",
                    "Evaluate the energy (model.energy_of(x)); SMC and AIS estimate log Z.")

    # --- state ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """The chains' last states and step sizes of every MCMC sampler that ran."""
        tensors = {}
        for name, (state, steps) in self.states.items():
            tensors[f"{name}/state"] = np.asarray(state, np.float32)
            tensors[f"{name}/step_sizes"] = np.asarray(steps, np.float64)
        checkpoint.save(path, tensors, {"model": self.spec.model, "backend": self.backend,
                                        "kind": "chains"})

    def load(self, path: str | Path) -> None:
        path = Path(path)
        if not path.exists():
            return  # nothing ran that keeps chains (SMC only)
        tensors, meta = checkpoint.load(path)
        if meta.get("model") != self.spec.model:
            raise TfmRuntimeError(Diagnostic(
                "Runtime", f"'{path}' holds the chains of model '{meta.get('model')}', not "
                f"'{self.spec.model}'."))
        for key, value in tensors.items():
            name, part = key.rsplit("/", 1)
            if part == "state":
                if tuple(value.shape[1:]) != self.shape:
                    raise TfmRuntimeError(Diagnostic(
                        "Runtime", f"The saved chains of '{name}' have shape "
                        f"{list(value.shape[1:])}; the model's is {list(self.shape)}."))
                self.states[name] = (value, [float(s) for s in tensors[f"{name}/step_sizes"]])

