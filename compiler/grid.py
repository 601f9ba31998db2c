"""The grid on which the checks evaluate functions of t numerically (where sympy would need an
exact proof): GRID points spread evenly inside (0, 1), optionally with both ends."""

from __future__ import annotations

import sympy

from . import ir

GRID = 199


def points(interior: bool = True) -> list[float]:
    inside = [(i + 1) / (GRID + 1) for i in range(GRID)]
    return inside if interior else [0.0, *inside, 1.0]


def values(expr: sympy.Expr, interior: bool = True):
    """(t, value) on the grid; value is a complex number, or None where evaluation fails."""
    f = sympy.lambdify(ir.t, expr, "math")
    for p in points(interior):
        try:
            yield p, complex(f(p))
        except (ValueError, ZeroDivisionError, OverflowError, TypeError):
            yield p, None
