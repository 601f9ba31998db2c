"""The emitter: one readable JAX module per model, from a template.

The module holds the model's maths as straight-line functions of arrays (printed by
``printer.Printer`` after ``sympy.cse``) and its settings as a Python literal ``SPEC``; it imports
only ``jax.numpy``. Everything generic (networks, training loop, solvers) lives in the runtime,
whose ``JaxModel`` takes the module. The text is checked
with ``ast.parse`` and ``compile`` before it is written or imported; no user text is pasted into
it, only validated identifiers, printed expressions and ``repr`` of plain data.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import pprint
import sys
from pathlib import Path

import sympy

from ... import __version__
from ...compiler import ir
from ..shared import spec as specs
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

FUNCTION = '''

def {name}({params}):
    """{doc}"""
{body}    return {result}
'''


def _function(name: str, params: str, doc: str, exprs: dict, outputs=(), single=False) -> str:
    """One emitted function: the network outputs it reads, cse temporaries, then a dict of the
    named results (or the one result, with ``single``)."""
    blk = printer.block(exprs)
    lines = [f"out_{k} = out[{k!r}]" for k in outputs] + list(blk.lines)
    body = "".join(f"    {line}\n" for line in lines)
    if single:
        result = blk.results[0][1]
    else:
        result = "{" + ", ".join(f"{k!r}: {v}" for k, v in blk.results) + "}"
    return FUNCTION.format(name=name, params=params, doc=doc, body=body, result=result)


def emit(model: ir.Model) -> str:
    """The module's source text (checked: it parses and compiles)."""
    maths = specs.maths(model)
    keys = list(specs.output_keys(model).values())

    def used(group: str) -> list[str]:
        return [k for k in keys if any(e.has(sympy.Symbol("out_" + k, real=True))
                                       for e in maths[group].values())]

    text = HEADER.format(model=model.name, version=__version__, file=repr(Path(model.file).name),
                         spec=pprint.pformat(specs.spec(model), sort_dicts=False, width=100))
    text += _function("interpolant", "t, x0, x1, z",
                      f"x_t = {model.derivation.interpolant}", maths["interpolant"], single=True)
    text += _function("losses", "t, x0, x1, z, out",
                      "Per-element loss integrand w(t) |N(t, x_t) - Y|^2 of each trained network.",
                      maths["losses"], used("losses"))
    text += _function("fields", "t, x, out",
                      "Every field the trained networks determine, at (t, x).",
                      maths["fields"], used("fields"))
    text += _function("drifts", "t, x, out",
                      "Drift b + eps s (forward) or b - eps s (backward) of each SDE sampler.",
                      maths["drifts"], used("drifts"))
    for name, expr in maths["eps"].items():
        text += _function(f"eps_{name}", "t", f"eps(t) of sampler {name}: {expr}", {name: expr},
                          single=True)
    check(text, model.name)
    return text


def check(text: str, name: str) -> None:
    """Parse and byte-compile emitted text; a failure is a bug of the emitter."""
    tree = ast.parse(text, filename=f"<{name}_jax>")
    builtins.compile(tree, f"<{name}_jax>", "exec")


def module_name(model: ir.Model) -> str:
    return f"{model.name.lower()}_{BACKEND}"


def write(model: ir.Model, folder: str | Path) -> Path:
    """Write ``<model>_jax.py`` into ``folder`` atomically; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module_name(model)}.py"
    tmp = path.with_suffix(".py.tmp")
    tmp.write_text(emit(model))
    tmp.replace(path)
    return path


def load(path: str | Path):
    """Import an emitted module from its file."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"tfm_emitted.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.pop(spec.name, None)
    return module
