"""Boundary and singularity checks of an interpolant and its schedules (docs/maths.md §2.7).

- I(0) = x0 and I(1) = x1 (for an affine interpolant: alpha(0) = 1, beta(0) = 0, alpha(1) = 0,
  beta(1) = 1, c = 0 at both ends), gamma(0) = gamma(1) = 0: exactly, or "holds only
  approximately" (a warning, as for VP, whose signal at t = 0 is exp(-5.05) = 0.0064) when the
  defect is below APPROXIMATE, an error otherwise;
- singular points on [0, 1]: where the velocity target's coefficients (e.g. gamma' of
  sqrt(t (1 - t))) or a trained score target (-z / gamma) are unbounded at an end, the time law
  is restricted to [T_MIN, 1 - T_MIN] on that side, with a warning that says so;
- gamma > 0 inside (0, 1) when the latent z is used (eps(t) >= 0 is checked where a noise
  schedule is declared, with ``grid_failure`` below).
Returns diagnostics and the (possibly restricted) time law; pure.
"""

from __future__ import annotations

import math

import attrs
import mpmath
import sympy

from ..errors import Diagnostic
from . import grid, ir

APPROXIMATE = 0.05
T_MIN = 1e-3
# singularities in t do not depend on the values of the random symbols: probe them at these
PROBE = {ir.x0: sympy.Rational(3, 10), ir.x1: sympy.Rational(7, 10), ir.z: sympy.Rational(1, 2)}


def check_boundaries(model: ir.Model, derivation: ir.Derivation
                     ) -> tuple[list[Diagnostic], ir.Constructor]:
    diags: list[Diagnostic] = []
    span = model.interpolant.span
    form = derivation.form
    identical = (model.coupling.name == "paired"
                 and model.base.constructor == model.target.constructor)
    if form is not None:
        if identical:  # x0 is x1 (e.g. the mirror interpolant): only their sum matters
            wanted = [("alpha + beta", form.x0 + form.x1, 1, 1)]
        else:
            wanted = [("alpha", form.x0, 1, 0), ("beta", form.x1, 0, 1)]
        wanted += [("gamma", form.z, 0, 0), ("c", form.const, 0, 0)]
        # a leftover of x1 at t = 0 is measured against the spread of the base there
        spread = _base_scale(model) * _magnitude(_value(form.x0, 0))
        for label, coefficient, at0, at1 in wanted:
            for t0, target in ((0, at0), (1, at1)):
                relative = spread if (label, t0) == ("beta", 0) else 1.0
                _boundary(diags, label, coefficient, t0, target, span, relative)
    else:
        _non_affine_boundaries(diags, model, span, identical)

    restrict = {0: [], 1: []}
    if form is not None:
        rates = [(f"{n}'(t)", c.diff(ir.t)) for n, c in
                 (("alpha", form.x0), ("beta", form.x1), ("gamma", form.z), ("c", form.const))]
    else:  # singularities in t do not depend on the values of the random symbols
        rates = [("d/dt of the interpolant", derivation.velocity_target.xreplace(PROBE))]
    for label, rate in rates:
        for t0 in (0, 1):
            if rate != 0 and _unbounded(rate, t0):
                restrict[t0].append(label)
    for network, target, y in derivation.targets:
        if target == "score":  # -z / gamma, or -(x0 - m) / (alpha s^2): singular where they vanish
            for t0 in (0, 1):
                if _unbounded(y.xreplace(PROBE), t0):
                    restrict[t0].append(f"the score target of '{network}'")
    time_law = _restricted(model.objective.time_law, restrict, diags, model)

    if model.interpolant.uses_latent:
        gamma = form.z if form is not None else \
            model.interpolant.expr.diff(ir.z).xreplace(PROBE)
        bad = grid_failure(gamma, lambda v: v > 0, interior=True)
        if bad is not None:
            diags.append(Diagnostic("Semantic", f"gamma(t) = {gamma} must be positive inside "
                                    f"(0, 1), but at t = {bad:.3g} it is not.", span,
                                    "Use e.g. sqrt(a * t * (1 - t)) with a > 0."))
    return diags, time_law


def _value(expr: sympy.Expr, t0: int) -> sympy.Expr:
    value = expr.subs(ir.t, t0)
    if value.has(sympy.nan, sympy.zoo) or not value.is_finite:
        value = sympy.limit(expr, ir.t, t0, "+" if t0 == 0 else "-")
    return sympy.simplify(value)


def _magnitude(value: sympy.Expr) -> float:
    try:
        return abs(complex(value))
    except (TypeError, OverflowError):
        return math.inf


def _base_scale(model: ir.Model) -> float:
    ctor = model.base.constructor
    return max(ctor.arg("scale")) if ctor.name == "normal" else 1.0


def _boundary(diags, label, coefficient, t0, target, span, relative=1.0):
    value = _value(coefficient, t0)
    if sympy.simplify(value - target) == 0:
        return
    shown = f"{label}({t0}) = {_show(value, target)}, not {target}"
    which = "I(0) = x0" if t0 == 0 else "I(1) = x1"
    if label == "gamma":
        which = f"gamma({t0}) = 0"
    defect = _magnitude(value - target)
    if defect < APPROXIMATE * max(relative, 1e-12):
        diags.append(Diagnostic("Semantic", f"{which} holds only approximately: {shown}.", span,
                                "Fine for diffusion schedules; samplers start from the base "
                                "density regardless.", severity="warning"))
    else:
        hint = "An interpolant must equal x0 at t = 0 and x1 at t = 1."
        if (label, t0) == ("beta", 0):
            hint += (" If x1 is small next to the base's spread there (variance exploding), "
                     "say so with the base's scale, e.g. base x0 ~ normal(0, 50).")
        diags.append(Diagnostic("Semantic", f"The interpolant violates {which}: {shown}.", span,
                                hint))


def _show(value: sympy.Expr, target=None) -> str:
    """A value with enough digits to differ visibly from ``target``."""
    if value.is_Rational or not value.is_number:
        return str(value)
    try:
        number = float(value)
    except TypeError:
        return str(value)
    for digits in (4, 6, 8, 10, 12, 15):
        text = f"{number:.{digits}g}"
        if target is None or float(text) != target:
            return text
    return repr(number)


def _non_affine_boundaries(diags, model, span, identical):
    expr = model.interpolant.expr
    for t0, want in ((0, ir.x1 if identical else ir.x0), (1, ir.x1)):
        value = expr.subs(ir.t, t0)
        if sympy.simplify(value - want) != 0:
            diags.append(Diagnostic("Semantic", f"The interpolant violates "
                                    f"I({t0}) = {want}: at t = {t0} it is {value}.", span,
                                    "An interpolant must equal x0 at t = 0 and x1 at t = 1."))


def _unbounded(expr: sympy.Expr, t0: int) -> bool:
    """Whether expr grows without bound as t -> t0 from inside [0, 1]. A finite value at t0
    settles it; otherwise expr is evaluated at 30 digits ever closer to t0 (sympy's limit is
    exact but takes seconds on diffusion schedules; this takes milliseconds)."""
    value = expr.subs(ir.t, t0)
    if value.is_number and value.is_finite:
        return False
    try:
        f = sympy.lambdify(ir.t, expr, "mpmath")
        with mpmath.workdps(30):
            near = [abs(complex(f(mpmath.mpf(t0) + (h if t0 == 0 else -h))))
                    for h in (mpmath.mpf("1e-6"), mpmath.mpf("1e-9"), mpmath.mpf("1e-12"))]
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return True
    # growing steadily as t0 is approached: blow-ups as slow as t^-0.05 or as small as 1e-7 / sqrt(t)
    return near[0] < near[1] < near[2] and near[2] > 1.5 * near[0]


def grid_failure(expr: sympy.Expr, ok, interior: bool) -> float | None:
    """The first grid point (``compiler/grid.py``; with both ends unless ``interior``) where the
    value is not a real number or ``ok(value)`` fails; None if there is none. Points where the
    expression cannot be evaluated at all (a pole of math.log, say) are skipped."""
    for p, v in grid.values(expr, interior):
        if v is None:
            continue
        if v.imag != 0 or v.real != v.real or not ok(v.real):
            return p
    return None


def _restricted(law: ir.Constructor, restrict, diags, model) -> ir.Constructor:
    if law.name != "uniform" or not (restrict[0] or restrict[1]):
        return law
    low, high = law.arg("low"), law.arg("high")
    new_low = max(low, T_MIN) if restrict[0] else low
    new_high = min(high, 1 - T_MIN) if restrict[1] else high
    if (new_low, new_high) == (low, high):
        return law
    if new_low >= new_high:
        diags.append(Diagnostic("Semantic", f"The time law uniform({low:g}, {high:g}) lies where "
                                "the interpolant's derivatives are unbounded; nothing is left "
                                f"once t is kept {T_MIN:g} away from the singular end.",
                                model.objective.span or model.span,
                                f"Use a law inside [{T_MIN:g}, {1 - T_MIN:g}]."))
        return law
    ends = []
    if new_low != low:
        ends.append(f"{' and '.join(sorted(set(restrict[0])))} is unbounded as t -> 0")
    if new_high != high:
        ends.append(f"{' and '.join(sorted(set(restrict[1])))} is unbounded as t -> 1")
    span = model.objective.span or model.span
    diags.append(Diagnostic("Semantic", "; ".join(ends) + f", so training draws t from "
                            f"uniform({new_low:g}, {new_high:g}) instead of "
                            f"uniform({low:g}, {high:g}).", span,
                            f"Write time ~ uniform({new_low:g}, {new_high:g}) in the objective "
                            "to make this explicit.", severity="warning"))
    return attrs.evolve(law, args=(("low", new_low), ("high", new_high)))
