"""The emitter: one readable PyTorch module per model, from a template.

The module holds the model's settings as a Python literal ``SPEC``, an ``nn.Module`` ``Model``
(its networks, weights named as in shared/init.py; ``forward(t, x)`` gives every network's
output) and the model's maths as straight-line functions of tensors, printed by
``printer.Printer`` after ``sympy.cse``: the same statements in the same order as the JAX
module's. Everything generic (training loop, solvers) lives in the runtime, whose ``TorchModel``
takes the module. The text is checked with ``ast.parse`` and ``compile`` before it is written or
imported (shared/emitter.py); no user text is pasted into it, only validated identifiers,
printed expressions and ``repr`` of plain data.
"""

from __future__ import annotations

from pathlib import Path

from ... import __version__
from ...compiler import ir
from ..shared import emitter
from ..shared.emitter import load
from . import printer

BACKEND = "torch"

HEADER = '''"""{model}: the PyTorch module tfmc {version} emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.torch.runtime.TorchModel (training loop, solvers).
"""

import torch

from tfm.backends.torch.runtime import networks

SOURCE = {file}
SPEC = {spec}


class Model(torch.nn.Module):
    """The networks of {model} (``nets``); ``forward(t, x)`` is every network's output at
    (t, x), keyed as the functions below read them (``grad_NAME`` for a potential network)."""

    def __init__(self):
        super().__init__()
        self.nets = networks.build(SPEC)

    def forward(self, t, x):
        return networks.outputs(SPEC, self.nets, t, x)
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
    """Write ``<model>_torch.py`` into ``folder`` atomically; returns its path."""
    return emitter.write(emit(model), folder, module_name(model))


__all__ = ["BACKEND", "emit", "load", "module_name", "write"]
