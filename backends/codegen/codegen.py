"""Straight-line code for a set of expressions: ``sympy.cse`` first, then a printer.

Both backends' printers go through here, so the emitted modules of the two backends have the same
statements in the same order, differing only in the array library they call.
"""

from __future__ import annotations

import keyword

import attrs
import sympy


@attrs.frozen
class Block:
    """``lines`` compute temporaries; ``results`` maps each wanted name to an expression text."""

    lines: tuple[str, ...]
    results: tuple[tuple[str, str], ...]

    def body(self, indent: str = "    ") -> str:
        return "\n".join(indent + line for line in self.lines)


def straight_line(exprs: dict[str, sympy.Expr], printer) -> Block:
    names = list(exprs)
    replacements, reduced = sympy.cse([_expr(exprs[n]) for n in names],
                                      symbols=sympy.numbered_symbols("_c"), optimizations="basic")
    lines = tuple(f"{symbol} = {printer.doprint(value)}" for symbol, value in replacements)
    return Block(lines, tuple((n, printer.doprint(e)) for n, e in zip(names, reduced)))


def _expr(value) -> sympy.Expr:
    return value if isinstance(value, sympy.Basic) else sympy.Float(value)


def identifier(name: str) -> str:
    """A name from the model, checked once more before it is written into code."""
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name
