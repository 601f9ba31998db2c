"""Syntax-tree expressions to sympy, node by node: no text is ever handed to sympy to parse.

A :class:`Scope` tells the converter what each name means: a bound symbol (a function parameter,
``t``, ``x0``...), a scalar function or named interpolant to inline, or something that is not a
number at all (a network, a distribution), which is an error in an expression.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import sympy

from ..dsl import syntax as S
from ..errors import Diagnostic
from ..dsl.suggest import did_you_mean
from . import builtins as B
from . import ir


class ExprError(Exception):
    def __init__(self, message, span, suggestion=None):
        super().__init__(message)
        self.diagnostic = Diagnostic("Semantic", message, span, suggestion)


@attrs.frozen
class Template:
    """A named interpolant: its body in t, x0, x1, z and its parameters with defaults."""

    name: str
    params: tuple[str, ...]
    defaults: tuple[tuple[str, sympy.Expr], ...]
    body: sympy.Expr


@attrs.define
class Scope:
    """What names mean inside one expression."""

    symbols: dict[str, sympy.Basic]
    resolve: Callable[[str], object]  # name -> ir.ScalarFunction | Template | str (a kind) | None
    candidates: Callable[[], list[str]]
    constant_only: bool = False  # constructor arguments: numbers, nothing declared


def convert(expr: S.Expr, scope: Scope) -> sympy.Expr:
    """Convert ``expr``; raise :class:`ExprError` at the first problem."""
    if isinstance(expr, S.Number):
        return sympy.Rational(expr.text)
    if isinstance(expr, S.Name):
        return _name(expr, scope)
    if isinstance(expr, S.BinOp):
        return _bounded(_binop(expr, convert(expr.left, scope), convert(expr.right, scope)), expr)
    if isinstance(expr, S.UnaryOp):
        value = convert(expr.operand, scope)
        return -value if expr.op == "-" else value
    if isinstance(expr, S.Call):
        return _call(expr, scope)
    if isinstance(expr, S.Index):
        return _index(expr, scope)
    if isinstance(expr, S.String):
        raise ExprError("A string cannot be used in arithmetic.", expr.span,
                        'Strings are only arguments, as in data("train.npy").')
    if isinstance(expr, S.ListExpr):
        raise ExprError("A list cannot be used in arithmetic.", expr.span,
                        "Lists are only arguments, as in normal(mean = [1, 2]).")
    raise AssertionError(expr)  # pragma: no cover - the parser makes no other nodes


MAX_BITS = 4096
MAX_EXPONENT = 1024


def _binop(expr: S.BinOp, a, b):
    if expr.op == "@":
        raise ExprError("@ multiplies vectors and matrices; it is used only in energies.",
                        expr.span, "Use * for numbers.")
    if expr.op == "+":
        return a + b
    if expr.op == "-":
        return a - b
    if expr.op == "*":
        return a * b
    if expr.op == "/":
        if b == 0:
            raise ExprError("Division by zero.", expr.right.span)
        return a / b
    if b.is_Number and a.is_Number and abs(b) > MAX_EXPONENT and abs(a) != 1 and a != 0:
        raise ExprError(f"The exponent {b} is too large to evaluate exactly.", expr.right.span,
                        "Write the value as a number literal such as 1e300.")
    if a == 0 and b.is_Number and b < 0:
        raise ExprError("Zero to a negative power is infinite.", expr.span)
    return a ** b


def _bounded(value, expr):
    """Exact rational arithmetic on literals must not grow without bound."""
    if value.is_Rational and max(value.p.bit_length(), value.q.bit_length()) > MAX_BITS:
        raise ExprError("This number is too large (or too finely divided) to compute with.",
                        expr.span, "Use a float-sized literal instead.")
    return value


def _unknown(name: str, span, scope: Scope, what="name") -> ExprError:
    if scope.constant_only:
        return ExprError(f"Arguments of constructors are constant numbers; '{name}' is not one.",
                         span, "Write the number itself, e.g. width = 64 or lr = 2 * 1e-3.")
    pool = list(scope.symbols) + list(B.ALL_NAMES) + scope.candidates()
    return ExprError(f"Unknown {what} '{name}'.", span,
                     did_you_mean(name, pool) or _hint_for(name, scope))


def _hint_for(name: str, scope: Scope) -> str | None:
    if name == "t":
        return "t is bound in interpolants; a function of time names it: f(t) = ..."
    if name in ("x0", "x1", "z"):
        return (f"{name} is bound only in interpolants (interpolant x_t = ...); functions "
                "take scalars of t.")
    if name == "x":
        return "x is bound only in energies: energy U(x) = ..."
    return None


def _name(expr: S.Name, scope: Scope):
    name = expr.id
    if name in scope.symbols:
        return scope.symbols[name]
    if name in B.CONSTANTS:
        return B.CONSTANTS[name]
    target = scope.resolve(name)
    if isinstance(target, Template):
        return instantiate(target, [], [], expr, scope)
    if isinstance(target, ir.ScalarFunction):
        raise ExprError(f"'{name}' is a function; call it with its arguments, as in "
                        f"{name}({', '.join(target.params)}).", expr.span)
    if name in B.UNARY or name in B.VARIADIC or name in B.REDUCTIONS:
        raise ExprError(f"'{name}' is a function; call it, as in {name}(t).", expr.span)
    if isinstance(target, str):
        raise ExprError(f"'{name}' is {_a(target)}, not a number.", expr.span)
    raise _unknown(name, expr.span, scope)


def _call(expr: S.Call, scope: Scope):
    name = expr.func
    if name in scope.symbols:
        raise ExprError(f"'{name}' is a number, not a function.", expr.func_span)
    target = scope.resolve(name)
    if isinstance(target, ir.ScalarFunction):
        values = bind_call(expr, target.params, dict(target.defaults), scope, name)
        return _inlined(target.body.xreplace(dict(zip(target.symbols(), values))), expr)
    if isinstance(target, Template):
        return instantiate(target, expr.args, expr.keywords, expr, scope)
    if target is None and name in B.UNARY:
        _no_keywords(expr)
        if len(expr.args) != 1:
            raise ExprError(f"{name} takes 1 argument, not {len(expr.args)}.", expr.span)
        return B.UNARY[name](convert(expr.args[0], scope))
    if target is None and name in B.VARIADIC:
        _no_keywords(expr)
        if len(expr.args) < 2:
            raise ExprError(f"{name} takes at least 2 arguments.", expr.span)
        return B.VARIADIC[name](*(convert(a, scope) for a in expr.args))
    if target is None and (name in B.REDUCTIONS or name == "roll"):
        raise ExprError(f"{name} works on the sample x of an energy; it cannot be used here.",
                        expr.func_span)
    if target is None and name == "integral":
        return _integral(expr, scope)
    if isinstance(target, str):
        raise ExprError(f"'{name}' is {_a(target)}; it cannot be used in an expression.",
                        expr.func_span)
    raise _unknown(name, expr.func_span, scope, "function")


MAX_NODES = 20000


def _inlined(result: sympy.Expr, expr: S.Call) -> sympy.Expr:
    """Inlining can double an expression at every level (f_k(t) = f_{k-1}(sin t) +
    f_{k-1}(cos t)); past MAX_NODES tree nodes that is an error, not a minute of sympy."""
    for count, _ in enumerate(sympy.preorder_traversal(result)):
        if count > MAX_NODES:
            raise ExprError(f"Inlining {expr.func} makes an expression of more than {MAX_NODES} "
                            "terms.", expr.span, "Simplify the functions that call each other.")
    return result


def _no_keywords(expr: S.Call):
    if expr.keywords:
        raise ExprError(f"{expr.func} takes no keyword arguments.", expr.keywords[0].span)


def bind_call(expr: S.Call, params, defaults: dict, scope: Scope, name: str) -> list:
    """Positional and keyword arguments of a call to a scalar function, in parameter order."""
    if len(expr.args) > len(params):
        raise ExprError(f"{name} takes {len(params)} argument{'s' * (len(params) != 1)}, "
                        f"but {len(expr.args)} were given.", expr.span,
                        f"Its parameters: {', '.join(params)}.")
    values: dict[str, sympy.Expr] = {p: convert(a, scope) for p, a in zip(params, expr.args)}
    for kw in expr.keywords:
        if kw.name not in params:
            raise ExprError(f"{name} has no parameter '{kw.name}'.", kw.span,
                            did_you_mean(kw.name, params) or f"Its parameters: {', '.join(params)}.")
        if kw.name in values:
            raise ExprError(f"The argument '{kw.name}' is given twice.", kw.span)
        values[kw.name] = convert(kw.value, scope)
    for p in params:
        if p not in values:
            if p not in defaults:
                raise ExprError(f"The call to {name} misses the argument '{p}'.", expr.span,
                                f"Call it as {name}({', '.join(params)}).")
            values[p] = defaults[p]
    return [values[p] for p in params]


def instantiate(template: Template, args, keywords, expr, scope: Scope) -> sympy.Expr:
    if not {"t", "x0", "x1", "z"} <= set(scope.symbols):
        raise ExprError(f"The interpolant '{template.name}' can only be used in an interpolant.",
                        expr.span)
    call = S.Call(template.name, tuple(args), tuple(keywords), span=expr.span, func_span=expr.span)
    values = bind_call(call, template.params, dict(template.defaults), scope, template.name)
    symbols = [sympy.Symbol(p, real=True) for p in template.params]
    return template.body.xreplace(dict(zip(symbols, values)))


def _index(expr: S.Index, scope: Scope):
    raise ExprError("Only the sample x of an energy can be indexed, as in x[0].", expr.span)


def _integral(expr: S.Call, scope: Scope):
    """integral(body, s, lo, hi): the definite integral of body over s from lo to hi, done by
    sympy (docs/maths.md §2.6: the VP signal exp(-1/2 integral of beta))."""
    _no_keywords(expr)
    if len(expr.args) != 4 or not isinstance(expr.args[1], S.Name):
        raise ExprError("integral takes a body, a variable name and two bounds, as in "
                        "integral(beta(s), s, 0, tau).", expr.span)
    var = expr.args[1].id
    if var in scope.symbols or var in B.CONSTANTS or var in ("t", "x0", "x1", "z", "x"):
        raise ExprError(f"The integration variable '{var}' is already bound here; pick a fresh "
                        "name.", expr.args[1].span)
    symbol = sympy.Symbol(var, real=True)
    inner = Scope({**scope.symbols, var: symbol}, scope.resolve, scope.candidates)
    body = convert(expr.args[0], inner)
    lo, hi = convert(expr.args[2], scope), convert(expr.args[3], scope)
    if symbol in lo.free_symbols | hi.free_symbols:
        raise ExprError(f"The bounds may not use the integration variable '{var}'.", expr.span)
    result = sympy.integrate(body, (symbol, lo, hi))
    if result.has(sympy.Integral):
        raise ExprError("sympy cannot integrate this in closed form.", expr.args[0].span,
                        "Write the antiderivative yourself.")
    return result


def constant(expr: S.Expr, scope: Scope) -> sympy.Expr:
    """A constant expression (no free symbols), e.g. a default or an argument like 2 * pi."""
    value = convert(expr, scope)
    if value.free_symbols:
        raise ExprError("This must be a constant number.", expr.span,
                        f"It depends on {', '.join(sorted(map(str, value.free_symbols)))}.")
    return value


def _a(word: str) -> str:
    """``word`` with its indefinite article: a network, an energy."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"
