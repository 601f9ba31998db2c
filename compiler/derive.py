"""Symbolic derivations, IR -> derived IR (docs/maths.md §2, §3).

For an interpolant x_t = I(t, x0, x1) + gamma(t) z this pass derives, with sympy:
- the time derivative of the interpolant (the velocity target d/dt I + gamma' z) and of every
  scalar function of one variable;
- each objective term's regression target Y as a combination of x0, x1 and z, and its loss
  w(t) |N - Y|^2 (the potential form |grad phi|^2 - 2 dI/dt . grad phi for ``potential``);
- for affine interpolants, the conversions between fields (velocity, denoiser E[z|x], data and
  base predictions E[x1|x], E[x0|x], score) by solving the linear relations
  x = alpha E[x0|x] + beta E[x1|x] + gamma E[z|x] + c together with one equation per network,
  and, for a standard normal base with an independent coupling, the merge of x0 with z
  (gamma E[x0|x] = alpha E[z|x]); nothing here is a table of special cases;
- the drifts b + eps s (forward) and b - eps s (backward) of every SDE sampler;
- for a Gaussian noise part (an isotropic normal base, independent coupling), the velocity and
  the score in terms of x and the data prediction d = E[x1|x] alone, which inpainting needs.
Non-affine interpolants get derivatives and targets; conversions are refused with the reason.
"""

from __future__ import annotations

import functools

import sympy

from ..errors import Diagnostic
from . import grid, ir, kinds
from .deadline import Expired, deadline

ETA = {"x0": sympy.Symbol("eta_x0", real=True), "x1": sympy.Symbol("eta_x1", real=True),
       "z": sympy.Symbol("eta_z", real=True)}
FIELD_NAMES = ("velocity", "score", "noise", "data", "base")
_RANDOM = (ir.x0, ir.x1, ir.z)
BASE_MEAN, BASE_SCALE = sympy.Symbol("m", real=True), sympy.Symbol("s", positive=True)
EQUATION_ORDER = {"noise": 0, "score": 1, "base": 2, "data": 3, "potential": 4, "velocity": 5}
MAX_SIMPLIFY_OPS = 40  # sympy.simplify is superlinear; larger expressions only get cancel()
SIMPLIFY_SECONDS = 1.0  # and it can take minutes on trigonometric constants: then cancel() too


_TIDIED: dict[sympy.Expr, sympy.Expr] = {}  # tidy's memo (the same schedules recur)
_EXPIRED: dict[sympy.Expr, float] = {}  # expressions whose simplify ran out of that many seconds
MAX_TIDIED = 4096


def tidy(expr: sympy.Expr) -> sympy.Expr:
    """A cheap, deterministic simplification, memoised; a result that fell back to the cheap
    form because simplify ran out of time is not kept, so that a later call with more time
    does not inherit it. simplify is not tried again on an expression it ran out of as much
    time on (one model's derivations meet the same expression many times: a cosine of a
    rational multiple of pi cost 1 s at each of 8 meetings, 9 s to compile the model)."""
    if expr in _TIDIED:
        return _TIDIED[expr]
    if _EXPIRED.get(expr, 0.0) >= SIMPLIFY_SECONDS:
        return _cheap(expr)
    result, complete = _tidy(expr)
    if complete:
        _remember(_TIDIED, expr, result)
    else:
        _remember(_EXPIRED, expr, SIMPLIFY_SECONDS)
    return result


def _remember(memo: dict, expr: sympy.Expr, value) -> None:
    if len(memo) >= MAX_TIDIED:
        memo.clear()
    memo[expr] = value


def _cheap(expr: sympy.Expr) -> sympy.Expr:
    return sympy.cancel(expr) if expr.is_rational_function() else expr


def _tidy(expr: sympy.Expr) -> tuple[sympy.Expr, bool]:
    """(the tidied expression, whether simplify finished in time or was not tried)."""
    cheap = _cheap(expr)
    if expr.count_ops() > MAX_SIMPLIFY_OPS:
        return cheap, True
    try:
        with deadline(SIMPLIFY_SECONDS):
            simplified = sympy.simplify(expr)
    except Expired:
        return cheap, False
    if (simplified.has(sympy.Piecewise) or simplified.count_ops() > cheap.count_ops()
            or _largest_number_bits(simplified) > max(64, 2 * _largest_number_bits(cheap))):
        return cheap, True  # simplify() sometimes multiplies out constants such as 5000**(2 t)
    return simplified, True


def _largest_number_bits(expr: sympy.Expr) -> int:
    return max((max(abs(r.p).bit_length(), abs(r.q).bit_length())
                for r in expr.atoms(sympy.Rational)), default=0)


def output_symbol(network: str, target: str) -> sympy.Symbol:
    """What a network's output stands for in field expressions: its name, or grad_NAME for a
    potential network (whose gradient is the field)."""
    return sympy.Symbol(f"grad_{network}" if target == "potential" else network, real=True)


def affine_form(expr: sympy.Expr) -> ir.LinearForm | None:
    """alpha, beta, gamma, c with expr = alpha x0 + beta x1 + gamma z + c, or None."""
    coefficients = [expr.diff(s) for s in _RANDOM]
    if any(c.free_symbols & set(_RANDOM) for c in coefficients):
        return None
    rest = sympy.expand(expr - sum(c * s for c, s in zip(coefficients, _RANDOM)))
    if rest.free_symbols & set(_RANDOM):
        return None
    return ir.LinearForm(*(tidy(c) for c in coefficients), tidy(rest))


def regression_target(name: str, model: ir.Model, velocity: sympy.Expr,
                      form: ir.LinearForm | None, symbolic_base: bool = False) -> sympy.Expr:
    """Y for a target name, an expression in x0, x1, z and t (with ``symbolic_base``, a normal
    base's mean and scale stay the symbols m and s, as in the conversions)."""
    if name in ("velocity", "potential"):
        return velocity
    if name == "noise":
        return ir.z
    if name == "data":
        return ir.x1
    if name == "base":
        return ir.x0
    if name == "score":  # denoising score matching: -z / gamma, or through a Gaussian base
        gamma = form.z if form is not None else model.interpolant.expr.diff(ir.z)
        gaussian = gaussian_base(model)
        if gamma == 0 and gaussian is not None and form is not None:
            m, sd = (BASE_MEAN, BASE_SCALE) if symbolic_base else gaussian
            return -(ir.x0 - m) / (form.x0 * sd ** 2)
        return -ir.z / gamma
    raise AssertionError(name)  # pragma: no cover - names are checked when lowering


def variance_factor(model: ir.Model, y: sympy.Expr, weight: sympy.Expr) -> sympy.Expr | None:
    """V(t) = w(t) (a0^2 s0^2 + a1^2 + az^2) of a target Y = a0 x0 + a1 x1 + az z + c with the
    weight w(t), s0 a normal base's scale (1 otherwise); None if Y is not affine
    (compiler/conditioning.py, docs/maths.md §2.4)."""
    form = affine_form(y)
    if form is None:
        return None
    gaussian = gaussian_base(model)
    s0 = gaussian[1] if gaussian is not None else sympy.Integer(1)
    return tidy(weight * (form.x0 ** 2 * s0 ** 2 + form.x1 ** 2 + form.z ** 2))


def score_weight(model: ir.Model, y: sympy.Expr) -> sympy.Expr:
    """The standard weighting of a score target Y where the objective writes no weight: 1 / V(t)
    of the unweighted target (gamma(t)^2 for -z / gamma, alpha(t)^2 s^2 for the Gaussian base's
    -(x0 - m) / (alpha s^2)), so that the weighted target has unit variance at every t and the
    loss is noise prediction's (docs/maths.md §2.4)."""
    v = variance_factor(model, y, sympy.Integer(1))
    return tidy(1 / v) if v is not None else sympy.Integer(1)


def gaussian_base(model: ir.Model) -> tuple[sympy.Expr, sympy.Expr] | None:
    """(mean, scale) of an isotropic normal base independent of x1, else None. Then x0 and z
    are jointly Gaussian given x1, which is what the score and the merge of x0 with z need."""
    ctor = model.base.constructor
    if ctor.name != "normal" or model.coupling.name != "independent":
        return None
    means, scales = set(ctor.arg("mean")), set(ctor.arg("scale"))
    if len(means) != 1 or len(scales) != 1:
        return None
    return sympy.nsimplify(means.pop()), sympy.nsimplify(scales.pop())


def derive(model: ir.Model) -> tuple[ir.Derivation, list[Diagnostic]]:
    """The derived quantities of ``model`` and the problems found while deriving them (the
    boundary checks live in ``check_boundaries``)."""
    diags: list[Diagnostic] = []
    expr = model.interpolant.expr
    form = affine_form(expr)
    velocity = tidy(expr.diff(ir.t)) if form is None else \
        ir.LinearForm(*(tidy(c.diff(ir.t)) for c in (form.x0, form.x1, form.z, form.const))).expr()
    derivatives = tuple((f.name, tidy(f.body.diff(f.symbols()[0])))
                        for f in model.functions if len(f.params) == 1)
    targets = tuple((term.network, term.target, regression_target(term.target, model, velocity, form))
                    for term in model.objective.regressions)
    weight = model.objective.weight
    losses, variances, weights = [], [], []
    for network, target, y in targets:
        out = output_symbol(network, target)
        w = weight
        if target == "score" and not model.objective.weighted:
            w = score_weight(model, y)
            weights.append((network, w))
        variances.append((network, variance_factor(model, y, w)))
        if target == "potential":
            losses.append((network, w * (out ** 2 - 2 * y * out)))
        else:
            losses.append((network, w * (out - y) ** 2))
    fields = conversions(model, form, diags)
    drifts = sde_drifts(model, fields, diags)
    for s in model.samplers:
        if kinds.sampler(s.constructor.name) is None:
            diags.append(Diagnostic(
                "Semantic", f"The sampler kind '{s.constructor.name}' has no signature in this "
                "compiler (compiler/kinds.py), so its needs are unknown.", s.span,
                "Use a sampler of the prelude, or register the kind's signature."))
        elif _family(s) == "ode" and _missing(fields, "velocity"):
            diags.append(Diagnostic(
                "Semantic", f"The ODE sampler '{s.name}' needs the velocity, which the trained "
                f"networks do not determine: {_field(fields, 'velocity').reason}", s.span,
                "Train a network on velocity, or on a target the velocity can be derived from."))
    term = model.objective.flow_map
    if term is not None and _missing(fields, "velocity"):
        diags.append(Diagnostic(
            "Semantic", f"The flow map '{term.network}' is trained on the model's velocity, which "
            f"the trained networks do not determine: {_field(fields, 'velocity').reason}",
            term.span, "Train a network on velocity, or on a target the velocity can be derived "
            "from."))
    diags.extend(_singular_conversions(model, fields))
    derivation = ir.Derivation(form is not None, expr, form, velocity, derivatives, targets,
                               tuple(losses), fields, drifts, model.objective.time_law, weight,
                               flow_map_loss(model, expr, fields), tuple(variances),
                               tuple(weights), given_data(model, form))
    return derivation, diags


S_TIME = sympy.Symbol("s", real=True)  # a flow map's start time


def flow_map_loss(model: ir.Model, interpolant: sympy.Expr, fields) -> ir.FlowMapLoss | None:
    """The flow map's loss (docs/fewstep.md) at x_s (the interpolant at s), with X_{s,t}(x) =
    x + (t - s) v(s, t, x), the network's output v: lagrangian (and self_distillation)
    |d/dt X_{s,t}(x_s) - b(t, X)|^2,
    eulerian |d/ds X_{s,t}(x_s) + (grad_x X_{s,t}(x_s)) b(s, x_s)|^2, b the model's velocity with
    its networks' outputs taken at the point it is evaluated at. One point's coordinate stands
    for the vector: d/dx X times b is the Jacobian-vector product."""
    term = model.objective.flow_map
    velocity = _field(fields, "velocity").expr
    if term is None or velocity is None:
        return None
    s, t, x = S_TIME, ir.t, ir.x
    v = sympy.Function(f"v_{term.network}")
    start = interpolant.xreplace({t: s})

    def flow(a, b_, y):
        return y + (b_ - a) * v(a, b_, y)

    def teacher(time, point):
        outputs = {sym: v(time, time, point) if sym.name == term.network else
                   sympy.Function(sym.name)(time, point)
                   for sym in velocity.free_symbols if sym not in (t, x)}
        return velocity.xreplace(outputs).xreplace({t: time, x: point})

    xs = sympy.Symbol("x_s", real=True)
    mapped = flow(s, t, xs)
    if term.objective.name == "eulerian":
        residual = mapped.diff(s) + mapped.diff(xs) * teacher(s, xs)
    else:
        residual = mapped.diff(t) - teacher(t, mapped)
    args = dict(term.objective.args)
    anchor, anchor_steps, anchor_loss = float(args.get("anchor", 0.0)), 0, None
    if anchor > 0:  # the map's mean velocity against the teacher's flow Phi (solved by Heun)
        phi = sympy.Function("Phi")(s, t, xs)
        anchor_steps, anchor_loss = int(args["anchor_steps"]), (v(s, t, xs) - (phi - xs) / (t - s)) ** 2
    return ir.FlowMapLoss(term.network, term.objective.name,
                          getattr(args.get("teacher"), "name", None), flow(s, t, x), start,
                          residual ** 2, args.get("run") or None, anchor, anchor_steps, anchor_loss)


def _singular_conversions(model: ir.Model, fields) -> list[Diagnostic]:
    """A derived field that divides by zero inside (0, 1) is an error where a sampler needs it
    (ODE: velocity; SDE: velocity and score), advice otherwise."""
    needed: dict[str, list[str]] = {}
    for s in model.samplers:
        signature = kinds.sampler(s.constructor.name)
        wants = signature.needs if signature is not None else ()
        for name in wants:
            needed.setdefault(name, []).append(s.name)
    out = []
    for f in fields:
        if f.expr is None or not f.singular_at:
            continue
        where = (f"t = {f.singular_at[0]:.3g}" if len(f.singular_at) == 1 else
                 f"{len(f.singular_at)} points of t between {f.singular_at[0]:.3g} and "
                 f"{f.singular_at[-1]:.3g}")
        message = (f"The {f.name} derived from the trained networks divides by zero at {where} "
                   f"(its formula, {f.generic}, has a vanishing denominator there)")
        users = needed.get(f.name)
        if users:
            out.append(Diagnostic("Semantic", message + f"; sampler '{users[0]}' needs it.",
                                  model.objective.span or model.span,
                                  f"Train a network on {f.name if f.name != 'score' else 'noise'}"
                                  " directly, so that no conversion is needed."))
        else:
            out.append(Diagnostic("Semantic", message + ".", model.objective.span or model.span,
                                  severity="warning", pedantic=True))
    return out


def _field(fields, name) -> ir.Field:
    return next(f for f in fields if f.name == name)


def _missing(fields, name) -> bool:
    return _field(fields, name).expr is None


def conversions(model: ir.Model, form: ir.LinearForm | None, diags) -> tuple[ir.Field, ...]:
    """Every field in terms of x and the network outputs, solved from the linear relations among
    the conditional expectations E[x0|x], E[x1|x], E[z|x] (docs/maths.md §3.1, Conversions)."""
    terms = model.objective.regressions
    if form is None:
        reason = ("the interpolant is not affine in x0, x1 and z, so conditional expectations "
                  "cannot be related linearly")
        out = []
        for name in FIELD_NAMES:
            direct = next((t for t in terms if t.target == name or
                           (name == "velocity" and t.target == "potential")), None)
            out.append(ir.Field(name, output_symbol(direct.network, direct.target), None)
                       if direct else ir.Field(name, None, reason))
        return tuple(out)
    eta0, eta1, etaz = ETA["x0"], ETA["x1"], ETA["z"]
    unknowns = [eta0, eta1, etaz]
    to_eta = {ir.x0: eta0, ir.x1: eta1, ir.z: etaz}
    # Solve with the coefficients as plain symbols (fast and generic), then substitute them.
    coeffs = [sympy.Symbol(n, real=True) for n in ("alpha", "beta", "gamma", "c")]
    rates = [sympy.Symbol(n + "_dot", real=True) for n in ("alpha", "beta", "gamma", "c")]
    actual = (form.x0, form.x1, form.z, form.const)
    values = dict(zip(coeffs, actual)) | dict(zip(rates, (tidy(c.diff(ir.t)) for c in actual)))
    if gaussian_base(model) is not None:  # solved with m and s as symbols, like the coefficients
        values |= dict(zip((BASE_MEAN, BASE_SCALE), gaussian_base(model)))
    alpha, beta, gamma, c = (0 if v == 0 else s for s, v in zip(coeffs, actual))
    gaussian = gaussian_base(model)
    equations = [ir.x - (alpha * eta0 + beta * eta1 + gamma * etaz + c)]
    if gamma == 0:
        equations.append(etaz)  # z is independent of x_t when it does not enter it
    elif gaussian:  # x0 = m + s xi and z merge: E[s xi | x] / (alpha s^2) = E[z | x] / gamma
        equations.append(gamma * (eta0 - BASE_MEAN) - alpha * BASE_SCALE ** 2 * etaz)
    velocity = ir.LinearForm(*(0 if v == 0 else r for r, v in zip(rates, actual)))
    symbolic = ir.LinearForm(alpha, beta, gamma, c)
    # Networks that predict a random symbol come first, velocity last: when two networks say the
    # same thing, keeping the prediction avoids dividing by rates such as gamma', which vanish.
    for term in sorted(terms, key=lambda term: EQUATION_ORDER[term.target]):
        y = regression_target(term.target, model, velocity.expr(), symbolic, symbolic_base=True)
        candidate = equations + [output_symbol(term.network, term.target) - y.xreplace(to_eta)]
        if sympy.linsolve(candidate, unknowns) == sympy.EmptySet:
            diags.append(Diagnostic(
                "Semantic", f"The network '{term.network}' learns a quantity the other networks "
                "already determine; it adds nothing to the conversions.", term.span,
                "Train it on another target, or remove it.", severity="warning", pedantic=True))
            continue
        equations = candidate
    (solution,) = sympy.linsolve(equations, unknowns).args
    substitution = dict(zip(unknowns, solution))
    wanted = {"velocity": velocity.expr().xreplace(to_eta), "noise": etaz, "data": eta1,
              "base": eta0}
    if gamma != 0:
        wanted["score"] = -etaz / gamma
    elif gaussian:
        wanted["score"] = -(eta0 - BASE_MEAN) / (alpha * BASE_SCALE ** 2)
    fields = []
    for name in FIELD_NAMES:
        direct = next((term for term in terms if term.target == name or
                       (name == "velocity" and term.target == "potential")), None)
        if direct is not None:  # a trained field is the network itself
            out = output_symbol(direct.network, direct.target)
            fields.append(ir.Field(name, out, generic=out))
            continue
        if name not in wanted:
            fields.append(ir.Field(name, None, "the score needs latent noise (a z term) or an "
                                   "isotropic normal base with an independent coupling"))
            continue
        value = sympy.cancel(wanted[name].xreplace(substitution))
        if value.free_symbols & set(unknowns):
            fields.append(ir.Field(name, None, _undetermined(name, terms)))
            continue
        denominator = sympy.fraction(value)[1].xreplace(values)
        fields.append(ir.Field(name, tidy(value.xreplace(values)), generic=value,
                               singular_at=_zeros(denominator)))
    return tuple(fields)


DATA = sympy.Symbol("d", real=True)  # the data prediction E[x1 | x_t = x] in ``given_data``


def given_data(model: ir.Model, form: ir.LinearForm | None) -> tuple[tuple[str, sympy.Expr], ...]:
    """(velocity, score) at (t, x) as functions of x and d = E[x1 | x_t = x] alone, where the
    noise part of x_t, alpha (x0 - m) + gamma z, is Gaussian (an isotropic normal base with an
    independent coupling): x = alpha E[x0|x] + beta d + gamma E[z|x] + c and the merge of x0
    with z give E[x0|x] and E[z|x] from x and d. Inpainting changes d to its value given the
    observed coordinates and reads the fields back from it (runtime/inpainting.py,
    docs/conditional.md). Empty where the noise is not Gaussian (or absent)."""
    gaussian = gaussian_base(model)
    if form is None or gaussian is None or form.x1 == 0 or (form.x0 == 0 and form.z == 0):
        return ()
    coefficients = (form.x0, form.x1, form.z, form.const)
    values = dict(zip(_COEFFICIENTS, coefficients))
    values |= dict(zip(_RATES, (tidy(c.diff(ir.t)) for c in coefficients)))
    values |= dict(zip((BASE_MEAN, BASE_SCALE), gaussian))
    # cancel() alone: simplify() took 0.1-0.3 s more per model here, on every compile
    return tuple((name, sympy.cancel(e.xreplace(values)))
                 for name, e in _given_data_generic(form.z != 0))


_COEFFICIENTS = tuple(sympy.Symbol(n, real=True) for n in ("alpha", "beta", "gamma", "c"))
_RATES = tuple(sympy.Symbol(n + "_dot", real=True) for n in ("alpha", "beta", "gamma", "c"))


@functools.lru_cache(maxsize=None)
def _given_data_generic(latent: bool) -> tuple[tuple[str, sympy.Expr], ...]:
    """``given_data`` in the coefficients as plain symbols (solved once, then substituted)."""
    alpha, beta, gamma, c = _COEFFICIENTS
    eta0, etaz = ETA["x0"], ETA["z"]
    if latent:  # the merge gamma (E[x0|x] - m) = alpha s^2 E[z|x]
        equations = [ir.x - (alpha * eta0 + beta * DATA + gamma * etaz + c),
                     gamma * (eta0 - BASE_MEAN) - alpha * BASE_SCALE ** 2 * etaz]
        (solution,) = sympy.linsolve(equations, [eta0, etaz]).args
        e0, ez = solution
        score = -ez / gamma
    else:
        e0, ez = (ir.x - beta * DATA - c) / alpha, sympy.Integer(0)
        score = -(e0 - BASE_MEAN) / (alpha * BASE_SCALE ** 2)
    a_dot, b_dot, g_dot, c_dot = _RATES
    velocity = a_dot * e0 + b_dot * DATA + g_dot * ez + c_dot
    return (("velocity", sympy.cancel(velocity)), ("score", sympy.cancel(score)))


def _zeros(denominator: sympy.Expr) -> tuple[float, ...]:
    """Grid points inside (0, 1) where a conversion divides by zero (or by nothing real)."""
    if denominator.is_number:
        return () if denominator != 0 else tuple(grid.points())
    if denominator.free_symbols - {ir.t}:  # depends on the state or the networks: not a rate
        return ()
    return tuple(p for p, v in grid.values(denominator)
                 if v is None or abs(v) < 1e-12 or v != v)


def _undetermined(name: str, terms) -> str:
    trained = ", ".join(f"{t.network} ~ {t.target}" for t in terms) or "nothing"
    return (f"the {name} is not determined by what the networks learn ({trained}); "
            "add a network for one more independent target")


def sde_drifts(model: ir.Model, fields, diags) -> tuple[tuple[str, str, sympy.Expr], ...]:
    out = []
    velocity, score = _field(fields, "velocity"), _field(fields, "score")
    for s in model.samplers:
        if _family(s) != "sde":
            continue
        missing = [f for f in (velocity, score) if f.expr is None]
        if missing:
            diags.append(Diagnostic(
                "Semantic", f"The SDE sampler '{s.name}' needs the {missing[0].name}, which the "
                f"trained networks do not determine: {missing[0].reason}.", s.span,
                "Add a network trained on noise (with latent z) or use an ODE sampler."))
            continue
        eps = noise_schedule(model, s.constructor.arg("eps"))
        direction = s.constructor.arg("direction")
        sign = 1 if direction == "forward" else -1
        out.append((s.name, direction, tidy(velocity.expr + sign * eps * score.expr)))
    return tuple(out)


def _family(sampler: ir.Sampler) -> str | None:
    signature = kinds.sampler(sampler.constructor.name)
    return signature.family if signature is not None else None


def noise_schedule(model: ir.Model, value) -> sympy.Expr:
    """eps(t) of a sampler argument: a declared noise schedule or a constant."""
    if isinstance(value, ir.Reference):
        f = model.function(value.name)
        return f.body.xreplace({f.symbols()[0]: ir.t})
    return sympy.nsimplify(value)
