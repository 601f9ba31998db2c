"""The emitter: one readable JAX module per model, from a template.

The module holds the model's maths as straight-line functions of arrays (printed by
``printer.Printer`` after ``sympy.cse``) and its settings as a Python literal ``SPEC``; it imports
only ``jax.numpy``. Everything generic (networks, training loop, solvers) lives in the runtime,
whose ``JaxModel`` takes the module. The text is checked with ``ast.parse`` and ``compile``
before it is written or imported (shared/emitter.py); no user text is pasted into it, only
validated identifiers, printed expressions and ``repr`` of plain data.
"""

from __future__ import annotations

from pathlib import Path

from ... import __version__
from ...compiler import ir
from ..shared import emitter
from ..shared.emitter import load
from . import printer

BACKEND = "jax"

HEADER = '''"""{model}: the JAX module tfmc {version} emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.jax.runtime.JaxModel (networks, training loop, solvers).
"""

import jax.numpy as jnp

SOURCE = {file}
SPEC = {spec}
'''


def emit(model: ir.Model) -> str:
    """The module's source text (checked: it parses and compiles)."""
    text = HEADER.format(model=model.name, version=__version__, file=repr(Path(model.file).name),
                         spec=emitter.spec_literal(model))
    text += emitter.functions(model, printer.block)
    emitter.check(text, module_name(model))
    return text


def module_name(model: ir.Model) -> str:
    return emitter.module_name(model, BACKEND)


def write(model: ir.Model, folder: str | Path) -> Path:
    """Write ``<model>_jax.py`` into ``folder`` atomically; returns its path."""
    return emitter.write(emit(model), folder, module_name(model))


__all__ = ["BACKEND", "emit", "load", "module_name", "write"]
