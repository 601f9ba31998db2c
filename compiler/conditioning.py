"""How well each regression is conditioned (docs/maths.md §2.4): a warning where the variance of
its weighted target (``derive.variance_factor``) spans too much of the time law.

A regression target is affine in the random symbols, Y = a0(t) x0 + a1(t) x1 + az(t) z + c(t)
(``derive.regression_target``), and its loss is w(t) |N(t, x_t) - Y|^2. The variance factor of
the weighted target is

    V(t) = w(t) (a0(t)^2 s0^2 + a1(t)^2 + az(t)^2),

s0 the scale of a normal base (1 for another base): z and a normal x0 have exactly that
variance per coordinate, and the data x1 are taken at unit scale (data terms are bounded, and
the data-scale warning of the run asks for unit scale). V is how much the regression's noise
grows with t: where it is large the loss and its gradient are dominated by a few times, the
network sees the rest of the time law through that noise, and the model trains to a wrong
field in silence (a VP model with an unweighted score target: V = 1 / alpha(t)^2, thousands of
times its median near the data end).

The check evaluates V at 101 quantiles of the time law training draws from, evenly in
probability from 0.1% to 99.9%, and compares its largest value there with its median: a ratio
above ``SPAN`` (three orders of magnitude) is a warning naming the term, the ratio and the
fixes. Small values are harmless (a target that vanishes somewhere is not noisy there), so only
the top of V is compared with its typical size. ``tfmc derive`` shows V(t) per term.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import sympy

from ..errors import Diagnostic
from . import ir

SPAN = 1e3  # largest V over its median on the time law's bulk; above: a warning
QUANTILES = (1e-3, 1 - 1e-3)


def quantile(law: ir.Constructor, p: float) -> float | None:
    """The time law's p-quantile (None for a law not known here)."""
    if law.name == "uniform":
        low, high = float(law.arg("low")), float(law.arg("high"))
        return low + p * (high - low)
    if law.name == "logit_normal":
        xi = float(law.arg("mean")) + float(law.arg("std")) * NormalDist().inv_cdf(p)
        return 1 / (1 + math.exp(-xi))
    return None


def profile(v: sympy.Expr, law: ir.Constructor) -> tuple[float, float, float] | None:
    """(V's median over the law, its largest value on the law's 0.1% to 99.9% quantiles, the t
    where it is largest), or None where V is not a real function of t here."""
    lo, hi = QUANTILES
    even = [lo + (hi - lo) * i / 100 for i in range(101)]  # evenly in probability
    if quantile(law, 0.5) is None or v.free_symbols - {ir.t}:
        return None
    f = sympy.lambdify(ir.t, v, "math")
    values = {}
    for p in even:
        t = quantile(law, p)
        try:
            value = complex(f(t))
        except (ZeroDivisionError, OverflowError):  # unbounded there
            value = complex(math.inf)
        except (ValueError, TypeError):
            return None
        if math.isnan(value.real) or abs(value.imag) > 1e-9 * max(1.0, abs(value.real)):
            return None
        values[t] = abs(value.real)
    ordered = sorted(values.values())
    where = max(values, key=values.get)
    return ordered[len(ordered) // 2], values[where], where


def check(model: ir.Model, derivation: ir.Derivation, law: ir.Constructor) -> list[Diagnostic]:
    """A warning for each regression whose weighted target's variance spans more than SPAN of
    its median over the time law ``law`` (the law training draws from)."""
    out = []
    for (network, target, y), (_, v) in zip(derivation.targets, derivation.variances):
        if v is None:
            continue
        found = profile(v, law)
        if found is None:
            continue
        median, top, where = found
        if median <= 0 or top <= SPAN * median:
            continue
        reach = ("grows without bound" if math.isinf(top) else
                 f"reaches {top / median:.3g} times its median over the time law")
        out.append(Diagnostic(
            "Semantic", f"The {target} target of '{network}' is ill-conditioned: the variance "
            f"of the weighted target, V(t) = {v}, {reach} (at t = {where:.4g}), so a few times "
            "dominate the loss and the rest of the field trains through their noise.",
            model.objective.span or model.span, _fixes(target), severity="warning"))
    return out


def _fixes(target: str) -> str:
    if target == "score":
        first = ("Leave the weight out: a score target's default weight is its standard weighting, "
                 "which makes V(t) = 1; or train on noise (or base), whose conversion gives the "
                 "same score")
    else:
        first = ("Weight the loss so that V is flat (weight(t) proportional to 1 / V(t)), or train "
                 "on another target whose conversion gives the same field (velocity, noise or "
                 "data)")
    return first + "; or draw t from a narrower time law."
