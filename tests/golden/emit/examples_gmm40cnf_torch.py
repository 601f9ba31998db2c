"""GMM40CNF: the PyTorch module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.torch.runtime.TorchModel (training loop, solvers).
"""

import torch

from tfm.backends.runtime.spec import Spec
from tfm.backends.torch.runtime import networks

SOURCE = 'gmm40_cnf.tfm'
SPEC = Spec.from_json(
    {'model': 'GMM40CNF',
     'shape': [2],
     'dim': 2,
     'latent': False,
     'base': {'name': 'normal', 'args': {'mean': [0.0], 'scale': [1.0]}},
     'target': {'name': 'gmm40', 'args': {}},
     'coupling': {'name': 'independent', 'args': {}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.0, 'high': 1.0}},
     'networks': [{'name': 'T',
                   'kind': 'cnf',
                   'args': {'width': 128,
                            'depth': 3,
                            'activation': 'tanh',
                            'steps': 16,
                            'solver': 'rk4',
                            'divergence': 'exact',
                            'symmetry': 'none'},
                   'target': 'flow_matching',
                   'output': 'flow',
                   'key': 'T'}],
     'fields': [],
     'samplers': [{'name': 'weights',
                   'method': 'importance',
                   'args': {'flow': {'ref': 'network', 'name': 'T'},
                            'particles': 10000,
                            'replicas': 8},
                   'kind': 'flow'}],
     'train': {'steps': 5000,
               'batch': 512,
               'optimizer': {'name': 'adam',
                             'args': {'lr': 0.001, 'b1': 0.9, 'b2': 0.999, 'eps': 1e-08}},
               'lr_schedule': {'name': 'cosine_decay', 'args': {'warmup': 100, 'final': 0.0}},
               'ema': 0.0,
               'clip': 0.0,
               'seed': 0,
               'precision': 'float32',
               'checkpoint_every': 1000,
               'log_every': 100},
     'objective': 'flow_matching',
     'energies': [],
     'constants': {}})


class Networks(torch.nn.Module):
    """The networks of GMM40CNF (``nets``); ``forward(t, x)`` is every network's output at
    (t, x), keyed as the functions below read them (``grad_NAME`` for a potential network)."""

    def __init__(self):
        super().__init__()
        self.nets = networks.build(SPEC)

    def forward(self, t, x, seeds=None, labels=None):
        return networks.outputs(SPEC, self.nets, t, x, seeds, labels)


# each energy by name (density proportional to exp(-U)): what MCMC and SMC samplers evaluate
ENERGIES = {
}
