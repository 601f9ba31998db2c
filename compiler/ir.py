"""The intermediate representation: what a model *means*, names resolved and values checked.

Frozen attrs classes; scalar maths are sympy expressions built node by node from the syntax tree
(``tfm.compiler.expressions``), never parsed from text. Spans are kept for diagnostics and left
out of equality, so two IRs are equal when they describe the same model.

Symbols (docs/maths.md §1): ``t`` is time in [0, 1]; ``x0``, ``x1``, ``z`` are the base sample, the
target sample and the latent Gaussian, treated elementwise; ``x`` is the argument of an energy.
"""

from __future__ import annotations

import attrs
import sympy

from ..errors import Span
from . import kinds

t = sympy.Symbol("t", real=True)
x0 = sympy.Symbol("x0", real=True)
x1 = sympy.Symbol("x1", real=True)
z = sympy.Symbol("z", real=True)
x = sympy.Symbol("x", real=True)

_span = attrs.field(eq=False, repr=False, default=None)


@attrs.frozen
class Reference:
    """A reference from an argument to a declaration of the model (a noise schedule, an energy)."""

    kind: str
    name: str


Value = int | float | str | tuple | Reference


@attrs.frozen
class Constructor:
    """An applied primitive, e.g. ``mlp(width = 64)``: every parameter bound, defaults filled in,
    in the order of the primitive's declaration."""

    kind: str
    name: str
    args: tuple[tuple[str, Value], ...]
    span: Span | None = _span

    def arg(self, name: str) -> Value:
        return dict(self.args)[name]

    def to_json(self) -> dict:
        return {"name": self.name, "args": {k: _jsonable(v) for k, v in self.args}}


def _jsonable(value):
    if isinstance(value, Reference):
        return {"ref": value.kind, "name": value.name}
    if isinstance(value, tuple):
        return list(value)
    return value


@attrs.frozen
class Density:
    """``base`` or ``target``: a constructor and the shape of one sample where it is fixed."""

    role: str
    constructor: Constructor
    shape: tuple[int, ...] | None
    span: Span | None = _span
    condition_size: int = 0  # the size k of a data target's condition vectors (0: none)


@attrs.frozen
class ScalarFunction:
    """``name(params) = body``: body is a sympy expression in ``Symbol(param, real=True)``."""

    name: str
    params: tuple[str, ...]
    defaults: tuple[tuple[str, sympy.Expr], ...]
    body: sympy.Expr
    is_noise: bool = False
    span: Span | None = _span

    def symbols(self) -> tuple[sympy.Symbol, ...]:
        return tuple(sympy.Symbol(p, real=True) for p in self.params)


@attrs.frozen
class Interpolant:
    """x_t as one expression in t, x0, x1 and z, with every function call inlined."""

    name: str
    expr: sympy.Expr
    span: Span | None = _span

    @property
    def uses_latent(self) -> bool:
        return z in self.expr.free_symbols


@attrs.frozen
class Constant:
    """``constant NAME = ...``: a number, a vector or a matrix given in the file (``values``,
    nested tuples of floats) or read from a data file (``path``, ``key``) when the program runs;
    ``shape`` is fixed when the model is compiled."""

    name: str
    shape: tuple[int, ...]
    values: float | tuple | None = None
    path: str | None = None
    key: str = ""
    span: Span | None = _span

    def to_json(self) -> dict:
        if self.path is not None:
            return {"shape": list(self.shape), "path": self.path, "key": self.key}
        return {"shape": list(self.shape), "values": _jsonable_nested(self.values)}


def _jsonable_nested(values):
    return [_jsonable_nested(v) for v in values] if isinstance(values, tuple) else values


@attrs.frozen
class Energy:
    """``energy NAME(x) = ...``: ``tree`` the array expression (compiler/arrays.py), ``expr`` its
    elementwise sympy form where it has one (None otherwise), ``text`` the body as written."""

    name: str
    tree: object
    expr: sympy.Expr | None
    text: str = ""
    arg: str = "x"
    span: Span | None = _span


@attrs.frozen
class Network:
    name: str
    constructor: Constructor
    span: Span | None = _span


@attrs.frozen
class ObjectiveTerm:
    network: str
    target: str  # a regression target (velocity, ...), a flow objective (likelihood, ...) or map
    span: Span | None = _span
    objective: "Constructor | None" = None  # a flow or flow-map objective with its arguments


@attrs.frozen
class Objective:
    terms: tuple[ObjectiveTerm, ...]
    time_law: Constructor
    weight: sympy.Expr
    span: Span | None = _span
    weighted: bool = False  # the file writes weight(t) = ...: it is used as written, every term
    labels: "Constructor | None" = None  # label ~ dropped(p): classifier-free guidance's drop

    @property
    def regressions(self) -> tuple[ObjectiveTerm, ...]:
        """The terms that regress a network on a target along the interpolant (all but a flow
        map distilled from a teacher, whose term's target is ``map``)."""
        return tuple(term for term in self.terms if term.target != "map")

    @property
    def flow_map(self) -> ObjectiveTerm | None:
        """The term that trains a flow map (``lagrangian``, ``eulerian``, ``self_distillation``),
        if any."""
        return next((term for term in self.terms if term.objective is not None
                     and term.objective.name in kinds.MAP_OBJECTIVES), None)


@attrs.frozen
class Sampler:
    name: str
    constructor: Constructor
    span: Span | None = _span


@attrs.frozen
class Train:
    settings: tuple[tuple[str, Value | Constructor], ...]
    span: Span | None = _span

    def __getitem__(self, key: str):
        return dict(self.settings)[key]


@attrs.frozen
class Model:
    name: str
    shape: tuple[int, ...]
    base: Density
    target: Density
    coupling: Constructor
    functions: tuple[ScalarFunction, ...]
    interpolant: Interpolant | None  # None: a sampling model (no networks; samplers only)
    energies: tuple[Energy, ...]
    networks: tuple[Network, ...]
    objective: Objective | None
    samplers: tuple[Sampler, ...]
    train: Train
    constants: tuple[Constant, ...] = ()
    order: tuple[str, ...] = attrs.field(eq=False, default=())
    derivation: "Derivation | None" = attrs.field(eq=False, default=None)
    file: str = attrs.field(eq=False, default="<string>")
    span: Span | None = _span

    @property
    def dim(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def sampling(self) -> bool:
        """A model without an interpolant: nothing to derive. It has no networks (its samplers
        run MCMC or SMC on its target's energy) or only normalizing flows (``flow``)."""
        return self.interpolant is None

    @property
    def flow(self) -> bool:
        """A model whose networks are normalizing flows, trained by flow objectives."""
        return self.interpolant is None and bool(self.networks)

    def energy(self, name: str) -> Energy:
        return next(e for e in self.energies if e.name == name)

    def function(self, name: str) -> ScalarFunction:
        return next(f for f in self.functions if f.name == name)

    def network(self, name: str) -> Network:
        return next(n for n in self.networks if n.name == name)


# --- derived quantities (compiler/derive_*.py) ---------------------------------------------------

@attrs.frozen
class LinearForm:
    """a0 * x0 + a1 * x1 + az * z + c, the coefficients functions of t (docs/maths.md §2.2)."""

    x0: sympy.Expr
    x1: sympy.Expr
    z: sympy.Expr
    const: sympy.Expr = sympy.Integer(0)

    def expr(self) -> sympy.Expr:
        return self.x0 * x0 + self.x1 * x1 + self.z * z + self.const

    def coefficients(self) -> tuple[tuple[str, sympy.Expr], ...]:
        return (("x0", self.x0), ("x1", self.x1), ("z", self.z), ("1", self.const))


@attrs.frozen
class Field:
    """A field of the model as a function of the state ``x`` and the network outputs (symbols
    named after the networks), or the reason it cannot be determined from them."""

    name: str
    expr: sympy.Expr | None
    reason: str | None = None
    generic: sympy.Expr | None = None  # in terms of alpha, beta, gamma, c and their rates
    singular_at: tuple[float, ...] = ()  # grid points in (0, 1) where the conversion divides by 0


@attrs.frozen
class FlowMapLoss:
    """A flow map's loss as ``tfmc derive`` shows it: the map X_{s,t}(x) in its network's output
    v(s, t, x), the point x_s where it starts (the interpolant at s), and the loss at
    (s, t, x_s), with the teacher's velocity (the model's velocity field) at the map's point."""

    network: str
    form: str  # lagrangian, eulerian or self_distillation
    teacher: str | None
    map: sympy.Expr
    start: sympy.Expr
    loss: sympy.Expr
    teacher_run: str | None = None  # the run folder the teacher's weights are read from
    anchor: float = 0.0  # the fraction of a batch anchored to the teacher's ODE
    anchor_steps: int = 0  # the Heun steps of that ODE (0 without anchors)
    anchor_loss: sympy.Expr | None = None  # the anchor term at (s, t, x_s), where anchor > 0


@attrs.frozen
class Derivation:
    """Everything the compiler derives from a model (``tfmc derive``)."""

    affine: bool
    interpolant: sympy.Expr
    form: LinearForm | None  # alpha, beta, gamma, c of an affine interpolant
    velocity_target: sympy.Expr  # d/dt I + gamma' z
    derivatives: tuple[tuple[str, sympy.Expr], ...]  # d/dt of every function of one variable
    targets: tuple[tuple[str, str, sympy.Expr], ...]  # (network, target name, Y)
    losses: tuple[tuple[str, sympy.Expr], ...]  # (network, per-sample loss integrand)
    fields: tuple[Field, ...]
    drifts: tuple[tuple[str, str, sympy.Expr], ...]  # (sampler, direction, drift)
    time_law: Constructor
    weight: sympy.Expr
    flow_map: "FlowMapLoss | None" = None
    # (network, V(t)): the variance factor of each weighted target (compiler/conditioning.py)
    variances: tuple[tuple[str, "sympy.Expr | None"], ...] = ()
    # (network, w(t)): each term's weight where it is not the objective's (the score's default)
    weights: tuple[tuple[str, sympy.Expr], ...] = ()
    # (velocity, score) in x and the data prediction d alone where the noise is Gaussian
    # (compiler/derive.py ``given_data``; inpainting), else empty
    given_data: tuple[tuple[str, sympy.Expr], ...] = ()

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)
