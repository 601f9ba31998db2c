"""The array expressions of energies: U(x) over the whole sample x and the model's constants.

An energy is a number per sample, built from the sample x (of the model's shape), constants
(vectors and matrices declared with ``constant``), numbers, elementwise functions, broadcasting
arithmetic, matrix products ``@``, reductions (``sum``, ``dot``, ``norm``, ``logsumexp``), the
index ``v[i]`` of a vector (x[i] counts through the flattened sample) and lattice shifts
``roll(v, shift, axis)``. Each node knows its shape (the shape of one sample's value) and
whether it depends on x (``batched``: the printed code carries a leading batch axis), so shape
errors are found here, with a span, before any code is written.

A tree prints to a Python expression on the array API (``xp``), the same text for both
backends (``codegen``); ``to_sympy`` gives the sympy form of the elementwise part of the
language (for ``tfmc derive``), and ``symbolic_gradient`` its gradient where sympy can write it.
Nothing here parses text: trees are built node by node from the syntax tree.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import sympy

from ..dsl import syntax as S
from ..dsl.suggest import did_you_mean
from . import builtins as B
from . import ir
from .expressions import ExprError

ELEMENTWISE = {  # language name -> printed function of the array API (v: the argument's text)
    "exp": "xp.exp({v})", "log": "xp.log({v})", "log1p": "xp.log1p({v})",
    "expm1": "xp.expm1({v})", "sqrt": "xp.sqrt({v})", "abs": "xp.abs({v})",
    "sin": "xp.sin({v})", "cos": "xp.cos({v})", "tan": "xp.tan({v})",
    "asin": "xp.asin({v})", "acos": "xp.acos({v})", "atan": "xp.atan({v})",
    "sinh": "xp.sinh({v})", "cosh": "xp.cosh({v})", "tanh": "xp.tanh({v})",
    "sigmoid": "(1 / (1 + xp.exp(-({v}))))", "softplus": "xp.logaddexp(0.0, {v})",
}
REDUCTIONS = ("sum", "dot", "norm", "logsumexp")
ARRAY_FUNCTIONS = ("roll",)
NAMES = tuple(ELEMENTWISE) + REDUCTIONS + ARRAY_FUNCTIONS + ("min", "max")
MAX_ELEMENTS = 10**8  # of one intermediate value per sample


@attrs.frozen
class Node:
    """One array operation. ``op``: x, const, num, fn (elementwise, ``value`` its name), add, sub,
    mul, div, pow, neg, max, min, matmul, sum, lse (over a vector), lse_args (of numbers),
    index (``value`` the index), roll (``value`` (shift, axis))."""

    op: str
    args: tuple["Node", ...] = ()
    shape: tuple[int, ...] = ()
    batched: bool = False
    value: object = None


@attrs.define
class EnergyScope:
    """What names mean in an energy: its argument, the constants and their shapes, the model's
    scalar functions (``resolve``) and names to suggest."""

    arg: str
    shape: tuple[int, ...]
    constants: dict[str, tuple[int, ...]]
    resolve: Callable[[str], object]
    candidates: Callable[[], list[str]]


def convert(expr: S.Expr, scope: EnergyScope) -> Node:
    """The tree of an energy's body; raises ExprError at the first problem."""
    if isinstance(expr, S.Number):
        return _num(float(expr.text))
    if isinstance(expr, S.Name):
        return _name(expr, scope)
    if isinstance(expr, S.UnaryOp):
        value = convert(expr.operand, scope)
        return value if expr.op == "+" else _neg(value)
    if isinstance(expr, S.BinOp):
        return _binop(expr, convert(expr.left, scope), convert(expr.right, scope))
    if isinstance(expr, S.Call):
        return _call(expr, scope)
    if isinstance(expr, S.Index):
        return _index(expr, convert(expr.value, scope), scope)
    if isinstance(expr, S.String):
        raise ExprError("A string cannot be used in arithmetic.", expr.span)
    if isinstance(expr, S.ListExpr):
        raise ExprError("A list cannot be used inside an energy.", expr.span,
                        "Declare it as a constant: constant m = [1, 2], then use m.")
    raise AssertionError(expr)  # pragma: no cover - the parser makes no other nodes


def _num(value: float) -> Node:
    return Node("num", value=value)


def _name(expr: S.Name, scope: EnergyScope) -> Node:
    name = expr.id
    if name == scope.arg:
        return Node("x", shape=scope.shape, batched=True)
    if name in scope.constants:
        return Node("const", shape=scope.constants[name], value=name)
    if name == "pi":
        return _num(math.pi)
    target = scope.resolve(name)
    if name in NAMES or isinstance(target, ir.ScalarFunction):
        raise ExprError(f"'{name}' is a function; call it, as in {name}({scope.arg}).", expr.span)
    if isinstance(target, str):
        raise ExprError(f"'{name}' is {_a(target)}, not a number.", expr.span)
    pool = [scope.arg, "pi", *scope.constants, *NAMES, *scope.candidates()]
    hint = did_you_mean(name, pool)
    if hint is None and name in ("t", "x0", "x1", "z"):
        hint = f"An energy depends only on its sample {scope.arg} and the model's constants."
    raise ExprError(f"Unknown name '{name}'.", expr.span, hint)


def broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """numpy's rule on the shapes of one sample (trailing axes aligned), or None."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        p = a[-i] if i <= len(a) else 1
        q = b[-i] if i <= len(b) else 1
        if p != q and 1 not in (p, q):
            return None
        out.append(max(p, q))
    return tuple(reversed(out))


def _shape_text(shape) -> str:
    return "a number" if not shape else f"shape {list(shape)}"


def _combine(op: str, args: list[Node], span, what: str) -> Node:
    shape = args[0].shape
    for arg in args[1:]:
        joined = broadcast(shape, arg.shape)
        if joined is None:
            raise ExprError(f"The operands of {what} do not fit: {_shape_text(shape)} and "
                            f"{_shape_text(arg.shape)}.", span,
                            "Shapes combine elementwise when they are equal, or one is a "
                            "number (numpy's broadcasting).")
        shape = joined
    _check_size(shape, span)
    return Node(op, tuple(args), shape, any(a.batched for a in args))


def _check_size(shape, span):
    if math.prod(shape) > MAX_ELEMENTS:
        raise ExprError(f"This value would have {math.prod(shape)} elements per sample.", span)


def _neg(value: Node) -> Node:
    if value.op == "num":
        return _num(-value.value)
    return Node("neg", (value,), value.shape, value.batched)


ARITHMETIC = {"+": "add", "-": "sub", "*": "mul", "/": "div", "^": "pow"}


def _binop(expr: S.BinOp, a: Node, b: Node) -> Node:
    if expr.op == "@":
        return _matmul(a, b, expr.span)
    if expr.op == "/" and b.op == "num" and b.value == 0:
        raise ExprError("Division by zero.", expr.right.span)
    if a.op == "num" and b.op == "num":
        try:
            value = {"+": a.value + b.value, "-": a.value - b.value, "*": a.value * b.value,
                     "/": a.value / b.value if b.value else math.inf}.get(expr.op)
            if expr.op == "^":
                value = a.value ** b.value
        except (OverflowError, ZeroDivisionError):
            value = None
        if isinstance(value, float) and math.isfinite(value):
            return _num(value)
        raise ExprError("This constant arithmetic has no finite value.", expr.span)
    return _combine(ARITHMETIC[expr.op], [a, b], expr.span, f"'{expr.op}'")


def _matmul(a: Node, b: Node, span) -> Node:
    if not (1 <= len(a.shape) <= 2 and 1 <= len(b.shape) <= 2):
        raise ExprError(f"@ multiplies vectors and matrices; here {_shape_text(a.shape)} @ "
                        f"{_shape_text(b.shape)}.", span)
    inner_a, inner_b = a.shape[-1], b.shape[0]
    if inner_a != inner_b:
        raise ExprError(f"@ needs matching inner sizes: {_shape_text(a.shape)} @ "
                        f"{_shape_text(b.shape)} ({inner_a} against {inner_b}).", span,
                        "Check the constant's file and the model's dim.")
    shape = a.shape[:-1] + b.shape[1:]
    return Node("matmul", (a, b), shape, a.batched or b.batched)


def _call(expr: S.Call, scope: EnergyScope) -> Node:
    name = expr.func
    target = scope.resolve(name)
    if isinstance(target, ir.ScalarFunction):
        return _inline(expr, target, scope)
    if expr.keywords and name != "roll":
        raise ExprError(f"{name} takes no keyword arguments.", expr.keywords[0].span)
    args = [convert(a, scope) for a in expr.args]
    if name in ELEMENTWISE:
        _arity(expr, args, 1)
        if args[0].op == "num" and name in ("exp", "log", "sqrt") and \
                (name == "exp" or args[0].value > 0):
            return _num(getattr(math, name)(args[0].value))
        return Node("fn", (args[0],), args[0].shape, args[0].batched, name)
    if name in ("min", "max"):
        if len(args) < 2:
            raise ExprError(f"{name} takes at least 2 arguments.", expr.span)
        return _combine(name, args, expr.span, name)
    if name == "sum":
        _arity(expr, args, 1)
        return _reduce("sum", args[0])
    if name == "dot":  # the sum of the elementwise product (for matrices: Frobenius)
        _arity(expr, args, 2)
        return _reduce("sum", _combine("mul", args, expr.span, "dot"))
    if name == "norm":
        _arity(expr, args, 1)
        square = Node("mul", (args[0], args[0]), args[0].shape, args[0].batched)
        total = _reduce("sum", square)
        return Node("fn", (total,), (), total.batched, "sqrt")
    if name == "logsumexp":
        if len(args) == 1:
            if not args[0].shape:
                return args[0]
            return Node("lse", (args[0],), (), args[0].batched)
        if not args:
            raise ExprError("logsumexp takes a vector, or 2 or more numbers.", expr.span)
        for arg, node in zip(args, expr.args):
            if arg.shape:
                raise ExprError("logsumexp of several arguments takes numbers; give one vector "
                                "to reduce it, as in logsumexp(-(x - m)^2).", node.span)
        if all(a.op == "num" for a in args):
            top = max(a.value for a in args)
            return _num(top + math.log(sum(math.exp(a.value - top) for a in args)))
        return Node("lse_args", tuple(args), (), any(a.batched for a in args))
    if name == "roll":
        return _roll(expr, args, scope)
    if isinstance(target, str):
        raise ExprError(f"'{name}' is {_a(target)}; it cannot be used in an energy.",
                        expr.func_span)
    if name in B.ALL_NAMES:
        raise ExprError(f"{name} cannot be used in an energy.", expr.func_span)
    pool = [*NAMES, *scope.candidates()]
    raise ExprError(f"Unknown function '{name}'.", expr.func_span, did_you_mean(name, pool))


def _arity(expr: S.Call, args, n: int):
    if len(args) != n:
        raise ExprError(f"{expr.func} takes {n} argument{'s' * (n > 1)}, not {len(args)}.",
                        expr.span)


def _reduce(op: str, value: Node) -> Node:
    return value if not value.shape else Node(op, (value,), (), value.batched)


def _integer(expr: S.Expr, scope: EnergyScope, what: str) -> int:
    node = convert(expr, scope)
    if node.op != "num" or node.value != int(node.value):
        raise ExprError(f"{what} must be a whole number.", expr.span)
    return int(node.value)


def _roll(expr: S.Call, args: list[Node], scope: EnergyScope) -> Node:
    """roll(v, shift, axis = 0): v shifted by ``shift`` places along ``axis``, periodically
    (the neighbour of every lattice site: roll(phi, 1, 0)[i, j] = phi[i - 1, j])."""
    given = {k.name: k.value for k in expr.keywords}
    for k in expr.keywords:
        if k.name not in ("shift", "axis"):
            raise ExprError(f"roll has no parameter '{k.name}'.", k.span,
                            "Call it as roll(v, shift, axis).")
    positional = list(expr.args[1:])
    if len(expr.args) < 1 or len(expr.args) > 3:
        raise ExprError("roll takes an array, a shift and an axis: roll(x, 1, 0).", expr.span)
    shift_expr = positional[0] if positional else given.get("shift")
    axis_expr = positional[1] if len(positional) > 1 else given.get("axis")
    if shift_expr is None:
        raise ExprError("roll needs a shift, as in roll(x, 1, 0).", expr.span)
    value = args[0]
    if not value.shape:
        raise ExprError("roll shifts an array; this is a number.", expr.args[0].span)
    shift = _integer(shift_expr, scope, "roll's shift")
    axis = 0 if axis_expr is None else _integer(axis_expr, scope, "roll's axis")
    rank = len(value.shape)
    if not -rank <= axis < rank:
        raise ExprError(f"Axis {axis} is out of range: the array has {rank} "
                        f"ax{'es' if rank > 1 else 'is'} (0 to {rank - 1}).",
                        (axis_expr or expr).span)
    return Node("roll", (value,), value.shape, value.batched, (shift, axis % rank))


def _index(expr: S.Index, value: Node, scope: EnergyScope) -> Node:
    index_node = convert(expr.index, scope)
    if index_node.op != "num" or index_node.value != int(index_node.value) or \
            index_node.value < 0:
        raise ExprError("An index must be a whole number, 0 or more.", expr.index.span)
    index = int(index_node.value)
    if value.op == "x":
        size = math.prod(value.shape)
        name = scope.arg
    elif len(value.shape) == 1:
        size, name = value.shape[0], "the vector"
    else:
        raise ExprError(f"Only vectors (and the sample {scope.arg}) can be indexed; this is "
                        f"{_shape_text(value.shape)}.", expr.span)
    if index >= size:
        raise ExprError(f"Index {index} is out of range: {name} has {size} components "
                        f"(0 to {size - 1}).", expr.index.span)
    return Node("index", (value,), (), value.batched, index)


def _inline(expr: S.Call, function: ir.ScalarFunction, scope: EnergyScope) -> Node:
    """A scalar function of the model applied elementwise: its sympy body rebuilt as a tree
    with the arguments in place of its parameters."""
    from .expressions import Scope, bind_call

    args = [convert(a, scope) for a in expr.args]
    symbols = {s: i for i, s in enumerate(function.symbols())}
    placeholders = [sympy.Symbol(f"_arg{i}", real=True) for i in range(len(args))]
    call = S.Call(expr.func, tuple(S.Name(f"_arg{i}", span=a.span)
                                    for i, a in enumerate(expr.args)),
                  expr.keywords, span=expr.span, func_span=expr.func_span)
    bound = bind_call(call, function.params, dict(function.defaults),
                      Scope({str(p): p for p in placeholders}, lambda n: None, list),
                      function.name)
    env = {p: a for p, a in zip(placeholders, args)}
    values = [_from_sympy(v, env, expr.span) for v in bound]
    return _from_sympy(function.body, {s: values[i] for s, i in symbols.items()}, expr.span)


SYMPY_FUNCTIONS = {sympy.exp: "exp", sympy.log: "log", sympy.sin: "sin", sympy.cos: "cos",
                   sympy.tan: "tan", sympy.sinh: "sinh", sympy.cosh: "cosh",
                   sympy.tanh: "tanh", sympy.asin: "asin", sympy.acos: "acos",
                   sympy.atan: "atan", sympy.Abs: "abs"}


def _from_sympy(expr: sympy.Expr, env: dict, span) -> Node:
    if expr in env:
        return env[expr]
    if expr.is_Number or expr in (sympy.pi, sympy.E):
        return _num(float(expr))
    if isinstance(expr, sympy.Add):
        return _fold("add", [_from_sympy(a, env, span) for a in expr.args], span)
    if isinstance(expr, sympy.Mul):
        return _fold("mul", [_from_sympy(a, env, span) for a in expr.args], span)
    if isinstance(expr, sympy.Pow):
        base, exponent = (_from_sympy(a, env, span) for a in expr.args)
        return _combine("pow", [base, exponent], span, "^")
    if isinstance(expr, (sympy.Max, sympy.Min)):
        op = "max" if isinstance(expr, sympy.Max) else "min"
        return _combine(op, [_from_sympy(a, env, span) for a in expr.args], span, op)
    name = SYMPY_FUNCTIONS.get(expr.func)
    if name is not None:
        value = _from_sympy(expr.args[0], env, span)
        return Node("fn", (value,), value.shape, value.batched, name)
    raise ExprError(f"This function uses {expr.func}, which energies cannot evaluate.", span)


def _fold(op: str, args: list[Node], span) -> Node:
    out = args[0]
    for arg in args[1:]:
        out = _combine(op, [out, arg], span, op)
    return out


# --- printing ------------------------------------------------------------------------------

def to_python(node: Node, arg: str = "x", constants: str = "c") -> str:
    """The expression as Python text on the array API namespace ``xp``: the sample batch is
    ``arg`` (batch axis first), the constants ``constants["name"]``; the value has shape
    (batch,) once the tree is a number per sample."""
    return _Printer(arg, constants).print(node)


class _Printer:
    def __init__(self, arg: str, constants: str):
        self.arg, self.constants = arg, constants

    def print(self, node: Node) -> str:
        return getattr(self, "_" + node.op)(node)

    def _rank(self, node: Node) -> int:
        return len(node.shape)

    def _operand(self, node: Node, rank: int) -> str:
        """A batched operand of lower rank gets new axes after its batch axis, so that its
        axes align with the result's trailing axes (unbatched ones broadcast as they are)."""
        text = self.print(node)
        missing = rank - self._rank(node)
        if node.batched and missing > 0:
            return f"({text})[:, {', '.join(['None'] * missing)}]"
        return f"({text})" if node.op not in ("x", "const", "num") else text

    def _x(self, node):
        return self.arg

    def _const(self, node):
        return f"{self.constants}[{node.value!r}]"

    def _num(self, node):
        return repr(float(node.value))

    def _fn(self, node):
        return ELEMENTWISE[node.value].format(v=self.print(node.args[0]))

    def _neg(self, node):
        return f"-({self.print(node.args[0])})"

    def _binary(self, node, symbol):
        a, b = (self._operand(arg, self._rank(node)) for arg in node.args)
        return f"{a} {symbol} {b}"

    def _add(self, node):
        return self._binary(node, "+")

    def _sub(self, node):
        return self._binary(node, "-")

    def _mul(self, node):
        return self._binary(node, "*")

    def _div(self, node):
        return self._binary(node, "/")

    def _pow(self, node):
        base, exponent = node.args
        if exponent.op == "num" and exponent.value == int(exponent.value) and \
                abs(exponent.value) <= 64:  # a whole power: exact, and fine at 0 and below
            return f"{self._operand(base, self._rank(node))} ** {int(exponent.value)}"
        return self._binary(node, "**")

    def _max(self, node):
        return self._nary(node, "xp.maximum")

    def _min(self, node):
        return self._nary(node, "xp.minimum")

    def _nary(self, node, fn):
        args = [self._operand(arg, self._rank(node)) for arg in node.args]
        out = args[0]
        for arg in args[1:]:
            out = f"{fn}({out}, {arg})"
        return out

    def _matmul(self, node):
        a, b = node.args
        pa, pb = self.print(a), self.print(b)
        if len(a.shape) == 1 and len(b.shape) == 1:
            return f"xp.sum(({pa}) * ({pb}), axis=-1)"
        if len(a.shape) == 2 and len(b.shape) == 1:
            if not a.batched:  # (batch, k) @ (k, m): one product for the whole batch
                return f"xp.matmul({pb}, xp.permute_dims({pa}, (1, 0)))"
            return f"xp.matmul({pa}, ({pb})[..., None])[..., 0]"
        if len(a.shape) == 1:  # vector @ matrix
            if not b.batched:
                return f"xp.matmul({pa}, {pb})"
            return f"xp.matmul(({pa})[..., None, :], {pb})[..., 0, :]"
        return f"xp.matmul({pa}, {pb})"

    def _axes(self, node: Node) -> str:
        first = 1 if node.batched else 0
        return repr(tuple(range(first, first + self._rank(node))))

    def _sum(self, node):
        (value,) = node.args
        return f"xp.sum({self.print(value)}, axis={self._axes(value)})"

    def _lse(self, node):
        (value,) = node.args
        return f"af.logsumexp(xp, {self.print(value)}, {self._axes(value)})"

    def _lse_args(self, node):
        args = ", ".join(self.print(a) for a in node.args)
        return f"af.logsumexp_args(xp, {args})"

    def _index(self, node):
        (value,) = node.args
        text = self.print(value)
        if value.op == "x" and len(value.shape) > 1:
            text = f"xp.reshape({text}, ({text}.shape[0], -1))"
        return f"({text})[:, {node.value}]" if value.batched else f"({text})[{node.value}]"

    def _roll(self, node):
        shift, axis = node.value
        (value,) = node.args
        return f"xp.roll({self.print(value)}, {shift}, axis={axis + int(value.batched)})"


# --- sympy, for tfmc derive ----------------------------------------------------------------

SYMPY_OF = {"exp": sympy.exp, "log": sympy.log, "log1p": lambda u: sympy.log(1 + u),
            "expm1": lambda u: sympy.exp(u) - 1, "sqrt": sympy.sqrt, "abs": sympy.Abs,
            "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "asin": sympy.asin,
            "acos": sympy.acos, "atan": sympy.atan, "sinh": sympy.sinh, "cosh": sympy.cosh,
            "tanh": sympy.tanh, "sigmoid": lambda u: 1 / (1 + sympy.exp(-u)),
            "softplus": lambda u: sympy.log(1 + sympy.exp(u))}


class _NotElementwise(Exception):
    pass


def to_sympy(node: Node) -> sympy.Expr | None:
    """The energy in sympy, with x one component of the sample (elementwise) and ``VSum`` the
    sum over components; None where the energy uses constants, matrix products, shifts or a
    logsumexp over a vector, which have no such form."""
    try:
        return _sympy(node)
    except _NotElementwise:
        return None


def _sympy(node: Node):
    op, args = node.op, node.args
    if op == "x":
        return ir.x
    if op == "num":
        value = node.value
        return sympy.Integer(int(value)) if value == int(value) else sympy.Float(value)
    if op == "fn":
        return SYMPY_OF[node.value](_sympy(args[0]))
    if op == "neg":
        return -_sympy(args[0])
    if op in ("add", "sub", "mul", "div", "pow"):
        a, b = (_sympy(arg) for arg in args)
        return {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b,
                "pow": a ** b}[op]
    if op in ("max", "min"):
        return (sympy.Max if op == "max" else sympy.Min)(*(_sympy(a) for a in args))
    if op == "sum":
        return B.VSum(_sympy(args[0]))
    if op == "lse_args":
        return B.LogSumExp(*(_sympy(a) for a in args))
    if op == "index" and args[0].op == "x":
        return sympy.Indexed(sympy.IndexedBase("x"), node.value)
    raise _NotElementwise


def symbolic_gradient(energy: sympy.Expr) -> tuple[sympy.Expr, tuple[tuple[int, sympy.Expr], ...]]:
    """The gradient of an energy in the elementwise form of ``to_sympy``: the part every
    component k shares (a function of x = x_k and of the sums), and the extra terms of the
    components the energy indexes. By the chain rule through each sum S = VSum(e(x)):
    dU/dx_k = sum_S dU/dS e'(x_k) + dU/dx[k]."""
    sums = sorted(energy.atoms(B.VSum), key=str)
    stand_ins = [sympy.Dummy(f"S{i}") for i in range(len(sums))]
    flat = energy.xreplace(dict(zip(sums, stand_ins)))
    shared = sympy.Integer(0)
    for total, s in zip(sums, stand_ins):
        outer = flat.diff(s).xreplace(dict(zip(stand_ins, sums)))
        shared += outer * total.args[0].diff(ir.x)
    indexed = sorted(energy.atoms(sympy.Indexed), key=lambda a: int(a.indices[0]))
    extra = tuple((int(a.indices[0]), flat.diff(a).xreplace(dict(zip(stand_ins, sums))))
                  for a in indexed)
    return shared, extra


def _a(word: str) -> str:
    """``word`` with its indefinite article: a network, an energy."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"
