"""The functions and constants every expression may use, and the array reductions of energies.

Scalar functions map to sympy's, so that derivatives and limits are sympy's business. The
reductions over the sample x (energies only) are opaque sympy functions that each backend prints;
sympy never needs to look inside them.
"""

from __future__ import annotations

import sympy


def _sigmoid(u):
    return 1 / (1 + sympy.exp(-u))


def _softplus(u):
    return sympy.log(1 + sympy.exp(u))


UNARY = {
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan,
    "asin": sympy.asin, "acos": sympy.acos, "atan": sympy.atan,
    "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh,
    "exp": sympy.exp, "log": sympy.log, "sqrt": sympy.sqrt, "abs": sympy.Abs,
    "sigmoid": _sigmoid, "softplus": _softplus,
}
VARIADIC = {"min": sympy.Min, "max": sympy.Max}
CONSTANTS = {"pi": sympy.pi}


class VSum(sympy.Function):
    """Sum over the components of a vector expression in x."""

    nargs = 1


class LogSumExp(sympy.Function):
    """log(sum_i exp(a_i)) of scalar arguments, computed stably by the backends."""

    def fdiff(self, argindex=1):
        """d/da_i = exp(a_i - logsumexp(a)): the softmax weight of a_i."""
        return sympy.exp(self.args[argindex - 1] - self)


REDUCTIONS = ("sum", "dot", "norm", "logsumexp")  # energies only (compiler/arrays.py)
SPECIAL = ("integral",)  # integral(body, s, lo, hi): symbolic definite integral
ALL_NAMES = tuple(UNARY) + tuple(VARIADIC) + tuple(CONSTANTS) + REDUCTIONS + SPECIAL
