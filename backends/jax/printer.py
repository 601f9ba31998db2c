"""Printing sympy expressions as JAX code (after ``sympy.cse``).

A subclass of sympy's ``JaxPrinter``: functions come from ``jnp`` (the emitted module's alias for
``jax.numpy``), ``Max``/``Min`` become nested ``jnp.maximum``/``jnp.minimum``, and rationals
print as Python floats so that arrays keep their own dtype (float32, bfloat16).
"""

from __future__ import annotations

import sympy
from sympy.printing.numpy import JaxPrinter

from ..shared.codegen import Block, straight_line


class Printer(JaxPrinter):
    """sympy -> ``jnp`` source text."""

    def _module_format(self, fqn: str, register: bool = True) -> str:
        text = super()._module_format(fqn, register)
        return text.replace("jax.numpy.", "jnp.")

    def _print_Max(self, expr):
        return self._nested("jnp.maximum", expr.args)

    def _print_Min(self, expr):
        return self._nested("jnp.minimum", expr.args)

    def _nested(self, function: str, args) -> str:
        text = self._print(args[0])
        for arg in args[1:]:
            text = f"{function}({text}, {self._print(arg)})"
        return text

    def _print_Rational(self, expr):
        return repr(float(expr))

    def _print_Half(self, expr):
        return "0.5"

    def _print_Pi(self, expr):
        return "jnp.pi"

    def _print_Exp1(self, expr):
        return "jnp.e"


def block(exprs: dict[str, sympy.Expr]) -> Block:
    """Straight-line JAX statements computing every named expression, common parts shared."""
    return straight_line(exprs, Printer())
