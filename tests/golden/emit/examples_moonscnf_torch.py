"""MoonsCNF: the PyTorch module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.torch.runtime.TorchModel (training loop, solvers).
"""

import torch

from tfm.backends.runtime.spec import Spec
from tfm.backends.torch.runtime import networks

SOURCE = 'moons_cnf.tfm'
SPEC = Spec.from_json(
    {'model': 'MoonsCNF',
     'shape': [2],
     'dim': 2,
     'latent': False,
     'base': {'name': 'normal', 'args': {'mean': [0.0], 'scale': [1.0]}},
     'target': {'name': 'moons', 'args': {'noise': 0.05}},
     'coupling': {'name': 'independent', 'args': {}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.0, 'high': 1.0}},
     'networks': [{'name': 'T',
                   'kind': 'cnf',
                   'args': {'width': 64,
                            'depth': 3,
                            'activation': 'tanh',
                            'steps': 8,
                            'solver': 'rk4',
                            'divergence': 'exact',
                            'symmetry': 'none'},
                   'target': 'likelihood',
                   'output': 'flow',
                   'key': 'T'}],
     'fields': [],
     'samplers': [],
     'train': {'steps': 3000,
               'batch': 256,
               'optimizer': {'name': 'adam',
                             'args': {'lr': 0.003, 'b1': 0.9, 'b2': 0.999, 'eps': 1e-08}},
               'lr_schedule': {'name': 'cosine_decay', 'args': {'warmup': 100, 'final': 0.0}},
               'ema': 0.0,
               'clip': 0.0,
               'seed': 0,
               'precision': 'float32',
               'checkpoint_every': 1000,
               'log_every': 100},
     'objective': 'likelihood',
     'energies': [],
     'constants': {}})


class Networks(torch.nn.Module):
    """The networks of MoonsCNF (``nets``); ``forward(t, x)`` is every network's output at
    (t, x), keyed as the functions below read them (``grad_NAME`` for a potential network)."""

    def __init__(self):
        super().__init__()
        self.nets = networks.build(SPEC)

    def forward(self, t, x, seeds=None, labels=None):
        return networks.outputs(SPEC, self.nets, t, x, seeds, labels)


# each energy by name (density proportional to exp(-U)): what MCMC and SMC samplers evaluate
ENERGIES = {
}
