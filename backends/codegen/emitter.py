"""What both emitters share: the maths functions of a model from a template (printed by the
backend's printer after ``sympy.cse``), the check of the emitted text (``ast.parse`` and
``compile``), the atomic write and the import of an emitted module.

Only validated identifiers, printed expressions and ``repr`` of plain data go into the text.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import pprint
import sys
import types
from itertools import count
from pathlib import Path
from typing import Callable

import attrs
import sympy

from ... import __version__
from ...compiler import arrays, ir
from . import spec as specs

PACKAGE = "tfm_emitted"

MAPS = '''

# each field alone, by name: what samplers evaluate
FIELDS = {{{fields}
}}
# eps(t) of each SDE sampler, by name
EPS = {{{eps}
}}
'''

NO_GIVEN_DATA = '''

# the noise part of x_t is not Gaussian (no isotropic normal base with an independent coupling):
# the fields are not functions of x and the data prediction alone, and there is no inpainting
given_data = None
'''

_loaded = count()

FUNCTION = '''

def {name}({params}):
    """{doc}"""
{body}    return {result}
'''


def _function(block, name: str, params: str, doc: str, exprs: dict, outputs=(),
              single=False) -> str:
    """One emitted function: the network outputs it reads, cse temporaries, then a dict of the
    named results (or the one result, with ``single``)."""
    blk = block(exprs)
    lines = [f"out_{k} = out[{k!r}]" for k in outputs] + list(blk.lines)
    body = "".join(f"    {line}\n" for line in lines)
    if single:
        result = blk.results[0][1]
    else:
        result = "{" + ", ".join(f"{k!r}: {v}" for k, v in blk.results) + "}"
    return FUNCTION.format(name=name, params=params, doc=doc, body=body, result=result)


def spec_literal(model: ir.Model) -> str:
    """``Spec.from_json({...})``: the spec as a literal of plain data (numbers, strings, lists,
    dicts), typed when the module loads."""
    text = pprint.pformat(specs.spec(model).to_json(), sort_dicts=False, width=96)
    return "Spec.from_json(\n    " + text.replace("\n", "\n    ") + ")"


def functions(model: ir.Model, block) -> str:
    """``interpolant``, ``losses``, ``fields`` (and each field alone, ``field_<name>``),
    ``drifts``, ``given_data`` and ``eps_<sampler>`` of the model, printed by ``block`` (a
    backend printer's)."""
    maths = specs.maths(model)
    keys = list(specs.output_keys(model).values())

    def used(group: str) -> list[str]:
        return [k for k in keys if any(e.has(sympy.Symbol("out_" + k, real=True))
                                       for e in maths[group].values())]

    text = _function(block, "interpolant", "t, x0, x1, z",
                     f"x_t = {model.derivation.interpolant}", maths["interpolant"], single=True)
    text += _function(block, "losses", "t, x0, x1, z, out",
                      "Per-element loss integrand w(t) |N(t, x_t) - Y|^2 of each trained network.",
                      maths["losses"], used("losses"))
    text += _function(block, "fields", "t, x, out",
                      "Every field the trained networks determine, at (t, x).",
                      maths["fields"], used("fields"))
    for name, expr in maths["fields"].items():  # one field alone: what samplers evaluate
        keys_used = [k for k in keys if expr.has(sympy.Symbol("out_" + k, real=True))]
        text += _function(block, f"field_{name}", "t, x, out", f"The {name} at (t, x).",
                          {name: expr}, keys_used, single=True)
    text += _function(block, "drifts", "t, x, out",
                      "Drift b + eps s (forward) or b - eps s (backward) of each SDE sampler.",
                      maths["drifts"], used("drifts"))
    if maths["given_data"]:
        text += _function(block, "given_data", "t, x, d",
                          "The velocity and the score at (t, x) where the data prediction "
                          "E[x1 | x_t = x] is d\n    (inpainting, docs/conditional.md).",
                          maths["given_data"])
    else:
        text += NO_GIVEN_DATA
    for name, expr in maths["eps"].items():
        text += _function(block, f"eps_{name}", "t", f"eps(t) of sampler {name}: {expr}",
                          {name: expr}, single=True)
    field_map = "".join(f"\n    {name!r}: field_{name}," for name in maths["fields"])
    eps_map = "".join(f"\n    {name!r}: eps_{name}," for name in maths["eps"])
    return text + MAPS.format(fields=field_map, eps=eps_map)


ENERGY = '''

def energy_{name}(xp, x, c):
    """{name}({arg}) = {text}

    One number per sample of the batch x (batch axis first); xp is the array API namespace, c
    the constants by name."""
    return {body}
'''

ENERGY_MAP = '''

# each energy by name (density proportional to exp(-U)): what MCMC and SMC samplers evaluate
ENERGIES = {{{energies}
}}
'''


def energies(model: ir.Model) -> str:
    """``energy_<name>(xp, x, c)`` of each energy, printed from its array tree on the array API
    (the same text for every backend), and the ``ENERGIES`` map."""
    text = ""
    if model.energies:
        text += "\n\nfrom tfm.backends.runtime import array_functions as af  # noqa: E402\n"
    for e in model.energies:
        text += ENERGY.format(name=e.name, arg=e.arg, text=e.text, body=arrays.to_python(e.tree))
    entries = "".join(f"\n    {e.name!r}: energy_{e.name}," for e in model.energies)
    return text + ENERGY_MAP.format(energies=entries)


def check(text: str, name: str) -> None:
    """Parse and byte-compile emitted text; a failure is a bug of the emitter."""
    tree = ast.parse(text, filename=f"<{name}>")
    builtins.compile(tree, f"<{name}>", "exec")


@attrs.frozen
class Template:
    """A backend's emitted module: ``header`` (its docstring, imports, ``SOURCE``, ``SPEC`` and
    anything backend-specific such as torch's ``nn.Module``; formatted with ``model``,
    ``version``, ``file`` and ``spec``), then the maths functions printed by ``block`` (the
    backend printer's) and the FIELDS and EPS maps."""

    backend: str
    header: str
    block: Callable

    def emit(self, model: ir.Model) -> str:
        """The module's source text (checked: it parses and compiles)."""
        text = self.header.format(model=model.name, version=__version__,
                                  file=repr(Path(model.file).name), spec=spec_literal(model))
        if not model.sampling:
            text += functions(model, self.block)
        text += energies(model)
        check(text, self.module_name(model))
        return text

    def module_name(self, model: ir.Model) -> str:
        return f"{model.name.lower()}_{self.backend}"

    def write(self, model: ir.Model, folder: str | Path) -> Path:
        """Write ``<model>_<backend>.py`` into ``folder`` atomically; returns its path."""
        return write_text(self.emit(model), folder, self.module_name(model))


def write_text(text: str, folder: str | Path, name: str) -> Path:
    """Write ``<name>.py`` into ``folder`` atomically; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    tmp = path.with_suffix(".py.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def load(path: str | Path):
    """Import an emitted module from its file, as ``tfm_emitted.<name>_<n>`` (``n`` counts the
    modules loaded, so models of the same name never replace each other); it stays in
    ``sys.modules``, where tracing compilers (torch.compile) look up a function's module."""
    path = Path(path)
    package = sys.modules.setdefault(PACKAGE, types.ModuleType(PACKAGE))
    package.__path__ = []
    name = f"{PACKAGE}.{path.stem}_{next(_loaded)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module
