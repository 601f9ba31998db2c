"""The emitter: one readable PyTorch module per model, from a template.

The module holds the model's settings as a Python literal ``SPEC``, an ``nn.Module`` ``Networks``
(its networks, weights named as in runtime/init.py; ``forward(t, x)`` gives every network's
output) and the model's maths as straight-line functions of tensors, printed by
``printer.Printer`` after ``sympy.cse``: the same statements in the same order as the JAX
module's. Everything generic (training loop, solvers) lives in the runtime, whose ``TorchModel``
takes the module. The text is checked with ``ast.parse`` and ``compile`` before it is written or
imported (codegen/emitter.py); no user text is pasted into it, only validated identifiers,
printed expressions and ``repr`` of plain data.
"""

from __future__ import annotations

from ..codegen import emitter
from ..codegen.emitter import load
from . import printer

BACKEND = "torch"

HEADER = '''"""{model}: the PyTorch module tfmc {version} emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.torch.runtime.TorchModel (training loop, solvers).
"""

import torch

from tfm.backends.runtime.spec import Spec
from tfm.backends.torch.runtime import networks

SOURCE = {file}
SPEC = {spec}


class Networks(torch.nn.Module):
    """The networks of {model} (``nets``); ``forward(t, x)`` is every network's output at
    (t, x), keyed as the functions below read them (``grad_NAME`` for a potential network)."""

    def __init__(self):
        super().__init__()
        self.nets = networks.build(SPEC)

    def forward(self, t, x, seeds=None, labels=None):
        return networks.outputs(SPEC, self.nets, t, x, seeds, labels)
'''


TEMPLATE = emitter.Template(BACKEND, HEADER, printer.block)
emit, module_name, write = TEMPLATE.emit, TEMPLATE.module_name, TEMPLATE.write

__all__ = ["BACKEND", "TEMPLATE", "emit", "load", "module_name", "write"]
