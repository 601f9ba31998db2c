"""The emitter: one readable JAX module per model, from a template.

The module holds the model's maths as straight-line functions of arrays (printed by
``printer.Printer`` after ``sympy.cse``) and its settings as the literal of a typed ``SPEC``; it
imports ``jax.numpy`` and the spec's type only. Everything generic (networks, training loop,
solvers) lives in the runtime, whose ``JaxModel`` takes the module. The text is checked with
``ast.parse`` and ``compile`` before it is written or imported (codegen/emitter.py); no user
text is pasted into it, only validated identifiers, printed expressions and ``repr`` of plain
data. What the module defines is the protocol of ``runtime/protocol.py``.
"""

from __future__ import annotations

from ..codegen import emitter
from ..codegen.emitter import load
from . import printer

BACKEND = "jax"

HEADER = '''"""{model}: the JAX module tfmc {version} emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.jax.runtime.JaxModel (networks, training loop, solvers).
"""

import jax.numpy as jnp

from tfm.backends.runtime.spec import Spec

SOURCE = {file}
SPEC = {spec}
'''


TEMPLATE = emitter.Template(BACKEND, HEADER, printer.block)
emit, module_name, write = TEMPLATE.emit, TEMPLATE.module_name, TEMPLATE.write

__all__ = ["BACKEND", "TEMPLATE", "emit", "load", "module_name", "write"]
