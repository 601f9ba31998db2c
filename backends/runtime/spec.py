"""The spec: everything the compiler hands the runtime about a model besides its maths, as frozen,
typed records (attrs). The emitted module writes it as a literal, ``SPEC = Spec.from_json({...})``,
so the module reads as plain data; ``to_json`` gives the same literal back (run folders keep it
in ``config.json``).

Nothing here imports the compiler or sympy: a runtime loads with numpy and its array library.
"""

from __future__ import annotations

from typing import Any

import attrs


def _args(value) -> dict[str, Any]:
    """A primitive's arguments as a plain dict (None: no arguments)."""
    return dict(value or {})


@attrs.frozen
class Call:
    """A primitive of the prelude with its bound arguments: a density, coupling, time law,
    optimiser or learning-rate schedule (``name`` is its prelude name, the key of its kind)."""

    name: str
    args: dict[str, Any] = attrs.field(factory=dict, converter=_args)

    @classmethod
    def from_json(cls, data: dict) -> "Call":
        return cls(data["name"], data.get("args", {}))

    def to_json(self) -> dict:
        return {"name": self.name, "args": dict(self.args)}


@attrs.frozen
class Network:
    """A network of the model: its prelude kind and arguments, what it is trained on
    (``target``; None for an untrained one), its output (``vector``, ``scalar`` for a
    potential whose gradient is the field, ``flow`` for a normalizing flow, or ``map`` for a
    flow map X_{s,t}(x), whose output at (t, x) is its velocity) and the key of
    its output in the emitted functions' ``out`` mapping (``grad_<name>`` for a potential)."""

    name: str
    kind: str
    args: dict[str, Any] = attrs.field(converter=_args)
    target: str | None
    output: str
    key: str

    @property
    def scalar(self) -> bool:
        return self.output == "scalar"

    @property
    def flow(self) -> bool:
        return self.output == "flow"

    @property
    def map(self) -> bool:
        """A two-time network trained as a flow map X_{s,t} (docs/fewstep.md)."""
        return self.output == "map"

    @classmethod
    def from_json(cls, data: dict) -> "Network":
        return cls(data["name"], data["kind"], data["args"], data["target"], data["output"],
                   data["key"])

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "args": dict(self.args),
                "target": self.target, "output": self.output, "key": self.key}


@attrs.frozen
class Sampler:
    """A sampler of the model: ``method`` is its prelude name (the key of its kind in
    ``runtime/samplers``), ``kind`` the family the compiler checked it against (``ode``,
    ``sde``), ``args`` its arguments (an SDE's ``eps`` is the emitted function ``eps_<name>``)."""

    name: str
    method: str
    args: dict[str, Any] = attrs.field(converter=_args)
    kind: str

    @classmethod
    def from_json(cls, data: dict) -> "Sampler":
        return cls(data["name"], data["method"], data["args"], data["kind"])

    def to_json(self) -> dict:
        return {"name": self.name, "method": self.method, "args": dict(self.args),
                "kind": self.kind}


@attrs.frozen
class Train:
    """The train block, every setting resolved (defaults filled in by the compiler)."""

    steps: int
    batch: int
    optimizer: Call
    lr_schedule: Call
    ema: float
    clip: float
    seed: int
    precision: str
    checkpoint_every: int
    log_every: int

    @classmethod
    def from_json(cls, data: dict) -> "Train":
        return cls(int(data["steps"]), int(data["batch"]), Call.from_json(data["optimizer"]),
                   Call.from_json(data["lr_schedule"]), float(data["ema"]), float(data["clip"]),
                   int(data["seed"]), data["precision"], int(data["checkpoint_every"]),
                   int(data["log_every"]))

    def to_json(self) -> dict:
        return {"steps": self.steps, "batch": self.batch, "optimizer": self.optimizer.to_json(),
                "lr_schedule": self.lr_schedule.to_json(), "ema": self.ema, "clip": self.clip,
                "seed": self.seed, "precision": self.precision,
                "checkpoint_every": self.checkpoint_every, "log_every": self.log_every}


@attrs.frozen
class Spec:
    """A compiled model as the runtime sees it. ``fields`` names the fields the trained networks
    determine (each an emitted ``FIELDS`` entry); ``objective`` is the kind of the training
    objective (``runtime/objectives``); ``latent``: the interpolant uses the latent z."""

    model: str
    shape: tuple[int, ...] = attrs.field(converter=tuple)
    dim: int
    latent: bool
    base: Call
    target: Call
    coupling: Call
    time_law: Call
    networks: tuple[Network, ...] = attrs.field(converter=tuple)
    fields: tuple[str, ...] = attrs.field(converter=tuple)
    samplers: tuple[Sampler, ...] = attrs.field(converter=tuple)
    train: Train
    objective: str = "regression"
    energies: tuple[str, ...] = attrs.field(converter=tuple, default=())
    constants: dict[str, dict] = attrs.field(converter=dict, factory=dict)
    objective_args: dict[str, Any] = attrs.field(converter=_args, factory=dict)
    label_drop: float = 0.0  # classifier-free guidance: a label's probability of being dropped

    @classmethod
    def from_json(cls, data: dict) -> "Spec":
        return cls(data["model"], tuple(data["shape"]), int(data["dim"]), bool(data["latent"]),
                   Call.from_json(data["base"]), Call.from_json(data["target"]),
                   Call.from_json(data["coupling"]), Call.from_json(data["time_law"]),
                   tuple(Network.from_json(n) for n in data["networks"]), tuple(data["fields"]),
                   tuple(Sampler.from_json(s) for s in data["samplers"]),
                   Train.from_json(data["train"]), data.get("objective", "regression"),
                   tuple(data.get("energies", ())), dict(data.get("constants", {})),
                   dict(data.get("objective_args", {})), float(data.get("label_drop", 0.0)))

    @property
    def sampling(self) -> bool:
        """A model without networks: its samplers run MCMC or SMC on the target's energy."""
        return self.objective == "none"

    @property
    def flows(self) -> tuple[Network, ...]:
        """The normalizing flows among the networks (in a flow model: all of them)."""
        return tuple(n for n in self.networks if n.flow)

    @property
    def frozen(self) -> tuple[str, ...]:
        """The networks whose weights are read from another run and not trained: a flow map's
        teacher named with ``run = "..."`` (docs/fewstep.md)."""
        args = self.objective_args
        return (args["teacher"],) if args.get("teacher_run") and args.get("teacher") else ()

    @property
    def classes(self) -> int:
        """The number of classes of the target's labels; 0 for a model without labels (the
        networks of a model with labels take one more input: "no label", for guidance)."""
        target = self.target
        return int(target.args.get("classes", 0)) if target.args.get("labels") else 0

    @property
    def condition_size(self) -> int:
        """The size k of the target's condition vectors; 0 for a model without them (the
        networks take k + 1 more inputs: the vector and whether it is given)."""
        return max((int(n.args.get("conditions", 0)) for n in self.networks), default=0)

    @property
    def conditioned(self) -> bool:
        """Whether the networks take the target's class labels or condition vectors."""
        return bool(self.classes or self.condition_size)

    def network(self, name: str) -> Network:
        return next(n for n in self.networks if n.name == name)

    def sampler(self, name: str) -> Sampler:
        return next(s for s in self.samplers if s.name == name)

    def to_json(self) -> dict:
        return {"model": self.model, "shape": list(self.shape), "dim": self.dim,
                "latent": self.latent, "base": self.base.to_json(),
                "target": self.target.to_json(), "coupling": self.coupling.to_json(),
                "time_law": self.time_law.to_json(),
                "networks": [n.to_json() for n in self.networks], "fields": list(self.fields),
                "samplers": [s.to_json() for s in self.samplers], "train": self.train.to_json(),
                "objective": self.objective, "energies": list(self.energies),
                "constants": dict(self.constants),
                **({"objective_args": dict(self.objective_args)} if self.objective_args else {}),
                **({"label_drop": self.label_drop} if self.label_drop else {})}

    def role(self, name: str) -> Call:
        """The density of a role: ``base`` or ``target``."""
        return {"base": self.base, "target": self.target}[name]


# the sampler used where a model names none (and for path energies): its velocity, heun, 20 steps
DEFAULT_SAMPLER = Sampler("heun(steps = 20)", "heun", {"steps": 20}, "ode")
