"""The syntax tree: one frozen attrs class per construct of the language (docs/language.md).

Every node carries the :class:`~tfm.dsl.diagnostics.Span` it was parsed from. Spans are excluded
from equality (``eq=False``), so two trees are equal exactly when they say the same thing,
wherever it was written. The tree is what the text says, nothing more: names are not resolved and
nothing is evaluated; that is the compiler's job (``tfm.compiler.ast_to_ir``).
"""

from __future__ import annotations

import attrs

from ..errors import Span

_span = attrs.field(eq=False, repr=False, default=None)


# --- expressions -----------------------------------------------------------------------------

@attrs.frozen
class Number:
    text: str  # as written, so that the formatter keeps `1e-3` as `1e-3`
    span: Span | None = _span

    @property
    def is_integer(self) -> bool:
        return self.text.isdigit()


@attrs.frozen
class String:
    value: str
    span: Span | None = _span


@attrs.frozen
class Name:
    id: str
    span: Span | None = _span


@attrs.frozen
class Keyword:
    name: str
    value: "Expr"
    span: Span | None = _span


@attrs.frozen
class Call:
    func: str
    args: tuple["Expr", ...]
    keywords: tuple[Keyword, ...]
    span: Span | None = _span
    func_span: Span | None = _span


@attrs.frozen
class BinOp:
    op: str  # one of + - * / ^
    left: "Expr"
    right: "Expr"
    span: Span | None = _span


@attrs.frozen
class UnaryOp:
    op: str  # - or +
    operand: "Expr"
    span: Span | None = _span


@attrs.frozen
class Index:
    value: "Expr"
    index: "Expr"
    span: Span | None = _span


@attrs.frozen
class ListExpr:
    items: tuple["Expr", ...]
    span: Span | None = _span


Expr = Number | String | Name | Call | BinOp | UnaryOp | Index | ListExpr


def walk(expr):
    """Yield ``expr`` and every sub-expression, parents first, without recursion."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, Call):
            stack.extend(reversed([*node.args, *(k.value for k in node.keywords)]))
        elif isinstance(node, BinOp):
            stack.extend((node.right, node.left))
        elif isinstance(node, UnaryOp):
            stack.append(node.operand)
        elif isinstance(node, Index):
            stack.extend((node.index, node.value))
        elif isinstance(node, ListExpr):
            stack.extend(reversed(node.items))


# --- declarations ------------------------------------------------------------------------------

@attrs.frozen
class TypeSpec:
    """A parameter type in a primitive declaration: a type name, or a set of allowed names."""

    name: str | None
    choices: tuple[str, ...] = ()
    span: Span | None = _span


@attrs.frozen
class Param:
    name: str
    type: TypeSpec | None
    default: Expr | None
    span: Span | None = _span


@attrs.frozen
class Import:
    path: tuple[str, ...]
    span: Span | None = _span


@attrs.frozen
class FunctionDecl:
    """``alpha(t) = ...`` (a scalar function) or ``noise eps(t) = ...`` (a noise schedule)."""

    name: str
    params: tuple[Param, ...]
    body: Expr
    is_noise: bool = False
    span: Span | None = _span
    name_span: Span | None = _span


@attrs.frozen
class InterpolantDecl:
    """``interpolant x_t = ...`` in a model; ``interpolant linear(...) = ...`` names one for reuse."""

    name: str
    params: tuple[Param, ...] | None
    body: Expr
    span: Span | None = _span
    name_span: Span | None = _span


@attrs.frozen
class PrimitiveDecl:
    """``primitive distribution moons(noise: real = 0.05) dim 2``: a piece the language cannot say,
    implemented once per backend. Only the standard library may declare them."""

    kind: str
    name: str
    params: tuple[Param, ...]
    dim: Expr | None
    span: Span | None = _span
    name_span: Span | None = _span
    kind_span: Span | None = _span


@attrs.frozen
class EnergyDecl:
    name: str
    arg: str
    body: Expr
    span: Span | None = _span
    name_span: Span | None = _span


@attrs.frozen
class ConstantDecl:
    """``constant NAME = value``: a number, a (nested) list, or load("file", key = "...")."""

    name: str
    value: Expr
    span: Span | None = _span
    name_span: Span | None = _span


@attrs.frozen
class DimStmt:
    value: Expr
    span: Span | None = _span


@attrs.frozen
class DensityStmt:
    """``base x0 ~ ...`` or ``target x1 ~ ...``."""

    role: str  # "base" or "target"
    var: str
    value: Expr
    span: Span | None = _span
    var_span: Span | None = _span


@attrs.frozen
class CouplingStmt:
    value: Expr
    span: Span | None = _span


@attrs.frozen
class NetworkDecl:
    name: str
    value: Expr
    span: Span | None = _span
    name_span: Span | None = _span


@attrs.frozen
class SamplerDecl:
    name: str
    value: Expr
    span: Span | None = _span
    name_span: Span | None = _span


@attrs.frozen
class ObjectiveTerm:
    lhs: str
    value: Expr
    span: Span | None = _span
    lhs_span: Span | None = _span


@attrs.frozen
class WeightDecl:
    param: str
    body: Expr
    span: Span | None = _span


@attrs.frozen
class ObjectiveBlock:
    items: tuple[ObjectiveTerm | WeightDecl, ...]
    span: Span | None = _span


@attrs.frozen
class TrainItem:
    key: str
    value: Expr
    span: Span | None = _span
    key_span: Span | None = _span


@attrs.frozen
class TrainBlock:
    items: tuple[TrainItem, ...]
    span: Span | None = _span


Statement = (DimStmt | DensityStmt | CouplingStmt | FunctionDecl | InterpolantDecl | EnergyDecl
             | ConstantDecl | NetworkDecl | ObjectiveBlock | SamplerDecl | TrainBlock)


@attrs.frozen
class ModelDecl:
    name: str
    body: tuple[Statement, ...]
    span: Span | None = _span
    name_span: Span | None = _span


@attrs.frozen
class Comment:
    text: str  # including the leading '#'
    span: Span | None = _span


@attrs.frozen
class Module:
    """One parsed file. ``comments`` are kept apart from the tree, for the formatter."""

    items: tuple[Import | ModelDecl | FunctionDecl | InterpolantDecl | PrimitiveDecl, ...]
    file: str = attrs.field(eq=False, default="<string>")
    comments: tuple[Comment, ...] = attrs.field(eq=False, default=())
