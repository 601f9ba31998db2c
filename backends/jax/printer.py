"""Printing sympy expressions as JAX code (after ``sympy.cse``).

A subclass of sympy's ``JaxPrinter`` with the shared rules (``codegen/printer.py``): functions
come from ``jnp`` (the emitted module's alias for ``jax.numpy``), ``Max``/``Min`` become nested
``jnp.maximum``/``jnp.minimum``, and rationals print as Python floats.
"""

from __future__ import annotations

import sympy
from sympy.printing.numpy import JaxPrinter

from ..codegen.codegen import Block, straight_line
from ..codegen.printer import SharedRules


class Printer(SharedRules, JaxPrinter):
    """sympy -> ``jnp`` source text."""

    MAXIMUM, MINIMUM = "jnp.maximum", "jnp.minimum"

    def _module_format(self, fqn: str, register: bool = True) -> str:
        text = super()._module_format(fqn, register)
        return text.replace("jax.numpy.", "jnp.")

    def _print_Pi(self, expr):
        return "jnp.pi"

    def _print_Exp1(self, expr):
        return "jnp.e"


def block(exprs: dict[str, sympy.Expr]) -> Block:
    """Straight-line JAX statements computing every named expression, common parts shared."""
    return straight_line(exprs, Printer())
