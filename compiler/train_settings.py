"""The ``train { ... }`` block: each setting, its type, default and allowed range.

| setting          | value                         | default     |
|------------------|-------------------------------|-------------|
| steps            | whole number >= 1             | 10000       |
| batch            | whole number >= 1             | 256         |
| optimizer        | adam / adamw / sgd (...)      | adam()      |
| lr_schedule      | constant_lr / cosine_decay   | constant_lr() |
| ema              | number in [0, 1), 0 is off    | 0           |
| clip             | gradient-norm bound, 0 is off | 0           |
| seed             | whole number >= 0             | 0           |
| precision        | float32 or bfloat16           | float32     |
| checkpoint_every | whole number >= 1 (steps)     | 1000        |
| log_every        | whole number >= 1 (steps)     | 100         |
"""

from __future__ import annotations

from ..dsl import syntax as S
from ..errors import Diagnostic
from ..dsl.suggest import did_you_mean
from . import ir
from .expressions import ExprError, constant
from .signatures import constant_scope, real_value

SETTINGS: dict[str, tuple[str, object]] = {
    "steps": ("count", 10000),
    "batch": ("count", 256),
    "optimizer": ("optimizer", "adam"),
    "lr_schedule": ("lr_schedule", "constant_lr"),
    "ema": ("fraction", 0.0),
    "clip": ("nonnegative", 0.0),
    "seed": ("seed", 0),
    "precision": ("precision", "float32"),
    "checkpoint_every": ("count", 1000),
    "log_every": ("count", 100),
}
PRECISIONS = ("float32", "bfloat16")


def lower_train(block: S.TrainBlock, constructor, diags: list[Diagnostic]) -> ir.Train | None:
    """``constructor(expr, kind)`` binds optimizer and schedule calls. Returns None on errors."""
    given: dict[str, S.TrainItem] = {}
    ok = True
    for item in block.items:
        if item.key not in SETTINGS:
            diags.append(Diagnostic("Semantic", f"Unknown train setting '{item.key}'.",
                                    item.key_span, did_you_mean(item.key, SETTINGS) or
                                    "Settings: " + ", ".join(SETTINGS) + "."))
            ok = False
        elif item.key in given:
            diags.append(Diagnostic("Semantic", f"The train setting '{item.key}' is given twice.",
                                    item.key_span, notes=(("first given here",
                                                           given[item.key].key_span),)))
            ok = False
        else:
            given[item.key] = item
    settings = []
    for key, (kind, default) in SETTINGS.items():
        item = given.get(key)
        try:
            if kind in ("optimizer", "lr_schedule"):
                expr = item.value if item else S.Call(default, (), ())
                settings.append((key, constructor(expr, kind)))
            elif item is None:
                settings.append((key, default))
            else:
                settings.append((key, _setting(key, kind, item.value)))
        except ExprError as err:
            diags.append(err.diagnostic)
            ok = False
    return ir.Train(tuple(settings), span=block.span) if ok else None


def _setting(key: str, kind: str, expr: S.Expr):
    if kind == "precision":
        if isinstance(expr, S.Name) and expr.id in PRECISIONS:
            return expr.id
        if isinstance(expr, S.String) and expr.value in PRECISIONS:
            raise ExprError("precision is a name, not a string.", expr.span,
                            f"Write precision {expr.value}, without quotes.")
        shown = expr.id if isinstance(expr, S.Name) else ""
        raise ExprError(f"precision is one of {', '.join(PRECISIONS)}.", expr.span,
                        did_you_mean(shown, PRECISIONS) if shown else None)
    what = f"The train setting '{key}'"
    if kind in ("count", "seed"):
        if isinstance(expr, (S.String, S.ListExpr)):
            raise ExprError(f"{what} takes a number.", expr.span)
        value = constant(expr, constant_scope())
        low = 1 if kind == "count" else 0
        if not value.is_Integer or value < low:
            raise ExprError(f"The train setting '{key}' is a whole number, {low} or more.",
                            expr.span)
        if value >= 2**63:
            raise ExprError(f"The train setting '{key}' is too large.", expr.span)
        return int(value)
    number = real_value(expr, constant_scope(), what)
    if kind == "fraction" and not 0 <= number < 1:
        raise ExprError(f"The train setting '{key}' lies in [0, 1), e.g. 0.999.", expr.span)
    if kind == "nonnegative" and not number >= 0:
        raise ExprError(f"The train setting '{key}' is 0 or more.", expr.span)
    return number
