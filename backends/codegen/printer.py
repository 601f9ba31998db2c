"""The rules both backends' printers share, as a mixin for sympy's array-library printers:
``Max``/``Min`` as nested binary maximum/minimum (or, where the library's clamp takes a number,
a clamp against the constant argument), and rationals as Python floats, so that arrays keep
their own dtype (float32, bfloat16)."""

from __future__ import annotations

import math


def number(expr) -> str:
    """A constant as a Python float literal (``float('inf')`` for an infinity)."""
    value = float(expr)
    return repr(value) if math.isfinite(value) else f"float({str(value)!r})"


class SharedRules:
    """``MAXIMUM``/``MINIMUM``: the library's binary functions; ``CLAMP``: its clamp taking a
    number (``min=``/``max=``), or None to nest every argument."""

    MAXIMUM = ""
    MINIMUM = ""
    CLAMP: str | None = None

    def _print_Max(self, expr):
        return self._extremum(expr, self.MAXIMUM, "min")

    def _print_Min(self, expr):
        return self._extremum(expr, self.MINIMUM, "max")

    def _extremum(self, expr, function: str, bound: str) -> str:
        args = list(expr.args)
        constants = [a for a in args if a.is_number] if self.CLAMP else []
        arrays = [a for a in args if a not in constants]
        text = self._print(arrays[0])
        for arg in arrays[1:]:
            text = f"{function}({text}, {self._print(arg)})"
        if constants:  # sympy keeps at most one constant argument of a Max or Min
            text = f"{self.CLAMP}({text}, {bound}={self._print(constants[0])})"
        return text

    def _print_Rational(self, expr):
        return number(expr)

    def _print_Half(self, expr):
        return "0.5"
