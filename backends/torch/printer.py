"""Printing sympy expressions as PyTorch code (after ``sympy.cse``).

A subclass of sympy's ``TorchPrinter``. torch functions take tensors only, so every constant
sub-expression (``sqrt(2)``, ``pi/2``, ``log(3)``) prints as one Python float, powers print as
``**`` (``1/x``, ``torch.sqrt``) like the JAX printer's, and ``Max``/``Min`` become
``torch.clamp`` against a constant or nested ``torch.maximum``/``torch.minimum`` between tensors;
the Heaviside step takes its value at 0 as a number.
Floats keep the arrays' own dtype (float32, bfloat16), as in the JAX backend.
"""

from __future__ import annotations

import sympy
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pytorch import TorchPrinter

from ..codegen.codegen import Block, straight_line
from ..codegen.printer import SharedRules, number as _number


class Printer(SharedRules, TorchPrinter):
    """sympy -> ``torch`` source text."""

    MAXIMUM, MINIMUM, CLAMP = "torch.maximum", "torch.minimum", "torch.clamp"

    def _print(self, expr, **kwargs):
        if isinstance(expr, sympy.Expr) and expr.is_number and not expr.is_Integer:
            return _number(expr)
        return super()._print(expr, **kwargs)

    def _print_Mul(self, expr):
        """The constant factor as one float: ``1.5707963267948966*t``, not ``(0.5)*3.14...*t``."""
        coeff, rest = expr.as_independent(*expr.free_symbols, as_Add=False)
        if coeff.is_number and coeff not in (1, -1) and not rest.is_number:
            text = self.parenthesize(rest, PRECEDENCE["Mul"], strict=True)
            return f"{_number(coeff)}*{text}"
        return super()._print_Mul(expr)

    def _print_Pow(self, expr, rational=False):
        return self._hprint_Pow(expr, rational=rational, sqrt="torch.sqrt")

    def _print_Heaviside(self, expr):
        """H(x) with H(0) = h0 (sympy's default 1/2): ``torch.heaviside`` takes h0 as a tensor."""
        arg = self._print(expr.args[0])
        h0 = expr.args[1] if len(expr.args) > 1 else sympy.S.Half
        if h0 == sympy.S.Half:
            return f"(0.5*torch.sign({arg}) + 0.5)"
        return f"torch.heaviside({arg}, torch.full_like({arg}, {self._print(h0)}))"


def block(exprs: dict[str, sympy.Expr]) -> Block:
    """Straight-line torch statements computing every named expression, common parts shared."""
    return straight_line(exprs, Printer())
