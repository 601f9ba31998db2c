"""Binding arguments of a primitive constructor (``mlp(width = 64)``) to its declaration in the
standard library: arity, unknown or repeated keywords, missing arguments, and each value checked
against its parameter type.

Parameter types: ``real``, ``int``, ``vector`` (a number or a list of numbers), ``counts`` (a
list of whole numbers of 1 or more, possibly empty, or one such number), ``string``,
``path`` (a data file name), ``energy`` (an energy declared in the model), ``schedule`` (a noise
schedule of the model, or a constant), ``sampler`` (another sampler of the model: an MCMC kernel
that a cycle or an SMC sampler uses), ``network`` (a network of the model: the flow a flow
sampler draws from), and ``{a, b, c}`` (one of these names).
"""

from __future__ import annotations

import math
from pathlib import PurePosixPath

import sympy

from ..dsl import syntax as S
from ..dsl.suggest import did_you_mean
from . import ir
from . import builtins as B
from .expressions import ExprError, Scope, constant

TYPES = ("real", "positive", "nonnegative", "int", "count", "natural", "vector", "counts",
         "string", "path", "energy", "schedule", "sampler", "network", "flow")
# lower bounds of the numeric types: (bound, strict)
BOUNDS = {"positive": (0, True), "nonnegative": (0, False), "count": (1, False),
          "natural": (0, False)}
DATA_SUFFIXES = (".npy", ".npz", ".csv")


def as_call(expr: S.Expr) -> S.Call | None:
    """``independent`` and ``independent()`` mean the same constructor."""
    if isinstance(expr, S.Call):
        return expr
    if isinstance(expr, S.Name):
        return S.Call(expr.id, (), (), span=expr.span, func_span=expr.span)
    return None


def bind(call: S.Call, decl: S.PrimitiveDecl, scope: Scope, refs: dict[str, str]) -> ir.Constructor:
    """Bind ``call`` to primitive ``decl``; ``refs`` maps model declarations to their kind
    (``"noise"``, ``"energy"``) for reference-typed parameters. Raises ExprError."""
    params = decl.params
    names = [p.name for p in params]
    if len(call.args) > len(params):
        raise ExprError(f"{decl.name} takes {_count(len(params))}, but {len(call.args)} "
                        f"{'was' if len(call.args) == 1 else 'were'} given.", call.span,
                        f"Its parameters: {signature(decl)}." if params else None)
    given: dict[str, S.Expr] = dict(zip(names, call.args))
    for kw in call.keywords:
        if kw.name not in names:
            raise ExprError(f"{decl.name} has no parameter '{kw.name}'.", kw.span,
                            did_you_mean(kw.name, names) or
                            (f"Its parameters: {signature(decl)}." if params
                             else f"{decl.name} takes no arguments."))
        if kw.name in given:
            raise ExprError(f"The argument '{kw.name}' is given twice.", kw.span)
        given[kw.name] = kw.value
    args = []
    for p in params:
        if p.name in given:
            args.append((p.name, value(given[p.name], p, decl, scope, refs)))
        elif p.default is not None:
            args.append((p.name, value(p.default, p, decl, scope, refs)))
        else:
            raise ExprError(f"{decl.name} needs the argument '{p.name}'.", call.span,
                            f"Give it as {decl.name}({p.name} = ...).")
    return ir.Constructor(decl.kind, decl.name, tuple(args), span=call.span)


def _count(n: int) -> str:
    return "no arguments" if n == 0 else f"{n} argument{'s' * (n != 1)}"


def signature(decl: S.PrimitiveDecl) -> str:
    parts = []
    for p in decl.params:
        kind = (p.type.name if p.type and p.type.name else
                "{" + ", ".join(p.type.choices) + "}" if p.type else "real")
        parts.append(f"{p.name}: {kind}")
    return ", ".join(parts)


def value(expr: S.Expr, param: S.Param, decl: S.PrimitiveDecl, scope: Scope, refs) -> ir.Value:
    kind = param.type.name if param.type is not None else "real"
    what = f"The argument '{param.name}' of {decl.name}"
    if param.type is not None and param.type.name is None:
        choices = param.type.choices
        if isinstance(expr, S.Name) and expr.id in choices:
            return expr.id
        if isinstance(expr, S.String) and expr.value in choices:
            raise ExprError(f"{what} is a name, not a string.", expr.span,
                            f"Write {param.name} = {expr.value}, without quotes.")
        shown = f"'{expr.id}' is not" if isinstance(expr, S.Name) else "this is not a name"
        raise ExprError(f"{what} must be one of {', '.join(choices)}; {shown}.", expr.span,
                        did_you_mean(expr.id, choices) if isinstance(expr, S.Name) else None)
    if kind in ("string", "path"):
        if not isinstance(expr, S.String):
            raise ExprError(f"{what} must be a string in double quotes.", expr.span)
        return check_path(expr) if kind == "path" else expr.value
    if kind == "flow":  # a normalizing flow, or an ODE sampler: its probability-flow ODE
        if isinstance(expr, S.Name) and refs.get(expr.id) in ("network", "sampler"):
            return ir.Reference(refs[expr.id], expr.id)
        pool = [n for n, k in refs.items() if k in ("network", "sampler")]
        shown = expr.id if isinstance(expr, S.Name) else None
        raise ExprError(f"{what} must be a flow declared with network NAME = realnvp(...), or "
                        "an ODE sampler of the model (sampler NAME = rk4(...))"
                        + (f"; '{shown}' is neither." if shown else "."),
                        expr.span, did_you_mean(shown, pool) if shown else None)
    if kind in ("energy", "schedule", "sampler", "network"):
        if isinstance(expr, S.Name) and refs.get(expr.id) == ("noise" if kind == "schedule" else kind):
            return ir.Reference("noise" if kind == "schedule" else kind, expr.id)
        if kind == "schedule" and not isinstance(expr, (S.String, S.ListExpr)) and not (
                isinstance(expr, S.Name) and expr.id not in B.CONSTANTS):
            return real_value(expr, scope, what, nonnegative=True)
        wanted = {"schedule": "a noise schedule declared with noise NAME(t) = ...",
                  "energy": "an energy declared with energy NAME(x) = ...",
                  "sampler": "an MCMC kernel declared with sampler NAME = mala(...)",
                  "network": "a network declared with network NAME = ..."}[kind]
        pool = [n for n, k in refs.items() if k == ("noise" if kind == "schedule" else kind)]
        shown = expr.id if isinstance(expr, S.Name) else None
        raise ExprError(f"{what} must be {wanted}" + (f"; '{shown}' is not." if shown else "."),
                        expr.span, did_you_mean(shown, pool) if shown else None)
    if kind in ("int", "count", "natural"):
        if isinstance(expr, (S.String, S.ListExpr)):
            raise ExprError(f"{what} must be a whole number.", expr.span)
        number = constant(expr, scope)
        if not number.is_Integer:
            raise ExprError(f"{what} must be a whole number.", expr.span)
        _check_bound(int(number), kind, what, expr)
        return int(number)
    if kind == "counts":  # whole numbers of 1 or more: a list (empty too) or one number
        items = expr.items if isinstance(expr, S.ListExpr) else (expr,)
        values = []
        for item in items:
            number = None if isinstance(item, (S.String, S.ListExpr)) else constant(item, scope)
            if number is None or not number.is_Integer:
                raise ExprError(f"{what} must be a list of whole numbers, e.g. [1, 2].", item.span)
            _check_bound(int(number), "count", what, item)
            values.append(int(number))
        return tuple(values)
    if kind == "vector":
        if isinstance(expr, S.ListExpr):
            if not expr.items:
                raise ExprError(f"{what} is an empty list.", expr.span)
            return tuple(real_value(item, scope, what) for item in expr.items)
        return (real_value(expr, scope, what),)
    if kind in ("real", "positive", "nonnegative"):
        result = real_value(expr, scope, what)
        _check_bound(result, kind, what, expr)
        return result
    raise ExprError(f"Unknown parameter type '{kind}' in the declaration of {decl.name}.",
                    param.span, f"Types: {', '.join(TYPES)} or {{a, b}}.")


def _check_bound(number, kind: str, what: str, expr) -> None:
    if kind not in BOUNDS:
        return
    bound, strict = BOUNDS[kind]
    if kind in ("count", "natural") and number >= 2**63:
        raise ExprError(f"{what} is too large (at most 2^63 - 1).", expr.span)
    if number < bound or (strict and number == bound):
        relation = f"greater than {bound}" if strict else f"{bound} or more"
        raise ExprError(f"{what} must be {relation}; it is {number:g}.", expr.span)


def real_value(expr: S.Expr, scope: Scope, what: str, nonnegative: bool = False) -> float:
    """A constant expression as a finite float; ``what`` names it in messages."""
    if isinstance(expr, (S.String, S.ListExpr)):
        raise ExprError(f"{what} must be a number.", expr.span)
    number = constant(expr, scope)
    if not number.is_real:
        raise ExprError(f"{what} must be a real number.", expr.span)
    result = to_float(number)
    if not math.isfinite(result):
        raise ExprError(f"{what} is not a finite number in double precision.", expr.span)
    if nonnegative and result < 0:
        raise ExprError(f"{what} must be 0 or more.", expr.span)
    return result


def to_float(number) -> float:
    """A constant sympy expression as a float, computed in double precision (sympy's own evalf
    may need unbounded precision, e.g. for sin(exp(1000000))); inf or nan when it does not fit."""
    if number.is_Rational:
        try:
            return float(number)
        except OverflowError:
            return math.inf
    try:
        value = sympy.lambdify((), number, "math")()
        return float(value)
    except (OverflowError, ZeroDivisionError):
        return math.inf
    except (TypeError, ValueError):
        return math.nan


def check_path(expr: S.String) -> str:
    """A data file name: relative, inside the model's folder, a known suffix."""
    text = expr.value
    path = PurePosixPath(text)
    if not text or text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise ExprError("Data files are named relative to the model file, not by an absolute path.",
                        expr.span, "Copy or link the file next to the model.")
    if any(len(part) > 255 for part in path.parts) or len(text) > 1024:
        raise ExprError("This data file name is too long (at most 255 characters a folder or "
                        "file, 1024 in all).", expr.span)
    if any(part == ".." for part in path.parts):
        raise ExprError("Data file names may not go up with '..': data must lie in the model's "
                        "folder or below it.", expr.span, "Copy or link the file next to the model.")
    if path.suffix.lower() not in DATA_SUFFIXES:
        raise ExprError(f"Data files are .npy, .npz or .csv; '{path.name}' is not.", expr.span,
                        "Save arrays with numpy.save (never pickles).")
    return str(path)


def is_primitive(entry, kind: str | None = None) -> bool:
    decl = getattr(entry, "decl", None)
    return isinstance(decl, S.PrimitiveDecl) and (kind is None or decl.kind == kind)


def constant_scope() -> Scope:
    return Scope({}, lambda name: None, lambda: [], constant_only=True)

